"""Typed predicates for `query_assets`, mapped onto the API's `JsonPredicate` inputs
(`AssetFilter.metadata` and `AssetFilter.value`): a comparison on a path reads like Python.

    from graphlake_client import metadata, value

    lake.query_assets(metadata("plate") == 7, metadata("od600") > 0.3, value("sensor.kind").is_in(["a", "b"]))

A path is keys joined by "." (a "." or "\\" inside a key is escaped with "\\", as the schema says);
`metadata(...)` and `value(...)` build one, and its operators build predicates: ==, !=, <, <=, >, >=,
and the methods is_in, not_in, exists, contains, matches (an RE2 pattern).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

JsonOp = Literal["EQ", "NE", "GT", "GTE", "LT", "LTE", "IN", "NIN", "EXISTS", "CONTAINS", "REGEX"]
Target = Literal["metadata", "value"]  # the AssetFilter field a predicate goes into
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Predicate:
    """One condition on a JSON path of an asset's metadata or (VALUE assets) value."""

    target: Target
    path: str
    op: JsonOp
    operand: Any = None

    def as_input(self) -> dict[str, Any]:
        """The JsonPredicate input the API takes."""
        return {"path": self.path, "op": self.op, "value": self.operand}


def join_path(*keys: str) -> str:
    """A path from raw keys, escaping "." and "\\" inside them: join_path("a.b", "c") == "a\\.b.c"."""
    return ".".join(k.replace("\\", "\\\\").replace(".", "\\.") for k in keys)


class JsonPath:
    """A path inside `metadata` or `value`; comparing it builds a Predicate (it is not itself comparable)."""

    __hash__ = None  # type: ignore[assignment]  # == builds a predicate, so a path cannot be a dict key

    def __init__(self, target: Target, path: str) -> None:
        if not path:
            raise ValueError("a JSON path needs at least one key")
        self.target, self.path = target, path

    def __repr__(self) -> str:
        return f"{self.target}({self.path!r})"

    def _make(self, op: JsonOp, operand: Any = None) -> Predicate:
        return Predicate(self.target, self.path, op, operand)

    def __eq__(self, other: Scalar) -> Predicate:  # type: ignore[override]
        return self._make("EQ", other)

    def __ne__(self, other: Scalar) -> Predicate:  # type: ignore[override]
        return self._make("NE", other)

    def __gt__(self, other: str | float) -> Predicate:
        return self._make("GT", other)

    def __ge__(self, other: str | float) -> Predicate:
        return self._make("GTE", other)

    def __lt__(self, other: str | float) -> Predicate:
        return self._make("LT", other)

    def __le__(self, other: str | float) -> Predicate:
        return self._make("LTE", other)

    def is_in(self, options: Iterable[Scalar]) -> Predicate:
        """Equal to one of `options` (a non-empty list of scalars)."""
        return self._make("IN", list(options))

    def not_in(self, options: Iterable[Scalar]) -> Predicate:
        """Equal to none of `options`; assets without the path match too."""
        return self._make("NIN", list(options))

    def exists(self, present: bool = True) -> Predicate:
        """The path is there (or, with False, is not)."""
        return self._make("EXISTS", present)

    def contains(self, substring: str) -> Predicate:
        """A string leaf contains `substring` (case-sensitive)."""
        return self._make("CONTAINS", substring)

    def matches(self, pattern: str) -> Predicate:
        """A string leaf matches the RE2 `pattern` (no lookaround or backreferences)."""
        return self._make("REGEX", pattern)


def metadata(path: str) -> JsonPath:
    """A path inside an asset's metadata, e.g. metadata("sensor.temperature") > 20."""
    return JsonPath("metadata", path)


def value(path: str) -> JsonPath:
    """A path inside a VALUE asset's value (other kinds never match), e.g. value("od600") >= 0.4."""
    return JsonPath("value", path)


def filter_inputs(predicates: Iterable[Predicate]) -> dict[str, list[dict[str, Any]]]:
    """The AssetFilter fields `metadata` and `value` these predicates fill (all must hold)."""
    fields: dict[str, list[dict[str, Any]]] = {}
    for predicate in predicates:
        if not isinstance(predicate, Predicate):  # `metadata("a") is None` and friends are not predicates
            raise TypeError(f"not a predicate: {predicate!r} (build one with metadata(...) or value(...) and an operator)")
        fields.setdefault(predicate.target, []).append(predicate.as_input())
    return fields
