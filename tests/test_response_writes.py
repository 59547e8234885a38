"""Answers through `graphlake serve`'s HTTP protocol (graphlake/http_server.py), whose responses
leave their head and body in one write: a head whose body is not ready (a stream's first chunk, a
HEAD request's body that is never sent) still reaches the client at once."""

from __future__ import annotations

import asyncio

import httpx
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
