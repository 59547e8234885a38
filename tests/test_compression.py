"""Compressed answers (graphlake/compression.py) and conditional requests for GraphiQL's assets."""

from __future__ import annotations

import gzip
import json
import sys

import brotli
import httpx
import pytest

from graphlake.app import create_app
from graphlake.graphiql import ASSET_PREFIX
from graphlake.settings import Settings
from resolvers.context import AppState

BIG = "{ __schema { types { name description fields { name description } } } }"  # tens of KB of JSON


async def raw(http: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> tuple[httpx.Response, bytes]:
    """The answer and its body as sent, still encoded (httpx would decode it)."""
    async with http.stream(method, url, **kwargs) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


@pytest.mark.parametrize(("accept_encoding", "encoding", "decode"), [
    ("gzip, deflate, br", "br", brotli.decompress),
    ("gzip", "gzip", gzip.decompress),
    ("identity", None, lambda body: body),
    # q=0 is "not acceptable" (RFC 9110): both middlewares matched the name as a substring.
    ("br;q=0, gzip", "gzip", gzip.decompress),
    ("gzip;q=0", None, lambda body: body),
    ("br;q=0.0, gzip;q=0", None, lambda body: body),
    ("gzip;q=0.5, br;q=1", "br", brotli.decompress),
])
async def test_large_graphql_answers_are_compressed_as_the_client_accepts(
        http: httpx.AsyncClient, viewer: str, accept_encoding: str, encoding: str | None, decode) -> None:
    headers = {"Authorization": f"Bearer {viewer}", "Accept-Encoding": accept_encoding}
    response, body = await raw(http, "POST", "/graphql", json={"query": BIG}, headers=headers)
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == encoding
    answer = json.loads(decode(body))
    assert len(answer["data"]["__schema"]["types"]) > 50
    if encoding:
        assert len(body) * 3 < len(decode(body)), "compressed to less than a third"
        assert "accept-encoding" in response.headers["vary"].lower()
    # The same over GET, and in the new media type.
    response, body = await raw(http, "GET", "/graphql", params={"query": BIG},
                               headers={**headers, "Accept": "application/graphql-response+json"})
    assert response.headers.get("content-encoding") == encoding and json.loads(decode(body))["data"]


async def test_small_answers_are_sent_as_they_are(http: httpx.AsyncClient, viewer: str) -> None:
    response, body = await raw(http, "POST", "/graphql", json={"query": "{ __typename }"},
                               headers={"Authorization": f"Bearer {viewer}", "Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in response.headers and json.loads(body) == {"data": {"__typename": "Query"}}


async def test_event_streams_are_never_compressed(http: httpx.AsyncClient, viewer: str) -> None:
    """Each Server-Sent Event must reach the client when it happens, not when a compressor's buffer fills."""
    response, body = await raw(http, "POST", "/graphql", json={"query": BIG},
                               headers={"Authorization": f"Bearer {viewer}", "Accept-Encoding": "br, gzip",
                                        "Accept": "text/event-stream, application/json"})
    assert "content-encoding" not in response.headers and b"__schema" in body


async def test_graphiql_and_its_assets_are_compressed(http: httpx.AsyncClient) -> None:
    for url in (f"{ASSET_PREFIX}/graphiql.min.js", f"{ASSET_PREFIX}/graphiql.min.css"):
        response, body = await raw(http, "GET", url, headers={"Accept-Encoding": "br"})
        assert response.status_code == 200 and response.headers["content-encoding"] == "br", url
        # The JavaScript shrinks fivefold; the CSS, mostly fonts in base64, by a third.
        assert len(body) < 0.7 * len(brotli.decompress(body)), url
    # A byte range is of the file itself: sent as it is.
    part, body = await raw(http, "GET", f"{ASSET_PREFIX}/graphiql.min.js", headers={"Accept-Encoding": "br",
                                                                                 "Range": "bytes=0-9999"})
    assert part.status_code == 206 and "content-encoding" not in part.headers and len(body) == 10_000
    page, body = await raw(http, "GET", "/graphql", headers={"Accept": "text/html", "Accept-Encoding": "gzip"})
    assert page.headers["content-encoding"] == "gzip" and b"GraphiQL" in gzip.decompress(body)


async def test_gzip_alone_without_brotli_asgi(settings: Settings, state: AppState, viewer: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A server installed without the brotli extra still compresses, with Starlette's gzip."""
    monkeypatch.setitem(sys.modules, "brotli_asgi", None)  # its import now fails
    app = create_app(settings)
    app.state.graphlake = state
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response, body = await raw(http, "POST", "/graphql", json={"query": BIG},
                                   headers={"Authorization": f"Bearer {viewer}", "Accept-Encoding": "br, gzip"})
    assert response.headers["content-encoding"] == "gzip" and json.loads(gzip.decompress(body))["data"]


async def test_compression_can_be_turned_off(settings: Settings, state: AppState, viewer: str) -> None:
    """Behind a proxy that compresses itself: GRAPHLAKE_COMPRESSION=false."""
    app = create_app(settings.model_copy(update={"compression": False}))
    app.state.graphlake = state
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response, body = await raw(http, "POST", "/graphql", json={"query": BIG},
                                   headers={"Authorization": f"Bearer {viewer}", "Accept-Encoding": "br, gzip"})
    assert "content-encoding" not in response.headers and json.loads(body)["data"]


async def test_assets_answer_304_to_a_browser_that_has_them(http: httpx.AsyncClient) -> None:
    url = f"{ASSET_PREFIX}/graphiql.min.css"
    first = await http.get(url)
    assert first.status_code == 200
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"] == "public, max-age=86400"
    for conditional in ({"If-None-Match": etag}, {"If-None-Match": f'W/{etag}, "other"'},
                        {"If-Modified-Since": modified}):
        again = await http.get(url, headers={**conditional, "Accept-Encoding": "br, gzip"})
        assert again.status_code == 304, conditional
        assert again.content == b"" and again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=86400"
    changed = await http.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content
    older = await http.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
    assert older.status_code == 200
    # Not listed, so not served, conditional or not.
    assert (await http.get(f"{ASSET_PREFIX}/package.json", headers={"If-None-Match": "*"})).status_code == 404
