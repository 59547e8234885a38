"""What the client raises when the server (or the upload protocol) says no."""

from __future__ import annotations


class GraphlakeClientError(Exception):
    """An error the server answered with; `code` and `field` come from its extensions."""

    def __init__(self, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
