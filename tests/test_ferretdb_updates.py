"""Our FerretDB build writes the documents update statements change in one transaction per thousand
(scripts/ferretdb/patch.py, step 8), where upstream committed each on its own: those of one
statement, and those of the statements of one command that name their documents by `_id`.
What the statements do must not change: which documents each matches and changes (seeing what the
statements before it changed), the counts reported, a unique index refusing them, and a
findAndModify's single document."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo import ReturnDocument, UpdateMany, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from tests.test_pushdown import our_ferretdb

COUNT = 2500  # over two batches of a thousand, and a part of one


@pytest.fixture
def things(tmp_path: Path) -> Iterator[Collection]:
    with our_ferretdb(tmp_path / "ferretdb") as client:
        collection = client.writes.things
        collection.create_index("code", unique=True, name="code")
        collection.create_index("group", name="group")
        collection.insert_many([{"_id": i, "code": f"c{i}", "group": i % 3, "n": 0} for i in range(COUNT)])
        yield collection


def test_a_statement_changes_every_document_it_matches_across_batches(things: Collection) -> None:
    changed = things.update_many({}, {"$inc": {"n": 1}, "$set": {"seen": True}})
    assert (changed.matched_count, changed.modified_count) == (COUNT, COUNT)
    assert things.count_documents({"n": 1, "seen": True}) == COUNT
    # Matching a part; a document already as the update would leave it is matched, not modified.
    things.update_one({"_id": 0}, {"$set": {"group": 9}})
    moved = things.update_many({"group": {"$in": [0, 9]}}, {"$set": {"group": 9}})
    in_group = len(range(0, COUNT, 3))
    assert (moved.matched_count, moved.modified_count) == (in_group, in_group - 1)
    assert things.count_documents({"group": 9}) == in_group and things.count_documents({"group": 0}) == 0


def test_statements_of_one_command_see_each_others_changes(things: Collection) -> None:
    result = things.bulk_write([
        UpdateMany({"group": 1}, {"$set": {"group": 7}}),
        UpdateMany({"group": 7}, {"$inc": {"n": 5}}),  # matches only what the first statement changed
        UpdateOne({"_id": 1}, {"$set": {"last": True}}),
    ])
    in_group = len(range(1, COUNT, 3))
    assert result.matched_count == 2 * in_group + 1 and result.modified_count == 2 * in_group + 1
    assert things.count_documents({"group": 7, "n": 5}) == in_group
    assert things.find_one({"_id": 1}) == {"_id": 1, "code": "c1", "group": 7, "n": 5, "last": True}


def test_a_unique_index_still_refuses_a_statement(things: Collection) -> None:
    with pytest.raises(OperationFailure, match="UNIQUE constraint failed"):
        things.update_many({"group": 2}, {"$set": {"code": "same"}})
    assert things.count_documents({"code": "same"}) == 0  # its batch is not half-written
    assert things.count_documents({}) == COUNT


def test_find_and_modify_still_changes_one_document(things: Collection) -> None:
    found = things.find_one_and_update({"group": 2}, {"$inc": {"n": 3}}, sort=[("_id", 1)],
                                       return_document=ReturnDocument.AFTER)
    assert found == {"_id": 2, "code": "c2", "group": 2, "n": 3}
    assert things.count_documents({"n": 3}) == 1


def test_statements_naming_documents_by_id_are_written_together_in_order(things: Collection) -> None:
    """Only string and ObjectId `_id`s are held across statements (what Graphlake's documents use)."""
    oids = [ObjectId() for _ in range(COUNT)]
    things.insert_many([{"_id": oid, "code": f"o{i}", "group": 5, "n": 0} for i, oid in enumerate(oids)])
    one_each = things.bulk_write([UpdateOne({"_id": oid}, {"$set": {"n": i}}) for i, oid in enumerate(oids)], ordered=False)
    assert (one_each.matched_count, one_each.modified_count) == (COUNT, COUNT - 1)  # the first had n 0 already
    assert [d["n"] for d in things.find({"group": 5}, sort=[("code", 1)])] == [int(c[1:]) for c in sorted(f"o{i}" for i in range(COUNT))]
    a, b = oids[:2]
    # The same document named again: the statement naming it again sees the change before it.
    things.bulk_write([UpdateOne({"_id": a}, {"$inc": {"n": 1}}), UpdateMany({"_id": {"$in": [b, a]}}, {"$inc": {"n": 10}}),
                       UpdateOne({"_id": a}, {"$inc": {"n": 100}}), UpdateOne({"_id": "nobody"}, {"$inc": {"n": 1}})])
    assert things.find_one({"_id": a})["n"] == 0 + 1 + 10 + 100 and things.find_one({"_id": b})["n"] == 1 + 10
    # A statement by another field reads what the ones by _id before it changed.
    things.bulk_write([UpdateOne({"_id": oids[3]}, {"$set": {"group": 42}}), UpdateMany({"group": 42}, {"$set": {"flag": True}}),
                       UpdateOne({"_id": oids[4]}, {"$set": {"group": 42}})])
    assert [d["_id"] for d in things.find({"flag": True})] == [oids[3]]
    assert things.count_documents({"group": 42}) == 2


def test_a_unique_index_refusing_one_of_them_writes_none_held_with_it(things: Collection) -> None:
    things.insert_many([{"_id": name, "code": name, "n": 0} for name in ("x", "y")])
    with pytest.raises(OperationFailure, match="UNIQUE constraint failed"):
        things.bulk_write([UpdateOne({"_id": "x"}, {"$set": {"code": "dup", "n": 1}}),
                           UpdateOne({"_id": "y"}, {"$set": {"code": "dup", "n": 2}})])
    assert things.count_documents({"code": "dup"}) == 0 and things.count_documents({"n": {"$gt": 0}}) == 0


def test_statements_by_id_with_other_conditions_are_held_together(things: Collection) -> None:
    """`{_id: ..., status: {$ne: "DELETED"}}`, how an upload's completion settles its assets (one
    statement each, their checksums differ): the other condition only narrows what `_id` names, so
    such statements join the others (written apart, a completion of 100 uploads was 100 commits),
    and still leave alone what it excludes."""
    things.insert_many([{"_id": name, "code": name, "n": 0, "status": "ok"} for name in ("x", "y")]
                       + [{"_id": "z", "code": "z", "n": 0, "status": "gone"}])
    with pytest.raises(OperationFailure, match="UNIQUE constraint failed"):
        things.bulk_write([UpdateOne({"_id": "x", "status": {"$ne": "gone"}}, {"$set": {"code": "dup", "n": 1}}),
                           UpdateOne({"_id": "y", "status": {"$ne": "gone"}}, {"$set": {"code": "dup", "n": 2}})])
    assert things.count_documents({"code": "dup"}) == 0  # x's change was held with y's, and went with it
    result = things.bulk_write([UpdateMany({"_id": {"$in": ["x", "z"]}, "status": {"$ne": "gone"}}, {"$set": {"n": 5}}),
                                UpdateOne({"_id": "y", "status": {"$ne": "gone"}}, {"$set": {"n": 6}}),
                                UpdateOne({"_id": "z", "status": {"$ne": "gone"}}, {"$set": {"n": 7}})])
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert {d["_id"]: d["n"] for d in things.find({"_id": {"$in": ["x", "y", "z"]}})} == {"x": 5, "y": 6, "z": 0}


# Read, then write: a command that changes documents it matched must not interleave with another
# doing the same to one document (patch.py, step 13). Upstream read a document, applied the update
# and wrote it back with nothing between the two holding other writers off: two conditional updates
# sent at once both matched, and of two increments one was lost.
THREADS, ROUNDS = 8, 25


def _at_once(work: Callable[[int], int]) -> list[int]:
    """What `work(i)` returned for each of THREADS threads started together (each its own connection
    of the client's pool)."""
    start = threading.Barrier(THREADS)

    def run(i: int) -> int:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def test_increments_sent_at_once_are_all_kept(things: Collection) -> None:
    def bump(_: int) -> int:
        for _ in range(ROUNDS):
            things.update_one({"_id": 0}, {"$inc": {"n": 1}})
        return 0

    _at_once(bump)
    assert things.find_one({"_id": 0})["n"] == THREADS * ROUNDS


@pytest.mark.parametrize("named", [{"_id": 1}, {"code": "c1"}], ids=["by id", "by another field"])
def test_of_conditional_updates_sent_at_once_one_wins(things: Collection, named: dict) -> None:
    """Named by `_id`, the writers of one document take turns; named otherwise, the collection's."""
    for _ in range(ROUNDS):
        things.update_one({"_id": 1}, {"$unset": {"owner": ""}})
        won = _at_once(lambda i: things.update_one({**named, "owner": None}, {"$set": {"owner": i}}).modified_count)
        assert sum(won) == 1
        assert things.find_one({"_id": 1})["owner"] == won.index(1)


def test_of_find_and_modifies_sent_at_once_one_wins(things: Collection) -> None:
    for _ in range(ROUNDS):
        things.update_one({"_id": 2}, {"$set": {"state": "free"}})
        won = _at_once(lambda i: int(things.find_one_and_update(
            {"_id": 2, "state": "free"}, {"$set": {"state": f"taken by {i}"}}) is not None))
        assert sum(won) == 1
        assert things.find_one({"_id": 2})["state"] == f"taken by {won.index(1)}"


def test_a_conditional_delete_and_update_sent_at_once_do_not_both_happen(things: Collection) -> None:
    for _ in range(ROUNDS):
        things.replace_one({"_id": 3}, {"code": "c3", "state": "open"}, upsert=True)

        def either(i: int) -> int:
            if i % 2:
                return things.delete_one({"_id": 3, "state": "open"}).deleted_count
            return things.update_one({"_id": 3, "state": "open"}, {"$set": {"state": "closed"}}).modified_count

        done = _at_once(either)
        assert sum(done) == 1
        kept = things.find_one({"_id": 3})
        assert (kept is None) == (done.index(1) % 2 == 1)
