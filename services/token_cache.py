"""Tokens this process accepted lately, so a client's next request does not look its token up again.

Every request presents a token, and the lookup was one database round trip on each of them: a
third of a small mutation's database time. An accepted token is remembered for
`GRAPHLAKE_TOKEN_CACHE_SECONDS` (5 by default; 0 turns the cache off). Its expiry is checked on
every use all the same. A revocation through this process (`revokeApiToken`) takes effect at
once; one made elsewhere (`graphlake token revoke`, another server process) within that many
seconds, when the entry lapses. Refused secrets are never remembered, so a new token works at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from documents.api_token import hash_secret
from documents.clock import utcnow
from services.auth import Principal, authenticate

MAX_ENTRIES = 10_000  # distinct tokens remembered; the least recently used goes first


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires_at: datetime | None  # the token's own expiry
    fresh_until: float  # monotonic time after which the token is looked up again


class TokenCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # by the secret's hash, never the secret

    async def authenticate(self, secret: str) -> Principal:
        """The caller a secret names, from memory while fresh, else from the database."""
        key = hash_secret(secret)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.fresh_until and (entry.expires_at is None or utcnow() < entry.expires_at):
            self._entries.move_to_end(key)
            return entry.principal
        self._entries.pop(key, None)
        principal, expires_at = await authenticate(secret)
        if self.seconds > 0:
            self._entries[key] = _Entry(principal, expires_at, now + self.seconds)
            if len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return principal

    def forget(self, token_id: str) -> None:
        """Drop a token this process just revoked, so its next request is refused."""
        for key in [k for k, e in self._entries.items() if e.principal.token_id == token_id]:
            del self._entries[key]

    def clear(self) -> None:
        """Forget every token (the tests empty the token collection between cases)."""
        self._entries.clear()
