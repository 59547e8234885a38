"""What the client raises when the server (or the upload protocol) says no."""

from __future__ import annotations


class GraphlakeClientError(Exception):
    """An error the server answered with; `code` and `field` come from its extensions."""

    def __init__(self, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class CompletionUnderWay(GraphlakeClientError):
    """CONFLICT while the upload is still open: another request is completing it. The client waits
    for it (retries.completion_waits); this escapes only where that wait is cut short (stamina's
    test mode caps its attempts)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"upload {session_id} is still being completed by another request", "CONFLICT")
