"""ObjectFileResponse sends the file its route opened (graphlake/object_files.py)."""

from __future__ import annotations

from pathlib import Path

from graphlake.object_files import ObjectFileResponse


async def test_the_bytes_go_through_the_response_even_where_the_server_offers_pathsend(tmp_path: Path) -> None:
    """A server offering `http.response.pathsend` would open the path after `send` returned, by when
    the descriptor the response serves from (/dev/fd/N) is closed: the bytes are sent instead."""
    (tmp_path / "object").write_bytes(b"the stored bytes")
    response = ObjectFileResponse((tmp_path / "object").open("rb"), filename="object", media_type="text/plain")
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/", "headers": [], "query_string": b"",
             "extensions": {"http.response.pathsend": {}}}
    await response(scope, receive, send)
    assert next(m["type"] for m in sent) == "http.response.start"
    assert "http.response.pathsend" not in [m["type"] for m in sent]
    assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == b"the stored bytes"
    assert response.file.closed
