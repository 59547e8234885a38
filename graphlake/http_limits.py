"""Plain ASGI middleware: a request id on every request and WebSocket, and a cap on GraphQL request bodies."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphlake.logs import request_id_var
from resolvers.errors import internal_error

log = logging.getLogger("graphlake.errors")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


class RequestId:
    """Takes a sane `X-Request-ID` from the client or makes one; logs and INTERNAL errors carry it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else os.urandom(16).hex()  # uuid4().hex's randomness, cheaper
        token = request_id_var.set(request_id)
        sent: set[str] = set()  # the kinds of message sent: whether an answer started, a socket opened or closed

        async def send_with_id(message: Message) -> None:
            sent.add(message["type"])
            if message["type"] in ("http.response.start", "websocket.accept"):  # a socket's client may quote it too
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # An error no route answered (GraphQL masks and logs its own: resolvers/errors.py), or one
            # a WebSocket's handling raised outside its operations. Left to Starlette and uvicorn, its
            # client got a plain 500 (a socket: its connection dropped, with no close frame) without
            # this id, and the traceback was logged after the id was reset, as `[-]`: nothing tied the
            # two. Logged once here instead (the path without its query, which may carry a
            # signature), and answered as GraphQL's are.
            if scope["type"] == "http":
                log.error("unexpected error in %s %s", scope.get("method"), scope.get("path"), exc_info=True)
                if "http.response.start" not in sent:  # else the response is cut short: the server closes the connection
                    await send_with_id({"type": "http.response.start", "status": 500,
                                        "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": orjson.dumps({"errors": [internal_error(request_id)]})})
            else:
                log.error("unexpected error in WebSocket %s", scope.get("path"), exc_info=True)
                await _end_socket(scope, send, sent, request_id)
        finally:
            request_id_var.reset(token)


async def _end_socket(scope: Scope, send: Send, sent: set[str], request_id: str) -> None:
    """Ends a socket whose handling failed unexpectedly: an open one closes with 1011 (Internal
    Error), the reason the INTERNAL error's message with the id to quote; a handshake not answered
    yet gets the 500 an HTTP request would, where the server lets an app answer one (uvicorn does),
    else it is refused. A socket closed already, or a client gone, is left as it is."""
    if "websocket.close" in sent or "websocket.http.response.start" in sent:
        return
    with contextlib.suppress(OSError):  # the client went away (uvicorn's ClientDisconnected)
        if "websocket.accept" in sent:
            # A close's reason holds 123 bytes; the message, with the longest id taken, fits.
            await send({"type": "websocket.close", "code": 1011, "reason": internal_error(request_id)["message"][:123]})
        elif "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]})
            await send({"type": "websocket.http.response.body",
                        "body": orjson.dumps({"errors": [internal_error(request_id)]})})
        else:
            await send({"type": "websocket.close", "code": 1011})


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuses (413) request bodies over `max_bytes` on `paths`, before they are buffered whole.

    Checks Content-Length up front and also counts a chunked body as it arrives.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, paths: Sequence[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = tuple(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.paths):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.max_bytes:
                return await self._refuse(send)
            # The server reads no more than Content-Length says (what follows is the next request), so
            # a body it allows needs no counting: nearly every request, spared two wrappers (~2 us).
            return await self.app(scope, receive, send)
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps({"errors": [{
            "message": f"request body is larger than {self.max_bytes} bytes (GRAPHLAKE_MAX_BODY_BYTES)",
            "extensions": {"code": "BAD_USER_INPUT"},
        }]})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
