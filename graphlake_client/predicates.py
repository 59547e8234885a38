"""Typed predicates for `query_assets`, mapped onto the API's `JsonPredicate` inputs
(`AssetFilter.metadata` and `AssetFilter.value`): a comparison on a path reads like Python.

    from graphlake_client import metadata, value

    lake.query_assets(metadata("plate") == 7, metadata("od600") > 0.3, value("sensor.kind").is_in(["a", "b"]))

A path is keys joined by "." (a "." or "\\" inside a key is escaped with "\\", as the schema says);
`metadata(...)` and `value(...)` build one, and its operators build predicates: ==, !=, <, <=, >, >=,
and the methods is_in, not_in, exists, contains, matches (an RE2 pattern). Several conditions are
several arguments, all of which must hold; a predicate has no truth value, so a chained comparison
(`0.3 < value("od") < 0.5`) or `and` / `or` / `not` between predicates is a TypeError.

JSON has no time type: a time in metadata or a value is a string, and the server compares strings as
text. An aware datetime operand goes as `json_time(t)`, its ISO 8601 text in UTC as Python writes it
(`2026-01-01T09:30:00+00:00`, `2026-01-01T09:30:00.250000+00:00`), which orders as the times do only
against times stored in that same form: store them with `json_time` too. Another form of the same
instant (`...Z`, `....250Z`, another offset) is other text, and compares wrongly near it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from graphlake_client.errors import GraphlakeClientError, wire_time

JsonOp = Literal["EQ", "NE", "GT", "GTE", "LT", "LTE", "IN", "NIN", "EXISTS", "CONTAINS", "REGEX"]
Target = Literal["metadata", "value", "data"]  # the filter field a predicate goes into (data: EventFilter's)
Scalar = str | int | float | bool | None
Ordered = str | float | datetime | date  # what >, >=, <, <= compare with
# What is_in / not_in take. Not Iterable[Scalar]: a str is one, and is_in("A1") type-checked and then
# asked for "A" or "1". A type checker cannot exclude str from Sequence[str], so these are the
# containers named one by one; at run time any iterable but a str, bytes or mapping goes (`_options`).
Options = list[Scalar] | tuple[Scalar, ...] | AbstractSet[Scalar]


def names(value: str | Iterable[str] | None, argument: str) -> list[str] | None:
    """A verb's list of names (kinds, labels, event types) as sent: one str is a list of one, as
    GraphQL itself coerces one value given for a list (list("raw") sent its letters: labels_all="raw"
    matched nothing, and labels_any="raw" any asset labelled "r"). An empty list is sent as it is, for
    the server to refuse (BAD_USER_INPUT): taken for "no filter", an empty selection would match
    everything. A mapping or a non-iterable is refused, naming `argument`. (A predicate's options
    stay strict, _options says why.)"""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise GraphlakeClientError(f"{argument}: takes a list of names, not a {type(value).__name__} ({value!r})",
                                   "BAD_USER_INPUT", argument)
    return list(value)


@dataclass(frozen=True)
class Predicate:
    """One condition on a JSON path of an asset's metadata or (VALUE assets) value, or of an event's data."""

    target: Target
    path: str
    op: JsonOp
    operand: Any = None

    def as_input(self) -> dict[str, Any]:
        """The JsonPredicate input the API takes."""
        return {"path": self.path, "op": self.op, "value": self.operand}

    def __bool__(self) -> bool:
        """Refused (TypeError): a predicate is a condition for the server, neither true nor false here.
        Python asks for one's truth in a chained comparison, `0.3 < value("od") < 0.5`, which means
        `(0.3 < value("od")) and (value("od") < 0.5)`, and in `and`, `or`, `not`: each kept one side
        (the first condition was dropped) and the query silently matched what the other alone matched."""
        raise TypeError(f"{self.target}({self.path!r}) {self.op} {self.operand!r} is a condition the server checks, "
                        "neither true nor false here: a chained comparison (0.3 < value('od') < 0.5), and, or, not "
                        "would keep one side only; give each condition as its own argument, all of which must hold: "
                        "query_assets(value('od') > 0.3, value('od') < 0.5)")


def join_path(*keys: str) -> str:
    """A path from raw keys, escaping "." and "\\" inside them: join_path("a.b", "c") == "a\\.b.c"."""
    return ".".join(k.replace("\\", "\\\\").replace(".", "\\.") for k in keys)


def json_time(moment: datetime, field: str = "moment") -> str:
    """The text a predicate compares an aware datetime as, and the form to store times in JSON with, so
    that they compare as times: ISO 8601 in UTC, as `datetime.isoformat` writes it (no fraction at a
    whole second, else six digits; `+00:00`). A naive datetime is NaiveTime naming `field`: it is
    most often the machine's local time, not UTC."""
    return str(wire_time(moment, field))


