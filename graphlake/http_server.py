"""How uvicorn serves the app: the options `graphlake serve` runs it with, which the tests' in-process
server uses too, so the suite exercises the same HTTP and WebSocket implementations as production."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from graphlake.settings import Settings

# uvicorn's implementation over the `websockets` library's Sans-I/O core: what its "auto" picks since
# uvicorn 0.50, named here so an upgrade cannot fall back to the library's legacy asyncio protocol
# (deprecated upstream), which spent about 10% more of a process's CPU per streamed message (200
# subscribers, 3 interleaved rounds).
WEBSOCKETS = "websockets-sansio"


class Server(uvicorn.Server):
    """uvicorn's server, telling the app when it starts to shut down (AppState.stopping): uvicorn
    closes WebSockets itself, but waits for every HTTP response to end, and an SSE stream of a
    subscription never does by itself (one open stream held a stop for as long as its client stayed)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(getattr(self.config.app, "state", None), "graphlake", None)  # None before the lifespan ran
        if state is not None:
            state.stopping.set()
        await super().shutdown(sockets)


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request whose line and headers exceed `max_head_bytes`
    (431, and the connection closed). httptools sets no bound: a client with no token sending one
    header of hundreds of MiB held the event loop for seconds at a time (the parser grows a header
    value by concatenation, which costs more as it grows) and the process's memory by as much.
    Why not uvicorn's h11 protocol, which takes a bound: it spends more of the server's CPU on every
    request. Counted after each chunk is parsed: bytes of a chunk that completed the head (the
    body's first bytes with it) never count."""

    max_head_bytes = 65_536
    _head_bytes = 0
    _in_head = True
    _holding: list[HeadWithBody] | None = None  # the connection's responses holding a head now (one at most)

    def on_message_begin(self) -> None:
        self._in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not cycle:  # a new request's cycle (not a WebSocket upgrade, which makes none)
            if self._holding is None:
                self._holding = []
            self.cycle.transport = HeadWithBody(self.transport, self.loop, self._holding)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._flush_held()
            message = f"Request line and headers over {self.max_head_bytes} bytes (GRAPHLAKE_MAX_HEADER_BYTES)."
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; "
                                 b"charset=utf-8\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(message), message.encode()))
            self.transport.close()

    # What the protocol writes or closes itself, past the response's HeadWithBody: a head the response
    # being answered still holds (a HEAD answer's, a stream's before its first chunk) goes first, as it
    # did before heads were held. Else a malformed pipelined request's 400, or a shutdown in the same
    # turn, closed the connection first, and that answer's head was dropped. The one holding is not
    # always `self.cycle`: a request pipelined behind it makes that the queued one's.
    def _flush_held(self) -> None:
        for response in list(self._holding or ()):
            response.flush()

    def send_400_response(self, msg: str) -> None:
        self._flush_held()
        super().send_400_response(msg)

    def shutdown(self) -> None:
        self._flush_held()
        super().shutdown()


class HeadWithBody:
    """The connection's transport as one response sees it (uvicorn's RequestResponseCycle writes
    through it): its first write, the status line and headers, waits for the next, the body, and the
    two go out as one. uvicorn writes them apart, so every answer cost two socket sends, each a pass
    through the kernel's TCP stack (and a wake-up of the client): 200 `/healthz` took 403 `write`
    calls, now 203 (strace), and 0.191 against 0.177 ms of the server's CPU each (docs/performance-
    history.md, session 64). A head whose body does not follow in the same step of the
    event loop (a stream's first event is still to come, a file's first chunk still being read) goes
    out by itself at the loop's next turn, so nothing waits on it; a large body is not copied to
    join it."""

    __slots__ = ("_held", "_holding", "_loop", "_started", "_transport")
    JOIN_BYTES = 65_536  # bodies up to this are copied behind the head (most answers); larger go out apart

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 holding: list[HeadWithBody] | None = None) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._started = False
        # The connection's list of responses holding a head (BoundedHeadProtocol._flush_held), in
        # which this one is while it holds: the list, not the protocol, so no reference cycle is made.
        self._holding = holding

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._held = data
            if self._holding is not None:
                self._holding.append(self)
            self._loop.call_soon(self.flush)
            return
        held = self._held
        if held is not None:
            self._let_go()
            if len(data) <= self.JOIN_BYTES:
                data = held + data
            else:
                self._transport.write(held)
        self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (at the loop's next turn, or before anything written past this wrapper)."""
        held = self._held
        if held is not None:
            self._let_go()
            if not self._transport.is_closing():
                self._transport.write(held)

    def _let_go(self) -> None:
        self._held = None
        if self._holding is not None:
            self._holding.remove(self)

    def close(self) -> None:
        self.flush()  # what was written before the close goes first, as it did
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def serve(app: Any, settings: Settings, *, host: str | None = None, port: int | None = None,
          **options: Any) -> Server:
    """The server for `app` as `graphlake serve` runs it (host and port from the settings unless given)."""
    return Server(uvicorn.Config(app, host=host or settings.host, port=settings.port if port is None else port,
                                 **uvicorn_options(settings), **options))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run / uvicorn.Config beside the app, host and port."""
    head_bound = type("BoundedHeadProtocol", (BoundedHeadProtocol,), {"max_head_bytes": settings.max_header_bytes})
    return {
        "log_config": None, "proxy_headers": True, "ws": WEBSOCKETS, "http": head_bound,
        "ws_max_size": settings.max_body_bytes, "ws_per_message_deflate": settings.websocket_compression,
    }


def port_taken(host: str, port: int) -> OSError | None:
    """Why `host`:`port` cannot be listened on now (another server holds it, say), else None: asked
    before anything starts, where uvicorn binds only after the app's startup (the embedded database
    started, the banner printed "is up") and then exits. Each address the host names is tried, as
    uvicorn's bind takes them all; the sockets are closed again at once, and uvicorn binds for real."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        return error
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a TIME_WAIT port is free
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return error
    return None
