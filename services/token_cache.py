"""Tokens this process accepted lately, so a client's next request does not look its token up again.

Every request presents a token, and the lookup was one database round trip on each of them: a
third of a small mutation's database time. An accepted token is remembered for
`GRAPHLAKE_TOKEN_CACHE_SECONDS` (5 by default; 0 turns the cache off). Its expiry is checked on
every use all the same. A revocation through this process (`revokeApiToken`) takes effect at
once; one made elsewhere (`graphlake token revoke`, another server process) within that many
seconds, when the entry lapses. Refused secrets are never remembered, so a new token works at once.

A WebSocket authenticates once, at connection_init, and may stay open for days: `wait_until_refused`
looks its token up again as this memory of it lapses, so a socket learns of a revocation as soon
as a request would, and every socket and request presenting one token shares one lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from documents.api_token import hash_secret
from documents.clock import utcnow
from services.auth import Principal, authenticate
from services.cancellation import raise_if_cancelled
from services.errors import Unauthenticated
from services.pauses import event_within

log = logging.getLogger("graphlake.auth")

MAX_ENTRIES = 10_000  # distinct tokens remembered; the least recently used goes first
# How often a watched token is looked up when nothing is remembered (seconds=0), or a lookup failed.
UNREMEMBERED_RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires_at: datetime | None  # the token's own expiry
    fresh_until: float  # monotonic time after which the token is looked up again


class TokenCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # by the secret's hash, never the secret
        # Lookups under way, by the secret's hash: callers that find the same token stale at once (the
        # sockets of one token wake together when it lapses) share one database round trip.
        self._lookups: dict[str, asyncio.Future[Principal]] = {}
        self._forgotten = asyncio.Event()  # set, then replaced, when this process revokes a token
        self._generation = 0  # counts forgettings: a lookup that began before one remembers nothing

    async def authenticate(self, secret: str) -> Principal:
        """The caller a secret names, from memory while fresh, else from the database."""
        key = hash_secret(secret)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.fresh_until and (entry.expires_at is None or utcnow() < entry.expires_at):
            self._entries.move_to_end(key)
            return entry.principal
        self._entries.pop(key, None)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.ensure_future(self._look_up(key, secret, now))
            lookup.add_done_callback(lambda done: self._lookup_done(key, done))
        # Shielded: one caller giving up (its socket closed) does not cancel the others' lookup.
        return await asyncio.shield(lookup)

    async def _look_up(self, key: str, secret: str, checked_at: float) -> Principal:
        generation = self._generation
        principal, expires_at = await authenticate(secret)
        # A lookup that read the token before this process revoked it must not bring it back.
        if self.seconds > 0 and generation == self._generation:
            self._entries[key] = _Entry(principal, expires_at, checked_at + self.seconds)
            if len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return principal

    def _lookup_done(self, key: str, lookup: asyncio.Future[Principal]) -> None:
        self._lookups.pop(key, None)
        if not lookup.cancelled():
            lookup.exception()  # read here too: every caller may have gone before it ended

    async def wait_until_refused(self, secret: str) -> Unauthenticated:
        """Wait as long as the token `secret` names is accepted; return why it no longer is.

        Looked at again whenever this process's memory of it lapses (a lookup, then, shared with every
        socket and request presenting it), as it expires, and at once when this process revokes a
        token; with no memory (seconds=0), every UNREMEMBERED_RECHECK_SECONDS. A lookup that fails
        (the database away) is no refusal: it is tried again after that interval.
        """
        failing = False  # one log line per outage and socket, not a traceback a second
        while True:
            raise_if_cancelled()  # its socket closed: a cancel lost in a lookup would keep watching for good
            forgotten = self._forgotten  # taken first: a revocation during the lookup still wakes this
            try:
                await self.authenticate(secret)
                wait = self._remembered_for(hash_secret(secret))
                failing = False
            except Unauthenticated as refused:
                return refused
            except Exception as error:
                if not failing:
                    log.warning("could not look a WebSocket's token up again (%s: %s); retrying until it can",
                                type(error).__name__, error)
                failing = True
                wait = UNREMEMBERED_RECHECK_SECONDS
            await event_within(forgotten, wait)

    def _remembered_for(self, key: str) -> float:
        """Seconds until the memory of a token lapses or the token expires, whichever comes first."""
        entry = self._entries.get(key)
        if entry is None:  # nothing remembered (seconds=0), or pushed out by newer tokens
            return self.seconds or UNREMEMBERED_RECHECK_SECONDS
        left = entry.fresh_until - time.monotonic()
        if entry.expires_at is not None:
            left = min(left, (entry.expires_at - utcnow()).total_seconds())
        return max(left, 0.0)

    def forget(self, token_id: str) -> None:
        """Drop a token this process just revoked, so its next request is refused and its sockets close."""
        for key in [k for k, e in self._entries.items() if e.principal.token_id == token_id]:
            del self._entries[key]
        self._generation += 1
        self._forgotten.set()  # wakes every watching socket: each checks its own token again (from memory, but this one)
        self._forgotten = asyncio.Event()

    def clear(self) -> None:
        """Forget every token (the tests empty the token collection between cases)."""
        self._entries.clear()
        self._generation += 1
