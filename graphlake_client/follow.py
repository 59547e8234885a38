"""Following the event log live: `Client.follow_events`, the `events` subscription over GraphQL over
SSE (graphql-sse, distinct connections: a POST to /graphql that accepts `text/event-stream`).

A stream that ends without `complete` (the server stopped or restarted, the network dropped, the
subscriber fell behind and was dropped: UNAVAILABLE) is opened again with the client's retry policy
(retries.reconnects), resuming with `after`; so is one refused with 429 as it is opened again (the
token's cap on streams, whose slot the dropped stream may hold until the server's next heartbeat).
Across server processes the live stream is not in ID order (README, "Resuming a subscription"):
the last event received may sort after one of another process that was not yet received. So a
resume starts `RESUME_BACK_MS` before the last event's ID (event IDs sort by the millisecond they
were made: documents/event.py) and drops the IDs already given (`Seen`), and each event reaches the
caller once. A replay the server cuts short (more than
GRAPHLAKE_MAX_EVENT_REPLAY events since `after`: BAD_USER_INPUT on `after`) goes on the same way.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import httpx

from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError, ServerUnreachable, StreamsFull
from graphlake_client.results import Event
from graphlake_client.retries import GATEWAY_ERRORS, never_sent, reconnect_failed, reconnects

if TYPE_CHECKING:
    from graphlake_client.transport import Transport

# Retries for a follow that should outlive a lake's restart or upgrade (the `graphlake events follow`
# command's): waits of 0.5, 1, 2 ... s, about two minutes in all, as the log handler's
# (logs.HANDLER_RETRIES), where the interactive default's 15 s end a follow mid-upgrade.
RESTART_RETRIES = 9
# How far before the last event's ID a resume starts: another process's events reach a subscriber up
# to 50 ms after they were stored (README), so a second covers that with room for clocks and load.
RESUME_BACK_MS = 1000
# IDs remembered to drop repeats: those of the last few seconds (all a resume can give again), at
# most this many (a lake logging faster than that a second repeats some after a resume).
SEEN_MOST = 100_000
SEEN_WINDOW_MS = 3 * RESUME_BACK_MS
_EVENT_PREFIX = b"Event:"


def event_millis(event_id: str) -> int | None:
    """When an event's ID was made, in ms since the epoch: its ObjectId holds the second, then the
    millisecond (documents/event.py). None for what is no event ID (a cursor given as `after`)."""
    try:
        raw = base64.urlsafe_b64decode(event_id + "=" * (-len(event_id) % 4))
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_EVENT_PREFIX) or len(raw) != len(_EVENT_PREFIX) + 24:
        return None
    try:
        oid = bytes.fromhex(raw[len(_EVENT_PREFIX):].decode("ascii"))
    except ValueError:
        return None
    millis = int.from_bytes(oid[4:6], "big")
    # An event stored before IDs held milliseconds: random bytes there; its second alone counts.
    return int.from_bytes(oid[:4], "big") * 1000 + (millis if millis < 1000 else 0)


def position_at(ms: int) -> str:
    """An event ID that sorts before every event made at or after `ms`: a position for `after`,
    which the server reads without looking it up."""
    seconds, millis = divmod(max(ms, 0), 1000)
    oid = seconds.to_bytes(4, "big") + millis.to_bytes(2, "big") + bytes(6)
    return base64.urlsafe_b64encode(_EVENT_PREFIX + oid.hex().encode()).decode().rstrip("=")


class Seen:
    """The IDs given to the caller lately: those within SEEN_WINDOW_MS of the newest, at most SEEN_MOST."""

    def __init__(self) -> None:
        self._ids: dict[str, int | None] = {}  # in the order received, which is ID order but for 50 ms
        self._newest: int | None = None

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str, ms: int | None) -> None:
        self._ids[event_id] = ms
        if ms is not None and (self._newest is None or ms > self._newest):
            self._newest = ms
        while len(self._ids) > SEEN_MOST:
            del self._ids[next(iter(self._ids))]
        # From the oldest end only, and only what fell out of the window: each ID is dropped once,
        # where copying the dict to look through it cost every event the size of the window.
        while self._newest is not None and self._ids:
            old, made = next(iter(self._ids.items()))
            if made is None or made >= self._newest - SEEN_WINDOW_MS:
                break
            del self._ids[old]


class _ReplayCut(Exception):
    """The server ended a replay at its limit (BAD_USER_INPUT on `after`): resume from the last received."""


def _refusal(payload: dict[str, Any], received: int) -> Exception:
    """The first error of a `next`, as the client raises it."""
    error = payload["errors"][0]
    extensions = error.get("extensions") or {}
    code, field = extensions.get("code"), extensions.get("field")
    if code == "BAD_USER_INPUT" and field == "after" and received:
        return _ReplayCut(error.get("message"))
    return GraphlakeClientError.answered(error, "the event stream failed")


class Follower:
    """One `follow_events` call: its filter, where it stands, what it gave."""

    def __init__(self, transport: Transport, event_filter: dict[str, Any], after: str | None) -> None:
        self.transport, self.filter = transport, event_filter
        self.after = after  # the caller's: where the follow began
        self.last: str | None = None  # the last event received
        self.opened_ms: int | None = None  # the server's time (to the second) as the first stream opened
        self.exact = False  # resume from the last event itself (after a replay cut short), not before it
        self.streams = 0  # streams opened: after one, a 429 may be its own slot, still held
        self.seen = Seen()

    def resume_after(self) -> str | None:
        """`after` for the next stream: a second before the last event received, but never before
        where the follow began (the caller's `after`; else the second its first stream opened, to the
        second as the Date header says it: rounded down, as one rounded up could miss events of that
        second; so a resume before the first event can give some logged up to a second before it)."""
        start = position_at(self.opened_ms) if self.after is None and self.opened_ms is not None else self.after
        if self.last is None:
            return start
        ms = None if self.exact else event_millis(self.last)
        if ms is None:
            return self.last
        began = event_millis(start) if start is not None else 0
        if began is None:  # a cursor, which says no time: back from it could give what it excludes
            return self.last
        return start if began >= ms - RESUME_BACK_MS else position_at(ms - RESUME_BACK_MS)

    async def events(self) -> AsyncGenerator[Event, None]:
        """The events, each once, until the server completes the subscription or an error stops it."""
        try:
            while True:
                # A run of attempts, begun again after a stream that worked for a while: a follow
                # lasting days outlives any number of restarts, each retried as a request would be.
                async for attempt in reconnects(self.transport.retries, self.transport.backoff_seconds):
                    failure: Exception | None = None
                    worked = False
                    try:
                        # Closed as the caller stops (a break, a cancel): the HTTP stream with it, at once.
                        async with aclosing(self._stream(self.resume_after())) as stream:
                            async for event in stream:
                                # Worked: a heartbeat came, or an event not given before. Not the
                                # repeats a resume replays first: a server that ends each stream
                                # after those would be asked again at once, without end.
                                if event is None:
                                    worked = True
                                    continue
                                self.last, self.exact = event["id"], False
                                if event["id"] in self.seen:
                                    continue
                                worked = True
                                self.seen.add(event["id"], event_millis(event["id"]))
                                yield event
                        return  # complete: the server ended the subscription
                    except _ReplayCut:
                        # From the last one itself: a second back could hold more than a replay's limit again.
                        worked, self.exact = True, True
                    except Exception as error:  # sorted just below
                        if not reconnect_failed(error, reconnecting=self.streams > 0):
                            raise
                        failure = error
                    if worked:
                        break
                    with attempt:
                        raise failure  # type: ignore[misc]  # set: a stream that did not work failed
        except httpx.TransportError as error:
            raise ServerUnreachable(self.transport.url, error, sent=not never_sent(error)) from error
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            raise GraphlakeClientError(f"{self.transport.url}/graphql answered HTTP {status} without an event stream",
                                       "UNAVAILABLE" if status in GATEWAY_ERRORS else "INTERNAL") from error

    async def _stream(self, after: str | None) -> AsyncGenerator[Event | None, None]:
        """One stream's events (None for each heartbeat); httpx.RemoteProtocolError when it ends without `complete`."""
        body = json.dumps({"query": ops.FOLLOW_EVENTS, "operationName": "FollowEvents",
                           "variables": {"filter": self.filter, "after": after}})
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        received = 0
        async with self.transport.http.stream("POST", f"{self.transport.url}/graphql", content=body,
                                              headers=headers) as response:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                await _refused(response)
            self.streams += 1
            if self.opened_ms is None and self.after is None:
                self.opened_ms = _server_ms(response)
            kind, data = None, []
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    yield None
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line:
                    if kind == "complete":
                        return
                    if kind == "next" and data:
                        payload = json.loads("\n".join(data))
                        if payload.get("errors"):
                            raise _refusal(payload, received)
                        received += 1
                        yield payload["data"]["events"]
                    kind, data = None, []
        raise httpx.RemoteProtocolError("the event stream ended without `complete`", request=response.request)


def _server_ms(response: httpx.Response) -> int:
    """The server's time as it answered (its Date header: to the second), in ms; this machine's without one."""
    try:
        return int(email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()) * 1000
    except (KeyError, TypeError, ValueError):
        return int(time.time()) * 1000


async def _refused(response: httpx.Response) -> None:
    """A request answered without a stream: its GraphQL error (429 for the token's streams; 503, UNAVAILABLE,
    for the server's, which is tried again), or the HTTP status (a gateway's 502)."""
    await response.aread()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("errors"):
        refusal = _refusal(body, 0)
        if response.status_code == 429 and isinstance(refusal, GraphlakeClientError):  # the token's cap on streams
            raise StreamsFull(str(refusal), refusal.code, refusal.field)
        raise refusal
    response.raise_for_status()
    raise GraphlakeClientError(f"{response.request.url} answered HTTP {response.status_code} without an event stream",
                               "INTERNAL")
