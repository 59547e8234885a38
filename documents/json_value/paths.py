"""The path grammar: how a list of object keys is written as one path string, and back, and how a
path is turned into a field name the database accepts.

Keys may hold anything, "." and "\\" included, so a path escapes them: "." separates keys, and inside
a key "\\" is written "\\\\" and "." is written "\\.". Array elements have no step of their own: they
share their array's path (see `encoding`).
"""

from __future__ import annotations

from collections.abc import Sequence

from documents.json_value.errors import InvalidPredicate


def escape_key(key: str) -> str:
    """One key as written inside a path."""
    return key.replace("\\", "\\\\").replace(".", "\\.")


def path_of(keys: Sequence[str]) -> str:
    """Keys joined with "."; inside a key "\\" is written "\\\\" and "." is written "\\."."""
    return ".".join(escape_key(key) for key in keys)


def split_path(path: str) -> list[str]:
    """The keys of a path (the inverse of `path_of`)."""
    keys: list[str] = []
    key: list[str] = []
    chars = iter(path)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise InvalidPredicate(f'path {path!r} ends in a lone "\\"; write "\\\\" for a backslash in a key')
            if escaped not in "\\.":
                raise InvalidPredicate(
                    f'path {path!r} has "\\{escaped}"; inside a key only "\\\\" and "\\." are escapes')
            key.append(escaped)
        elif char == ".":
            keys.append("".join(key))
            key = []
        else:
            key.append(char)
    keys.append("".join(key))
    return keys


def leaf_field(path: str) -> str:
    """A path as a field name of `leaves`: percent-escaped so it holds no ".", "$" or NUL, which
    neither server accepts in a field name (injective, so distinct paths never share a field)."""
    return path.replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("\x00", "%00")
