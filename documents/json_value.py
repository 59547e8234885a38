"""Client JSON (asset values, metadata, attributes): stored so it round-trips exactly, and queried by path.

BSON cannot hold every JSON value on our servers: FerretDB v1 refuses nested arrays, keys containing "."
or starting with "$", and NaN, and BSON has no integer wider than 64 bits. So a StoredJson keeps the
exact JSON as text, the only thing ever read back, beside views of its scalar leaves made for queries:

- `attrs`: [{k: path, v: scalar}], the attribute pattern. An index on its whole elements answers equality
  and range predicates on MongoDB with tight bounds.
- `leaves`: {escaped path: [scalar, ...]}, the same leaves keyed by path.
- `paths`: every path present, containers included, for EXISTS.

Why the leaves twice: a predicate means "some leaf at this path satisfies the condition", a condition on
two fields (k and v) of one array element. MongoDB says that with $elemMatch {k: ..., v: ...}, but
FerretDB v1.24 rejects field conditions inside $elemMatch ("unknown operator: k") and evaluates an
operator-only $elemMatch operator by operator over the whole array, so its two bounds may be met by two
different elements. In `leaves` the path is the field name, so each predicate is one operator on one
field, which both servers evaluate alike. Every filter therefore pairs two conditions:
  narrow: on `attrs`, served by MongoDB's index (exact there for equality and ranges, string leaves at
          the path for REGEX and CONTAINS); on FerretDB a superset of the answer, never an error;
  decide: on `leaves`, exact on both servers. Correctness never rests on `narrow`.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from collections.abc import Sequence
from enum import Enum
from typing import Any

import orjson
from pydantic import BaseModel, Field, model_validator
from pymongo import ASCENDING, IndexModel

MAX_INDEXED_LEAVES = 1000
MAX_DEPTH = 500  # nesting levels; deeper input is refused rather than risking a RecursionError
MAX_REGEX_LENGTH = 500

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = sys.float_info.max
_MAX_INT_BITS = 13_000  # Python refuses int <-> text beyond 4300 digits; stay well below with a clear message
# orjson reads integers beyond 64 bits as floats; a run of 19+ digits may be one, and then the standard
# library (exact, slower) parses the text instead. Digits inside strings only cost the slower parser.
_LONG_DIGITS = re.compile(r"\d{19,}")

Scalar = str | int | float | bool | None


class InvalidJson(ValueError):
    """The value cannot be stored as JSON; the message says why."""


class InvalidPredicate(ValueError):
    """A path predicate is malformed; the message says what is wrong with its op, value or path."""


class JsonOp(str, Enum):
    EQ = "EQ"
    NE = "NE"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"
    IN = "IN"
    NIN = "NIN"
    EXISTS = "EXISTS"
    CONTAINS = "CONTAINS"
    REGEX = "REGEX"


class JsonAttr(BaseModel):
    """One scalar leaf: its path and its value as indexed (see `_indexed`). Field order matters: the
    index compares whole elements, k first."""

    k: str
    v: Scalar = None


with warnings.catch_warnings():
    # The field is named `json` by contract; it shadows pydantic's deprecated BaseModel.json() method.
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class StoredJson(BaseModel):
        """One JSON value in its stored form; build it with `encode`, read it with `decode`."""

        json: str
        attrs: list[JsonAttr]
        paths: list[str]
        truncated: bool = False
        # Derived from `attrs` when not given (see module docstring for why it exists).
        leaves: dict[str, list[Scalar]] = Field(default_factory=dict)

        @model_validator(mode="after")
        def _derive_leaves(self) -> StoredJson:
            if "leaves" not in self.model_fields_set:
                self.leaves = _leaves_of(self.attrs)
            return self

        @classmethod
        def encode(cls, value: Any) -> StoredJson:
            """Raises InvalidJson for NaN, Infinity, non-JSON Python types or nesting beyond MAX_DEPTH."""
            walk = _Walk()
            walk.visit(value, None, 0)
            return cls(json=_dump(value), attrs=walk.attrs, paths=list(walk.paths),
                       truncated=walk.leaf_count > MAX_INDEXED_LEAVES)

        def decode(self) -> Any:
            return loads_json(self.json)


# --- JSON text ---------------------------------------------------------------------------------------

def dumps_json(value: Any) -> str:
    """Compact, exact JSON text. Raises InvalidJson for what is not JSON (orjson would write NaN as null)."""
    _Walk().visit(value, None, 0)
    return _dump(value)


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        pass  # integers beyond 64 bits, nesting beyond orjson's 255 levels, or a lone surrogate
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        text.encode()
    except UnicodeEncodeError:
        raise InvalidJson("a string holds a lone surrogate, which is not valid Unicode") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidJson(str(error)) from None
    return text


def loads_json(text: str) -> Any:
    try:
        if _LONG_DIGITS.search(text):
            return json.loads(text, parse_constant=_refuse_constant)
        return orjson.loads(text)
    except (ValueError, RecursionError) as error:  # orjson.JSONDecodeError is a ValueError
        if isinstance(error, InvalidJson):
            raise
        raise InvalidJson(f"not JSON text: {error}") from None


def _refuse_constant(name: str) -> None:
    raise InvalidJson(f"{name} is not JSON")


# --- paths -------------------------------------------------------------------------------------------

def _escape_key(key: str) -> str:
    return key.replace("\\", "\\\\").replace(".", "\\.")


def path_of(keys: Sequence[str]) -> str:
    """Keys joined with "."; inside a key "\\" is written "\\\\" and "." is written "\\."."""
    return ".".join(_escape_key(key) for key in keys)


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


def _leaf_field(path: str) -> str:
    """A path as a field name of `leaves`: percent-escaped so it holds no ".", "$" or NUL, which
    neither server accepts in a field name (injective, so distinct paths never share a field)."""
    return path.replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("\x00", "%00")


# --- encoding ----------------------------------------------------------------------------------------

def _indexed(value: Any) -> Scalar:
    """A JSON scalar as indexed. BSON has no integer beyond int64: such an int is indexed as the nearest
    double (clamped to the largest finite one, as FerretDB refuses to store infinity); `json` stays exact."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return int(value)
        if value.bit_length() > _MAX_INT_BITS:
            raise InvalidJson("an integer of more than about 3900 digits is not accepted")
        try:
            return float(value)
        except OverflowError:
            return _FLOAT_MAX if value > 0 else -_FLOAT_MAX
    if isinstance(value, float):
        if math.isnan(value):
            raise InvalidJson("NaN is not JSON")
        if math.isinf(value):
            raise InvalidJson(f"{'-' if value < 0 else ''}Infinity is not JSON")
        return value
    raise InvalidJson(f"{_kind(value)} is not JSON")


