"""The client's HTTP side: GraphQL requests to the server, and byte ranges PUT to signed URLs.

Two connection pools: one to the server, carrying the API token, and one to the stores the
signed URLs point at (S3, MinIO, the server's own /blobs route), which never sees the token.
Requests whose answer may be lost on the way are retried here; what is retried, and how long
the client waits, is the retry policy (retries.py).

The pools belong to the event loop they run on: a connection is the loop's socket transport, and
an asyncio.run closes its loop when it ends, so a Client made once and used from several
asyncio.run calls (a script's steps, a notebook's cells) would reach for the first loop's
connections in the second and fail with "Event loop is closed". So each loop the client runs on
gets pools of its own, made when it first sends (`_on_loop`), with whatever else a client asks
once per loop (`LoopState.asked`). A transport the caller hands in is loop-bound the same way: given
as a factory it is made again for each loop; given as an instance it serves the first loop only.

A run that ends without closing the client closes its connections all the same: each loop's pools
are closed by an async generator parked on that loop (`LoopState.closer`), which asyncio.run closes
as it ends (loop.shutdown_asyncgens), while the loop still runs. Left open, their sockets were closed
only when collected, and a script that never called aclose ended in ResourceWarnings.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Self, TypeVar
from urllib.parse import urlsplit

import httpx
import stamina

from graphlake_client.errors import GraphlakeClientError, ServerUnreachable, check_json, encode_times
from graphlake_client.exit_loop import exit_safe, to_thread
from graphlake_client.retries import (
    BACKOFF_SECONDS,
    GATEWAY_ERRORS,
    RETRIES,
    failed_reads,
    keyed_writes,
    lost_answers,
    never_sent,
    store_failures,
    unsent_requests,
)

T = TypeVar("T")

Progress = Callable[[int], None]  # called with the bytes just sent
# A transport for the client's pools: an instance (serves one event loop), or a factory called once per loop.
TransportOption = httpx.AsyncBaseTransport | Callable[[], httpx.AsyncBaseTransport] | None
CONNECT_SECONDS = 10.0
PUT_CHUNK_BYTES = 1024 * 1024  # what a PUT holds of its file at a time
# A document holding a mutation is not sent twice unless it never left, or the verb says it is
# safe to (`_repeatable`). Told by its definitions' keywords, outside strings and comments: a
# fragment, a comma or a BOM may come first. (graphql-core is not a dependency of the client alone.)
_NOT_TOKENS = re.compile(r'"""(?:\\"""|.)*?"""|"(?:\\.|[^"\\\n])*"|#[^\n\r]*', re.S)
_TOKENS = re.compile(r"[{}]|[_A-Za-z][_0-9A-Za-z]*")


def store_refusal(status: int) -> str:
    """The code of a store's (or the server's /blobs or content route's) answer `status` to a signed
    PUT or GET that failed, as GraphQL errors carry them: a refused or expired signature FORBIDDEN,
    an object not there NOT_FOUND, one there already CONFLICT, a store down (after the retries) or
    asking to slow down UNAVAILABLE, any other refusal of the request BAD_USER_INPUT."""
    if status in (401, 403):
        return "FORBIDDEN"
    if status in (404, 410):
        return "NOT_FOUND"
    if status in (409, 412):
        return "CONFLICT"
    if status >= 500 or status == 429:
        return "UNAVAILABLE"
    return "BAD_USER_INPUT" if status >= 400 else "INTERNAL"  # INTERNAL: a redirect not followed, say


def holds_mutation(document: str) -> bool:
    """Whether `document` defines a mutation (`mutation` as a keyword outside any selection set)."""
    depth = 0
    for token in _TOKENS.finditer(_NOT_TOKENS.sub(" ", document)):
        word = token.group()
        if word in "{}":
            depth += 1 if word == "{" else -1
        elif depth == 0 and word == "mutation":
            return True
    return False


