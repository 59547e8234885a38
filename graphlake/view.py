"""The Strawberry view: builds each request's Context and authenticates HTTP and WebSocket callers."""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET

from graphlake.graphiql import graphiql_html
from graphlake.logs import request_id_var
from graphlake.request_json import UnreadableJSON, check_ws_message, kind, loads
from graphlake.settings import Settings
from graphlake.websocket_handlers import LegacyWSHandler, TransportWSHandler, authorization, refusal
from resolvers.context import Context
from resolvers.internals import HTTPException
from services.auth import bearer_secret
from services.availability import unavailable
from services.errors import Unauthenticated
from services.socket_slots import SocketLimitReached

log = logging.getLogger("graphlake.errors")

# The code of a GraphQL error for each HTTP status Strawberry refuses a request with.
_HTTP_CODES = {400: "BAD_USER_INPUT", 404: "NOT_FOUND", 405: "BAD_USER_INPUT", 413: "BAD_USER_INPUT"}


class GraphQLView(GraphQL[Context, None]):
    # Both time out a socket that never initialises (GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS, read
    # per connection), refuse one over its token's cap and end one whose token is revoked or
    # expires: see graphlake/websocket_handlers.py.
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: BaseSchema, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.settings = settings
        self._reading_query_params = False

    async def get_context(self, request: Request | WebSocket, response: Response | None = None) -> Context:
        context = Context(
            state=request.app.state.graphlake, request=request, response=response,
            request_id=request_id_var.get() or "-",
        )
        if isinstance(request, Request):
            await _authenticate(context, request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        context.principal = context.auth_error = None  # graphql-ws lets a client initialise again
        try:
            await _authenticate(context, authorization(context.connection_params))
        except Exception as error:
            outage = unavailable(error)
            if outage is None:
                raise
            log.warning("unavailable at connection_init: %s (%s)", outage, type(error).__name__)
            raise ConnectionRejectionError({"message": str(outage), "code": outage.code}) from None
        if context.auth_error:
            # A wrong token closes the connection (4403) rather than failing each subscription later.
            raise ConnectionRejectionError({"message": context.auth_error, "code": "UNAUTHENTICATED"})
        if context.principal is None and not self.settings.anonymous_read:
            # Nothing a socket carries works without a token here, and an idle one would hold one of
            # the process's GRAPHLAKE_MAX_WEBSOCKETS slots for good: 1,000 of them locked everyone out.
            raise ConnectionRejectionError({"message": "this needs an API token: send it in connection_init "
                                                       "as {\"Authorization\": \"Bearer <token>\"}",
                                            "code": "UNAUTHENTICATED"})
        if context.principal is not None:  # SocketLimitReached: the handler closes the socket (4429)
            context.state.sockets.bind_token(context.request, context.principal.token_id,
                                             limit=self.settings.max_websockets_per_token)
        return None

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html(request.url.path))

    async def run(self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry answers a body it cannot read (bad JSON, no query, a wrong method) in plain text;
        every answer here is a GraphQL error with a code instead, so clients parse one shape."""
        if isinstance(request, WebSocket):
            return await self._run_socket(request, context, root_value)
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            code = _HTTP_CODES.get(error.status_code, "BAD_USER_INPUT")
            return JSONResponse({"errors": [{"message": error.reason, "extensions": {"code": code}}]},
                                status_code=error.status_code)
        except Exception as error:
            # Before execution (the token's lookup) the error policy cannot see it: a database
            # that is down gave a plain-text 500 and a traceback per request here.
            outage = unavailable(error)
            if outage is None:
                raise
            request_id = request_id_var.get() or "-"
            log.warning("unavailable before execution: %s (%s)", outage, type(error).__name__,
                        extra={"request_id": request_id})
            return JSONResponse({"errors": [{"message": str(outage),
                                             "extensions": {**outage.extensions, "requestId": request_id}}]},
                                status_code=503, headers={"Retry-After": "1"})

    async def _run_socket(self, websocket: WebSocket, context: Any, root_value: Any) -> Any:
        """A socket holds one of the process's slots (GRAPHLAKE_MAX_WEBSOCKETS) while it is open."""
        sockets = websocket.app.state.graphlake.sockets
        try:
            sockets.open(websocket, limit=self.settings.max_websockets)
        except SocketLimitReached as full:
            # Accepted only to be closed with a code and reason: a refused handshake reaches a
            # browser as a bare 1006, saying nothing.
            await websocket.accept(subprotocol=await self.pick_websocket_subprotocol(websocket))
            await websocket.close(*refusal(full))
            return websocket
        metrics = websocket.app.state.graphlake.metrics
        if metrics is not None:
            metrics.websockets.inc()
        try:
            return await super().run(websocket, context, root_value)
        finally:
            sockets.close(websocket)
            if metrics is not None:
                metrics.websockets.dec()

    def parse_json(self, data: str | bytes) -> object:
        """An HTTP request's body, or a GET request's `variables` or `extensions` (Strawberry reads
        WebSocket messages with decode_json instead)."""
        try:
            value = loads(data)
        except UnreadableJSON as error:
            raise HTTPException(400, error.reason) from None
        except json.JSONDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        # Strawberry reads a body with .get(): a string, a number or null became AttributeError, a 500.
        if not self._reading_query_params and not isinstance(value, dict | list):
            raise HTTPException(400, f"the request body must be a JSON object with a `query`, not {kind(value)}")
        return value

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        # Strawberry decodes these with parse_json too, and says itself when they are not objects (null
        # variables are fine). Synchronous: no other request runs while the flag is up.
        self._reading_query_params = True
        try:
            return super().parse_query_params(params)
        finally:
            self._reading_query_params = False

    def decode_json(self, data: str | bytes) -> object:
        """A WebSocket message (graphlake/request_json.py says how a misshapen one is answered)."""
        message = loads(data)
        check_ws_message(message)
        return message

    def encode_json(self, data: object) -> str:
        # orjson (several times faster on large pages), falling back to the stdlib for integers
        # beyond 64 bits, which stored JSON values may hold. A str, not bytes: Strawberry sends
        # bytes as binary WebSocket frames, which browsers' graphql-ws clients reject.
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def _authenticate(context: Context, header: Any) -> None:
    """Sets the principal, or the reason the presented token is not accepted."""
    try:
        secret = bearer_secret(header)
        if secret:
            context.principal = await context.state.tokens.authenticate(secret)
    except Unauthenticated as error:
        context.auth_error = str(error)