class JsonPath:
    """A path inside `metadata`, `value` or `data`; comparing it builds a Predicate (it is not itself comparable).
    An aware datetime compares as its `json_time` text, the form to store times in."""

    __hash__ = None  # type: ignore[assignment]  # == builds a predicate, so a path cannot be a dict key

    def __init__(self, target: Target, path: str) -> None:
        if not path:
            raise ValueError("a JSON path needs at least one key")
        self.target, self.path = target, path

    def __repr__(self) -> str:
        return f"{self.target}({self.path!r})"

    def _make(self, op: JsonOp, operand: Any = None) -> Predicate:
        # Written out here, not as the request is sent: the operand is the text compared (a non-UTC
        # time was already sent as UTC; now the predicate shows it), and a naive time is refused where
        # the comparison is written, an option of is_in's among them.
        if isinstance(operand, list):
            operand = [self._time(item) for item in operand]
        return Predicate(self.target, self.path, op, self._time(operand))

    def _time(self, operand: Any) -> Any:
        return json_time(operand, repr(self)) if isinstance(operand, datetime) else operand

    def __eq__(self, other: Scalar) -> Predicate:  # type: ignore[override]
        return self._make("EQ", other)

    def __ne__(self, other: Scalar) -> Predicate:  # type: ignore[override]
        return self._make("NE", other)

    def __gt__(self, other: Ordered) -> Predicate:
        return self._make("GT", other)

    def __ge__(self, other: Ordered) -> Predicate:
        return self._make("GTE", other)

    def __lt__(self, other: Ordered) -> Predicate:
        return self._make("LT", other)

    def __le__(self, other: Ordered) -> Predicate:
        return self._make("LTE", other)

    def _options(self, method: str, options: object) -> list[Scalar]:
        """`options` as a list, refused (BAD_USER_INPUT naming the predicate) where list() would
        mean something else than was meant: a str or bytes is split into its characters (IN ['A', '1']
        for "A1", silently other results), a mapping gives its keys, a number raises a bare TypeError."""
        where = f"{self!r}.{method}"
        if isinstance(options, str | bytes | bytearray | Mapping) or not isinstance(options, Iterable):
            raise GraphlakeClientError(f"{where}: takes a list of options, not a {type(options).__name__} "
                                       f"({options!r}); for one option write [{options!r}]", "BAD_USER_INPUT", where)
        return list(options)

    def is_in(self, options: Options) -> Predicate:
        """Equal to one of `options` (a non-empty list, tuple or set of scalars; not a str). Every option
        is sent, and JSON's true is not 1 (nor false 0) to the server; but a Python set cannot hold
        both, {1, True} being {1}: give such options as a list."""
        return self._make("IN", self._options("is_in", options))

    def not_in(self, options: Options) -> Predicate:
        """Equal to none of `options` (as for is_in); assets without the path match too."""
        return self._make("NIN", self._options("not_in", options))

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


def data(path: str) -> JsonPath:
    """A path inside an event's data, for `query_events`, e.g. data("od600") > 0.3."""
    return JsonPath("data", path)


def filter_inputs(predicates: Iterable[Predicate], targets: tuple[Target, ...] = ("metadata", "value"),
                  ) -> dict[str, list[dict[str, Any]]]:
    """The filter fields these predicates fill (all must hold): AssetFilter's `metadata` and `value`,
    or with `targets=("data",)` EventFilter's `data`."""
    fields: dict[str, list[dict[str, Any]]] = {}
    for predicate in predicates:
        if not isinstance(predicate, Predicate):  # `metadata("a") is None` and friends are not predicates
            raise TypeError(f"not a predicate: {predicate!r} (build one with {' or '.join(f'{t}(...)' for t in targets)} "
                            "and an operator)")
        if predicate.target not in targets:
            raise TypeError(f"{predicate.target}({predicate.path!r}) is not a path of what this asks for: "
                            f"use {' or '.join(f'{t}(...)' for t in targets)}")
        fields.setdefault(predicate.target, []).append(predicate.as_input())
    return fields
