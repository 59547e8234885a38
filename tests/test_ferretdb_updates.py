"""Our FerretDB build writes the documents one update statement changes in one transaction per
thousand (scripts/ferretdb/patch.py, step 8), where upstream committed each on its own. What a
statement does must not change: which documents it matches and changes, the counts it reports, a
unique index refusing it, and a findAndModify's single document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient, ReturnDocument, UpdateMany, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from graphlake.local_services import start_ferretdb
from tests.test_pushdown import ferretdb_binary

COUNT = 2500  # over two batches of a thousand, and a part of one


@pytest.fixture
def things(tmp_path: Path) -> Iterator[Collection]:
    service = start_ferretdb(ferretdb_binary(), tmp_path / "ferretdb")
    client: MongoClient = MongoClient(f"mongodb://127.0.0.1:{service.port}/")
    try:
        collection = client.writes.things
        collection.create_index("code", unique=True, name="code")
        collection.create_index("group", name="group")
        collection.insert_many([{"_id": i, "code": f"c{i}", "group": i % 3, "n": 0} for i in range(COUNT)])
        yield collection
    finally:
        client.close()
        service.stop()


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
