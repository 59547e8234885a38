"""GraphQL over Server-Sent Events: the `graphql-sse` protocol, distinct connections mode.

A request to /graphql (POST, or GET with the operation in the query string) that accepts
`text/event-stream` is answered as a stream: `event: next` with each result, then `event: complete`.
A subscription streams until it ends or the client goes; a query or mutation sends its one result.
Strawberry's SSE transport does the framing; Graphlake adds what its WebSockets have:

- Heartbeats (an SSE comment) every `GRAPHLAKE_SSE_HEARTBEAT_SECONDS`, so proxies keep an idle stream.
- Slots: a stream holds one of the process's `GRAPHLAKE_MAX_WEBSOCKETS` and of its token's
  `GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN` while it is open, as a WebSocket does (it holds the same: a
  task, a context, a subscriber's queue). Over a cap it is refused before it starts: 503 with
  Retry-After for the process's (UNAVAILABLE), 429 for the token's (BAD_USER_INPUT).
- The token is watched as a socket's is: once it is revoked or expires, the stream sends one
  `next` with an UNAUTHENTICATED error, then `complete`, and ends.
- The client going away ends the stream at once, whatever ASGI version the server announces
  (Starlette notices it only as a write fails on ASGI 2.4 servers: up to a heartbeat later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from graphlake.graphql_http import wants_event_stream
from graphlake.settings import Settings
from resolvers.internals import SSETransport
from services.auth import bearer_secret
from services.errors import Unauthenticated
from services.socket_slots import SocketLimitReached

if TYPE_CHECKING:
    from resolvers.context import Context

log = logging.getLogger("graphlake.sse")

AsyncTextStream = Callable[[], AsyncIterator[str]]


def sse_transport(settings: Settings) -> type[SSETransport]:
    """Strawberry's SSE transport, its heartbeat interval read from the settings as each stream starts."""

    class GraphlakeSSETransport(SSETransport):
        def __init__(self) -> None:  # Strawberry builds it without arguments
            pass

        @property
        def heartbeat_interval(self) -> float:  # type: ignore[override]
            return settings.sse_heartbeat_seconds

        def accepts(self, accept: str) -> bool:
            # Strawberry streams whenever text/event-stream is listed at all; a client preferring JSON gets JSON.
            return wants_event_stream(accept)

    return GraphlakeSSETransport


class EventStreamResponse(StreamingResponse):
    """A stream that ends as soon as its client disconnects: it always listens for the disconnect."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def until_done(step: Callable[[], Awaitable[None]]) -> None:
                await step()
                group.cancel_scope.cancel()

            group.start_soon(until_done, partial(self.stream_response, send))
            await until_done(partial(self.listen_for_disconnect, receive))


def _refused_response(full: SocketLimitReached) -> Response:
    if full.per_token:
        message = (f"too many live streams for this token: {full.limit} WebSockets and SSE streams are open "
                   "with it on this server (GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN); close one first")
        return JSONResponse({"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}, status_code=429)
    message = (f"too many live streams on this server: {full.limit} WebSockets and SSE streams are open "
               "(GRAPHLAKE_MAX_WEBSOCKETS); try again later")
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": "UNAVAILABLE"}}]},
                        status_code=503, headers={"Retry-After": "1"})


def event_stream_response(request: Request, context: Context | None, stream: AsyncTextStream,
                          headers: Mapping[str, str], *, max_streams: int, max_streams_per_token: int,
                          encode_json: Callable[[object], str]) -> Response:
    """The response to a graphql-sse request whose operation Strawberry has started: claims its
    slots (or refuses it), watches its token, and gives the slots back as it ends."""
    state = request.app.state.graphlake
    try:
        state.sockets.open(request, limit=max_streams)
        principal = context.principal if context is not None else None
        if principal is not None:
            state.sockets.bind_token(request, principal.token_id, limit=max_streams_per_token)
    except SocketLimitReached as full:
        state.sockets.close(request)
        return _refused_response(full)
    secret = bearer_secret(request.headers.get("authorization")) if principal is not None else None

    async def body() -> AsyncGenerator[str, None]:
        refused = state.tokens.wait_until_refused(secret) if secret is not None else asyncio.Event().wait()
        # Only a subscription ends when the server stops: a query or a mutation runs to its answer,
        # as over plain HTTP (cut short, a mutation could be half done, and sent again by the client).
        stopping = state.stopping if await _streams_until_ended(request) else asyncio.Event()
        try:
            async for chunk in _until_ended(stream(), refused, stopping, encode_json):
                yield chunk
        finally:
            state.sockets.close(request)

    return EventStreamResponse(body(), headers=dict(headers))


async def _streams_until_ended(request: Request) -> bool:
    """Whether the request's operation is a subscription (what it cannot tell, it takes for one)."""
    try:
        if request.method == "GET":
            query, name = request.query_params.get("query"), request.query_params.get("operationName")
        else:
            sent = json.loads(await request.body())  # read already, and kept: Strawberry parsed it
            query, name = sent.get("query"), sent.get("operationName")
        operation = get_operation_ast(parse(query), name) if isinstance(query, str) else None
    except (ValueError, AttributeError, RuntimeError, GraphQLError):  # RuntimeError: a body streamed, not kept
        return True
    return operation is None or operation.operation is OperationType.SUBSCRIPTION


async def _until_ended(chunks: AsyncIterator[str], refused: Awaitable[Unauthenticated] | Awaitable[object],
                       stopping: asyncio.Event, encode_json: Callable[[object], str]) -> AsyncGenerator[str, None]:
    """`chunks` until they end; or until the token is refused: then an UNAUTHENTICATED result and
    `complete`, as a WebSocket's operations get an error then (graphlake/websocket_handlers.py); or
    until the server stops: then the stream just ends, without `complete` (the operation did not
    finish: a graphql-sse client takes the end for a lost connection and subscribes again, as a
    WebSocket client does on uvicorn's 1012)."""
    watch: asyncio.Future[Any] = asyncio.ensure_future(refused)
    stop = asyncio.ensure_future(stopping.wait())
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(chunks))  # type: ignore[arg-type]
            await asyncio.wait({step, watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done() and not step.done():
                log.info("ending an SSE stream: the server is stopping")
                return
            if step.done():
                try:
                    chunk = step.result()
                except StopAsyncIteration:
                    return
                yield chunk
                continue
            if watch.exception() is not None:  # a bug: logged, and the stream goes on unwatched
                log.error("watching an SSE stream's token failed", exc_info=watch.exception())
                watch = asyncio.get_running_loop().create_future()
                continue
            error = watch.result()
            log.info("ending an SSE stream: %s", error)
            transport = SSETransport()
            yield transport.encode_next({"data": None, "errors": [{"message": str(error), "extensions": error.extensions}]},
                                        encode_json)
            yield transport.encode_complete()
            return
    finally:
        watch.cancel()
        stop.cancel()
        if step is not None and not step.done():
            step.cancel()  # unwinds the operation: its subscriber leaves the broadcast
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await step
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
