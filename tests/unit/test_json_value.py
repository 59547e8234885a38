"""Client JSON in memory: exact text, the path grammar, the stored form, filter validation and the
in-memory evaluator. What the database makes of the stored form and the filters: tests/test_json_value.py."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import re2

from documents.json_value import (
    MAX_DEPTH,
    MAX_INDEXED_LEAVES,
    InvalidJson,
    InvalidPredicate,
    JsonAttr,
    JsonOp,
    StoredJson,
    compile_predicate,
    dumps_json,
    loads_json,
    matches,
    path_of,
    predicate_filter,
    split_path,
)
from tests.json_value_cases import CASES, DOCS, WITHOUT_FIELD, nested


def test_big_integers_and_negative_zero_stay_exact() -> None:
    assert loads_json(dumps_json(2**64 + 1)) == 2**64 + 1
    assert loads_json(dumps_json([-(2**63) - 1])) == [-(2**63) - 1]
    assert loads_json("18446744073709551615") == 2**64 - 1
    assert math.copysign(1, StoredJson.encode(-0.0).decode()) == -1
    assert dumps_json({"a": [1, "x"]}) == '{"a":[1,"x"]}'


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "NaN is not JSON"),
    ({"a": [1, float("inf")]}, "Infinity is not JSON"),
    ([float("-inf")], "-Infinity is not JSON"),
    ((1, 2), "an array is not JSON"),  # a tuple would come back as a list
    ({1: "a"}, "object keys must be strings"),
    ({"a": {1, 2}}, "a set is not JSON"),
    (b"bytes", "a bytes is not JSON"),
    ("\ud800", "lone surrogate"),
    ([10**4000], "more than about 3900 digits"),
    (nested(MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels deep"),
])
def test_what_is_not_json_is_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidJson, match=message):
        StoredJson.encode(value)
    with pytest.raises(InvalidJson, match=message):
        dumps_json(value)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "{", "[1, 99999999999999999999, -Infinity]"])
def test_loads_json_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(InvalidJson):
        loads_json(text)


def test_leaves_and_paths() -> None:
    stored = StoredJson.encode({
        "t": 21.5, "flag": True, "n": None, "big": 2**70,
        "arr": [1, [2, [3]], {"x": "y"}, []], "o": {"a.b": {"": "deep"}, "e": {}},
    })
    assert [(a.k, a.v) for a in stored.attrs] == [
        ("t", 21.5), ("flag", True), ("n", None), ("big", float(2**70)),
        ("arr", 1), ("arr", 2), ("arr", 3), ("arr.x", "y"), ("o.a\\.b.", "deep"),
    ]
    assert type(stored.attrs[1].v) is bool
    assert stored.paths == ["t", "flag", "n", "big", "arr", "arr.x", "o", "o.a\\.b", "o.a\\.b.", "o.e"]
    assert stored.leaves["arr"] == [1, 2, 3]
    assert stored.leaves["o%2Ea\\%2Eb%2E"] == ["deep"]
    assert not stored.truncated
    # a scalar root is a leaf at the root's path "", which is not listed and cannot be queried
    assert StoredJson.encode(7).attrs == [JsonAttr(k="", v=7)]
    assert StoredJson.encode(7).paths == [] and StoredJson.encode(7).leaves == {}
    # hand-built StoredJson gets its leaves derived from attrs
    assert StoredJson(json="[1]", attrs=[JsonAttr(k="a", v=1)], paths=["a"]).leaves == {"a": [1]}


def test_more_leaves_than_indexed_are_truncated() -> None:
    value = {"first": "here", "many": list(range(MAX_INDEXED_LEAVES)), "last": "lost", "after": {}}
    stored = StoredJson.encode(value)
    assert stored.truncated
    assert len(stored.attrs) == MAX_INDEXED_LEAVES
    assert [(a.k, a.v) for a in stored.attrs[:2]] == [("first", "here"), ("many", 0)]
    assert stored.attrs[-1] == JsonAttr(k="many", v=MAX_INDEXED_LEAVES - 2)
    assert stored.paths == ["first", "many", "last", "after"]  # every path is still listed
    assert not StoredJson.encode(list(range(MAX_INDEXED_LEAVES))).truncated


@pytest.mark.parametrize("keys", [
    ["a.b"], ["\\"], ["$x"], [""], ["a\\.b"], [".", ".."], ["\\\\."], ["a", "", "b"], ["", ""], ["ü.😀", "x"],
])
def test_path_escaping_round_trips(keys: list[str]) -> None:
    assert split_path(path_of(keys)) == keys


def test_path_examples() -> None:
    assert path_of(["a.b", "c\\d"]) == "a\\.b.c\\\\d"
    assert split_path("temperature") == ["temperature"]
    assert split_path("a..b") == ["a", "", "b"]
    with pytest.raises(InvalidPredicate, match="lone"):
        split_path("a\\")
    with pytest.raises(InvalidPredicate, match="only"):
        split_path("a\\b")


@pytest.mark.parametrize(("path", "op", "value", "message"), [
    ("", JsonOp.EQ, 1, "non-empty"),
    ("a\\", JsonOp.EQ, 1, "lone"),
    ("a\\b", JsonOp.EQ, 1, "escapes"),
    ("a", "BETWEEN", 1, "unknown op"),
    ("a", JsonOp.EQ, {"x": 1}, "EQ compares a scalar .*, got an object"),
    ("a", JsonOp.NE, [1], "NE compares a scalar .*, got an array"),
    ("a", JsonOp.EQ, float("nan"), "NaN is not JSON"),
    ("a", JsonOp.GT, {"x": 1}, "GT compares a number or a string, got an object"),
    ("a", JsonOp.GTE, True, "GTE compares a number or a string, got a boolean"),
    ("a", JsonOp.LT, None, "LT compares a number or a string, got null"),
    ("a", JsonOp.LTE, float("inf"), "Infinity is not JSON"),
    ("a", JsonOp.IN, [], "IN needs a non-empty list of scalars"),
    ("a", JsonOp.IN, "abc", "IN needs a non-empty list of scalars, got a string"),
    ("a", JsonOp.NIN, [1, [2]], "NIN compares a scalar .*, got an array"),
    ("a", JsonOp.EXISTS, 1, "EXISTS takes true, false or no value, got a number"),
    ("a", JsonOp.CONTAINS, {"x": 1}, "CONTAINS compares a scalar"),
    ("a", JsonOp.REGEX, 1, "REGEX needs a pattern string, got a number"),
    ("a", JsonOp.REGEX, "(", r"not valid RE2, the linear-time syntax \(no lookaround or backreferences\): missing \): \($"),
    ("a", JsonOp.REGEX, "(?<=a)b", "no lookaround or backreferences"),  # once reached FerretDB: INTERNAL
    ("a", JsonOp.REGEX, r"(a)\1", "no lookaround or backreferences"),
    ("a", JsonOp.REGEX, "a" * 501, "limit is 500"),
    # Within 500 characters but costly to run: a large program (FerretDB's engine pays per instruction per character).
    ("a", JsonOp.REGEX, "a{1,999}" * 60 + "bq<i>", r"compiles to more than 10,000 instructions; the limit is 200"),
    ("a", JsonOp.REGEX, "(?:(?:a{1,9}){1,9}){1,9}b", "the limit is 200"),
    ("a", JsonOp.REGEX, "a\x00", "NUL"),
])
def test_invalid_predicates(path: str, op: JsonOp, value: Any, message: str) -> None:
    with pytest.raises(InvalidPredicate, match=message):
        predicate_filter("meta", path, op, value)


@pytest.mark.parametrize("pattern", [r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                                     r"(?i)^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$", r"\d{4}-\d{2}-\d{2}T", r"a{1,50}",
                                     r"\p{L}+", r".{0,25}", "[é-ü]+"])  # Unicode classes count as Go runs them
def test_ordinary_patterns_are_well_within_the_program_limit(pattern: str) -> None:
    assert predicate_filter("meta", "a", JsonOp.REGEX, pattern)


def test_compiled_predicates_select_what_the_database_filters_select() -> None:
    """Live subscriptions filter events with predicates compiled once; a subscriber must get what a
    query would. The same expected answers hold the database filters in tests/test_json_value.py."""
    stored = {i: StoredJson.encode(doc) for i, doc in DOCS.items()}
    wrong = []
    for path, op, value, expected in CASES:
        predicate = compile_predicate(path, op, value)
        found = [i for i, doc in stored.items() if predicate(doc)]
        if found != [i for i in expected if i != WITHOUT_FIELD]:  # no such document in memory
            wrong.append((path, op.value, value, f"expected {expected}, got {found}"))
    assert wrong == []


def test_a_backtracking_pattern_matches_in_linear_time() -> None:
    """`(a+)+$` against a long run of a's and one b takes exponential time in a backtracking engine:
    this would not finish with Python's re (a live subscription froze the server on it). With RE2 it
    answers at once."""
    stored = StoredJson.encode({"note": "a" * 10_000 + "b"})
    assert matches(stored, "note", JsonOp.REGEX, "(a+)+$") is False
    assert matches(stored, "note", JsonOp.REGEX, "(a+)+b$") is True


def _pairwise(stored: StoredJson, path: str, op: JsonOp, value: Any) -> bool:
    """The evaluator as it was before predicates were compiled (each leaf compared with each item, by
    MongoDB's brackets): what the compiled ones must answer alike, within int64 (beyond it, both now
    compare the double a big integer is indexed as, as the database does: tests/json_value_cases.py)."""
    def comparable(left: Any, right: Any) -> bool:
        def bracket(v: Any) -> str:
            return "number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__
        return bracket(left) == bracket(right)

    leaves = stored.leaves.get(path.replace(".", "%2E"), [])
    if op is JsonOp.EXISTS:
        return (path in stored.paths) == (value is None or bool(value))
    if op in (JsonOp.EQ, JsonOp.NE):
        found = any(comparable(v, value) and v == value for v in leaves) or (value is None and None in leaves)
        return found if op is JsonOp.EQ else not found
    if op in (JsonOp.IN, JsonOp.NIN):
        found = any(comparable(v, w) and v == w for v in leaves for w in value)
        return found if op is JsonOp.IN else not found
    if op in (JsonOp.GT, JsonOp.GTE, JsonOp.LT, JsonOp.LTE):
        compare = {JsonOp.GT: lambda a, b: a > b, JsonOp.GTE: lambda a, b: a >= b,
                   JsonOp.LT: lambda a, b: a < b, JsonOp.LTE: lambda a, b: a <= b}[op]
        return any(comparable(v, value) and compare(v, value) for v in leaves)
    if op is JsonOp.CONTAINS:
        return any((comparable(v, value) and v == value) or (isinstance(v, str) and isinstance(value, str) and value in v)
                   for v in leaves)
    return any(isinstance(v, str) and re2.search(value, v) is not None for v in leaves)


# Scalars that Python's == and hash() mix up across MongoDB's brackets (True, 1, 1.0), or keep apart
# within one (2**53 + 1 and its nearest double), and strings that contain one another.
_SCALARS: list[Any] = [0, 1, -1, 1.0, 0.5, -0.0, 2**53 + 1, float(2**53 + 1), 2**63 - 1, -(2**63), 1e308,
                       True, False, None, "", "1", "a", "ab", "b", "A", "é"]
_DATA: list[Any] = [
    *({"x": v} for v in _SCALARS),
    {"x": _SCALARS}, {"x": [1, 1.0, True]}, {"x": [True, None]}, {"x": [[1, [True]], [None, ["a"]]]},
    {"x": {"y": 1}}, {"x": {"y": [None, "ab"]}}, {"x": {}}, {"x": []}, {"x": [{}]}, {"y": 1}, {}, 1, None,
]
_LISTS: list[list[Any]] = [
    *([v] for v in _SCALARS), [1, "1"], [True, None], [0, False, ""], [1.0, "a"], [-0.0], _SCALARS,
    [f"item {i}" for i in range(1000)] + [None],
]


def _predicates() -> list[tuple[str, JsonOp, Any]]:
    ranges = [v for v in _SCALARS if v is not None and not isinstance(v, bool)]
    each: list[tuple[JsonOp, Any]] = [
        *((op, v) for op in (JsonOp.EQ, JsonOp.NE, JsonOp.CONTAINS) for v in _SCALARS),
        *((op, items) for op in (JsonOp.IN, JsonOp.NIN) for items in _LISTS),
        *((op, v) for op in (JsonOp.GT, JsonOp.GTE, JsonOp.LT, JsonOp.LTE) for v in ranges),
        *((JsonOp.REGEX, pattern) for pattern in ("", "^a", "(?i)^A", "1$", "é", "^$")),
        *((JsonOp.EXISTS, v) for v in (None, True, False)),
    ]
    return [(path, op, value) for path in ("x", "x.y", "missing") for op, value in each]


def test_compiled_predicates_answer_as_the_pairwise_evaluator_did() -> None:
    stored = [StoredJson.encode(data) for data in _DATA]
    wrong = []
    for path, op, value in _predicates():
        predicate = compile_predicate(path, op, value)
        for data, doc in zip(_DATA, stored, strict=True):
            if predicate(doc) != _pairwise(doc, path, op, value):
                wrong.append((path, op.value, value, data))
    assert wrong == []


def _cost(predicate: Callable[[StoredJson], bool], stored: StoredJson) -> float:
    """The least time of a few runs of 20 calls: the least is what the work costs, without the
    machine's interruptions."""
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            predicate(stored)
        best = min(best, time.perf_counter() - start)
    return best


