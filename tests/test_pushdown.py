"""Our FerretDB build pushes filters and sorts down to SQLite (scripts/ferretdb); results stay MongoDB's.

The oracle is the same binary started with `--test-disable-pushdown`: upstream FerretDB evaluating every
filter and sort in Go. Both servers get the same documents (every BSON type the API stores, arrays,
nested documents and arrays of them, nulls and missing fields); the pushed-down one also gets value
indexes. Every filter must find the same documents on both, and every sorted, limited find the same
documents in the same order (sorted fields hold one type each besides null, as the build requires).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphlake.local_services import ServiceError, find_binary, start_ferretdb

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def ferretdb_binary() -> Path:
    """Our FerretDB build; a suite run against MongoDB alone (no Go) skips these tests."""
    try:
        return find_binary("ferretdb")
    except ServiceError as error:
        pytest.skip(str(error))


@contextlib.contextmanager
def our_ferretdb(path: Path) -> Iterator[MongoClient]:
    """A client of our FerretDB build with its files under `path`, stopped afterwards."""
    service = start_ferretdb(ferretdb_binary(), path)
    client: MongoClient = MongoClient(f"mongodb://127.0.0.1:{service.port}/")
    try:
        yield client
    finally:
        client.close()
        service.stop()


IDS = [ObjectId() for _ in range(8)]


@contextlib.contextmanager
def pushed_and_oracle(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[tuple[Collection, Collection]]:
    """A collection of our build and the same on our build with its pushdown off (the oracle: upstream's
    evaluation of every filter and sort), each FerretDB stopped afterwards."""
    binary = ferretdb_binary()
    ours = start_ferretdb(binary, tmp_path_factory.mktemp(database))
    oracle = start_ferretdb(binary, tmp_path_factory.mktemp("oracle"), extra_args=["--test-disable-pushdown"])
    clients = [MongoClient(f"mongodb://127.0.0.1:{s.port}/", tz_aware=True) for s in (ours, oracle)]
    try:
        pushed, plain = (c[database].things for c in clients)
        yield pushed, plain
    finally:
        for client in clients:
            client.close()
        ours.stop()
        oracle.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collection, Collection]]:
    """(pushed down, oracle) collections holding the same documents."""
    with pushed_and_oracle(tmp_path_factory, "pushdown") as (pushed, plain):
        pushed.create_index([("rank", ASCENDING), ("_id", ASCENDING)], name="rank")
        pushed.create_index([("when", DESCENDING), ("_id", DESCENDING), ("state", ASCENDING)], name="when")
        pushed.create_index([("owner.user", ASCENDING), ("when", DESCENDING), ("_id", DESCENDING)], name="owner")
        pushed.create_index([("name", ASCENDING), ("_id", ASCENDING)], name="name")
        pushed.create_index([("size", ASCENDING), ("_id", ASCENDING)], name="size")
        docs = documents()
        pushed.insert_many(docs)
        plain.insert_many(docs)
        yield pushed, plain


def documents() -> list[dict[str, Any]]:
    rng = random.Random(7)
    names = ["alpha", "Beta", "gamma", "", "a<b&c", 'quote"d', "back\\slash", "ünïcode", "日本", "emoji 🎉", "alpha "]
    mixed = [1, 2.5, -3, 0, -0.0, 2**40, 0.1, "7", "x", True, False, None, [1, 2], ["x", 7], {"k": 7}, IDS[0],
             EPOCH, 7, 7.0, 1e300, -1e-300]
    docs = []
    for i in range(240):
        doc: dict[str, Any] = {
            "_id": IDS[i % 8] if i < 8 else ObjectId(),
            "rank": i % 37 - 18,                                    # one type, negatives
            "when": EPOCH + timedelta(minutes=(i * 7) % 97),        # dates with ties
            "state": ["ACTIVE", "PENDING", "DELETED"][i % 3],
            "name": names[i % len(names)],
            "size": [1, 2.5, -3, 0, 2**40, 1e-9, 10][i % 7] if i % 11 else None,  # numbers of several BSON types
            "owner": {"user": f"u{i % 5}", "team": i % 4},
            "labels": [f"l{i % 10}", "all"] if i % 9 else f"l{i % 10}",  # an array, or a scalar
            "mixed": rng.choice(mixed),
            "parts": [{"k": "a", "v": i % 4 if i % 5 else float(i % 4)}, {"k": "b", "v": f"s{i % 3}"}] if i % 4
            else {"k": "a", "v": i % 4},
            "leaves": {"a%2Eb": [i % 6, "z"], "n": [i % 3]},
            "flag": bool(i % 2),
        }
        if i % 13 == 0:
            del doc["mixed"]
        if i % 17 == 0:
            del doc["size"]
        docs.append(doc)
    return docs


FILTERS: list[dict[str, Any]] = [
    {},
    {"state": "ACTIVE"},
    {"state": {"$in": ["ACTIVE", "PENDING"]}},
    {"$and": [{"state": {"$in": ["ACTIVE", "PENDING"]}}, {"labels": {"$all": ["l3"]}}]},
    {"labels": "l3"}, {"labels": {"$in": ["l3", "l4"]}}, {"labels": {"$all": ["l3", "all"]}},
    {"owner.user": "u2"}, {"owner.team": 3}, {"owner.team": {"$gte": 2}}, {"owner.user": {"$in": ["u1", None]}},
    {"rank": {"$gt": -3, "$lte": 10}}, {"rank": -18}, {"rank": {"$in": [-18, 0, 18]}},
    {"when": {"$lt": EPOCH + timedelta(minutes=30)}}, {"when": EPOCH + timedelta(minutes=14)},
    {"size": 2.5}, {"size": {"$gt": 1}}, {"size": {"$lt": 0}}, {"size": None}, {"size": {"$in": [0, None]}},
    {"size": 2**40}, {"size": {"$gte": 1e-9, "$lt": 2}}, {"size": 0.0}, {"size": -0.0},
    {"name": "a<b&c"}, {"name": 'quote"d'}, {"name": "back\\slash"}, {"name": {"$gt": "alpha"}}, {"name": {"$lt": "B"}},
    {"name": "ünïcode"}, {"name": {"$in": ["日本", "emoji 🎉"]}},
    {"mixed": 7}, {"mixed": 7.0}, {"mixed": "7"}, {"mixed": "x"}, {"mixed": True}, {"mixed": 1}, {"mixed": 0},
    {"mixed": None}, {"mixed": {"$in": [7, "x"]}}, {"mixed": {"$gt": 1}}, {"mixed": {"$lt": "y"}},
    {"mixed": IDS[0]}, {"mixed": EPOCH}, {"mixed": {"$gte": EPOCH}}, {"mixed": [1, 2]}, {"mixed": {"k": 7}},
    {"mixed": -0.0}, {"mixed": 1e300}, {"mixed": {"$elemMatch": {"$gt": 1}}}, {"mixed": {"$all": [7]}},
    {"parts.k": "a"}, {"parts.v": 2}, {"parts.v": {"$gt": 1}}, {"parts.v": "s1"},
    {"parts": {"$all": [{"k": "a", "v": 3}]}}, {"parts": {"k": "a", "v": 2}}, {"parts": {"$eq": {"k": "b", "v": "s1"}}},
    {"parts": {"k": "a", "v": 0}}, {"parts": {"$all": [{"k": "a", "v": 2.0}, {"k": "b", "v": "s2"}]}}, {"parts": {"v": 2, "k": "a"}},  # (FerretDB v1 refuses field conditions in $elemMatch)
    {"leaves.a%2Eb": {"$elemMatch": {"$in": [3]}}}, {"leaves.a%2Eb": {"$elemMatch": {"$gte": 2, "$lt": 4}}},
    {"leaves.n": {"$elemMatch": {"$eq": 0}}}, {"leaves.a%2Eb": "z"},
    {"flag": True}, {"flag": {"$ne": True}},
    {"_id": IDS[3]}, {"_id": {"$in": IDS[:3]}}, {"_id": {"$lt": IDS[4]}},
    # ids beside other conditions: read by id, the rest applied to what the index finds
    {"_id": {"$in": IDS[:6]}, "state": "DELETED"}, {"_id": IDS[3], "rank": {"$gt": 2}}, {"_id": IDS[3], "rank": -1},
    {"_id": {"$in": IDS}, "$or": [{"state": "DELETED"}, {"rank": {"$gt": 15}}]}, {"_id": {"$in": IDS[:4]}, "labels": "all"},
    {"state": {"$ne": "DELETED"}, "_id": {"$in": IDS[2:7]}, "when": {"$gte": EPOCH}},
    {"_id": {"$in": []}}, {"_id": {"$in": []}, "state": "DELETED"},
    {"$or": [{"state": "DELETED"}, {"rank": {"$gt": 15}}]},
    {"$or": [{"state": "DELETED"}, {"mixed": {"$exists": True}}]},
    {"$nor": [{"state": "DELETED"}]}, {"state": {"$nin": ["DELETED"]}}, {"name": {"$regex": "^a"}},
    {"$and": [{"owner.user": "u1"}, {"$or": [{"when": {"$lt": EPOCH + timedelta(minutes=50)}},
                                           {"$and": [{"when": EPOCH + timedelta(minutes=50)}, {"_id": {"$lt": IDS[5]}}]}]}]},
    {"missing": None}, {"missing.deep": 1}, {"owner.missing": {"$in": [1, 2]}},
    # $elemMatch's operators are tested over the whole array by FerretDB: one element need not meet all
    {"leaves.n": {"$elemMatch": {"$gte": 1, "$lt": 1}}}, {"leaves.a%2Eb": {"$elemMatch": {"$in": [1], "$gt": 4}}},
    # long lists and chains (SQLite refuses an expression nested 1,000 deep)
    {"rank": {"$in": list(range(-600, 600))}}, {"mixed": {"$in": [*range(600), "x"]}},
    {"name": {"$in": [f"n{i}" for i in range(1200)] + ["alpha"]}}, {"labels": {"$in": [f"l{i}" for i in range(1200)]}},
    {"$or": [{"rank": i} for i in range(-500, 600)]}, {"$and": [{"rank": {"$ne": i}} for i in range(1100)]},
    {"labels": {"$all": ["all"] * 1100}}, {"leaves.a%2Eb": {"$elemMatch": {"$in": list(range(700))}}},
]

SORTS: list[list[tuple[str, int]]] = [
    [("when", DESCENDING), ("_id", DESCENDING)], [("when", ASCENDING), ("_id", ASCENDING)],
    [("rank", ASCENDING), ("_id", ASCENDING)], [("rank", DESCENDING), ("_id", DESCENDING)],
    [("name", ASCENDING), ("_id", ASCENDING)], [("size", ASCENDING), ("_id", ASCENDING)],
    [("size", DESCENDING), ("_id", DESCENDING)], [("owner.user", ASCENDING), ("when", DESCENDING), ("_id", DESCENDING)],
    [("_id", ASCENDING)], [("state", ASCENDING), ("_id", ASCENDING)],
]


def ids(cursor: Any) -> list[Any]:
    return [doc["_id"] for doc in cursor]


@pytest.mark.parametrize("filter", FILTERS, ids=[str(f)[:60] for f in FILTERS])
def test_every_filter_finds_what_upstream_finds(pair: tuple[Collection, Collection], filter: dict) -> None:
    pushed, plain = pair
    assert sorted(ids(pushed.find(filter, {"_id": 1}))) == sorted(ids(plain.find(filter, {"_id": 1})))
    # and counts agree too (the aggregation path pushes its $match down)
    assert pushed.count_documents(filter) == plain.count_documents(filter)


@pytest.mark.parametrize("sort", SORTS, ids=[",".join(f"{k}{d:+d}" for k, d in s) for s in SORTS])
def test_sorted_pages_come_in_upstream_order(pair: tuple[Collection, Collection], sort: list) -> None:
    pushed, plain = pair
    for filter in ({}, {"state": {"$in": ["ACTIVE", "PENDING"]}}, {"owner.user": "u3"}, {"labels": "l4"},
                   {"size": {"$gte": 0}}):
        for limit in (1, 7, 0):
            got = ids(pushed.find(filter, sort=sort, limit=limit))
            assert got == ids(plain.find(filter, sort=sort, limit=limit)), (filter, limit)


def test_pushed_down_sorts_and_filters_are_planned_on_the_index(pair: tuple[Collection, Collection]) -> None:
    pushed, _ = pair
    db = pushed.database
    plan = db.command("explain", {"find": "things", "filter": {"owner.user": "u1"}, "sort": {"when": -1, "_id": -1}})
    assert plan["sortPushdown"] and plan["filterPushdown"]
    assert any("USING INDEX" in step and "_owner" in step for step in plan["queryPlanner"]["Plan"]), plan
    plan = db.command("explain", {"find": "things", "filter": {"labels": "l1"}, "sort": {"mixed": 1}})
    assert not plan["sortPushdown"]  # no value index covers `mixed`: the handler sorts, as upstream


def test_an_index_over_arrays_already_stored_keeps_upstreams_meaning(pair: tuple[Collection, Collection]) -> None:
    """An index made over a field some document already holds an array at is not a value index:
    queries still find that document. A unique index keeps MongoDB's rules (null equals null, true
    is not 1), which SQL values would not."""
    pushed, plain = pair
    for collection in (pushed.database.arrays, plain.database.arrays):
        collection.insert_many([{"_id": 1, "a": [5, 6], "n": {"b": [1, 2]}}, {"_id": 2, "a": 5}, {"_id": 3, "n": {"b": 1}}])
        collection.create_index([("a", ASCENDING)], name="a")
        collection.create_index([("n.b", ASCENDING)], name="nb")
        collection.insert_one({"_id": 4, "a": [7]})  # and arrays keep coming in
    for filter in ({"a": 5}, {"a": {"$gt": 5}}, {"n.b": 2}, {"a": {"$in": [7, 6]}}):
        assert sorted(ids(pushed.database.arrays.find(filter))) == sorted(ids(plain.database.arrays.find(filter)))
    assert ids(pushed.database.arrays.find({}, sort=[("a", 1), ("_id", 1)])) == \
        ids(plain.database.arrays.find({}, sort=[("a", 1), ("_id", 1)]))
    for collection in (pushed.database.unique, plain.database.unique):
        collection.create_index([("a", ASCENDING)], name="a", unique=True)
        collection.insert_many([{"_id": 1, "a": True}, {"_id": 2, "a": 1}, {"_id": 3, "a": None}])
        with pytest.raises(DuplicateKeyError):  # a second null: not any refusal (an unsupported index would do)
            collection.insert_one({"_id": 4, "a": None})


def test_lookups_by_id_are_not_turned_into_index_walks(pair: tuple[Collection, Collection]) -> None:
    """Ids pinned at the top of a filter are read through the `_id_` index, whatever else the filter
    says (SQLite, handed the other conditions too, planned `{_id: {$in: ids}, state: ...}` as a scan)."""
    pushed, _ = pair
    for filter in ({"_id": {"$in": IDS[:3]}}, {"_id": IDS[2]}, {"_id": {"$in": IDS[:3]}, "state": "DELETED"},
                   {"rank": {"$gt": 1}, "_id": IDS[2]}, {"_id": {"$in": IDS[:3]}, "owner.user": "u1", "when": {"$lt": EPOCH}},
                   {"_id": {"$in": []}}, {"_id": {"$in": []}, "state": "DELETED"}):  # (no ids: nothing read)
        plan = pushed.database.command("explain", {"find": "things", "filter": filter, "sort": {"rank": 1, "_id": 1}})
        assert any("USING INDEX things" in step and "_id_" in step for step in plan["queryPlanner"]["Plan"]), plan
        assert not any(step.rstrip().endswith("_rank") for step in plan["queryPlanner"]["Plan"]), plan
    plan = pushed.database.command("explain", {"aggregate": "things", "pipeline": [{"$sort": {"rank": 1}}], "cursor": {}})
    assert not plan["sortPushdown"]  # an aggregation sorts in memory


def test_writes_by_id_beside_other_conditions_change_what_upstream_changes(pair: tuple[Collection, Collection]) -> None:
    """An update or a delete by ids and a condition finds its documents by id; FerretDB then applies
    the whole filter to each, so only those that meet the rest change."""
    outcomes = []
    for collection in (pair[0].database.writes, pair[1].database.writes):
        collection.drop()
        collection.create_index([("state", ASCENDING), ("_id", ASCENDING)], name="state")
        collection.insert_many([{"_id": IDS[i], "state": "DELETED" if i % 3 == 0 else "ACTIVE", "n": i} for i in range(8)])
        updated = collection.update_many({"_id": {"$in": IDS[:6]}, "state": "ACTIVE"}, {"$set": {"n": -1}}).modified_count
        deleted = collection.delete_many({"_id": {"$in": IDS[2:]}, "state": "DELETED"}).deleted_count
        outcomes.append((updated, deleted, sorted(collection.find({}), key=lambda d: d["_id"])))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:2] == (4, 2)  # ACTIVE among the first six: 1, 2, 4, 5; DELETED from the third on: 3, 6


def test_a_value_field_refuses_an_array(pair: tuple[Collection, Collection]) -> None:
    pushed, _ = pair
    for doc in ({"rank": [1, 2]}, {"owner": [{"user": "u1"}]}, {"owner": {"user": ["u1"]}}):
        with pytest.raises(OperationFailure, match="covered by an index and must not hold an array"):
            pushed.insert_one({"_id": ObjectId(), **doc})
    target = pushed.find_one({"rank": 0})
    with pytest.raises(OperationFailure, match="must not hold an array"):
        pushed.update_one({"_id": target["_id"]}, {"$set": {"when": [EPOCH]}})
    assert pushed.find_one({"_id": target["_id"]}) == target  # nothing was written


def test_a_collection_on_disk_is_served_the_same_after_a_restart(tmp_path: Path) -> None:
    """Whether an index holds values is kept in the collection's settings, so a restarted server
    plans the same way (and an index made by an older build, whose settings lack it, is never used
    for a value comparison)."""
    binary = ferretdb_binary()
    service = start_ferretdb(binary, tmp_path)
    try:
        with MongoClient(f"mongodb://127.0.0.1:{service.port}/") as client:
            client.lake.t.create_index([("a", ASCENDING), ("_id", ASCENDING)], name="a")
            client.lake.t.insert_many([{"a": i} for i in range(5)])
    finally:
        service.stop()
    service = start_ferretdb(binary, tmp_path, service.port)
    try:
        with MongoClient(f"mongodb://127.0.0.1:{service.port}/") as client:
            plan = client.lake.command("explain", {"find": "t", "filter": {"a": {"$gte": 3}}, "sort": {"a": 1, "_id": 1}})
            assert plan["sortPushdown"] and any("USING INDEX" in s for s in plan["queryPlanner"]["Plan"]), plan
            assert [d["a"] for d in client.lake.t.find({"a": {"$gte": 3}}, sort=[("a", -1)])] == [4, 3]
    finally:
        service.stop()
