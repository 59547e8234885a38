"""Answers through `graphlake serve`'s HTTP protocol (graphlake/http_server.py), whose responses
leave their head and body in one write: a head whose body is not ready (a stream's first chunk, a
HEAD request's body that is never sent) still reaches the client at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from graphlake.settings import Settings
from tests.processes import serving


def _app(go_on: asyncio.Event) -> Starlette:
    async def plain(request: Request) -> Response:
        return PlainTextResponse("x" * int(request.query_params.get("size", "2")))

    async def stream(request: Request) -> Response:
        async def chunks():  # type: ignore[no-untyped-def]
            await go_on.wait()
            yield b"first"
            yield b"second"

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/plain", plain, methods=["GET", "HEAD"]), Route("/stream", stream)])
    app.state.settings = Settings(_env_file=None)
    return app


async def test_heads_reach_the_client_whether_or_not_a_body_follows_at_once() -> None:
    go_on = asyncio.Event()
    async with serving(_app(go_on)) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for size in (2, 70_000, 2):  # a body joined to its head, one sent apart, and again on the same connection
            response = await http.get("/plain", params={"size": size})
            assert response.status_code == 200 and response.text == "x" * size
        head = await http.head("/plain")  # no body is ever written: the head goes alone
        assert head.status_code == 200 and head.headers["content-length"] == "2"
        async with http.stream("GET", "/stream") as streamed:  # the head arrives before any chunk exists
            assert streamed.status_code == 200
            go_on.set()
            assert await streamed.aread() == b"firstsecond"


@pytest.mark.parametrize("behind", [b"", b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"], ids=["alone", "pipelined"])
async def test_a_held_head_goes_before_what_the_protocol_writes_itself(behind: bytes) -> None:
    """A HEAD answer's head is held for the loop's next turn; a malformed request pipelined behind it
    made the protocol answer 400 and close the connection in that same turn, past the held head,
    which was dropped: the client got the 400 alone. Also with a good request queued between the
    two (the protocol's current cycle is then the queued one's, which holds nothing)."""
    go_on, waiting = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> Response:
        waiting.set()
        await go_on.wait()
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/slow", slow, methods=["GET", "HEAD"])])
    app.state.settings = Settings(_env_file=None)
    async with serving(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"HEAD /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(waiting.wait(), 10)
            writer.write(behind + b"\x00BAD\r\n\r\n")  # a malformed request behind it
            await writer.drain()
            go_on.set()
            received = await asyncio.wait_for(reader.read(), 10)  # to the server's close
        finally:
            writer.close()
    first, _, rest = received.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 5" in first, received
    assert rest.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received
