"""The query compiler: a path predicate (path, op, value) on a StoredJson field turned into a MongoDB
filter, and the indexes those filters use.

Every filter pairs two conditions (why there are two views of the leaves: `encoding`):
  narrow: on `attrs`, served by MongoDB's index (exact there for equality and ranges, string leaves at
          the path for REGEX and CONTAINS); on FerretDB a superset of the answer, never an error;
  decide: on `leaves`, exact on both servers. Correctness never rests on `narrow`.
"""

from __future__ import annotations

import math
from enum import Enum
from functools import lru_cache
from typing import Any

import re2
from pymongo import ASCENDING, IndexModel

from documents.json_value.encoding import Scalar, indexed
from documents.json_value.errors import InvalidJson, InvalidPredicate, kind_of
from documents.json_value.paths import leaf_field, split_path
from documents.patterns import literal

MAX_REGEX_LENGTH = 500
# RE2's measure of a compiled pattern (its instructions), compiled as Latin-1 so that a character
# class counts as one instruction, as in Go's engine, which works on characters (compiled as UTF-8,
# `\p{L}+` is 1,201 instructions of byte ranges; as Latin-1, 12). Linear time is not cheap time:
# matching costs about the program's size per character in Go's engine (FerretDB's), where a repeat
# count makes programs large. Measured on a 1 MB string: `a{1,20}bq` (45) 0.24 s, `a{1,490}bq` (985)
# 5.4 s, and a 483-character pattern of sixty `a{1,999}` (119,829) minutes, which no deadline
# stops (FerretDB checks it between documents) and which froze live subscriptions (RE2's DFA ran
# out of memory and fell back to its slow engine). Ordinary patterns are far below this: a UUID's
# is 72, an e-mail address's 38.
MAX_REGEX_PROGRAM = 200


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


_COMPARISONS = {JsonOp.GT: "$gt", JsonOp.GTE: "$gte", JsonOp.LT: "$lt", JsonOp.LTE: "$lte"}


def operand(op: JsonOp, value: Any) -> Scalar:
    """A predicate's scalar as its filter compares it (the in-memory evaluator compares the same one)."""
    if isinstance(value, dict | list | tuple):
        raise InvalidPredicate(f"{op.value} compares a scalar (string, number, boolean or null), got {kind_of(value)}")
    try:
        return indexed(value)  # compared as stored, so a big integer meets its own stored double
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


def holds_without_path(op: JsonOp | str, value: Any) -> bool:
    """Whether a predicate holds on a document without its path (NE, NIN, EXISTS false), and so on one
    without the JSON field at all: a field only some documents have (an asset's `value`, a VALUE
    asset's alone) needs its own condition beside such a predicate."""
    return op in (JsonOp.NE, JsonOp.NIN) or (op == JsonOp.EXISTS and value is False)


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
    attrs, leaves = f"{field}.attrs", f"{field}.leaves.{leaf_field(path)}"

    if op is JsonOp.EXISTS:
        if value is None or value is True:
            return {f"{field}.paths": path}
        if value is False:
            return {f"{field}.paths": {"$ne": path}}
        raise InvalidPredicate(f"EXISTS takes true, false or no value, got {kind_of(value)}")

    if op in (JsonOp.EQ, JsonOp.NE):
        found = _equals(attrs, leaves, path, [operand(op, value)])
        return found if op is JsonOp.EQ else {"$nor": [found]}  # $nor: documents without the path match

    if op in (JsonOp.IN, JsonOp.NIN):
        if not isinstance(value, list) or not value:
            raise InvalidPredicate(f"{op.value} needs a non-empty list of scalars, got {kind_of(value)}")
        found = _equals(attrs, leaves, path, [operand(op, item) for item in value])
        return found if op is JsonOp.IN else {"$nor": [found]}

    if op in _COMPARISONS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidPredicate(f"{op.value} compares a number or a string, got {kind_of(value)}")
        bound, operator = operand(op, value), _COMPARISONS[op]
        floor, ceiling = _type_bounds(path, bound)
        narrow = {operator: _attr(path, bound), **ceiling} if op in (JsonOp.GT, JsonOp.GTE) else \
            {**floor, operator: _attr(path, bound)}
        return {attrs: {"$elemMatch": narrow}, leaves: {"$elemMatch": {operator: bound}}}

    if op is JsonOp.CONTAINS:
        item = operand(op, value)
        if isinstance(item, str):
            return _matches(attrs, leaves, path, literal(item))  # equal leaves contain it too
        return _equals(attrs, leaves, path, [item])

    # REGEX: only what RE2 can run (no lookaround, no backreferences), which both servers then run
    # alike (MongoDB's PCRE is a superset; FerretDB uses Go's RE2) and live subscriptions match in
    # linear time (evaluator.py), so no pattern can make matching take exponential time.
    if not isinstance(value, str):
        raise InvalidPredicate(f"REGEX needs a pattern string, got {kind_of(value)}")
    if len(value) > MAX_REGEX_LENGTH:
        raise InvalidPredicate(f"REGEX pattern is {len(value)} characters; the limit is {MAX_REGEX_LENGTH}")
    if "\x00" in value:
        raise InvalidPredicate("REGEX pattern holds a NUL character; write \\x00 instead")
    try:
        latin1, utf8 = _program_sizes(value)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else str(error)
        raise InvalidPredicate(f"REGEX pattern is not valid RE2, the linear-time syntax (no lookaround or "
                               f"backreferences): {reason}") from None
    advice = "(repeat counts such as {1,100} make a pattern large: use + or * where they will do)"
    # Measured as Latin-1 where that compiles it; else (`\\x{100}`) as UTF-8, which counts no fewer.
    size = latin1 if latin1 is not None else utf8
    if size > MAX_REGEX_PROGRAM:
        measured = f"more than {MAX_REGEX_UTF8_PROGRAM:,}" if size == _TOO_LARGE else size
        raise InvalidPredicate(f"REGEX pattern compiles to {measured} instructions; the limit is {MAX_REGEX_PROGRAM} {advice}")
    if utf8 > MAX_REGEX_UTF8_PROGRAM:
        measured = f"more than {MAX_REGEX_UTF8_PROGRAM:,}" if utf8 == _TOO_LARGE else f"{utf8:,}"
        raise InvalidPredicate(f"REGEX pattern compiles to {measured} instructions as UTF-8, where a class such as "
                               f"\\p{{L}} counts its byte ranges; the limit is {MAX_REGEX_UTF8_PROGRAM:,} {advice}")
    return _matches(attrs, leaves, path, value)