def _body(query: str, variables: dict[str, Any]) -> bytes:
    """The request's JSON, aware datetimes as ISO 8601 (`dataTimestamp=datetime.now(UTC)`, a predicate
    on a time). What JSON cannot hold is BAD_USER_INPUT naming the argument and the place inside it,
    before anything is sent; httpx would raise a bare TypeError naming neither."""
    try:
        return json.dumps({"query": query, "variables": variables}, default=encode_times, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode()
    except (TypeError, ValueError) as error:  # UnicodeEncodeError too: a lone surrogate in a string
        for name, value in variables.items():
            check_json(value, name, times=True)
        raise GraphlakeClientError(f"the variables cannot be sent as JSON: {error}", "BAD_USER_INPUT") from None


def server_url(url: str) -> str:
    """The server's root from the URL given (its `/graphql` endpoint works too), checked before
    anything is sent: "127.0.0.1:8000" (no scheme) was retried for 17 s and then reported as a
    server that did not answer, and a port that is no number raised a bare httpx.InvalidURL."""
    def refuse(why: str) -> GraphlakeClientError:
        return GraphlakeClientError(f"url: {url!r} {why}", "BAD_USER_INPUT", "url")

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise refuse(f"is not a URL ({error})") from None
    if parsed.scheme not in ("http", "https"):
        raise refuse("needs http:// or https:// before the host (http://127.0.0.1:8000)")
    if not parsed.host:
        raise refuse("names no host")
    return url.rstrip("/").removesuffix("/graphql")


@dataclass
class LoopState:
    """What a client holds on one event loop: its two connection pools, and the answers it asks for
    once per client (the server's mounts, say) as futures of that loop."""

    http: httpx.AsyncClient
    storage_http: httpx.AsyncClient
    asked: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    closer: AsyncGenerator[None] | None = None  # closes the pools when closed (Transport._closing)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR), made once per
    process: each httpx client made its own, about 20 ms of loading certificates on the event loop,
    twice for every loop a client runs on (a script's each asyncio.run, each CLI command). An
    SSLContext is safe to share across clients, threads and loops."""
    return httpx.create_ssl_context()


class TransportOnAnotherLoop(RuntimeError):
    """A transport instance given to the client, used on a second event loop: its connections belong
    to the first. Named by its argument; a factory (`graphql_transport=lambda: MyTransport(...)`)
    gives each loop one of its own."""

    def __init__(self, argument: str, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(
            f"{argument}: the transport {transport!r} serves the event loop it first ran on, and this client now "
            f"runs on another (a second asyncio.run, say), where its connections would fail with 'Event loop is "
            f"closed'. Pass a factory instead, called once per loop: {argument}=lambda: {type(transport).__name__}(...)")
        self.argument = argument


class Transport:
    """The connections to a server and its stores, and the retry knobs: `retries` (how many times a
    failed request is sent again) and `backoff_seconds` (the first wait between attempts); what
    they mean is the retry policy (retries.py). The connections are made on the loop that first
    sends, one set per loop (see the module's docstring)."""

    backoff_seconds = BACKOFF_SECONDS  # first retry delay; doubles each attempt (with jitter), at most 30 s

    def __init__(self, url: str, token: str | None, *, retries: int = RETRIES, timeout: float = 300,
                 storage_transport: TransportOption = None, graphql_transport: TransportOption = None) -> None:
        # The server prints its endpoint (`.../graphql`); that URL works too, not only the server's root.
        self.url = server_url(url)
        self.retries = retries
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # `timeout` is for an answer (a completion may read a big object back for minutes); a connection
        # is made in seconds or not at all, and is tried again (retries.py): 300 s each was half an hour.
        self._timeout = httpx.Timeout(timeout, connect=CONNECT_SECONDS)
        self._transports = {"graphql_transport": graphql_transport, "storage_transport": storage_transport}
        self._transport_loops: dict[str, asyncio.AbstractEventLoop] = {}  # the loop each given instance serves
        self._loops: dict[asyncio.AbstractEventLoop, LoopState] = {}

    def _on_loop(self) -> LoopState:
        """The running loop's pools, made on its first request. Those of a loop that closed without
        closing them (not run by asyncio.run, which does) are dropped: they cannot be closed without
        it (httpcore would call on it), and their sockets are closed when they are collected."""
        loop = asyncio.get_running_loop()
        exit_safe(loop)  # in an atexit hook: a new connection's name lookup, inline
        state = self._loops.get(loop)
        if state is None:
            self._loops = {other: kept for other, kept in self._loops.items() if not other.is_closed()}
            graphql_transport = self._transport("graphql_transport", loop)
            storage_transport = self._transport("storage_transport", loop)
            state = LoopState(
                httpx.AsyncClient(headers=self._headers, timeout=self._timeout, transport=graphql_transport,
                                  verify=tls_context()),
                # Signed URLs carry their own authorization: never send our token to a store.
                httpx.AsyncClient(timeout=self._timeout, transport=storage_transport, verify=tls_context()))
            state.closer = self._closing(loop, state)
            # Started here, to its yield (nothing before it awaits): its first step registers it with the
            # running loop (the loop's asyncgen hook), whose shutdown_asyncgens then closes it.
            try:
                state.closer.asend(None).send(None)
            except StopIteration:
                pass
            self._loops[loop] = state
        return state

    def _transport(self, argument: str, loop: asyncio.AbstractEventLoop) -> httpx.AsyncBaseTransport | None:
        """The transport `argument` gives for `loop`: a factory's new one, or the instance, on its first loop only."""
        given = self._transports[argument]
        if given is None or isinstance(given, httpx.AsyncBaseTransport):
            if given is not None and self._transport_loops.setdefault(argument, loop) is not loop:
                raise TransportOnAnotherLoop(argument, given)
            return given
        return given()

    async def _closing(self, loop: asyncio.AbstractEventLoop, state: LoopState) -> AsyncGenerator[None]:
        """Waits at its yield for as long as `loop` runs the client; closed by aclose(), or by
        asyncio.run as the run ends, it closes the loop's pools while the loop still runs."""
        try:
            yield
        finally:
            if self._loops.get(loop) is state:
                del self._loops[loop]
            await state.http.aclose()
            await state.storage_http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The connections to the server, on the running loop."""
        return self._on_loop().http

    @property
    def storage_http(self) -> httpx.AsyncClient:
        """The connections to the stores signed URLs point at, on the running loop."""
        return self._on_loop().storage_http

    def _once(self, name: str, ask: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Future[Any]:
        """`ask()`'s answer, asked for once per client on this loop however many callers want it at
        once: a future of another loop cannot be awaited on this one."""
        asked = self._on_loop().asked
        if name not in asked:
            asked[name] = asyncio.ensure_future(ask())
        return asked[name]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections of the running loop. A later call opens new ones (a client used in
        `async with` within one asyncio.run and again in the next), as a later loop's call does.
        asyncio.run closes them as it ends, when this was not called."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None and state.closer is not None:
            await state.closer.aclose()

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL operation; its `data`, or GraphlakeClientError with the first error's code
        (ServerUnreachable when no answer came). Sent again while it cannot reach the server (a
        server restarting), and a query also while its answer is lost or the server is UNAVAILABLE
        (retries.py); a mutation whose answer was lost is not: it may have run."""
        policy = unsent_requests if holds_mutation(query) else failed_reads
        return await self._attempts(policy, query, variables)

    async def _attempts(self, policy: Callable[[int, float], stamina.BoundAsyncRetryingCaller], query: str,
                        variables: dict[str, Any] | None) -> dict[str, Any]:
        try:
            return await policy(self.retries, self.backoff_seconds)(self._post, query, variables)
        except httpx.TransportError as error:
            raise ServerUnreachable(self.url, error, sent=not never_sent(error)) from error
        except httpx.HTTPStatusError as error:  # an answer that is no GraphQL one: a proxy's 502, say
            status = error.response.status_code
            raise GraphlakeClientError(f"{self.url}/graphql answered HTTP {status} without a GraphQL answer",
                                       "UNAVAILABLE" if status in GATEWAY_ERRORS else "INTERNAL") from error

    async def _post(self, query: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        """One attempt at a GraphQL operation."""
        response = await self.http.post(f"{self.url}/graphql", content=_body(query, variables or {}),
                                        headers={"Content-Type": "application/json"})
        try:
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        except ValueError:  # cut short on the way, or no JSON after all
            response.raise_for_status()
            raise GraphlakeClientError(f"{self.url}/graphql answered JSON that does not parse", "INTERNAL") from None
        if not isinstance(body, dict):
            body = {}
        if body.get("errors"):
            raise GraphlakeClientError.answered(body["errors"][0])
        response.raise_for_status()
        if not isinstance(body.get("data"), dict):
            raise GraphlakeClientError(f"{self.url}/graphql answered without data or errors (HTTP {response.status_code})",
                                       "INTERNAL")
        return body["data"]

    async def _repeatable(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """`execute` for a request that is safe to send twice, sent again (up to `retries` times,
        with backoff) when its answer is lost on the way: a timeout, a broken connection, a
        gateway's 502/503/504. The server may have run it all the same."""
        return await self._attempts(lost_answers, query, variables)

    async def _keyed(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """`execute` for a write whose every item carries a key the client chose: the server finds
        what an earlier attempt stored, so it is sent again (up to `retries` times, with backoff)
        when its answer is lost or the server is UNAVAILABLE (retries.keyed_writes)."""
        return await self._attempts(keyed_writes, query, variables)

    async def _put(self, url: str, path: Path, offset: int, size: int, headers: dict[str, str],
                   progress: Progress | None, *, create_only: bool = False) -> None:
        """PUT one byte range of `path`, retried (store_failures) while the network or the store fails."""

        def shorter(found: int) -> GraphlakeClientError:
            return GraphlakeClientError(f"{path} changed since its upload began: {found} bytes where at least "
                                        f"{offset + size} were declared; upload it again", "BAD_USER_INPUT", str(path))

        async def body(source: BinaryIO) -> AsyncIterator[bytes]:
            left = size
            while left:
                chunk = await to_thread(source.read, min(PUT_CHUNK_BYTES, left))
                if not chunk:  # cut short while it was sent
                    raise shorter(offset + size - left)
                left -= len(chunk)
                yield chunk

        async def put() -> None:
            with path.open("rb") as source:
                # Shorter now: an S3 URL is signed for its length (403), the local one refuses it. Said before sending.
                if (found := os.fstat(source.fileno()).st_size) < offset + size:
                    raise shorter(found)
                source.seek(offset)
                # Streamed from the file, not read whole: a part may be as large as the server's
                # threshold makes it (64 MiB by default, GiBs if an operator raises it), four at a
                # time. The length is given, so httpx sends it rather than chunked encoding, which a
                # signed S3 PUT refuses.
                response = await self.storage_http.put(url, content=body(source),
                                                       headers={**headers, "Content-Length": str(size)})
            if create_only and response.status_code == 412:
                # Single-object URLs are create-only: the object is stored already (an earlier run, or
                # an attempt whose answer was lost). Completion checks its size and digest.
                return
            response.raise_for_status()

        await self._store_call("uploadUrl", f"the upload of {path}", put)
        if progress:
            progress(size)

    async def _store_call(self, field: str, doing: str, attempt: Callable[..., Awaitable[T]], *args: Any,
                          **kwargs: Any) -> T:
        """`attempt` (a PUT to or a GET from a signed URL, or the server's content route) retried while
        the network or a store fails (retries.store_failures), then what still stops it said as the
        GraphQL calls say it (_attempts), for uploads and downloads alike: ServerUnreachable when no
        answer came, else GraphlakeClientError with the code its status says (store_refusal). `field`
        names the signed URL (`uploadUrl`, `downloadUrl`) when one failed, `doing` what it was for.
        httpx's own errors carried the whole URL, its signature too, into messages and logs."""
        try:
            return await store_failures(self.retries, self.backoff_seconds)(attempt, *args, **kwargs)
        except httpx.TransportError as error:
            where, at = self._failed_at(error, field)
            # A URL no attempt can reach (no http://) never left either: "may have run" would mislead.
            sent = not never_sent(error) and not isinstance(error, httpx.UnsupportedProtocol)
            raise ServerUnreachable(where, error, sent=sent, field=at, doing=doing) from error
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            where, at = self._failed_at(error, field)
            raise GraphlakeClientError(f"{where} answered HTTP {status} to {doing}", store_refusal(status), at) from error
        except httpx.InvalidURL as error:  # raised before any request is made: there is none to name
            raise GraphlakeClientError(
                f"the server handed out a {field} that is not a URL ({error}), for {doing}: its GRAPHLAKE_PUBLIC_URL, "
                "or the public endpoint of the mount, may be wrong", "INTERNAL", field) from error

    def _failed_at(self, error: httpx.RequestError | httpx.HTTPStatusError, field: str) -> tuple[str, str | None]:
        """Who failed a request, and the field that names it: the server (its content route, no field
        of the caller's), or the place a signed URL points at (a store, or the server's /blobs route),
        `field`, by its origin alone: the URL's signature is not for error messages and logs."""
        try:
            url = str(error.request.url)
        except RuntimeError:  # an error raised without its request
            return self.url, None
        if url.startswith(f"{self.url}/assets/"):
            return self.url, None
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}", field
