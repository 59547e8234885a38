"""The client's retry policy, in one place: which failures are tried again, how often, how long
the client waits in between. Built on stamina (tenacity underneath); the modules that retry only
say which policy applies.

What is retried:
- `unsent_requests`: any GraphQL request, a mutation too, that never reached the server (the
  connection refused or not made in time: a server restarting): nothing ran, so it is sent again.
- `failed_reads`: a query (it changes nothing), also when its answer was lost on the way or the
  server answered UNAVAILABLE (its database or a store was down for a moment). Not an UNAVAILABLE
  with `extensions.retry: false` (a store refusing the server's own credentials): the server says
  only its operator can mend that, so it is raised at once, here and wherever UNAVAILABLE is retried.
- `lost_answers`: a GraphQL request that is safe to send twice, when its answer was lost on the
  way (a timeout, a broken connection, a gateway's 502/503/504): the server may have run it.
- `keyed_writes`: a write each of whose items carries a key the client chose (`logEvents` with
  every event keyed): the server finds what an earlier attempt stored under those keys, so it is
  sent again as a query is, also when the server answered UNAVAILABLE (its database was down for
  a moment, or another call was storing the same keys).
- `store_failures`: a PUT to or GET from a signed URL, on a transport error or the store's 5xx. A 4xx (an
  expired or refused URL) is never retried: sending the same bytes again cannot fix it.
- Never: a URL no attempt can reach (httpx's UnsupportedProtocol: no http:// or https://), which
  is a transport error but fails the same way every time.
- `reconnects`: a live stream (`follow_events`) that ended without `complete` or could not be
  opened, as `failed_reads` would try a query again, and on a reconnection also the token's cap on
  streams (`StreamsFull`, a 429: the dropped stream may hold its slot until the server's next
  heartbeat); a run of attempts begins anew after a stream that worked (an event or a heartbeat
  came), so a follow outlives any number of server restarts.
- `completion_waits`: a completion another request is still at (CONFLICT while the session is
  open, `CompletionUnderWay`), asked again until the server settles it.

How: `retries` attempts after the first. The first wait is `backoff_seconds`, doubling each
attempt, plus a random jitter of up to `backoff_seconds` (so parts failing together do not come
back together), at most BACKOFF_CAP_SECONDS. No overall time limit (stamina's default is 45 s):
a PUT of a big part or a completion reading a big object back can take minutes on its own.

In tests, `stamina.set_testing(True, attempts=N, cap=True)` removes the waits and caps attempts;
setting a client's `backoff_seconds` small keeps the waits short and the attempt counts real.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import httpx
import stamina

from graphlake_client.errors import CompletionUnderWay, GraphlakeClientError, StreamsFull

RETRIES = 5  # attempts after the first, by default
BACKOFF_SECONDS = 0.5  # the first wait, by default
# A completion another request holds is free again within 30 s (the server's claim): waiting
# longer than that would only delay the attempt that takes it over.
BACKOFF_CAP_SECONDS = 30.0
# What a gateway answers when it gave up waiting for the server, or could not reach it: the
# request may have run all the same.
GATEWAY_ERRORS = frozenset({502, 503, 504})


def answer_lost(error: Exception) -> bool:
    """Whether a GraphQL request failed on the way (so sending it again may succeed), not at the server."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in GATEWAY_ERRORS
    return isinstance(error, httpx.TransportError) and not isinstance(error, httpx.UnsupportedProtocol)


def never_sent(error: Exception) -> bool:
    """Whether a request failed before any of it reached the server (so it cannot have run)."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def read_failed(error: Exception) -> bool:
    """Whether a query failed in a way another attempt may fix: on the way, or the server's UNAVAILABLE,
    unless the server said no retry will help (`extensions.retry: false`)."""
    return answer_lost(error) or (isinstance(error, GraphlakeClientError) and error.code == "UNAVAILABLE"
                                  and error.retry)


def store_failed(error: Exception) -> bool:
    """Whether a PUT to or GET from a store failed in a way another attempt may fix: the network, or the store's 5xx."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500
    return isinstance(error, httpx.TransportError) and not isinstance(error, httpx.UnsupportedProtocol)


