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
        # Not always a race: `replaces=None` says the alias must be new, and it may have been taken long ago.
        how = "was moved by another saver" if expected else "is taken"
        super().__init__(f"alias {alias!r} {how}: this save expected it to name {before}, "
                         f"it names {now}; load it and save again", "CONFLICT", "alias")
        self.alias, self.expected, self.current = alias, expected, current


def check_json(obj: object, field: str) -> None:
    """BAD_USER_INPUT naming `field` and the place inside it of the first thing JSON cannot hold (a
    set, a datetime, NaN...), before anything is sent: json.dumps says only "Object of type set is
    not JSON serializable", and inside httpx not even which argument. Keys are taken as json.dumps
    takes them (numbers, booleans and null become strings)."""
    stack: list[tuple[object, str]] = [(obj, field)]
    while stack:
        item, where = stack.pop()
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise GraphlakeClientError(f"{where}: {item} is not a JSON number", "BAD_USER_INPUT", field)
            continue
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise GraphlakeClientError(f"{where}: a key of type {type(key).__name__} ({key!r}) is not JSON",
                                               "BAD_USER_INPUT", field)
                stack.append((inner, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((inner, f"{where}[{n}]") for n, inner in enumerate(item))
        else:
            raise GraphlakeClientError(f"{where}: a {type(item).__name__} is not JSON (store str(...) of it, "
                                       "or a list for a set)", "BAD_USER_INPUT", field)
