"""How Graphlake serves its web app (graphlake/webapp.py): the page at / and at the app's own paths,
never cached; the hashed files it names, cached for a year; and a clear word when it is not built.
The app itself is driven in Chromium by tests/test_webapp.py."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from graphlake import PROJECT_ROOT
from graphlake.app import _announce
from graphlake.graphiql import graphiql_html
from graphlake.settings import Settings
from graphlake.webapp import ASSET_PREFIX, IMMUTABLE

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends when it loads a page
WEBAPP = PROJECT_ROOT / "webapp"


def built() -> None:
    assert (WEBAPP / "dist" / "index.html").is_file(), "the web app is not built: run `make webapp` (make test does)"


async def test_page_at_root_names_hashed_assets_cached_for_a_year(http: httpx.AsyncClient) -> None:
    built()
    page = await http.get("/", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"  # a new build shows at the next load
    assert "script-src 'self'" in page.headers["content-security-policy"]
    files = re.findall(r'(?:src|href)="(/app/assets/[^"]+)"', page.text)
    assert any(f.endswith(".js") for f in files) and any(f.endswith(".css") for f in files), page.text
    for name in files:
        answer = await http.get(name, headers={"Accept-Encoding": "gzip"})
        assert answer.status_code == 200 and answer.headers["cache-control"] == IMMUTABLE
        assert re.search(r"-[\w-]{8}\.(js|css)$", name), f"{name} carries no content hash, so must not be immutable"
        if name.endswith(".js"):
            assert answer.headers.get("content-encoding") == "gzip"  # compressed like GraphiQL's assets
            assert answer.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # A browser that has a file asks with its ETag and gets 304; the page too, revalidated on each load.
    etag = (await http.get(files[0])).headers["etag"]
    assert (await http.get(files[0], headers={"If-None-Match": etag})).status_code == 304
    again = await http.get("/", headers={**HTML, "If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "no-cache" and not again.content
    head = await http.head("/", headers=HTML)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(page.content)) and not head.content
    assert '<meta name="graphlake-root" content="/" />' in page.text


async def test_behind_a_proxy_under_a_path_the_pages_name_everything_under_it(settings: Settings) -> None:
    """GRAPHLAKE_PUBLIC_URL with a path, which a proxy in front strips: the app's page names its files
    and its root under that path, and GraphiQL its files and endpoint (the requests themselves reach
    Graphlake without it). In Chromium, through such a proxy: tests/test_webapp.py."""
    built()
    from graphlake.app import create_app

    app = create_app(settings.model_copy(update={"public_url": "https://lake.example.org/lab/lake/"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lake.test") as http:
        for path in ("/", "/assets/QXNzZXQ6MQ"):
            page = await http.get(path, headers=HTML)
            assert page.status_code == 200
            files = re.findall(r'(?:src|href)="([^"]+/assets/[^"]+)"', page.text)
            assert files and all(f.startswith("/lab/lake/app/assets/") for f in files), files
            assert '<meta name="graphlake-root" content="/lab/lake/" />' in page.text
            assert (await http.get(files[0].removeprefix("/lab/lake"))).status_code == 200
    # GraphiQL's page as the view renders it under that path (the view needs a started app: the
    # Chromium test opens it through the proxy).
    graphiql = graphiql_html("/graphql", "nonce", app.state.settings.base_path)
    sources = re.findall(r'(?:src|href)="([^"]+)"', graphiql)
    assert sources and all(s.startswith("/lab/lake/graphiql-assets/") for s in sources), sources
    assert 'const endpoint = "/lab/lake/graphql";' in graphiql


async def test_app_paths_load_the_page_and_other_misses_stay_404(http: httpx.AsyncClient) -> None:
    built()
    index = (await http.get("/", headers=HTML)).text
    for path in ("/events", "/assets/QXNzZXQ6MQ", "/upload?x=1"):
        answer = await http.get(path, headers=HTML)
        assert answer.status_code == 200 and answer.text == index, path
    # Not a page load (an API client, a script), or under a server prefix: a real 404.
    assert (await http.get("/events")).status_code == 404
    assert (await http.get("/graphql-nope", headers=HTML)).status_code == 404
    assert (await http.get(f"{ASSET_PREFIX}/missing-12345678.js", headers=HTML)).status_code == 404
    assert (await http.get(f"{ASSET_PREFIX}/..%2F..%2Fpackage.json")).status_code == 404
    assert (await http.post("/events", headers=HTML)).status_code == 404  # no catch-all route turning it into 405
    # The routes that were there answer as before.
    assert (await http.get("/healthz")).json()["ok"] is True
    assert (await http.get("/graphql", headers=HTML)).text.count("GraphiQL") > 0


@pytest.fixture
def unbuilt(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"webapp_dir": tmp_path / "dist"})


async def test_without_a_build_the_page_says_how_to_make_one(unbuilt: Settings) -> None:
    from graphlake.app import create_app

    app = create_app(unbuilt)  # the routes only: no lifespan is needed to answer them
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lake.test") as http:
        for path in ("/", "/events"):
            answer = await http.get(path, headers=HTML)
            assert answer.status_code == 404 and "make webapp" in answer.text, answer.text
        answer = await http.get(f"{ASSET_PREFIX}/index-12345678.js")
        assert answer.status_code == 404 and "make webapp" in answer.text


def test_banner_says_where_the_app_is(settings: Settings, unbuilt: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    built()
    _announce(settings, None)
    assert f"Web app          : {settings.base_url}/ (sign in with an API token)" in capsys.readouterr().out
    _announce(unbuilt, None)
    assert "make webapp" in capsys.readouterr().out
    _announce(settings.model_copy(update={"webapp": False}), None)
    assert "Web app          : off" in capsys.readouterr().out



def test_banner_says_when_graphiqls_assets_are_missing(settings: Settings, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """It said GraphiQL was at /graphql though its assets were not installed (a checkout served without
    `make`): the page was blank, while the web app's line said how to build it."""
    _announce(settings.model_copy(update={"graphiql_assets_dir": tmp_path / "node_modules"}), None)
    out = capsys.readouterr().out
    assert "GraphiQL         : GraphiQL's assets are not installed" in out and "make assets" in out
    _announce(settings.model_copy(update={"graphiql": False}), None)
    assert "GraphiQL         : off" in capsys.readouterr().out


def test_the_apps_javascript_stays_under_500_kb_gzipped() -> None:
    """The budget issue #21 sets (GraphiQL apart): every script the page loads, compressed as served."""
    built()
    page = (WEBAPP / "dist" / "index.html").read_text()
    scripts = [WEBAPP / "dist" / "assets" / name for name in re.findall(r'"\./assets/([^"]+\.js)"', page)]
    # Chunks the entry imports load too: count every script in the build, not only those the page names.
    scripts = sorted(set(scripts) | set((WEBAPP / "dist" / "assets").glob("*.js")))
    size = sum(len(gzip.compress(path.read_bytes(), compresslevel=6)) for path in scripts)
    assert scripts and size < 500 * 1024, f"{size / 1024:.0f} KB of JavaScript gzipped in {[p.name for p in scripts]}"
