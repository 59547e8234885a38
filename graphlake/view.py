"""The Strawberry view: builds each request's Context and authenticates HTTP and WebSocket callers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from graphlake.admission import Admission
from graphlake.graphiql import graphiql_headers, graphiql_html
from graphlake.graphql_http import GRAPHQL_RESPONSE_JSON, is_request_error, request_error_status, response_media_type
from graphlake.logs import request_id_var
from graphlake.persisted_queries import PersistedQueries, PersistedQueryError
from graphlake.request_json import UnreadableJSON, check_ws_message, kind, loads
from graphlake.settings import Settings
from graphlake.sse import event_stream_response, sse_transport
from graphlake.websocket_handlers import LegacyWSHandler, TransportWSHandler, authorization
from resolvers.context import Context
from resolvers.errors import retry_after
from resolvers.internals import (
    CannotGetOperationTypeError,
    HTTPException,
    InvalidOperationTypeError,
    MissingQueryError,
)
from services.auth import bearer_secret
from services.availability import unavailable
from services.errors import Unauthenticated

log = logging.getLogger("graphlake.errors")

# The code of a GraphQL error for each HTTP status Strawberry refuses a request with.
_HTTP_CODES = {400: "BAD_USER_INPUT", 404: "NOT_FOUND", 405: "BAD_USER_INPUT", 413: "BAD_USER_INPUT",
               415: "BAD_USER_INPUT"}


class _SubResponse(Response):
    """The response Strawberry lets resolvers (and the error policy) set a status and headers on,
    carrying the media type the client asked for (graphlake/graphql_http.py)."""

    graphql_media_type: str


# A socket closed to make room for a newer one still waiting for its connection_init: 4408, the code
# graphql-transport-ws gives a socket whose init timed out, which is what it amounts to.
EVICTED = (4408, "Closed before connection_init: too many sockets awaiting it (GRAPHLAKE_MAX_WEBSOCKETS_AWAITING_INIT)")
_closing: set[asyncio.Task] = set()  # the eviction closes under way (a task nobody holds may be collected)


def _close_later(websocket: WebSocket, code: int, reason: str) -> None:
    """Close `websocket` from outside its handler (which then ends as on any close)."""
    async def close() -> None:
        with contextlib.suppress(Exception):  # closed meanwhile, or never accepted: nothing left to close
            await websocket.close(code, reason)

    task = asyncio.get_running_loop().create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class GraphQLView(GraphQL[Context, None]):
    # Both time out a socket that never initialises (GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS, read
    # per connection), refuse one over its token's cap and end one whose token is revoked or
    # expires: see graphlake/websocket_handlers.py.
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: BaseSchema, settings: Settings, admission: Admission) -> None:
        # GraphQL over Server-Sent Events (graphql-sse, distinct connections): graphlake/sse.py.
        self.stream_transport_classes_by_protocol = {GRAPHQL_SSE_PROTOCOL: sse_transport(settings)}
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            keep_alive=True,
            keep_alive_interval=15,
            # Browsers apply no CORS to WebSocket handshakes; Strawberry checks their Origin instead and
            # refuses (403) a page on another origin unless it is listed: the same list as CORS's.
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings
        self.admission = admission
        self.persisted_queries = PersistedQueries(settings.persisted_queries_max_entries)
        self._reading_query_params = False

    async def get_context(self, request: Request | WebSocket, response: Response | None = None) -> Context:
        context = Context(
            state=request.app.state.graphlake, request=request, response=response,
            request_id=request_id_var.get() or "-",
        )
        if isinstance(request, Request):
            await _authenticate(context, request.headers.get("authorization"))
            request.state.graphlake_context = context  # an SSE stream watches its token (create_streaming_response)
        return context

    async def create_streaming_response(self, request: Request | WebSocket, stream: Callable[[], AsyncIterator[str]],
                                        sub_response: Response, headers: Mapping[str, str]) -> Response:
        """An SSE stream (graphlake/sse.py): Strawberry has parsed the request and started its operation."""
        assert isinstance(request, Request)
        return event_stream_response(request, getattr(request.state, "graphlake_context", None), stream, headers,
                                     max_streams=self.settings.max_websockets,
                                     max_streams_per_token=self.settings.max_websockets_per_token,
                                     encode_json=self.encode_json)

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
        # SocketLimitReached: the handler closes the socket (1013, or 4429 for the token's cap).
        context.state.sockets.open(context.request, limit=self.settings.max_websockets)
        if context.principal is not None:
            context.state.sockets.bind_token(context.request, context.principal.token_id,
                                             limit=self.settings.max_websockets_per_token)
        return None

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Any,
                             root_value: Any, request_data: Any) -> Any:
        """A plain HTTP request (one that does not accept text/event-stream), as Strawberry runs it,
        but with no subscriptions: there is nothing to stream them on here, and Strawberry ran one
        to a null result (an INTERNAL error, a traceback in the log). The error says what to do instead."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query, root_value=root_value, variable_values=request_data.variables,
                context_value=context, operation_name=request_data.operation_name,
                allowed_operation_types=allowed, operation_extensions=request_data.extensions)
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, "a subscription streams its results: send it with `Accept: text/event-stream` "
                                         "(GraphQL over Server-Sent Events) or over a WebSocket") from None
            # Chained: `run` answers a mutation sent with GET with 405 naming POST.
            raise HTTPException(400, error.as_http_error_reason(request_adapter.method)) from error
        except CannotGetOperationTypeError as error:
            # A request error like a document that does not validate, answered as one (process_result
            # picks the status for the media type: 400 for the spec's, 200 with null data for plain JSON),
            # with the error WebSocket and SSE clients get (resolvers/errors.py).
            return ExecutionResult(data=None, errors=[GraphQLError(
                error.as_http_error_reason(), extensions={"code": "BAD_USER_INPUT", "field": "operationName"})])
        except MissingQueryError:
            raise HTTPException(400, "No GraphQL query found in the request") from None

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(graphiql_html(request.url.path, nonce, self.settings.base_path), headers=graphiql_headers(nonce))

    async def run(self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry answers a body it cannot read (bad JSON, no query, a wrong method) in plain text;
        every answer here is a GraphQL error with a code instead, so clients parse one shape."""
        if isinstance(request, WebSocket):
            return await self._run_socket(request, context, root_value)
        try:
            return await self._run_http(request, context, root_value)
        finally:
            # The context refers to the request: kept on it past the answer (an SSE stream was handed
            # its context already), the two made a reference cycle that only a garbage collection freed.
            request.scope.get("state", {}).pop("graphlake_context", None)  # what request.state holds

    async def _run_http(self, request: Request, context: Any, root_value: Any) -> Any:
        media_type = response_media_type(request.headers.get("accept"))
        if request.method not in ("GET", "POST"):
            # Before the body, a slot or the token's lookup, which Strawberry's own check comes after.
            return _error_response(f"{request.method} is not a GraphQL over HTTP method: send GET or POST",
                                   {"code": "BAD_USER_INPUT"}, 405, media_type, {"Allow": "GET, POST"})
        try:
            # The body is read before the request takes a slot: a client sending it slowly waits alone.
            await request.body()  # kept by the Request: Strawberry reads it from there
            async with self.admission.slot():
                if request.method == "POST" and _plain_json_call(request.headers):
                    return await self._answer_post(request)
                return await super().run(request, context, root_value)
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError) and request.method == "GET":
                # GET must never change data (caches, prefetchers and crawlers send it freely): the
                # method is wrong, not the document, so 405 naming the method that works.
                return _error_response("a mutation cannot be sent with GET, which only runs queries: send it with POST",
                                       {"code": "BAD_USER_INPUT"}, 405, media_type, {"Allow": "POST"})
            code = _HTTP_CODES.get(error.status_code, "BAD_USER_INPUT")
            headers = {"Allow": "GET, POST"} if error.status_code == 405 else None
            return _error_response(error.reason, {"code": code}, error.status_code, media_type, headers)
        except PersistedQueryError as error:
            status = error.new_status if media_type == GRAPHQL_RESPONSE_JSON else error.status
            # Not cached anywhere: the client is about to send the query, and the same request will work then.
            return _error_response(error.message, error.extensions, status, media_type,
                                   {"Cache-Control": "private, no-cache, must-revalidate"})
        except Exception as error:
            # Before execution (the token's lookup) the error policy cannot see it: a database
            # that is down gave a plain-text 500 and a traceback per request here.
            outage = unavailable(error)
            if outage is None:
                raise
            # Its request id is the log filter's (graphlake/logs.py), read from the same variable.
            log.warning("unavailable before execution: %s (%s)", outage, type(error).__name__)
            return _error_response(str(outage), {**outage.extensions, "requestId": request_id_var.get() or "-"}, 503,
                                   media_type, retry_after(outage))

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = _SubResponse()
        sub_response.status_code = None  # type: ignore[assignment]  # Strawberry's marker for "not set"
        del sub_response.headers["content-length"]
        sub_response.graphql_media_type = response_media_type(request.headers.get("accept"))
        request.state.graphql_response = sub_response  # for process_result, which sees only the request
        return sub_response

    async def _answer_post(self, request: Request) -> Response:
        """A POST of one operation in JSON, to be answered in JSON: nearly every call. Strawberry's `run`
        does the same in more steps (an adapter around the request, its content type parsed through
        `email.message`, the stream transports asked whether they take it, the IDE check): about 3.5%
        of a by-id read's CPU in the server (docs/performance-history.md, session 51). Anything else
        (a batch, GET, another content type, a stream) goes the whole way."""
        data = self.parse_json(await request.body())
        if not isinstance(data, dict):  # a batch: Strawberry refuses or runs it (the body stays on the request)
            return await super().run(request)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        request_data = self._checked(context, GraphQLRequestData(
            query=_field(data, "query", str, "a string"), variables=_field(data, "variables", dict, "an object"),
            operation_name=data.get("operationName"), extensions=_field(data, "extensions", dict, "an object"),
            protocol="http"))
        result = await self.execute_single(request, _POST, sub_response, context, None, request_data)
        return self.create_response(await self.process_result(request, result), sub_response)

    async def execute_operation(self, request: Any, request_adapter: Any, request_data: Any, context: Any,
                                root_value: Any, sub_response: Any) -> Any:
        """Strawberry's, once the request is `_checked` (the caller known: a guest's persisted query is
        neither looked up nor stored)."""
        if isinstance(request_data, GraphQLRequestData):
            request_data = self._checked(context, request_data)
        return await super().execute_operation(request, request_adapter, request_data, context, root_value,
                                               sub_response)

    def _checked(self, context: Context | None, data: GraphQLRequestData) -> GraphQLRequestData:
        """One operation's request, its `operationName` checked and a persisted query's document found
        (not for a caller without a token: persisted_queries.PersistedQueries.document)."""
        if not isinstance(data.operation_name, str | None):
            # Strawberry passes it on unchecked, to fail deep inside graphql-core.
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
        # Any caller without a valid token, anonymous readers too: the store is the token holders'.
        tokenless = context is not None and context.principal is None
        data.query = self.persisted_queries.document(data.query, data.extensions, guest=tokenless)
        return data

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET with a persisted query's hash and no `query` is an API call (Apollo Client sends it so),
        # even from a client whose Accept holds */*. Strawberry's check first: it stops at a POST, whose
        # query string would otherwise be parsed on every API call for nothing.
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        sub_response = getattr(request.state, "graphql_response", None)
        if (isinstance(sub_response, _SubResponse) and sub_response.graphql_media_type == GRAPHQL_RESPONSE_JSON
                and is_request_error(result.data, result.errors)):
            # The spec's request error: no `data` key at all, and a 4xx (or the status already chosen,
            # such as a 503 for an outage).
            response.pop("data", None)
            if sub_response.status_code is None:
                sub_response.status_code = request_error_status(result.errors or [])
                if sub_response.status_code == 401:
                    sub_response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
                        sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if isinstance(sub_response, _SubResponse) and sub_response.graphql_media_type != response.media_type:
            response.headers["content-type"] = _content_type(sub_response.graphql_media_type)
        # The same URL answers in two media types: a cache serving a GET (a persisted query's, say) must not
        # hand one client's to another.
        response.headers.add_vary_header("Accept")
        return response

    async def _run_socket(self, websocket: WebSocket, context: Any, root_value: Any) -> Any:
        """A socket waits for its connection_init among GRAPHLAKE_MAX_WEBSOCKETS_AWAITING_INIT at most,
        then holds one of the process's slots (GRAPHLAKE_MAX_WEBSOCKETS, taken in on_ws_connect)
        while it is open (services/socket_slots.py)."""
        sockets = websocket.app.state.graphlake.sockets
        sockets.await_init(websocket, limit=self.settings.max_websockets_awaiting_init,
                           evict=lambda: _close_later(websocket, *EVICTED))
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


class _Post:
    """What execute_single reads of Strawberry's request adapter: the method."""

    method = "POST"


