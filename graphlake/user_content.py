"""What users stored, served from the web app's own origin (`/blobs`, `/assets/{id}/content`,
`/thumbnails`): never run there as a page, a script or a style.

The routes send the uploader's media type (`text/html`, `application/javascript`, `image/svg+xml`),
always as an attachment, so a browser that opens one downloads it. But a `<script src>` on a page
of this origin loads a signed `/blobs` URL of a JavaScript file all the same, under the web app's
own `script-src 'self'`: any CONTRIBUTOR could place a script the app's policy trusts, which any
future HTML injection would turn into token theft. So these responses carry `nosniff` and a
sandboxing policy (a document shown from them runs nothing and reaches nothing), and a request a
browser makes to run or apply what it fetches (`Sec-Fetch-Dest: script`, `style`, a worker) is
refused. Images (`<img>`, the thumbnails grid) and downloads are what the routes are for, and are
untouched. Other origins may still embed them (no Cross-Origin-Resource-Policy): signed URLs are
handed to other tools on purpose.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a browser runs or applies, as Fetch Metadata names its destinations.
RUN_DESTINATIONS = frozenset({b"script", b"style", b"worker", b"sharedworker", b"serviceworker", b"audioworklet",
                              b"paintworklet", b"xslt"})
HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


class UserContent:
    """ASGI middleware for the routes that serve stored bytes (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        destination = dict(scope["headers"]).get(b"sec-fetch-dest", b"").lower()
        if destination in RUN_DESTINATIONS:
            refused = PlainTextResponse(f"stored content is never loaded as a {destination.decode()} on this origin",
                                        status_code=403, headers=HEADERS)
            return await refused(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def user_content() -> list[Middleware]:
    """The middleware of a route serving stored bytes."""
    return [Middleware(UserContent)]
