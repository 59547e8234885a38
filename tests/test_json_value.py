"""Client JSON storage and path predicates, against the real FerretDB (or MongoDB) of the test session."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from documents.indexes import servers_of
from documents.json_value import (
    MAX_DEPTH,
    MAX_INDEXED_LEAVES,
    InvalidJson,
    InvalidPredicate,
    JsonAttr,
    JsonOp,
    StoredJson,
    dumps_json,
    json_indexes,
    loads_json,
    path_of,
    predicate_filter,
    split_path,
)
from graphlake.database import index_servers


@pytest.fixture
async def collection(mongodb_url: str) -> AsyncIterator[AsyncCollection]:
    client = AsyncMongoClient(mongodb_url, tz_aware=True)
    database = client[f"json_value_{uuid.uuid4().hex[:8]}"]
    try:
        yield database["things"]
    finally:
        await client.drop_database(database.name)
        await client.close()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


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


async def test_hostile_values_round_trip_through_the_database(collection: AsyncCollection) -> None:
    await collection.insert_many(
        [{"_id": i, "v": StoredJson.encode(value).model_dump()} for i, value in enumerate(HOSTILE)])
    async for doc in collection.find({}):
        value = HOSTILE[doc["_id"]]
        stored = StoredJson.model_validate(doc["v"])
        assert stored.decode() == value
        # == says True == 1 and -0.0 == 0.0; the text tells them apart
        assert dumps_json(stored.decode()) == dumps_json(value) == stored.json
    assert await collection.count_documents({}) == len(HOSTILE)


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
}  # document 6 has no meta field at all

ALL = [1, 2, 3, 4, 5, 6]
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
]


async def create_json_indexes(collection: AsyncCollection, field: str) -> list[str]:
    """The JSON indexes this server gets (all on MongoDB; none on the embedded default, where an index
    makes its fields single-valued: documents/indexes.py), one per call: see json_indexes."""
    servers = await index_servers(collection.database)
    created = []
    for index in json_indexes(field):
        if servers is not None and servers_of(index) & servers:
            await collection.create_indexes([index])
            created.append(index.document["name"])
    return created


async def test_every_op_returns_exactly_the_expected_documents(collection: AsyncCollection) -> None:
    await create_json_indexes(collection, "meta")
    await collection.insert_many([{"_id": i, "meta": StoredJson.encode(doc).model_dump()} for i, doc in DOCS.items()])
    await collection.insert_one({"_id": 6, "other": 1})
    wrong = []
    for path, op, value, expected in CASES:
        query = predicate_filter("meta", path, op, value)
        found = sorted([doc["_id"] async for doc in collection.find(query, {"_id": 1})])
        if found != expected:
            wrong.append((path, op.value, value, f"expected {expected}, got {found}"))
    assert wrong == []
    # predicates combine with $and
    both = {"$and": [predicate_filter("meta", "temperature", JsonOp.GT, 5),
                     predicate_filter("meta", "tags", JsonOp.EXISTS, True)]}
    assert sorted([doc["_id"] async for doc in collection.find(both)]) == [1, 2]


async def test_indexes_are_created_and_recreated_without_error(collection: AsyncCollection) -> None:
    await collection.insert_one({"_id": 1, "meta": StoredJson.encode({"a": [1, {"b": 2}]}).model_dump()})
    created = await create_json_indexes(collection, "meta")
    await create_json_indexes(collection, "meta")  # again, as every server start does
    created += await create_json_indexes(collection, "value")
    indexes = {index["name"]: dict(index["key"]) async for index in await collection.list_indexes()}
    for field in ("meta", "value"):
        for model in json_indexes(field):
            spec = model.document
            assert (spec["name"] in indexes) == (spec["name"] in created)
            if spec["name"] in created:
                assert indexes[spec["name"]] == dict(spec["key"])
    assert len(indexes) == 1 + len(created)  # _id and the JSON indexes of this server


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
    ("a", JsonOp.REGEX, "(", "does not compile"),
    ("a", JsonOp.REGEX, "a" * 501, "limit is 500"),
    ("a", JsonOp.REGEX, "a\x00", "NUL"),
])
def test_invalid_predicates(path: str, op: JsonOp, value: Any, message: str) -> None:
    with pytest.raises(InvalidPredicate, match=message):
        predicate_filter("meta", path, op, value)


async def test_more_leaves_than_indexed_are_truncated(collection: AsyncCollection) -> None:
    value = {"first": "here", "many": list(range(MAX_INDEXED_LEAVES)), "last": "lost", "after": {}}
    stored = StoredJson.encode(value)
    assert stored.truncated
    assert len(stored.attrs) == MAX_INDEXED_LEAVES
    assert [(a.k, a.v) for a in stored.attrs[:2]] == [("first", "here"), ("many", 0)]
    assert stored.attrs[-1] == JsonAttr(k="many", v=MAX_INDEXED_LEAVES - 2)
    assert stored.paths == ["first", "many", "last", "after"]  # every path is still listed
    assert not StoredJson.encode(list(range(MAX_INDEXED_LEAVES))).truncated

    await collection.insert_one({"_id": 1, "meta": stored.model_dump()})
    stored_back = StoredJson.model_validate((await collection.find_one({"_id": 1}))["meta"])
    assert stored_back.truncated and stored_back.decode() == value

    async def ids(path: str, op: JsonOp, value: Any) -> list[int]:
        return [doc["_id"] async for doc in collection.find(predicate_filter("meta", path, op, value))]

    assert await ids("first", JsonOp.EQ, "here") == [1]
    assert await ids("many", JsonOp.EQ, MAX_INDEXED_LEAVES - 2) == [1]
    assert await ids("many", JsonOp.EQ, MAX_INDEXED_LEAVES - 1) == []  # beyond the limit: not indexed
    assert await ids("last", JsonOp.EXISTS, True) == [1]
