"""Every error a client sees carries `extensions.code`.

Services and resolvers raise the classes of services/errors.py. A database or store that is down
or too slow is UNAVAILABLE (services/availability.py): one log line, no traceback, since it says
nothing about the code, and HTTP 503 so clients and proxies retry. Anything else is a bug, so
`ErrorPolicy` masks it as INTERNAL, logs it with the request id, and gives the client that id to quote.
The same holds over WebSockets: each result of a subscription (or of an operation sent over a
socket) is shaped as it goes out, validation errors included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from resolvers.internals import CannotGetOperationTypeError, InvalidOperationTypeError
from services.availability import unavailable
from services.errors import GraphlakeError

log = logging.getLogger("graphlake.errors")

_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# graphql-core suggests an enum value only when the one sent is a near miss; `WARN` (Python's
# logging.WARN) is not near WARNING by its measure, and the client is left guessing.
_UNKNOWN_ENUM_VALUE = re.compile(r"Value '[^']*' does not exist in '(\w+)' enum\.$")
# graphql-core's variable-coercion errors name the variable and where in its value, in words only:
# "Variable '$input' has invalid value at .policy: Value 'BOGUS' does not exist in 'BundlePolicy' enum."
# (3.3), "Variable '$input' got invalid value 'BOGUS' at 'input.policy'; Value ..." (3.2).
# Strawberry's depth and alias limits say their numbers but not the settings that raise them, as
# every other limit's error does.
_UNNAMED_LIMITS = ((re.compile(r"exceeds maximum operation depth of \d+"), "GRAPHLAKE_MAX_QUERY_DEPTH"),
                   (re.compile(r"aliases found\. Allowed: \d+"), "GRAPHLAKE_MAX_ALIASES"))
_VARIABLE = re.compile(r"^(?:Expected )?[Vv]ariable '\$(\w+)'")  # "Expected variable '$seed' provided to non-null ..."
_AT = (re.compile(r"^Variable '\$\w+' has invalid value at ([^:\s]+):"), re.compile(r" at '([^']+)'; "))


def internal_error(request_id: str | None) -> dict[str, Any]:
    """The error a client gets for a bug: nothing of it but the id to quote, which leads to the
    logged traceback. The same from the error policy below and for a failure outside GraphQL
    (graphlake/http_limits.py), so a client reads one shape."""
    return {"message": f"Internal server error; quote request id {request_id} to the operator.",
            "extensions": {"code": "INTERNAL", "requestId": request_id}}


def retry_after(error: GraphlakeError) -> dict[str, str]:
    """The Retry-After header of an HTTP answer to `error`: a second for an UNAVAILABLE, none where the
    server says no retry mends it (Unavailable.retry: only its operator can) or for any other code."""
    return {"Retry-After": "1"} if error.code == "UNAVAILABLE" and getattr(error, "retry", True) else {}


def variable_field(message: str) -> str | None:
    """The `field` of a variable-coercion error: the place in the variable's value, named from the
    variable (`$input`'s `policy` is `input.policy`, as the same input written inline is named when
    the variable is named after its argument), or the variable itself (`$first`); None for any other
    message."""
    variable = _VARIABLE.match(message)
    if variable is None:
        return None
    name = variable.group(1)
    newer, older = (pattern.search(message) for pattern in _AT)
    if newer:
        return f"{name}{newer.group(1)}"
    return older.group(1) if older else f"${name}"


class ErrorPolicy(SchemaExtension):
    """Gives every error a code, masks unexpected ones, and hides schema hints when asked.

    Field suggestions ("Did you mean ...?") reveal the schema, so they go when introspection is off.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        self.hide_suggestions = hide_suggestions
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        yield
        if self._streamed:
            return  # each result went out shaped already; the last one is the context's result too
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self.shape(error) for error in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # A subscription's results (and an operation's over a WebSocket) are sent one by one, long
        # before on_operation ends: without this they reached clients unshaped (no code, and an
        # unexpected exception's own message).
        self._streamed = True
        if getattr(result, "errors", None):
            result.errors = [self.shape(error) for error in result.errors]
        yield

    def _enum_values(self, name: str) -> list[str]:
        found = self.execution_context.schema._schema.get_type(name)
        return list(getattr(found, "values", None) or [])

    def shape(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        request_id = getattr(self.execution_context.context, "request_id", None)
        outage = unavailable(original) if original is not None else None
        if outage is not None:
            log.warning("unavailable in %s: %s (%s)", ".".join(map(str, error.path or [])) or "operation", outage,
                        type(original).__name__, extra={"request_id": request_id})
            response = getattr(self.execution_context.context, "response", None)
            if isinstance(response, Response):  # HTTP; over a WebSocket this is the socket, with no status
                response.status_code = 503
                response.headers.update(retry_after(outage))
            return GraphQLError(str(outage), nodes=error.nodes, path=error.path,
                                extensions={**outage.extensions, "requestId": request_id})
        if isinstance(original, CannotGetOperationTypeError):
            # Over a WebSocket or SSE Strawberry reports an `operationName` the document lacks as a bare
            # exception (graphlake/view.py answers plain HTTP alike): the request was wrong, not the server.
            return GraphQLError(original.as_http_error_reason(), nodes=error.nodes,
                                extensions={"code": "BAD_USER_INPUT", "field": "operationName"})
        if isinstance(original, InvalidOperationTypeError):
            # Over SSE (graphlake/sse.py) Strawberry reports an operation the method does not allow
            # from inside the stream, as a bare exception: a GET that carries a mutation.
            kind = {OperationType.MUTATION: "a mutation", OperationType.QUERY: "a query"}.get(
                original.operation_type, "a subscription")
            return GraphQLError(f"{kind} cannot be sent with this method: send it with POST", nodes=error.nodes,
                                extensions={"code": "BAD_USER_INPUT"})
        if isinstance(original, GraphlakeError):
            error.extensions = {**(error.extensions or {}), **original.extensions}
            return error
        if original is None or isinstance(original, GraphQLError):
            # Parse, validation and variable-coercion errors: the document or variables were wrong.
            extensions = {**(error.extensions or {}), "code": (error.extensions or {}).get("code", "BAD_USER_INPUT")}
            if "field" not in extensions and (field := variable_field(error.message)) is not None:
                extensions["field"] = field
            if isinstance(error, GraphQLSyntaxError):
                # Kept as is, code added: over graphql-transport-ws, Strawberry knows a syntax error by its
                # class and closes the socket (4400) as the protocol says. Parse errors are never cached.
                error.extensions = extensions
                return error
            message = error.message
            if self.hide_suggestions:
                message = _SUGGESTION.sub("", message)
            elif (enum := _UNKNOWN_ENUM_VALUE.search(message)) and (values := self._enum_values(enum.group(1))):
                message += f" Allowed: {', '.join(values)}."
            message += next((f" (the server's limit: {setting})" for pattern, setting in _UNNAMED_LIMITS
                             if pattern.search(message)), "")
            return GraphQLError(
                message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions=extensions,
            )
        # The view names every request (graphlake/http_limits.py); the context carries that name.
        log.error("unexpected error in %s", ".".join(map(str, error.path or [])) or "operation",
                  exc_info=(type(original), original, original.__traceback__), extra={"request_id": request_id})
        masked = internal_error(request_id)
        return GraphQLError(masked["message"], nodes=error.nodes, path=error.path, extensions=masked["extensions"])
