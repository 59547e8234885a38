"""GraphiQL is served from local assets only, so it works with no internet access."""

from __future__ import annotations

import re

import httpx

from graphlake.graphiql import ASSET_PREFIX, ASSETS


async def test_graphiql_page_uses_only_local_assets(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith(ASSET_PREFIX + "/") for s in sources), sources
    assert "Authorization" in page.text  # the headers editor starts with the auth header to fill in
    for name in ASSETS:
        asset = await http.get(f"{ASSET_PREFIX}/{name}")
        assert asset.status_code == 200, f"{name}: {asset.text[:200]}"
        assert len(asset.content) > 1000


async def test_only_listed_assets_are_served(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{ASSET_PREFIX}/package.json")).status_code == 404
    assert (await http.get(f"{ASSET_PREFIX}/..%2F..%2Fpyproject.toml")).status_code == 404
