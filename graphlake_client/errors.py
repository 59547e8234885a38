"""What the client raises when the server (or the upload protocol) says no."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 500  # the nesting the server takes (documents/json_value/encoding.MAX_DEPTH): a bound on the walk


class GraphlakeClientError(Exception):
    """An error the server answered with; `code` and `field` come from its extensions. `retry` is
    False where the server said another attempt will not help (`extensions.retry: false`: an
    UNAVAILABLE only the server's operator can mend, such as a store refusing its credentials), so
    the client's retry policy (retries.py) raises it at once; True says nothing more."""

    def __init__(self, message: str, code: str | None = None, field: str | None = None, *, retry: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.retry = retry

    @classmethod
    def answered(cls, error: Mapping[str, Any], default: str = "the server answered an error") -> GraphlakeClientError:
        """The client's error for a GraphQL error the server answered (`{"message": ..., "extensions": ...}`)."""
        extensions = error.get("extensions") or {}
        return cls(error.get("message") or default, extensions.get("code"), extensions.get("field"),
                   retry=extensions.get("retry") is not False)

    def restated(self, message: str) -> GraphlakeClientError:
        """The same error (code, field, whether a retry may help) told in `message`: a file's, say, by its path."""
        return GraphlakeClientError(message, self.code, self.field, retry=self.retry)


class ServerUnreachable(GraphlakeClientError):
    """The server never answered (refused, timed out, the connection broke), after the retries the
    request was safe for (retries.py). UNAVAILABLE, as the server's own outages are, so one
    `except GraphlakeClientError` catches whatever stopped a call; the network's error is its cause.
    `url` is the server's, or a signed URL's origin (never its signature); `field` names that
    URL (`uploadUrl`, `downloadUrl`), and `doing` what the request was for."""

    def __init__(self, url: str, cause: Exception, *, sent: bool, field: str | None = None,
                 doing: str | None = None) -> None:
        purpose = f" for {doing}" if doing else ""  # an upload's or a download's: which file
        what = f"no answer from {url}/{purpose} (the request may have run)" if sent else f"cannot reach {url}/{purpose}"
        super().__init__(f"{what}: {str(cause) or type(cause).__name__}", "UNAVAILABLE", field)
        self.url = url


class StreamsFull(GraphlakeClientError):
    """A live stream refused as its token holds as many as the server allows already (HTTP 429,
    BAD_USER_INPUT: GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN). `follow_events` tries again on a reconnection
    (retries.reconnects): its own dropped stream, half-open, can hold a slot until the server's next
    heartbeat finds it gone."""


class UploadsFailed(GraphlakeClientError):
    """Files of an upload that did not make it; the others were completed (a rerun sends only these).
    `failures` holds each one's error by its path as the caller gave it (root/relative for a
    directory: `a/x.csv` and `b/x.csv` are told apart), in path order. `code` and `field` are the
    first failure's code and path; the message names the first few, each by its path; `retry` is
    False when no failure may pass on a rerun."""

    def __init__(self, failures: dict[str, GraphlakeClientError], total: int) -> None:
        failures = dict(sorted(failures.items()))  # by path, whichever batch or thread failed first
        first, error = next(iter(failures.items()))
        # Each by its path, unless its message names it already (a file it could not read, a store's refusal of its PUT).
        named = "; ".join(str(error) if path in str(error) else f"{path}: {error}" for path, error in list(failures.items())[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        # A rerun may help unless every file met an error no retry mends (the store refusing the server).
        super().__init__(f"{len(failures)} of {total} files did not upload: {named}{more}", error.code or "INTERNAL", first,
                         retry=any(e.retry for e in failures.values()))
        self.failures = failures


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


class NaiveTime(GraphlakeClientError, ValueError):
    """A datetime without a time zone where the API takes a DateTime (`data_timestamp=`, a filter's
    `created_after=` or `after=`, an event's `timestamp`, a predicate on a time): BAD_USER_INPUT
    naming the argument (and the place inside it), before anything is sent. The server reads a time
    written without an offset as UTC, but a naive Python datetime is most often the machine's local
    time (`datetime.now()`, as MADSci makes them): sent as UTC, it would move by the machine's offset
    without a word. A ValueError too, as the asset filters raised one before."""

    def __init__(self, field: str, moment: datetime, where: str | None = None) -> None:
        super().__init__(f"{where or field}: {moment!r} has no time zone: give an aware datetime "
                         "(datetime.now(UTC), or .astimezone() for the machine's local time)", "BAD_USER_INPUT", field)


def wire_time(moment: datetime | None, field: str) -> str | None:
    """A DateTime argument as a request sends it, checked where the verb takes it: an aware datetime
    as ISO 8601 in UTC (one offset, so that times compare as text too), a naive one refused
    (NaiveTime naming `field`). None, or a time already written out as text, goes as it is: the
    server judges it."""
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise NaiveTime(field, moment)
    return moment.astimezone(UTC).isoformat()


def check_json(obj: object, field: str, *, times: bool = False) -> None:
    """BAD_USER_INPUT naming `field` and the place inside it of the first thing JSON cannot hold (a
    set, a datetime, NaN, a list that holds itself...), before anything is sent: json.dumps says only
    "Object of type set is not JSON serializable", and inside httpx not even which argument. Keys are
    taken as json.dumps takes them (numbers, booleans and null become strings). With `times`, an
    aware datetime (or a date) passes, as `encode_times` sends it: a GraphQL DateTime argument, or a
    predicate's operand; a naive one is NaiveTime, as `wire_time` refuses it."""
    def refuse(where: str, why: str) -> GraphlakeClientError:
        return GraphlakeClientError(f"{where}: {why}", "BAD_USER_INPUT", field)

    def walk(item: object, where: str, ancestors: set[int]) -> None:
        if item is None or isinstance(item, str | bool | int):
            return
        if times and isinstance(item, datetime | date):
            if isinstance(item, datetime) and item.tzinfo is None:
                raise NaiveTime(field, item, where)
            return
        if isinstance(item, float):
            if not math.isfinite(item):
                raise refuse(where, f"{item} is not a JSON number")
            return
        if not isinstance(item, dict | list | tuple):
            raise refuse(where, f"a {type(item).__name__} is not JSON (store str(...) of it, or a list for a set)")
        if id(item) in ancestors:  # the same list twice side by side is fine; inside itself it never ends
            raise refuse(where, "holds itself (a circular reference), which JSON cannot")
        if len(ancestors) >= MAX_JSON_DEPTH:
            raise refuse(where, f"nested more than {MAX_JSON_DEPTH} deep")
        ancestors.add(id(item))
        if isinstance(item, dict):
            for key, inner in item.items():
                if (isinstance(key, float) and not math.isfinite(key)) or \
                        (not isinstance(key, str | int | float | bool) and key is not None):
                    raise refuse(where, f"a key {key!r} ({type(key).__name__}) is not JSON")
                walk(inner, f"{where}.{key}", ancestors)
        else:
            for n, inner in enumerate(item):
                walk(inner, f"{where}[{n}]", ancestors)
        ancestors.discard(id(item))

    walk(obj, field, set())


def encode_times(item: object) -> str:
    """json.dumps' `default` for a request's variables: an aware datetime (or a date) as ISO 8601, as
    GraphQL's DateTime takes it; anything else is refused (TypeError), and check_json says where."""
    if isinstance(item, datetime) and item.tzinfo is not None:
        return str(wire_time(item, ""))
    if isinstance(item, date) and not isinstance(item, datetime):
        return item.isoformat()
    raise TypeError(f"{type(item).__name__} is not JSON")


# What the server refuses in any name or collection path (services/checks.py): control characters,
# Unicode's Cc (C0, DEL and C1). A file on disk may well be named with one (a newline, say).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def unnamable(file: Path, fields: dict[str, Any]) -> GraphlakeClientError | None:
    """The error of an upload of `file` whose name (given, else the file's) or collection `path`
    holds a control character, which the server would refuse for the whole batch: the batch leaves
    the file out and reports it alone (UploadsFailed), BAD_USER_INPUT named by its path. None if fine."""
    for what, text in (("name", (fields.get("name") or file.name).strip()), ("path in the collection", fields.get("path"))):
        if text and (found := _CONTROL.search(text)):
            return GraphlakeClientError(
                f"{file}: its {what} holds a control character (U+{ord(found.group()):04X}), which the lake refuses "
                "in names: rename the file", "BAD_USER_INPUT", str(file))
    return None
