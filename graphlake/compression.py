"""Compressed answers for /graphql and GraphiQL's assets: large JSON pages and JavaScript shrink five- to sevenfold.

Applied per route (graphlake/app.py), never to the signed blob routes: those stream files that are
often compressed already, and answer Range requests, whose byte offsets compression would break.

Brotli (smaller than gzip for JSON and JavaScript, and what browsers ask for first) comes from
brotli-asgi when it is installed (the `brotli` extra; `make` installs it). It is the maintained ASGI
middleware for brotli, and it falls back to Starlette's own gzip responder for clients that accept
gzip only, so gzip answers are the same either way. Without it, Starlette's GZipMiddleware serves
gzip alone. Both leave alone an answer below the size threshold or one already encoded; a request
for a byte range or for Server-Sent Events is never compressed (see Compression).
"""

from __future__ import annotations

import functools

from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from graphlake.graphql_http import wants_event_stream

# brotli-asgi compresses on the event loop (Starlette's gzip moves bodies over 128 KiB to a thread), so
# the quality is the fast one: 3.9 MB of JSON took 25 ms at quality 1, to 15% of its size (smaller
# than gzip -9), and 220 ms at brotli-asgi's default of 4, to 16%, stalling every other request meanwhile.
BROTLI_QUALITY = 1


def brotli_available() -> bool:
    try:
        import brotli_asgi  # noqa: F401
    except ImportError:
        return False
    return True


class Compression:
    """Compresses a route's answers of `minimum_size` bytes or more, as the client's Accept-Encoding allows.

    Passed through as they are: a request answered as Server-Sent Events (graphql_http.wants_event_stream), since each
    event must reach the client when it happens, and one for a byte range (Range), whose offsets name
    the file's own bytes; brotli-asgi, unlike Starlette's gzip, would compress both.
    """

    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        self.app = app
        self.compressing: ASGIApp
        if brotli_available():
            from brotli_asgi import BrotliMiddleware

            self.compressing = BrotliMiddleware(app, quality=BROTLI_QUALITY, minimum_size=minimum_size, gzip_fallback=True)
        else:
            self.compressing = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        if (scope["type"] != "http" or b"range" in headers
                or wants_event_stream(headers.get(b"accept", b"").decode("latin-1"))):
            return await self.app(scope, receive, send)
        asked = headers.get(b"accept-encoding", b"").decode("latin-1")
        if (allowed := acceptable_codings(asked)) != asked:
            # Both middlewares look for "br" and "gzip" as substrings: `gzip;q=0` (RFC 9110: not
            # acceptable) got gzip. They are shown only the codings the client accepts.
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
                     + ([(b"accept-encoding", allowed.encode("latin-1"))] if allowed else [])}
        await self.compressing(scope, receive, send)


CACHED_HEADER_CHARS = 256  # real clients' headers are a few dozen characters; a longer one is parsed, not kept


def acceptable_codings(header: str) -> str:
    """An Accept-Encoding header without the codings it gives a q-value of 0 (or one that is not a number).
    A handful of distinct headers (one per kind of client) come on every request: those are kept parsed.
    Not a long one: a client could send 256 headers of 64 KiB and pin 32 MiB in the cache."""
    return _cached_codings(header) if len(header) <= CACHED_HEADER_CHARS else _codings(header)


def _codings(header: str) -> str:
    parts = [part for part in header.split(",") if part.strip()]
    kept = []
    for part in parts:
        coding, _, parameters = part.partition(";")
        quality = "1"
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                quality = value.strip()
        try:
            acceptable = float(quality) > 0
        except ValueError:
            acceptable = False
        if coding.strip() and acceptable:
            kept.append(part.strip())
    return header if len(kept) == len(parts) else ", ".join(kept)  # unchanged, as sent, when nothing is refused


_cached_codings = functools.lru_cache(maxsize=256)(_codings)


def compression(minimum_size: int) -> Middleware:
    """The middleware for a route whose answers are compressed."""
    return Middleware(Compression, minimum_size=minimum_size)
