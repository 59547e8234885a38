"""Every HTTP answer counted for /metrics by method, route and status (services/metrics.py).

The GraphQL operations are counted by their own metrics, but only those that ran: a body refused
as too large (413), unreadable (400), or a request refused as the server is busy (503) never
becomes one. And the routes outside GraphQL (downloads and uploads through signed URLs, the
content route, thumbnails) were counted nowhere: a mount whose signed PUTs all failed, or a
client fetching content it may not read, showed in no metric.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Methods counted as themselves; any other (a client's invention) as "other", so labels stay bounded.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "none"  # a path no route has (the web app's fallback answers it, or 404)


def route_template(scope: Scope) -> str | None:
    """The template of the route the router chose for the request (`/content/{id}`), or None: before
    it chose, or for a path no route has. A set the app defines, never the path a client sent, so
    it names metrics' labels and traces' spans without growing with each object asked for."""
    return getattr(scope.get("route"), "path", None)


class HttpRequests:
    """Counts each HTTP request as it ends. The route is its template (`/blobs/{mount}/{key:path}`),
    a set the app defines, never the path a client sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 0  # no answer started: the client went away, or the server failed after it began

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            state = getattr(scope.get("app"), "state", None)
            metrics = getattr(getattr(state, "graphlake", None), "metrics", None)
            if metrics is not None:
                route = route_template(scope) or UNMATCHED
                method = scope["method"] if scope["method"] in _METHODS else "other"
                metrics.child(metrics.http_requests, method, route, str(status) if status else "none").inc()
