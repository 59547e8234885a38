"""The error model: every error a client sees carries `extensions.code`.

Codes: BAD_USER_INPUT, NOT_FOUND, FORBIDDEN, UNAUTHENTICATED, CONFLICT, INTERNAL. Resolvers and
services raise the classes below; anything else is a bug, so `ErrorPolicy` masks it as INTERNAL,
logs it with the request id, and gives the client that id to quote.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from graphlake.logs import request_id_var

log = logging.getLogger("graphlake.errors")


class GraphlakeError(Exception):
    """A failure the client caused or can act on. `field` names the input at fault."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.extensions: dict[str, Any] = {"code": self.code, **details}
        if field:
            self.extensions["field"] = field


class BadUserInput(GraphlakeError):
    code = "BAD_USER_INPUT"


class NotFound(GraphlakeError):
    code = "NOT_FOUND"


class Forbidden(GraphlakeError):
    code = "FORBIDDEN"


class Unauthenticated(GraphlakeError):
    code = "UNAUTHENTICATED"


class Conflict(GraphlakeError):
    code = "CONFLICT"


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class ErrorPolicy(SchemaExtension):
    """Gives every error a code, masks unexpected ones, and hides schema hints when asked.

    Field suggestions ("Did you mean ...?") reveal the schema, so they go when introspection is off.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        self.hide_suggestions = hide_suggestions

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self.shape(error) for error in result.errors]

    def shape(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, GraphlakeError):
            error.extensions = {**(error.extensions or {}), **original.extensions}
            return error
        if original is None or isinstance(original, GraphQLError):
            # Parse, validation and variable-coercion errors: the document or variables were wrong.
            message = error.message
            if self.hide_suggestions:
                message = _SUGGESTION.sub("", message)
            return GraphQLError(
                message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={**(error.extensions or {}), "code": (error.extensions or {}).get("code", "BAD_USER_INPUT")},
            )
        request_id = request_id_var.get()
        log.error("unexpected error in %s", ".".join(map(str, error.path or [])) or "operation",
                  exc_info=(type(original), original, original.__traceback__), extra={"request_id": request_id})
        return GraphQLError(
            f"Internal server error; quote request id {request_id} to the operator.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "requestId": request_id},
        )
