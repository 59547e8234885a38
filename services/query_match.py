"""A record filter's query, evaluated in Python over documents the database cannot see into: a
dataset version's copies of its records, packed one document per datum (documents/record_pack.py).

The queries are the ones `annotation_query` writes (resolvers/annotations/inputs.py), so the
meaning of a filter stays in one place; this knows just the operators those use, with MongoDB's
rules for them (a condition on `null` also matches a missing field; a range matches values of
the bound's kind only), and refuses any other operator rather than guess at it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

_RANGES: dict[str, Callable[[Any, Any], bool]] = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt,
                                                  "$lte": operator.le}
_MISSING = object()


def matcher(query: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a document matches `query` (field paths to a value or to operators), as a function."""
    tests = [_field_test(path, condition) for path, condition in query.items()]
    return lambda document: all(test(document) for test in tests)


def _field_test(path: str, condition: Any) -> Callable[[Mapping[str, Any]], bool]:
    if path.startswith("$"):
        raise ValueError(f"{path} is not an operator a record filter uses")
    parts = path.split(".")

    def value_of(document: Mapping[str, Any]) -> Any:
        value: Any = document
        for part in parts:
            value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
        return value

    if isinstance(condition, Mapping) and any(str(key).startswith("$") for key in condition):
        checks = [_operator_test(name, argument) for name, argument in condition.items()]
        return lambda document: all(check(value_of(document)) for check in checks)
    return lambda document: _equal(value_of(document), condition)


def _operator_test(name: str, argument: Any) -> Callable[[Any], bool]:
    if name == "$eq":
        return lambda value: _equal(value, argument)
    if name == "$ne":
        return lambda value: not _equal(value, argument)
    if name == "$in":
        return _membership(list(argument))
    if name in _RANGES:
        compare, kind = _RANGES[name], _kind(argument)
        return lambda value: value is not _MISSING and _kind(value) == kind and compare(value, argument)
    raise ValueError(f"{name} is not an operator a record filter uses")


def _membership(choices: list[Any]) -> Callable[[Any], bool]:
    """`$in`: whether a value `_equal`s one of `choices`, found in a set. A filter may name a thousand
    labels or sets, tested against every copy of a page's datums: compared one by one, 1.2 s per
    10,000 copies on the event loop. Booleans are kept apart (True is not 1 to MongoDB, but is to a
    Python set); choices no set holds (documents, lists) are still compared one by one."""
    with_null = any(choice is None for choice in choices)
    flags = {choice for choice in choices if isinstance(choice, bool)}
    hashed: set[Any] = set()
    others: list[Any] = []
    for choice in choices:
        if choice is None or isinstance(choice, bool):
            continue
        try:
            hashed.add(choice)
        except TypeError:
            others.append(choice)

    def test(value: Any) -> bool:
        if value is None or value is _MISSING:
            return with_null
        if isinstance(value, bool):
            return value in flags
        try:
            if value in hashed:
                return True
        except TypeError:  # a document or a list: equal to no hashable choice
            pass
        return any(_equal(value, choice) for choice in others)

    return test


def _equal(value: Any, expected: Any) -> bool:
    if expected is None:
        return value is None or value is _MISSING
    if isinstance(expected, bool) or isinstance(value, bool):  # True is not 1 to MongoDB
        return type(value) is type(expected) and value == expected
    return value is not _MISSING and value == expected


def _kind(value: Any) -> str:
    """MongoDB's comparison class of a value: numbers compare with numbers, strings with strings."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, datetime):
        return "date"
    return type(value).__name__
