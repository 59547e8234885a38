"""The error model: every failure a client caused or can act on, with the code it reports.

Codes: BAD_USER_INPUT, NOT_FOUND, FORBIDDEN, UNAUTHENTICATED, CONFLICT, UNAVAILABLE, INTERNAL. Services and resolvers
raise the classes below; the GraphQL layer (resolvers/errors.py) turns them into errors with
`extensions.code`, and masks anything else as INTERNAL.
"""

from __future__ import annotations

from typing import Any


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


class Unavailable(GraphlakeError):
    """A part Graphlake depends on (the database, a store) cannot serve now; the same request may
    work shortly. INTERNAL stays for bugs. Not `retry`: it will not work before the server's
    operator acts (a store refusing the server's credentials), so no Retry-After is sent, and
    `extensions.retry` is false: clients tell it from a passing outage without reading the message."""

    code = "UNAVAILABLE"

    def __init__(self, message: str, *, field: str | None = None, retry: bool = True, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.retry = retry
        if not retry:  # only then: a client reads a missing `retry` as "may work shortly", as before
            self.extensions["retry"] = False
