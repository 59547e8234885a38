"""The web app (webapp/, built by `make` into webapp/dist): its page at `/` and its hashed files.

The page is asked for again on every visit (`no-cache`: a new build shows at the next load), while
the files it names carry a content hash in their names and so never change: a browser keeps them a
year without asking. The app routes in the browser (/assets/ID, /events, ...): a page load of such
a path, which no server route matches, gets the same page, and the app shows the view it names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from stat import S_ISREG

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from graphlake.settings import Settings

ASSET_PREFIX = "/app/assets"  # Vite's base is /app/ (webapp/vite.config.ts), its files go to assets/
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
        return page(settings)

    return [Route("/", index, methods=["GET", "HEAD"]), Route(f"{ASSET_PREFIX}/{{name}}", asset, middleware=middleware)]


def page(settings: Settings) -> Response:
    index = settings.webapp_dir / "index.html"
    if not index.is_file():
        return PlainTextResponse(not_built(settings), status_code=404)
    return FileResponse(index, media_type="text/html", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
    })


def webapp_fallback(settings: Settings) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A 404 handler: a browser loading one of the app's paths (GET, Accept: text/html) gets the page;
    anything else keeps its 404. As a handler rather than a catch-all route, it leaves every other
    answer as it was (a POST to an unknown path stays 404, not 405)."""

    async def handle(request: Request, error: Exception) -> Response:
        app_path = (request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")
                    and not request.url.path.startswith(SERVER_PREFIXES))
        if settings.webapp and app_path:
            return page(settings)
        detail = error.detail if isinstance(error, HTTPException) else "Not Found"
        headers = error.headers if isinstance(error, HTTPException) else None
        return PlainTextResponse(detail, status_code=404, headers=headers)

    return handle
