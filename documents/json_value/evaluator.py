"""The same path predicates as `query`, evaluated in Python on one StoredJson.

Live subscriptions filter events in memory as they pass, with no database query to run; a subscriber
must get exactly the events a query with the same predicates would return, so the semantics follow
the MongoDB filters `predicate_filter` builds, not Python's own comparisons: its checks, and the
operands as it normalises them (`operand`).

A subscription's predicates run on every event logged while it lasts, so each is compiled once
(`compile_predicate`): validated, its pattern compiled, its IN or NIN list made a set. A run then
costs one pass over the leaves at its path, whatever the list's length: validating an IN of 1,000
items at each event took 1.5 ms, and comparing each leaf with each item took 0.5 s for an event
holding an array of 1,000 (one logEvents of 10,000 events held the server's event loop 15 s).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from documents.json_value.encoding import Scalar, StoredJson
from documents.json_value.paths import leaf_field
from documents.json_value.query import JsonOp, compiled_pattern, operand, predicate_filter

Predicate = Callable[[StoredJson], bool]

_ORDERS: dict[JsonOp, Callable[[Any, Any], bool]] = {JsonOp.GT: operator.gt, JsonOp.GTE: operator.ge,
                                                      JsonOp.LT: operator.lt, JsonOp.LTE: operator.le}


def _bracket(value: Scalar) -> type:
    # MongoDB compares within one type bracket only: numbers with numbers, strings with strings.
    kind = type(value)
    return float if kind is int else kind


def _key(value: Scalar) -> tuple[bool, Scalar]:
    """A scalar as an equality predicate compares it, fit for a set. Among JSON scalars Python's `==`
    crosses MongoDB's brackets in one place only: True == 1 == 1.0, with one hash (1 == 1.0 is right:
    numbers compare by value). So booleans are keyed apart; strings, numbers and null never meet."""
    return type(value) is bool, value


def compile_predicate(path: str, op: JsonOp | str, value: Any) -> Predicate:
    """One predicate, ready to run on many values: whether some leaf at `path` satisfies `op value`,
    as `predicate_filter` means it. Raises InvalidPredicate for what that refuses."""
    predicate_filter("x", path, op, value)  # the same validation (raises InvalidPredicate)
    op = JsonOp(op)
    field = leaf_field(path)

    if op is JsonOp.EXISTS:
        present = value is None or value is True
        return lambda stored: (path in stored.paths) == present

    if op in (JsonOp.EQ, JsonOp.NE, JsonOp.IN, JsonOp.NIN, JsonOp.CONTAINS):
        items = value if op in (JsonOp.IN, JsonOp.NIN) else [value]
        scalars = [operand(op, item) for item in items]
        if op is JsonOp.CONTAINS and isinstance(scalars[0], str):  # equal leaves contain it too
            part = scalars[0]
            return lambda stored: any(isinstance(v, str) and part in v for v in stored.leaves.get(field, ()))
        # `keys` decides. `equal` (by Python's ==, which mixes booleans with numbers) only rules out, at C
        # speed, values with no leaf equal to any item, as most events are: 8 µs over 1,000 leaves, not 80.
        keys, equal = frozenset(map(_key, scalars)), frozenset(scalars)
        wanted = op in (JsonOp.EQ, JsonOp.IN, JsonOp.CONTAINS)  # NE, NIN: no leaf equal (so a missing path too)

        def holds(stored: StoredJson) -> bool:
            leaves = stored.leaves.get(field, ())
            return (not equal.isdisjoint(leaves) and not keys.isdisjoint(map(_key, leaves))) == wanted

        return holds

    if op in _ORDERS:
        bound, compare = operand(op, value), _ORDERS[op]
        bracket = _bracket(bound)
        return lambda stored: any(_bracket(v) is bracket and compare(v, bound) for v in stored.leaves.get(field, ()))

    pattern = compiled_pattern(value)  # REGEX, in linear time
    return lambda stored: any(isinstance(v, str) and pattern.search(v) is not None for v in stored.leaves.get(field, ()))


def matches(stored: StoredJson, path: str, op: JsonOp | str, value: Any) -> bool:
    """Whether `stored` satisfies one predicate (compiled for this one use: to run one on many values,
    keep what `compile_predicate` returns)."""
    return compile_predicate(path, op, value)(stored)
