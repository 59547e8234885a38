"""The same path predicates as `query`, evaluated in Python on one StoredJson.

Live subscriptions filter events in memory as they pass, with no database query to run; a subscriber
must get exactly the events a query with the same predicates would return, so the semantics follow
the MongoDB filters `predicate_filter` builds, not Python's own comparisons.
"""

from __future__ import annotations

from typing import Any

from documents.json_value.encoding import Scalar, StoredJson
from documents.json_value.paths import leaf_field
from documents.json_value.query import JsonOp, compiled_pattern, predicate_filter


def _comparable(left: Scalar, right: Scalar) -> bool:
    # MongoDB compares within one type bracket only: numbers with numbers, strings with strings.
    def bracket(v: Scalar) -> str:
        return "number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__
    return bracket(left) == bracket(right)


def matches(stored: StoredJson, path: str, op: JsonOp | str, value: Any) -> bool:
    """Whether `stored` satisfies one predicate, with the semantics `predicate_filter` gives a query."""
    op = JsonOp(op) if not isinstance(op, JsonOp) else op
    predicate_filter("x", path, op, value)  # the same validation (raises InvalidPredicate)
    leaves = stored.leaves.get(leaf_field(path), [])
    if op is JsonOp.EXISTS:
        return (path in stored.paths) == (value is None or bool(value))
    if op in (JsonOp.EQ, JsonOp.NE):
        found = any(_comparable(v, value) and v == value for v in leaves) or (value is None and None in leaves)
        return found if op is JsonOp.EQ else not found
    if op in (JsonOp.IN, JsonOp.NIN):
        found = any(_comparable(v, w) and v == w for v in leaves for w in value)
        return found if op is JsonOp.IN else not found
    if op in (JsonOp.GT, JsonOp.GTE, JsonOp.LT, JsonOp.LTE):
        compare = {JsonOp.GT: lambda a, b: a > b, JsonOp.GTE: lambda a, b: a >= b,
                   JsonOp.LT: lambda a, b: a < b, JsonOp.LTE: lambda a, b: a <= b}[op]
        return any(_comparable(v, value) and compare(v, value) for v in leaves)
    if op is JsonOp.CONTAINS:
        return any((_comparable(v, value) and v == value) or (isinstance(v, str) and isinstance(value, str) and value in v)
                   for v in leaves)
    pattern = compiled_pattern(value)  # REGEX, in linear time
    return any(isinstance(v, str) and pattern.search(v) is not None for v in leaves)
