"""GraphiQL is served from local assets only, so it works with no internet access."""

from __future__ import annotations

import asyncio
import re
import shutil

import httpx

from graphlake import PROJECT_ROOT
from graphlake.graphiql import ASSET_PREFIX, ASSETS


async def test_graphiql_page_uses_only_local_assets(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith(ASSET_PREFIX + "/") for s in sources), sources
    assert "Authorization" in page.text  # the headers editor starts with the auth header to fill in
    # Its one inline script runs by a nonce of its own answer; nothing else inline runs, nor loads from elsewhere.
    [nonce] = re.findall(r'<script nonce="([\w-]+)">', page.text)
    policy = page.headers["content-security-policy"]
    assert f"script-src 'self' 'nonce-{nonce}';" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    again = await http.get("/graphql", headers={"Accept": "text/html"})
    assert nonce not in again.text  # a nonce per answer
    for name in ASSETS:
        asset = await http.get(f"{ASSET_PREFIX}/{name}")
        assert asset.status_code == 200, f"{name}: {asset.text[:200]}"
        assert len(asset.content) > 1000


async def test_only_listed_assets_are_served(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{ASSET_PREFIX}/package.json")).status_code == 404
    assert (await http.get(f"{ASSET_PREFIX}/..%2F..%2Fpyproject.toml")).status_code == 404


async def test_graphiql_fetches_the_schema_again_once_a_token_is_typed(http: httpx.AsyncClient) -> None:
    """A caller without a token may not introspect (resolvers/guests.py): GraphiQL starts with no valid
    token, so the page gives it a new fetcher when the headers change, which makes it introspect again."""
    node = shutil.which("node")
    assert node, "Node.js is needed (make installs GraphiQL's assets with npm)"
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    process = await asyncio.create_subprocess_exec(
        node, str(PROJECT_ROOT / "tests" / "js" / "graphiql_page.cjs"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(page.content), 30)
    assert process.returncode == 0 and out.strip() == b"OK", err.decode()
