"""GET /metrics: the app's Prometheus metrics (services/metrics.py), to whom GRAPHLAKE_METRICS allows.

- `loopback` (the default): clients on this machine only, by the connection's address (a proxy on
  the same machine makes every client look local: use `token` behind one).
- `token`: `Authorization: Bearer <token>` with an ADMIN API token, or GRAPHLAKE_METRICS_TOKEN
  (a scraper's secret that opens nothing else).
- `off`: not served (404), and nothing is recorded.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from documents.roles import Role
from graphlake.settings import Settings
from resolvers.context import AppState
from resolvers.errors import retry_after
from services.auth import bearer_secret
from services.availability import unavailable
from services.errors import Unauthenticated

log = logging.getLogger("graphlake.metrics")


def metrics_route(settings: Settings) -> list[Route]:
    """The route, or none when metrics are off."""
    async def metrics(request: Request) -> Response:
        return await _metrics(request, settings)

    return [] if settings.metrics == "off" else [Route("/metrics", metrics, methods=["GET"])]


async def _metrics(request: Request, settings: Settings) -> Response:
    state: AppState = request.app.state.graphlake
    if state.metrics is None:  # a lifespan that did not make them (never, while served)
        return PlainTextResponse("metrics are off\n", status_code=404)
    refused = await _refusal(request, state, settings)
    if refused is not None:
        return refused
    encoder, content_type = choose_encoder(request.headers.get("accept"))
    return Response(encoder(state.metrics.registry), media_type=content_type)


async def _refusal(request: Request, state: AppState, settings: Settings) -> Response | None:
    """Why this caller may not read the metrics, as the answer to give; None if it may."""
    if settings.metrics == "loopback":
        host = request.client.host if request.client else ""
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        return None if local else PlainTextResponse(
            "/metrics answers clients on this machine only (GRAPHLAKE_METRICS=loopback)\n", status_code=403)
    unauthenticated = PlainTextResponse(
        "/metrics needs a token: Authorization: Bearer <an ADMIN token, or GRAPHLAKE_METRICS_TOKEN>\n",
        status_code=401, headers={"WWW-Authenticate": "Bearer"})
    try:
        secret = bearer_secret(request.headers.get("authorization"))
    except Unauthenticated:
        return unauthenticated
    if not secret:
        return unauthenticated
    dedicated = settings.metrics_token
    if dedicated is not None and hmac.compare_digest(secret.encode(), dedicated.get_secret_value().encode()):
        return None
    try:
        principal = await state.tokens.authenticate(secret)
    except Unauthenticated:
        return unauthenticated
    except Exception as error:
        outage = unavailable(error)
        if outage is None:
            raise
        log.warning("cannot check a /metrics token: %s", outage)
        return PlainTextResponse(f"{outage}\n", status_code=503, headers=retry_after(outage))
    if principal.role is not Role.ADMIN:
        return PlainTextResponse("/metrics needs an ADMIN token (or GRAPHLAKE_METRICS_TOKEN)\n", status_code=403)
    return None
