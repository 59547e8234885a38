"""Values and path predicates that both the pure tests (tests/unit/test_json_value.py) and the database
tests (tests/test_json_value.py) of documents.json_value run: the expected answers are written once, so
the in-memory evaluator and the database filters are held to the same ones."""

from __future__ import annotations

from typing import Any

from documents.json_value import MAX_DEPTH, JsonOp, path_of


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def deep(levels: int, key_length: int) -> Any:
    """Objects nested `levels` deep, each with one key of `key_length` characters."""
    value: Any = 0
    for level in range(levels):
        value = {chr(ord("a") + level % 26) * key_length: value}
    return value


# Shapes whose query views cost far more than their text (documents/json_value/encoding.py,
# PATH_CHARS_PER_CHAR), each about 1 MB of JSON: within GRAPHLAKE_MAX_VALUE_BYTES, and refused.
COSTLY: dict[str, Any] = {
    # 100 M characters of paths (each container's holds every key above it), 103 MB of BSON
    "long keys nested deep": deep(200, 5000),
    # `attrs` repeats the 1 MB path for each of the 1,000 numbers: a 1 GB document
    "a long key over an array": {"k" * 1_000_000: [0] * 1000},
    # Little stored (`paths` lists "K.x" once), but each element made its 100 KB path again: 2.7 s
    "an array of objects under a long key": {"k" * 100_000: [{"x": {}}] * 100_000},
}


HOSTILE: list[Any] = [
    [[1, [2]], []],
    {"a.b": 1, "$set": 2, "": 3, "\\": 4, "a\\.b": 5, ".": {"..": [[[]]]}},
    {"text": "ünïcödé 😀 \u2028 \x00 \x1f \"quoted\" \\ back"},
    {"null": None, "empty": {}, "list": [], "nested_empty": [[], {}]},
    {"big": 2**64, "neg": -(2**70), "huge": 10**400, "edge": [2**63 - 1, -(2**63), 2**63, 2**64 - 1]},
    {"floats": [1e308, -0.0, 5e-324, 0.1, -1.5e-300, 1e16]},
    {"bools": [True, False, 1, 0, 1.0], "mixed": [None, "1", 1, True]},
    nested(MAX_DEPTH),  # beyond orjson's 255 levels: exercises the standard-library fallback
    "just a string", 0, -0.0, True, None, 2**100, [], {},
]


DOCS: dict[int, Any] = {
    1: {"temperature": 21.5, "name": "alpha probe", "ok": True, "tags": ["red", "blue"],
        "nested": {"depth": 3, "a.b": "dotted"}, "count": 1},
    # "zeta" sorts after "temperature": a range on temperature must not be met by zeta's element
    2: {"temperature": 19, "name": "beta", "ok": False, "tags": ["green"], "nested": {"depth": 7},
        "note": None, "count": True, "zeta": 100},
    3: {"temperature": "warm", "name": "Gamma.probe", "tags": [], "matrix": [[1, 2], [3, [4]]], "big": 2**70},
    4: {"temperature": [18, 25], "name": "delta", "ok": None, "nested": {}, "$weird": {"": "empty key"},
        "count": 1.0},
    5: {},
}
WITHOUT_FIELD = 6  # the database tests add a document without the field at all

