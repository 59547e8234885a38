"""Client JSON storage and path predicates, against the real FerretDB (or MongoDB) of the test session.
What needs no database (text, paths, encoding, validation, the in-memory evaluator): tests/unit/test_json_value.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from documents.indexes import servers_of
from documents.json_value import MAX_INDEXED_LEAVES, JsonOp, StoredJson, dumps_json, json_indexes, predicate_filter
from graphlake.database import index_servers
from tests.json_value_cases import CASES, DOCS, HOSTILE, WITHOUT_FIELD


@pytest.fixture
async def collection(mongodb_url: str) -> AsyncIterator[AsyncCollection]:
    client = AsyncMongoClient(mongodb_url, tz_aware=True)
    database = client[f"json_value_{uuid.uuid4().hex[:8]}"]
    try:
        yield database["things"]
    finally:
        await client.drop_database(database.name)
        await client.close()


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
    await collection.insert_one({"_id": WITHOUT_FIELD, "other": 1})
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


async def test_more_leaves_than_indexed_are_searched_in_the_first_ones(collection: AsyncCollection) -> None:
    # How such a value is truncated: tests/unit/test_json_value.py
    value = {"first": "here", "many": list(range(MAX_INDEXED_LEAVES)), "last": "lost", "after": {}}
    stored = StoredJson.encode(value)
    await collection.insert_one({"_id": 1, "meta": stored.model_dump()})
    stored_back = StoredJson.model_validate((await collection.find_one({"_id": 1}))["meta"])
    assert stored_back.truncated and stored_back.decode() == value

    async def ids(path: str, op: JsonOp, value: Any) -> list[int]:
        return [doc["_id"] async for doc in collection.find(predicate_filter("meta", path, op, value))]

    assert await ids("first", JsonOp.EQ, "here") == [1]
    assert await ids("many", JsonOp.EQ, MAX_INDEXED_LEAVES - 2) == [1]
    assert await ids("many", JsonOp.EQ, MAX_INDEXED_LEAVES - 1) == []  # beyond the limit: not indexed
    assert await ids("last", JsonOp.EXISTS, True) == [1]