# RE2's own program for a pattern, compiled as UTF-8, is what live subscriptions match with here
# (evaluator.py), and where a character class counts its byte ranges (`\p{L}` some 1,200 instructions):
# up to 10,000 matched 100 KB in under a millisecond, `\p{Greek}\p{L}{1,100}\p{L}{1,99}1` (238,268,
# one instruction as Latin-1, so within MAX_REGEX_PROGRAM) took 1.2 s.
MAX_REGEX_UTF8_PROGRAM = 10_000
# Patterns are sized by compiles bounded to this memory: RE2 gives up on a program past about 10,900
# instructions in it, so both limits are checked without compiling more. Unbounded (RE2's 8 MB),
# sixty `a{1,999}` compiled for 8-12 s on the event loop before their size was refused.
_SIZING_MEMORY = 256 << 10
_TOO_LARGE = 1 << 30  # a size RE2 gave up on within _SIZING_MEMORY: past both limits
_LATIN1 = re2.Options()
_LATIN1.encoding = re2.Options.Encoding.LATIN1
_LATIN1.max_mem = _SIZING_MEMORY
_UTF8 = re2.Options()
_UTF8.max_mem = _SIZING_MEMORY


@lru_cache(maxsize=1024)  # the same patterns come again: each query of a page, each subscription of a dashboard
def _program_sizes(pattern: str) -> tuple[int | None, int]:
    """The pattern's size compiled as Latin-1 (MAX_REGEX_PROGRAM's measure; None where Latin-1 cannot
    compile it, e.g. `\\x{100}`) and as UTF-8 (MAX_REGEX_UTF8_PROGRAM's); _TOO_LARGE for one past what
    _SIZING_MEMORY holds. re2.error for a pattern RE2 cannot run."""
    def size(pattern: str | bytes, options: Any) -> int:
        try:
            return int(re2.compile(pattern, options=options).programsize)
        except re2.error as error:
            if error.args and isinstance(error.args[0], bytes) and b"too large" in error.args[0]:
                return _TOO_LARGE
            raise

    utf8 = size(pattern, _UTF8)
    try:
        return size(pattern.encode(), _LATIN1), utf8
    except re2.error:
        return None, utf8


@lru_cache(maxsize=1024)
def compiled_pattern(pattern: str) -> Any:
    """A client's REGEX pattern compiled by RE2 (google-re2); cached, as validating it compiles it
    (`_program_size`) and the evaluator then runs it."""
    return re2.compile(pattern)


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