def _waits(retries: int | None, backoff_seconds: float) -> dict[str, Any]:
    """stamina's arguments for the policy above: `retries` after the first attempt (None: no limit)."""
    return {"attempts": None if retries is None else retries + 1, "timeout": None, "wait_initial": backoff_seconds,
            "wait_max": BACKOFF_CAP_SECONDS, "wait_jitter": backoff_seconds, "wait_exp_base": 2}


def lost_answers(retries: int, backoff_seconds: float) -> stamina.BoundAsyncRetryingCaller:
    """Calls a repeatable GraphQL request again while its answer is lost: `await policy(fn, *args)`."""
    return stamina.AsyncRetryingCaller(**_waits(retries, backoff_seconds)).on(answer_lost)


def keyed_writes(retries: int, backoff_seconds: float) -> stamina.BoundAsyncRetryingCaller:
    """Calls a keyed write again while it fails on the way or the server is UNAVAILABLE: `await policy(fn, *args)`."""
    return stamina.AsyncRetryingCaller(**_waits(retries, backoff_seconds)).on(read_failed)


def unsent_requests(retries: int, backoff_seconds: float) -> stamina.BoundAsyncRetryingCaller:
    """Calls any GraphQL request again while it cannot reach the server: `await policy(fn, *args)`."""
    return stamina.AsyncRetryingCaller(**_waits(retries, backoff_seconds)).on(never_sent)


def failed_reads(retries: int, backoff_seconds: float) -> stamina.BoundAsyncRetryingCaller:
    """Calls a query again while it fails on the way or the server is UNAVAILABLE: `await policy(fn, *args)`."""
    return stamina.AsyncRetryingCaller(**_waits(retries, backoff_seconds)).on(read_failed)


def store_failures(retries: int, backoff_seconds: float) -> stamina.BoundAsyncRetryingCaller:
    """Calls a PUT to a store again while it fails: `await policy(fn, *args)`."""
    return stamina.AsyncRetryingCaller(**_waits(retries, backoff_seconds)).on(store_failed)


def reconnect_failed(error: Exception, reconnecting: bool) -> bool:
    """Whether opening a live stream failed in a way another attempt may fix: as a query's
    (`read_failed`), or, when a stream of the same follow was open before, the token's cap on
    streams (that stream, dropped on the way, can hold its slot until the server's next heartbeat).
    The first stream's 429 is the caller's to hear: its token holds too many streams elsewhere."""
    return read_failed(error) or (reconnecting and isinstance(error, StreamsFull))


def reconnects(retries: int, backoff_seconds: float) -> AsyncIterable[stamina.Attempt]:
    """Attempts at opening a live stream again (follow.py), for `async for attempt in ...: with
    attempt: ...`, while it fails as `reconnect_failed` says (the caller raises in `attempt` only
    such failures: whether it was reconnecting is its to know). An iterator, as the stream's events
    are yielded between attempts; the caller begins a new run of them after a stream that worked for a while."""
    return stamina.retry_context(on=lambda error: reconnect_failed(error, reconnecting=True),
                                 **_waits(retries, backoff_seconds))


def completion_waits(backoff_seconds: float) -> AsyncIterable[stamina.Attempt]:
    """Attempts at a completion, for `async for attempt in ...: with attempt: ...`, again while
    another request is at it (`CompletionUnderWay`). An iterator rather than a caller, as the
    first attempt may differ from the next (`attempt.num`: a completion known to conflict looks
    before it asks). No attempt limit: the server ends the wait, as the other request's claim
    lapses within half a minute (the next attempt then completes the upload itself) and an
    expired session is an error that is not retried."""
    return stamina.retry_context(on=CompletionUnderWay, **_waits(None, backoff_seconds))
