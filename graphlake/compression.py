"""Compressed answers for /graphql and GraphiQL's assets: JSON pages and JavaScript shrink five- to tenfold.

Applied per route (graphlake/app.py), never to the signed blob routes: those stream files that are
often compressed already, and answer Range requests, whose byte offsets compression would break.

Brotli (smaller than gzip for JSON and JavaScript, and what browsers ask for first) comes from
brotli-asgi when it is installed (the `brotli` extra; `make` installs it). It is the maintained ASGI
middleware for brotli, and it falls back to Starlette's own gzip responder for clients that accept
gzip only, so gzip answers are the same either way. Without it, Starlette's GZipMiddleware serves
gzip alone. Both leave alone an answer below the size threshold, one that is already encoded, and
a partial (206) one; Starlette's gzip also skips Server-Sent Events and images.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

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


def compression(minimum_size: int) -> Middleware:
    """The middleware that compresses a route's answers of `minimum_size` bytes or more."""
    if brotli_available():
        from brotli_asgi import BrotliMiddleware

        return Middleware(BrotliMiddleware, quality=BROTLI_QUALITY, minimum_size=minimum_size, gzip_fallback=True)
    return Middleware(GZipMiddleware, minimum_size=minimum_size)
