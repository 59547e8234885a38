"""The web app (webapp/, built by `make` into webapp/dist): its page at `/` and its hashed files.

The page is asked for again on every visit (`no-cache`: a new build shows at the next load), while
the files it names carry a content hash in their names and so never change: a browser keeps them a
year without asking. The app routes in the browser (/assets/ID, /events, ...): a page load of such
a path, which no server route matches, gets the same page, and the app shows the view it names.

Behind a proxy that serves Graphlake under a path (GRAPHLAKE_PUBLIC_URL=https://host/lake, the proxy
passing /lake/X on as /X), the browser must ask for everything under that path. Vite builds the
page with relative file URLs (./assets/...), and the files find one another from their own URLs;
the page is served with its files' URLs made absolute under the public URL's path, and that path
written into <meta name="graphlake-root">, where the app takes its router's base and its
/graphql and content URLs from (webapp/src/root.ts).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from graphlake.settings import Settings

ASSET_PREFIX = "/app/assets"  # where the files Vite builds into dist/assets/ are served (webapp/vite.config.ts)
# Paths the page is never the answer for: a miss under them is a real 404, whatever the Accept header.
SERVER_PREFIXES = ("/graphql", "/graphiql-assets", "/blobs", "/app/", "/metrics", "/healthz", "/readyz")
IMMUTABLE = "public, max-age=31536000, immutable"
# Only this origin's scripts and styles; images and requests may also go to the stores that signed
# URLs point at (an S3 mount is another origin), and subscriptions go over WebSocket.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; "
                           "connect-src 'self' ws: wss: http: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def not_built(settings: Settings) -> str:
    return (f"Graphlake's web app is not built in {settings.webapp_dir}: run `make webapp` "
            "(npm ci and npm run build in webapp/; `make run` does it too).")


def webapp_built(settings: Settings) -> bool:
    return (settings.webapp_dir / "index.html").is_file()


def webapp_routes(settings: Settings, middleware: Sequence[Middleware] = ()) -> list[Route]:
    """`/` and the hashed files under ASSET_PREFIX; `webapp_fallback` answers the app's own paths."""
    if not settings.webapp:
        return []
    root = settings.webapp_dir / "assets"
    files = StaticFiles(directory=root, check_dir=False)

    async def asset(request: Request) -> Response:
        # {name} matches one path segment, so nothing outside assets/ can be named.
        path = root / request.path_params["name"]
        try:
            found = path.stat()
        except OSError:
            found = None
        if found is None or not S_ISREG(found.st_mode):
            detail = "" if webapp_built(settings) else " " + not_built(settings)
            return PlainTextResponse(f"not found.{detail}", status_code=404)
        response = files.file_response(path, found, request.scope)  # a FileResponse, or a 304
        response.headers["Cache-Control"] = IMMUTABLE
        return response

    async def index(request: Request) -> Response:
        return page(settings, request)

    return [Route("/", index, methods=["GET", "HEAD"]), Route(f"{ASSET_PREFIX}/{{name}}", asset, middleware=middleware)]


# The page's own file URLs, relative as Vite writes them (base "./"), and its root, in the source "/".
_FILE_URL = re.compile(r'(\s(?:src|href)=")\./assets/')
_ROOT_META = re.compile(r'(<meta name="graphlake-root" content=")[^"]*(")')


@lru_cache(maxsize=4)
def _rendered(index: Path, modified: int, size: int, root: str) -> tuple[bytes, str]:
    """dist/index.html as served under `root`, and its ETag; again only when the build changes."""
    text = _FILE_URL.sub(lambda m: f"{m[1]}{html.escape(root)}{ASSET_PREFIX}/", index.read_text())
    text = _ROOT_META.sub(lambda m: f"{m[1]}{html.escape(root)}/{m[2]}", text, count=1)
    body = text.encode()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def page(settings: Settings, request: Request) -> Response:
    index = settings.webapp_dir / "index.html"
    try:
        found = index.stat()
    except OSError:
        found = None
    if found is None or not S_ISREG(found.st_mode):
        return PlainTextResponse(not_built(settings), status_code=404)
    body, etag = _rendered(index, found.st_mtime_ns, found.st_size, settings.base_path)
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY,
               "X-Content-Type-Options": "nosniff", "ETag": etag}
    # Revalidated on every load (no-cache): a browser that has this build's page gets 304.
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(b"" if request.method == "HEAD" else body, media_type="text/html; charset=utf-8",
                    headers={**headers, "Content-Length": str(len(body))})


def webapp_fallback(settings: Settings) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A 404 handler: a browser loading one of the app's paths (GET, Accept: text/html) gets the page;
    anything else keeps its 404. As a handler rather than a catch-all route, it leaves every other
    answer as it was (a POST to an unknown path stays 404, not 405)."""

    async def handle(request: Request, error: Exception) -> Response:
        app_path = (request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")
                    and not request.url.path.startswith(SERVER_PREFIXES))
        if settings.webapp and app_path:
            return page(settings, request)
        detail = error.detail if isinstance(error, HTTPException) else "Not Found"
        headers = error.headers if isinstance(error, HTTPException) else None
        return PlainTextResponse(detail, status_code=404, headers=headers)

    return handle
