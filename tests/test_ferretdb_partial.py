"""Our FerretDB build makes partial indexes of `partialFilterExpression: {<field>: {$exists: true}, ...}`
(scripts/ferretdb/patch.py, step 14): documents without the field make no entry in them, which costs
their inserts nothing there. Results stay MongoDB's: every filter and sorted page of tests/test_pushdown.py
is checked again with each index partial on its first field (some documents lack it or hold null
there), against the same binary with pushdown off. SQLite uses a partial index only for a query that
implies its condition, and the pushdown never forces one (INDEXED BY) otherwise.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphlake.local_services import start_ferretdb

# test_every_filter_finds_what_upstream_finds runs again here, on this module's `pair` (its indexes
# partial, some documents without their fields).
from tests.test_pushdown import (  # noqa: F401
    EPOCH,
    FILTERS,
    SORTS,
    documents,
    ferretdb_binary,
    ids,
    our_ferretdb,
    pushed_and_oracle,
    test_every_filter_finds_what_upstream_finds,
)

INDEXES = [  # tests/test_pushdown.py's, each partial on its first field
    ([("rank", ASCENDING), ("_id", ASCENDING)], "rank"),
    ([("when", DESCENDING), ("_id", DESCENDING), ("state", ASCENDING)], "when"),
    ([("owner.user", ASCENDING), ("when", DESCENDING), ("_id", DESCENDING)], "owner"),
    ([("name", ASCENDING), ("_id", ASCENDING)], "name"),
    ([("size", ASCENDING), ("_id", ASCENDING)], "size"),
]


def exists(field: str) -> dict[str, Any]:
    return {field: {"$exists": True}}


def sparse_documents() -> list[dict[str, Any]]:
    """tests/test_pushdown.py's documents, some without an owner's user, a rank or a time (its sizes
    are already missing or null in some)."""
    docs = documents()
    for i, doc in enumerate(docs):
        if i % 4 == 0:
            del doc["owner"]["user"]
        if i % 6 == 1:
            del doc["rank"]
        if i % 10 == 3:
            del doc["when"]
    return docs


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collection, Collection]]:
    """(pushed down with partial indexes, oracle) collections holding the same documents."""
    with pushed_and_oracle(tmp_path_factory, "partial") as (pushed, plain):
        for keys, name in INDEXES:
            pushed.create_index(keys, name=name, partialFilterExpression=exists(keys[0][0]))
        docs = sparse_documents()
        pushed.insert_many(docs)
        plain.insert_many(docs)
        yield pushed, plain


@pytest.mark.parametrize("sort", SORTS, ids=[",".join(f"{k}{d:+d}" for k, d in s) for s in SORTS])
def test_sorted_pages_hold_the_documents_without_the_field(pair: tuple[Collection, Collection], sort: list) -> None:
    """A sort by a field only a partial index holds, with no filter on it: every document, in MongoDB's
    order (missing and null first ascending), never only those the index holds."""
    pushed, plain = pair
    for filter in ({}, {"state": {"$in": ["ACTIVE", "PENDING"]}}, {"owner.user": "u3"}, {"size": {"$gte": 0}},
                   {"rank": {"$gt": -5}}, {"when": {"$lt": EPOCH + timedelta(minutes=30)}}):
        for limit in (1, 7, 0):
            got = ids(pushed.find(filter, sort=sort, limit=limit))
            assert got == ids(plain.find(filter, sort=sort, limit=limit)), (filter, limit)
    assert len(ids(pushed.find({}, sort=sort))) == len(sparse_documents())


def test_partial_indexes_are_listed_with_their_filter(pair: tuple[Collection, Collection]) -> None:
    pushed, _ = pair
    listed = pushed.index_information()
    for keys, name in INDEXES:
        assert listed[name]["partialFilterExpression"] == exists(keys[0][0]), listed[name]
    assert "partialFilterExpression" not in listed["_id_"]


def test_an_equality_or_range_on_the_field_is_planned_on_the_partial_index(pair: tuple[Collection, Collection]) -> None:
    pushed, _ = pair
    db = pushed.database
    for filter, sort, index in (({"owner.user": "u1"}, {"when": -1, "_id": -1}, "owner"),
                                ({"owner.user": {"$in": ["u1", "u2"]}}, {}, "owner"),
                                ({"size": {"$gt": 1}}, {"size": 1, "_id": 1}, "size"),
                                ({"rank": {"$gte": 3, "$lt": 9}}, {"rank": 1, "_id": 1}, "rank")):
        plan = db.command("explain", {"find": "things", "filter": filter, "sort": sort})
        steps = plan["queryPlanner"]["Plan"]
        assert any("USING INDEX" in step and step.split("USING INDEX ")[1].split()[0].endswith("_" + index)
                   for step in steps), (filter, steps)
        assert not any("TEMP B-TREE" in step for step in steps), (filter, steps)
    # a sort with nothing that implies the index's condition is not forced onto it (SQLite sorts)
    plan = db.command("explain", {"find": "things", "filter": {}, "sort": {"size": 1, "_id": 1}})
    assert plan["sortPushdown"] and not any(step.rstrip().endswith("_size") for step in plan["queryPlanner"]["Plan"])


def index_rows(data_dir: Path, tmp_path: Path, database: str, index: str) -> int:
    """The entries SQLite holds in a collection's index (ANALYZE's count, on a copy of the files)."""
    copy = tmp_path / "copy"
    shutil.copytree(data_dir / "sqlite", copy)
    with sqlite3.connect(copy / f"{database}.sqlite") as db:
        db.execute("ANALYZE")
        rows = [stat for idx, stat in db.execute("SELECT idx, stat FROM sqlite_stat1") if idx.endswith(f"_{index}")]
    db.close()
    shutil.rmtree(copy)
    assert len(rows) == 1, rows
    return int(rows[0].split()[0])


def test_documents_without_the_field_make_no_entry(tmp_path: Path) -> None:
    """The SQLite index holds the documents with the field (its WHERE says so), kept so through
    updates that set and unset it, and after a restart; a full index beside it holds every one."""
    binary, data = ferretdb_binary(), tmp_path / "ferretdb"
    service = start_ferretdb(binary, data)
    try:
        with MongoClient(f"mongodb://127.0.0.1:{service.port}/") as client:
            things = client.lake.things
            things.create_index([("owner", ASCENDING), ("_id", ASCENDING)], name="owner", partialFilterExpression=exists("owner"))
            things.create_index([("key", ASCENDING)], name="key", unique=True, partialFilterExpression=exists("key"))
            things.create_index([("n", ASCENDING), ("_id", ASCENDING)], name="full")
            things.insert_many([{"_id": i, "n": i, **({"owner": f"u{i % 3}", "key": f"k{i}"} if i % 10 == 0 else {})}
                               for i in range(100)])
            with sqlite3.connect(data / "sqlite" / "lake.sqlite") as db:
                sql = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
            db.close()
            owner_sql = next(s for n, s in sql.items() if n.endswith("_owner"))
            assert """WHERE _ferretdb_sjson->>'$."owner"' IS NOT NULL""" in owner_sql, owner_sql
            key_sql = next(s for n, s in sql.items() if n.endswith("_key"))
            assert key_sql.startswith("CREATE UNIQUE INDEX") and 'WHERE _ferretdb_sjson->"key" IS NOT NULL' in key_sql, key_sql
            assert (index_rows(data, tmp_path, "lake", "owner"), index_rows(data, tmp_path, "lake", "full")) == (10, 100)
            things.update_many({"_id": {"$in": [1, 2, 3]}}, {"$set": {"owner": "u9"}})
            things.update_one({"_id": 10}, {"$unset": {"owner": ""}})
            assert index_rows(data, tmp_path, "lake", "owner") == 12
            assert ids(things.find({"owner": "u9"})) == [1, 2, 3]
            assert ids(things.find({"owner": "u1"})) == [40, 70]  # 10 lost its owner
            assert ids(things.find({"owner": {"$gte": "u0"}}, sort=[("owner", 1), ("_id", 1)])) == [0, 30, 60, 90, 40, 70, 20, 50, 80, 1, 2, 3]
            everyone = ids(things.find({}, sort=[("owner", 1), ("_id", 1)]))
            assert len(everyone) == 100 and everyone[:3] == [4, 5, 6] and everyone[-3:] == [1, 2, 3]
            # unique among the documents holding the key; any number without one
            with pytest.raises(DuplicateKeyError):
                things.insert_one({"_id": 200, "key": "k20"})
            things.insert_many([{"_id": 300 + i} for i in range(5)])
            with pytest.raises(OperationFailure, match="UNIQUE constraint failed"):  # (an update's is not a DuplicateKeyError here, upstream's way)
                things.update_one({"_id": 301}, {"$set": {"key": "k30"}})
            things.update_one({"_id": 30}, {"$unset": {"key": ""}})
            things.update_one({"_id": 301}, {"$set": {"key": "k30"}})
            assert things.find_one({"key": "k30"})["_id"] == 301
    finally:
        service.stop()
    service = start_ferretdb(binary, data, service.port)
    try:
        with MongoClient(f"mongodb://127.0.0.1:{service.port}/") as client:
            assert client.lake.things.index_information()["owner"]["partialFilterExpression"] == exists("owner")
            plan = client.lake.command("explain", {"find": "things", "filter": {"owner": "u9"}, "sort": {"owner": 1, "_id": 1}})
            assert any("USING INDEX" in step and step.split("USING INDEX ")[1].split()[0].endswith("_owner")
                       for step in plan["queryPlanner"]["Plan"]), plan
            with pytest.raises(DuplicateKeyError):
                client.lake.things.insert_one({"_id": 201, "key": "k40"})
    finally:
        service.stop()


def test_other_filters_are_refused(tmp_path: Path) -> None:
    """Only {field: {$exists: true}} is taken: anything else is refused as not implemented (upstream
    refused them all), never made a full index; and an index already made with another filter is
    not taken for the one asked (a caller drops it first, as graphlake/database.ensure_indexes does)."""
    with our_ferretdb(tmp_path) as client:
        things = client.lake.things
        for partial in ({"a": {"$type": "string"}}, {"a": {"$exists": False}}, {"a": {"$exists": 1}}, {"a": 5},
                        {"$or": [exists("a")]}, {}, {"a": {"$exists": True, "$gt": 1}}):
            with pytest.raises(OperationFailure, match="not implemented") as refused:
                things.create_index([("a", ASCENDING)], name="a", partialFilterExpression=partial)
            assert refused.value.code == 238, refused.value.details
        assert "a" not in things.index_information()
        things.create_index([("a", ASCENDING), ("b", ASCENDING)], name="ab", partialFilterExpression={**exists("a"), **exists("b.c")})
        assert things.index_information()["ab"]["partialFilterExpression"] == {**exists("a"), **exists("b.c")}
        things.create_index([("a", ASCENDING), ("b", ASCENDING)], name="ab", partialFilterExpression={**exists("a"), **exists("b.c")})
        with pytest.raises(OperationFailure) as conflict:
            things.create_index([("a", ASCENDING), ("b", ASCENDING)], name="ab")
        assert conflict.value.code == 85, conflict.value.details
        things.insert_many([{"_id": ObjectId(), "a": 1, "b": {"c": 2}}, {"_id": ObjectId(), "a": 1}, {"_id": ObjectId()}])
        assert things.count_documents({"a": 1, "b.c": 2}) == 1
        assert things.count_documents({"a": 1}) == 2