def test_a_long_in_list_costs_about_what_a_short_one_does() -> None:
    """Per event, an IN of 1,000 items costs one pass over the leaves at its path, as an IN of one
    does: it was validated again at each event (1.5 ms, 300 times an IN of one, for an event with
    one leaf) and compared with each leaf (0.5 s, 1,000 times, for an event holding 1,000 leaves).
    The bound is generous (a tenth of what a cost growing with the list's length would take), and
    measured against the short list on the same machine, in the same run."""
    many = compile_predicate("x", JsonOp.IN, [f"item {i}" for i in range(1000)])
    one = compile_predicate("x", JsonOp.IN, ["item 0"])
    for data in ({"x": "leaf"}, {"x": [f"leaf {i}" for i in range(1000)]}):
        stored = StoredJson.encode(data)
        assert many(stored) is one(stored) is False  # no item found: every leaf is looked at
        assert _cost(many, stored) < 100 * _cost(one, stored)


@pytest.mark.parametrize(("pattern", "refusal"), [
    # Latin-1 cannot compile \x{100}: sized as UTF-8 alone, within bounded memory (unbounded: 7 s).
    ("\\x{100}" + "a{1,999}" * 61, "more than 10,000 instructions; the limit is 200"),
    # One instruction as Latin-1 (no Latin-1 letter is Greek), 238,268 as UTF-8: 1.2 s per 100 KB matched live.
    ("\\p{Greek}\\p{L}{1,100}\\p{L}{1,99}1", "more than 10,000 instructions as UTF-8"),
    ("\\p{L}{1,9}", "10,776 instructions as UTF-8"),
    # Latin-1 cannot compile \x{100}: the UTF-8 size is held to the 200 then (unheld, any pattern got past it).
    ("(?:\\x{100})?a{1,490}bq", "988 instructions; the limit is 200"),
    ("(?:\\x{100})?" + "a{1,999}" * 4 + "bq", "7997 instructions; the limit is 200"),
])
def test_a_pattern_large_as_utf8_is_refused(pattern: str, refusal: str) -> None:
    with pytest.raises(InvalidPredicate, match=re.escape(refusal)):
        predicate_filter("value", "s", JsonOp.REGEX, pattern)


def test_patterns_with_classes_within_both_limits_are_taken() -> None:
    for pattern in ("\\p{L}+", "\\p{L}{1,5}", "[\\p{L}\\p{N}_]+", "\\x{100}+", "(?i)café"):
        assert predicate_filter("value", "s", JsonOp.REGEX, pattern)