class _Walk:
    """Validates a value and collects its leaves and paths in document order.

    A path of None is the root's own path: the root and, recursively, its array elements. It is never
    listed in `paths`, and its leaves are indexed under k "".
    """

    def __init__(self) -> None:
        self.attrs: list[JsonAttr] = []
        self.paths: dict[str, None] = {}  # an ordered set
        self.leaf_count = 0

    def visit(self, value: Any, path: str | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidJson(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict | list) and path is not None:
            self.paths[path] = None
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidJson(f"object keys must be strings, got {key!r}")
                escaped = _escape_key(key)
                self.visit(item, escaped if path is None else f"{path}.{escaped}", depth + 1)
        elif isinstance(value, list):
            for item in value:  # elements share the array's path; nested arrays flatten into it
                self.visit(item, path, depth + 1)
        else:
            v = _indexed(value)
            if path is not None:
                self.paths[path] = None
            self.leaf_count += 1
            if self.leaf_count <= MAX_INDEXED_LEAVES:
                self.attrs.append(JsonAttr(k=path or "", v=v))


def _leaves_of(attrs: list[JsonAttr]) -> dict[str, list[Scalar]]:
    leaves: dict[str, list[Scalar]] = {}
    for attr in attrs:
        if attr.k:  # path "" cannot be queried (and an empty field name is best not stored)
            leaves.setdefault(_leaf_field(attr.k), []).append(attr.v)
    return leaves


# --- queries -----------------------------------------------------------------------------------------

_COMPARISONS = {JsonOp.GT: "$gt", JsonOp.GTE: "$gte", JsonOp.LT: "$lt", JsonOp.LTE: "$lte"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kinds, name in ((dict, "an object"), ((list, tuple), "an array"), (str, "a string"),
                        ((int, float), "a number")):
        if isinstance(value, kinds):
            return name
    return f"a {type(value).__name__}"


def _scalar(op: JsonOp, value: Any) -> Scalar:
    if isinstance(value, dict | list | tuple):
        raise InvalidPredicate(f"{op.value} compares a scalar (string, number, boolean or null), got {_kind(value)}")
    try:
        return _indexed(value)
    except InvalidJson as error:
        raise InvalidPredicate(f"{op.value} value: {error}") from None


def _attr(path: str, value: Any) -> dict[str, Any]:
    return {"k": path, "v": value}  # k first, as stored: documents compare field by field, in order


def _equals(attrs: str, leaves: str, path: str, values: list[Scalar]) -> dict[str, Any]:
    # $all with one element is equality with an element, usable by the attrs index. Not $in or
    # $elemMatch {$eq}: FerretDB never matches those against documents inside an array.
    narrow = [{attrs: {"$all": [_attr(path, value)]}} for value in values]
    return {**(narrow[0] if len(narrow) == 1 else {"$or": narrow}), leaves: {"$elemMatch": {"$in": values}}}


def _type_bounds(path: str, value: str | int | float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(floor, ceiling) conditions holding every element at `path` whose v has the type of `value`.

    BSON orders values by type first (null < numbers < strings < objects < ... < booleans), and no leaf
    is infinite or an object, so numbers lie strictly within ±inf and strings within ["", {}).
    """
    if isinstance(value, str):
        return {"$gte": _attr(path, "")}, {"$lt": _attr(path, {})}
    return {"$gt": _attr(path, -math.inf)}, {"$lt": _attr(path, math.inf)}


def _matches(attrs: str, leaves: str, path: str, pattern: str) -> dict[str, Any]:
    floor, ceiling = _type_bounds(path, "")
    return {attrs: {"$elemMatch": {**floor, **ceiling}}, leaves: {"$elemMatch": {"$regex": pattern}}}


def predicate_filter(field: str, path: str, op: JsonOp, value: Any) -> dict[str, Any]:
    """A MongoDB filter for "some leaf at `path` of the StoredJson `field` satisfies `op value`".

    Array elements count as leaves at the array's own path. Filters for several predicates combine
    with $and. A document with more than MAX_INDEXED_LEAVES leaves is only searched in its first ones.
    """
    try:
        op = JsonOp(op)
    except ValueError:
        raise InvalidPredicate(f"unknown op {op!r}") from None
    if not isinstance(path, str) or not path:
        raise InvalidPredicate("a path must be a non-empty string")
    split_path(path)  # raises on a malformed path
    attrs, leaves = f"{field}.attrs", f"{field}.leaves.{_leaf_field(path)}"

    if op is JsonOp.EXISTS:
        if value is None or value is True:
            return {f"{field}.paths": path}
        if value is False:
            return {f"{field}.paths": {"$ne": path}}
        raise InvalidPredicate(f"EXISTS takes true, false or no value, got {_kind(value)}")

    if op in (JsonOp.EQ, JsonOp.NE):
        found = _equals(attrs, leaves, path, [_scalar(op, value)])
        return found if op is JsonOp.EQ else {"$nor": [found]}  # $nor: documents without the path match

    if op in (JsonOp.IN, JsonOp.NIN):
        if not isinstance(value, list) or not value:
            raise InvalidPredicate(f"{op.value} needs a non-empty list of scalars, got {_kind(value)}")
        found = _equals(attrs, leaves, path, [_scalar(op, item) for item in value])
        return found if op is JsonOp.IN else {"$nor": [found]}

    if op in _COMPARISONS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidPredicate(f"{op.value} compares a number or a string, got {_kind(value)}")
        bound, operator = _scalar(op, value), _COMPARISONS[op]
        floor, ceiling = _type_bounds(path, bound)
        narrow = {operator: _attr(path, bound), **ceiling} if op in (JsonOp.GT, JsonOp.GTE) else \
            {**floor, operator: _attr(path, bound)}
        return {attrs: {"$elemMatch": narrow}, leaves: {"$elemMatch": {operator: bound}}}

    if op is JsonOp.CONTAINS:
        item = _scalar(op, value)
        if isinstance(item, str):
            # Equal leaves contain it too. re.escape leaves NUL as is; the servers refuse NUL in a pattern.
            return _matches(attrs, leaves, path, re.escape(item).replace("\x00", "\\x00"))
        return _equals(attrs, leaves, path, [item])

    # REGEX: a Python-valid pattern runs as PCRE on MongoDB and as Go RE2 on FerretDB, which refuses
    # lookbehind and backreferences (the query then fails there instead of answering differently).
    if not isinstance(value, str):
        raise InvalidPredicate(f"REGEX needs a pattern string, got {_kind(value)}")
    if len(value) > MAX_REGEX_LENGTH:
        raise InvalidPredicate(f"REGEX pattern is {len(value)} characters; the limit is {MAX_REGEX_LENGTH}")
    if "\x00" in value:
        raise InvalidPredicate("REGEX pattern holds a NUL character; write \\x00 instead")
    try:
        re.compile(value)
    except re.error as error:
        raise InvalidPredicate(f"REGEX pattern does not compile: {error}") from None
    return _matches(attrs, leaves, path, value)


def json_indexes(field: str) -> list[IndexModel]:
    """The indexes for a StoredJson field; create them one per createIndexes call (FerretDB v1.24 panics
    on one call naming two existing indexes).

    The attrs index is on whole elements, not compound (attrs.k, attrs.v): that one only serves
    $elemMatch {k, v}, which FerretDB rejects, while this one serves the $all / $elemMatch range shapes
    that `predicate_filter` emits.
    """
    return [
        IndexModel([(f"{field}.attrs", ASCENDING)], name=f"{field}_json_attrs"),
        IndexModel([(f"{field}.paths", ASCENDING)], name=f"{field}_json_paths"),
    ]


# --- the same predicates, evaluated in Python (live subscriptions filter events in memory) -----------

def _comparable(left: Scalar, right: Scalar) -> bool:
    # MongoDB compares within one type bracket only: numbers with numbers, strings with strings.
    def bracket(v: Scalar) -> str:
        return "number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__
    return bracket(left) == bracket(right)


def matches(stored: StoredJson, path: str, op: JsonOp | str, value: Any) -> bool:
    """Whether `stored` satisfies one predicate, with the semantics `predicate_filter` gives a query."""
    op = JsonOp(op) if not isinstance(op, JsonOp) else op
    predicate_filter("x", path, op, value)  # the same validation (raises InvalidPredicate)
    leaves = stored.leaves.get(_leaf_field(path), [])
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
    return any(isinstance(v, str) and re.search(value, v) is not None for v in leaves)  # REGEX
