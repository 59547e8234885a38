"""A GraphQL request over HTTP leaves no reference cycle behind: what it built is freed as it is
answered, by reference counting, not by the next garbage collection, whose young collections of
what every request left cost a serving process about a quarter of an empty query's CPU
(docs/performance-history.md, session 64; tests/unit/test_reference_cycles.py for the executor)."""

from __future__ import annotations

import gc

import orjson
from starlette.applications import Starlette


class _Exchange:
    """One request's receive and send, as a server calls the app (no client library between)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        body, self.body = self.body, b""
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: dict) -> None:
        self.sent.append(message)


async def _post(app: Starlette, token: str, document: str) -> dict:
    body = orjson.dumps({"query": document})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "root_path": "", "query_string": b"",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "state": {},
             "headers": [(b"host", b"graphlake.test"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()), (b"authorization", f"Bearer {token}".encode())]}
    exchange = _Exchange(body)
    await app(scope, exchange.receive, exchange.send)
    assert exchange.sent[0]["status"] == 200
    return orjson.loads(exchange.sent[1]["body"])


async def test_graphql_requests_leave_nothing_for_the_collector(app: Starlette, viewer: str) -> None:
    for document in ("{ __typename }", "{ me { role } }"):
        assert "errors" not in await _post(app, viewer, document)  # anything made once is made now
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                await _post(app, viewer, document)
            left = gc.collect()
        finally:
            gc.enable()
        assert left == 0, f"{document}: {left} objects freed only by the collector"
