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


class SaveConflict(GraphlakeClientError):
    """`save(alias, ...)` lost a race: the alias no longer named what the save expected when it came
    to move it (another saver moved it first). Load again, then save again."""

    def __init__(self, alias: str, expected: str | None, current: str | None) -> None:
        before = f"asset {expected}" if expected else "no asset"
        now = f"asset {current}" if current else "no asset"
        super().__init__(f"alias {alias!r} was moved by another saver: this save expected it to name {before}, "
                         f"it names {now}; load it and save again", "CONFLICT", "alias")
        self.alias, self.expected, self.current = alias, expected, current