_POST = _Post()

# Accepted media types that ask for a stream (graphql-sse; incremental delivery's multipart): Strawberry's path.
_STREAMED = ("text/event-stream", "multipart/mixed")


def _plain_json_call(headers: Mapping[str, str]) -> bool:
    """Whether a POST sends JSON and asks for no stream back, so _answer_post may answer it."""
    content_type = headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return False
    accept = headers.get("accept", "").lower()
    return not any(media in accept for media in _STREAMED)


def _field(data: dict[str, Any], name: str, kind: type, described: str) -> Any:
    """A request body's field, checked as Strawberry's parse_http_body checks it (with its message)."""
    value = data.get(name)
    if not isinstance(value, kind | None):
        raise HTTPException(400, f"The GraphQL operation's `{name}` must be {described} or null, if provided.")
    return value


def _content_type(media_type: str) -> str:
    # The spec's media type names its charset; plain application/json never had one here.
    return f"{media_type}; charset=utf-8" if media_type == GRAPHQL_RESPONSE_JSON else media_type


def _error_response(message: str, extensions: dict[str, Any], status: int, media_type: str,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    """A request the server would not run, answered as one GraphQL error (no `data`), in the media type asked for."""
    response = JSONResponse({"errors": [{"message": message, "extensions": extensions}]}, status_code=status,
                            headers=headers)
    response.headers["content-type"] = _content_type(media_type)
    response.headers.add_vary_header("Accept")
    return response


async def _authenticate(context: Context, header: Any) -> None:
    """Sets the principal, or the reason the presented token is not accepted."""
    try:
        secret = bearer_secret(header)
        if secret:
            context.principal = await context.state.tokens.authenticate(secret)
    except Unauthenticated as error:
        context.auth_error = str(error)
