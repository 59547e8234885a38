"""Our FerretDB build stops an ordered insert at its first refused document, as MongoDB does
(scripts/ferretdb/patch.py, step 11); upstream inserted on past it, a hundred documents at a time.
An unordered insert still tries every document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from tests.test_pushdown import our_ferretdb


@pytest.fixture
def things(tmp_path: Path) -> Iterator[Collection]:
    with our_ferretdb(tmp_path / "ferretdb") as client:
        collection = client.writes.things
        collection.create_index("code", unique=True, name="code")
        collection.insert_one({"_id": -1, "code": "taken"})
        yield collection


def documents(refused_at: int, count: int = 450) -> list[dict]:
    """`count` documents, the one at `refused_at` holding a code the collection has already."""
    return [{"_id": i, "code": "taken" if i == refused_at else f"c{i}"} for i in range(count)]


@pytest.mark.parametrize("refused_at", [0, 150, 449])
def test_an_ordered_insert_stops_at_its_first_refusal(things: Collection, refused_at: int) -> None:
    with pytest.raises(BulkWriteError) as refused:
        things.insert_many(documents(refused_at))  # ordered, pymongo's default
    assert refused.value.details["nInserted"] == refused_at
    assert [e["index"] for e in refused.value.details["writeErrors"]] == [refused_at]
    assert sorted(d["_id"] for d in things.find({"_id": {"$gte": 0}})) == list(range(refused_at))


def test_an_unordered_insert_tries_every_document(things: Collection) -> None:
    with pytest.raises(BulkWriteError) as refused:
        things.insert_many(documents(150), ordered=False)
    assert refused.value.details["nInserted"] == 449
    assert [e["index"] for e in refused.value.details["writeErrors"]] == [150]
    assert things.count_documents({"_id": {"$gte": 0}}) == 449
