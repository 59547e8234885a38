"""Values stored at the same moment share inserts (services/group_inserts.py), each caller still
learning its own outcome."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.monitoring import CommandListener, CommandStartedEvent

from services.group_inserts import GroupedInserts, grouped
from tests.conftest import Served
from tests.operations import Api


async def test_values_stored_at_once_go_in_shared_inserts_each_answered_with_its_own(
        api: Api, served: Served, contributor: str) -> None:
    served.commands.clear()
    answers = await asyncio.gather(*(api.data("StoreValue", {"input": {"name": f"v{i}", "value": {"n": i}}}, token=contributor)
                                     for i in range(20)))
    stored = [a["storeValue"] for a in answers]
    assert [s["name"] for s in stored] == [f"v{i}" for i in range(20)]
    assert [s["value"] for s in stored] == [{"n": i} for i in range(20)]
    assert len({s["id"] for s in stored}) == 20
    inserts = [n for collection, n in served.commands.inserts if collection == "assets"]
    assert sum(inserts) == 20
    # The first goes alone (nothing was in flight); the others, arriving while it was, share the next ones.
    assert len(inserts) < 20 and max(inserts) > 1, inserts
    found = await api.data("Assets", {"first": 50}, token=contributor)
    assert sorted(e["node"]["name"] for e in found["assets"]["edges"]) == sorted(f"v{i}" for i in range(20))


async def test_a_refused_document_fails_its_caller_alone(scratch_db: AsyncDatabase) -> None:
    collection = scratch_db["grouped"]
    taken = ObjectId()
    await collection.insert_one({"_id": taken, "n": -1})
    inserts = GroupedInserts(collection)
    first = asyncio.create_task(inserts.insert_one({"_id": ObjectId(), "n": 0}))
    await asyncio.sleep(0)  # the first insert is in flight: the next three wait for it, and go together
    docs = [{"_id": ObjectId(), "n": 1}, {"_id": taken, "n": 2}, {"_id": ObjectId(), "n": 3}]
    outcomes = await asyncio.gather(first, *(inserts.insert_one(d) for d in docs), return_exceptions=True)
    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], DuplicateKeyError)
    assert sorted([d["n"] async for d in collection.find({})]) == [-1, 0, 1, 3]


async def test_a_caller_that_stops_waiting_leaves_its_document_to_the_group(scratch_db: AsyncDatabase) -> None:
    collection = scratch_db["grouped"]
    inserts = GroupedInserts(collection)
    first = asyncio.create_task(inserts.insert_one({"_id": ObjectId(), "n": 0}))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(inserts.insert_one({"_id": ObjectId(), "n": 1}))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await first
    group = inserts._group
    assert group is not None
    await group
    assert sorted([d["n"] async for d in collection.find({})]) == [0, 1]
    # Nothing in flight once all are stored: the next insert goes at once, alone.
    await inserts.insert_one({"_id": ObjectId(), "n": 2})
    assert not inserts._in_flight


async def test_each_collection_of_a_client_has_one_group(scratch_db: AsyncDatabase, mongodb_url: str) -> None:
    assert grouped(scratch_db["a"]) is grouped(scratch_db["a"])
    assert grouped(scratch_db["a"]) is not grouped(scratch_db["b"])
    # Another client of the same server (equal to the first, as PyMongo compares clients) has its own.
    other: AsyncMongoClient = AsyncMongoClient(mongodb_url)
    try:
        assert other == scratch_db.client
        assert grouped(other[scratch_db.name]["a"]) is not grouped(scratch_db["a"])
        assert grouped(other[scratch_db.name]["a"]).collection.database.client is other
    finally:
        await other.close()


async def test_a_client_made_after_another_is_closed_inserts_through_itself(mongodb_url: str) -> None:
    """Two clients of one server compare equal (PyMongo compares their addresses), so the groups,
    kept by client, gave a client made after another was closed (an app started again in the same
    process: its lifespan makes a new client) the group of the closed one: its values went through
    the closed client, bound to its own listeners, time limit and event loop."""
    name = f"graphlake_scratch_{uuid.uuid4().hex[:8]}"
    first: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True)
    await grouped(first[name]["grouped"]).insert_one({"n": 1})
    await first.close()
    counter = _Inserts()
    second: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        await grouped(second[name]["grouped"]).insert_one({"n": 2})
        assert counter.inserts == 1  # through the client asked for
        assert sorted([d["n"] async for d in second[name]["grouped"].find({})]) == [1, 2]
    finally:
        await second.drop_database(name)
        await second.close()


class _Inserts(CommandListener):
    """Counts the inserts a client sends."""

    def __init__(self) -> None:
        self.inserts = 0

    def started(self, event: CommandStartedEvent) -> None:
        self.inserts += event.command_name == "insert"

    def succeeded(self, event: object) -> None:
        pass

    def failed(self, event: object) -> None:
        pass