ALL = [*DOCS, WITHOUT_FIELD]
CASES: list[tuple[str, JsonOp, Any, list[int]]] = [
    ("temperature", JsonOp.EQ, 21.5, [1]),
    ("temperature", JsonOp.EQ, 19.0, [2]),
    ("temperature", JsonOp.EQ, 25, [4]),
    ("temperature", JsonOp.EQ, "warm", [3]),
    ("count", JsonOp.EQ, 1, [1, 4]),
    ("count", JsonOp.EQ, True, [2]),
    ("ok", JsonOp.EQ, False, [2]),
    ("ok", JsonOp.EQ, None, [4]),
    ("note", JsonOp.EQ, None, [2]),
    (path_of(["nested", "a.b"]), JsonOp.EQ, "dotted", [1]),
    (path_of(["$weird", ""]), JsonOp.EQ, "empty key", [4]),
    ("matrix", JsonOp.EQ, 4, [3]),
    ("big", JsonOp.EQ, 2**70, [3]),
    ("temperature", JsonOp.NE, 21.5, [2, 3, 4, 5, 6]),
    ("count", JsonOp.NE, 1, [2, 3, 5, 6]),
    ("ok", JsonOp.NE, None, [1, 2, 3, 5, 6]),
    ("temperature", JsonOp.GT, 20, [1, 4]),
    ("temperature", JsonOp.GTE, 21.5, [1, 4]),
    ("temperature", JsonOp.LT, 19, [4]),
    ("temperature", JsonOp.LTE, 19, [2, 4]),
    ("temperature", JsonOp.GT, 5, [1, 2, 4]),
    ("temperature", JsonOp.GT, "a", [3]),
    ("name", JsonOp.LT, "beta", [1, 3]),  # binary order: "Gamma" < "alpha" < "beta"
    ("name", JsonOp.GTE, "delta", [4]),
    (path_of(["nested", "depth"]), JsonOp.GT, 5, [2]),
    ("big", JsonOp.GT, 2**64, [3]),
    ("name", JsonOp.IN, ["beta", "delta", "zzz"], [2, 4]),
    ("tags", JsonOp.IN, ["blue", "green"], [1, 2]),
    ("ok", JsonOp.IN, [None, False], [2, 4]),
    ("count", JsonOp.IN, [1], [1, 4]),
    ("tags", JsonOp.NIN, ["red", "green"], [3, 4, 5, 6]),
    ("tags", JsonOp.EXISTS, None, [1, 2, 3]),  # an empty array is present
    ("nested", JsonOp.EXISTS, True, [1, 2, 4]),  # so is an empty object
    (path_of(["nested", "depth"]), JsonOp.EXISTS, False, [3, 4, 5, 6]),
    (path_of(["$weird", ""]), JsonOp.EXISTS, True, [4]),
    ("tags", JsonOp.CONTAINS, "red", [1]),
    ("name", JsonOp.CONTAINS, "probe", [1, 3]),
    ("name", JsonOp.CONTAINS, "a.p", [3]),  # the "." is literal
    ("temperature", JsonOp.CONTAINS, 25, [4]),
    ("matrix", JsonOp.CONTAINS, 3, [3]),
    ("name", JsonOp.REGEX, "^[a-d]", [1, 2, 4]),
    ("name", JsonOp.REGEX, "(?i)^g", [3]),
    ("temperature", JsonOp.REGEX, "^w", [3]),
    ("tags", JsonOp.REGEX, "e", [1, 2]),
    ("missing", JsonOp.EQ, 1, []),
    ("missing", JsonOp.NE, 1, ALL),
    # Equality by MongoDB's brackets, which the evaluator keeps in sets: 1 == 1.0, never true; null is a value.
    ("count", JsonOp.IN, [1.0], [1, 4]),
    ("count", JsonOp.IN, [True], [2]),
    ("count", JsonOp.IN, [False, 0, "1"], []),
    ("count", JsonOp.NIN, [1], [2, 3, 5, 6]),
    ("count", JsonOp.NIN, [True, 2], [1, 3, 4, 5, 6]),
    ("ok", JsonOp.EQ, 1, []),
    ("ok", JsonOp.NE, True, [2, 3, 4, 5, 6]),
    ("note", JsonOp.NIN, [None], [1, 3, 4, 5, 6]),
    ("temperature", JsonOp.NIN, [18, "warm"], [1, 2, 5, 6]),
    ("matrix", JsonOp.IN, [4, "x"], [3]),
    ("matrix", JsonOp.NIN, [5], ALL),
    ("missing", JsonOp.IN, [None, 1], []),
    ("missing", JsonOp.NIN, [None, 1], ALL),
    ("missing", JsonOp.CONTAINS, "a", []),
    ("missing", JsonOp.REGEX, ".*", []),
    ("missing", JsonOp.GT, 0, []),
    ("tags", JsonOp.CONTAINS, "", [1, 2]),
    ("count", JsonOp.CONTAINS, True, [2]),
    ("ok", JsonOp.CONTAINS, None, [4]),
    # A big integer compares as the double it is indexed as (`indexed`), in the filter and the evaluator alike.
    ("big", JsonOp.EQ, 2**70 + 1, [3]),
    ("big", JsonOp.IN, [2**70 + 1], [3]),
    ("big", JsonOp.GTE, 2**70 + 1, [3]),
]
