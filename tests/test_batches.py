"""Batches are all-or-nothing across a crash: a server killed in the middle of a large createDatums or
addAnnotations leaves nothing of it once a server starts again (services/batches.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from documents.api_token import hash_secret, new_secret
from documents.roles import Role
from services import batches
from services.batches import JOURNAL
from tests.operations import document
from tests.processes import start_server_process
from tests.waiting import wait_for

ITEMS = 20_000




async def admin_token(lake: AsyncDatabase) -> str:
    """An ADMIN token written straight into the lake (this process's documents serve another database)."""
    secret = new_secret()
    await lake.api_tokens.insert_one({"name": "admin", "role": Role.ADMIN.value, "secret_hash": hash_secret(secret),
                                      "hint": secret[:12], "created_at": datetime.now(UTC)})
    return secret


async def post(http: httpx.AsyncClient, token: str, operation: str, variables: dict) -> dict:
    response = await http.post("/graphql", json={"query": document(operation), "operationName": operation,
                                                 "variables": variables}, headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def batch_for(http: httpx.AsyncClient, token: str, lake: AsyncDatabase, kind: str) -> tuple[str, dict, AsyncCollection]:
    """The operation, its variables (ITEMS items) and the collection it writes to."""
    stored = await post(http, token, "StoreText", {"input": {"name": "i.png", "text": "PNG", "mediaType": "image/png"}})
    asset = stored["storeText"]["id"]
    if kind == "createDatums":
        return "CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset}]}] * ITEMS}, lake.datums
    (datum,) = (await post(http, token, "CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset}]}]}))["createDatums"]
    schema = await post(http, token, "CreateAnnotationSchema", {"input": {"name": "s", "kinds": ["CLASSIFICATION"],
                                                                          "labels": [{"name": "dent"}]}})
    labels = await post(http, token, "CreateAnnotationSet", {"input": {
        "name": "l", "purpose": "GROUND_TRUTH", "schemaId": schema["createAnnotationSchema"]["id"],
        "source": {"kind": "HUMAN", "name": "a"}}})
    records = [{"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"}] * ITEMS
    return "AddAnnotations", {"setId": labels["createAnnotationSet"]["id"], "records": records}, lake.annotation_records


@pytest.mark.parametrize("kind", ["createDatums", "addAnnotations"])
async def test_a_server_killed_mid_batch_leaves_none_of_it(kind: str, scratch_db: AsyncDatabase, mongodb_url: str,
                                                           tmp_path: Path) -> None:
    lake = scratch_db  # the servers under test run in their own processes on it
    process, url = await start_server_process(mongodb_url, lake.name, tmp_path, MAX_BATCH_ITEMS=str(ITEMS))
    token = await admin_token(lake)  # once the server has recorded the new database's schema version
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            operation, variables, collection = await batch_for(http, token, lake, kind)
            before = await collection.count_documents({})
            uses = await lake.datum_assets.count_documents({})  # a datum's uses go in its batch, before it

            async def partly_stored() -> int | None:
                stored = await collection.count_documents({}) - before
                return stored if 0 < stored < ITEMS else None

            sent = asyncio.create_task(post(http, token, operation, variables))
            seen = await wait_for(partly_stored, timeout=60, interval=0.01, what="part of the batch to be stored")
            process.kill()  # no chance to clean up
            await process.wait()
            with contextlib.suppress(httpx.HTTPError):
                await sent
        assert 0 < seen < ITEMS and await lake[JOURNAL].count_documents({}) == 1  # half a batch, named in the journal
        if kind == "createDatums":  # every use was written before the first datum
            assert await lake.datum_assets.count_documents({}) == uses + ITEMS

        process, url = await start_server_process(mongodb_url, lake.name, tmp_path)  # the server comes back

        async def none_left() -> bool:
            return (await collection.count_documents({}) == before and await lake[JOURNAL].count_documents({}) == 0
                    and await lake.datum_assets.count_documents({}) == uses)

        await wait_for(none_left, timeout=30, what="the half batch to be removed")
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


class _Reaped:
    """A collection after whose first insert a reaper with a clock far ahead takes the batch's journal
    entry: it claims the entry, then (unless `claim_only`: it is still at that point when the writer
    goes on) removes the batch's documents written so far, then the entry."""

    def __init__(self, inner: AsyncCollection, *, claim_only: bool) -> None:
        self.inner, self.name, self.database = inner, inner.name, inner.database
        self.claim_only, self.reaped = claim_only, False

    async def insert_many(self, documents: list[dict], **options: object) -> object:
        result = await self.inner.insert_many(documents, **options)
        if not self.reaped:
            self.reaped = True
            batch = documents[0]["batch"]
            await self.database[JOURNAL].update_one({"_id": batch}, {"$set": {"reaping": True}})
            if not self.claim_only:
                await self.inner.delete_many({"batch": batch})
                await self.database[JOURNAL].delete_one({"_id": batch})
        return result

    async def delete_many(self, query: dict) -> object:
        return await self.inner.delete_many(query)


@pytest.mark.parametrize(("chunks", "renew_each", "claim_only"),
                         [(1, False, False), (3, False, False), (3, True, False), (1, False, True), (3, True, True)])
async def test_a_batch_whose_entry_is_taken_while_it_is_written_keeps_nothing(
        chunks: int, renew_each: bool, claim_only: bool, scratch_db: AsyncDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken while it is written: a renewal before the next chunk (a long batch renews its lease)
    finds it gone or claimed, or else the final removal of the entry does. Either way the writer
    stops and nothing of the batch stays (claimed only, it was the writer that removed it all)."""
    monkeypatch.setattr(batches, "CHUNK", 10)
    if renew_each:
        monkeypatch.setattr(batches, "RENEW_AFTER", timedelta(0))
    collection = _Reaped(scratch_db.items, claim_only=claim_only)
    with pytest.raises(batches.BatchLost):
        await batches.insert_all(collection, [{"n": n} for n in range(10 * chunks)])  # type: ignore[arg-type]
    assert await scratch_db.items.count_documents({}) == 0 and await scratch_db[JOURNAL].count_documents({}) == 0
    assert collection.reaped
    await batches.insert_all(scratch_db.items, [{"n": n} for n in range(25)])  # an untouched batch is kept whole
    assert await scratch_db.items.count_documents({}) == 25 and await scratch_db[JOURNAL].count_documents({}) == 0


async def test_a_writer_finishing_as_a_reaper_claims_its_entry_keeps_all_or_nothing(
        scratch_db: AsyncDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer removing its lapsed entry as a reaper claims it, 200 times, the reaper a little
    later or earlier each time: the batch is reported stored and kept whole, or reported lost and
    gone. On FerretDB the writer's conditional removal and the reaper's claim both succeeded about
    one time in twenty: the batch was reported stored, then the reaper removed it."""
    monkeypatch.setattr(batches, "LEASE", timedelta(seconds=-1))  # every entry lapsed as it is written
    rng = random.Random(7)
    for round_ in range(200):
        documents = [{"round": round_, "n": n} for n in range(5)]

        async def reaper(delay: float = rng.random() * 0.004) -> int:
            await asyncio.sleep(delay)
            return await batches.remove_abandoned(scratch_db)

        written, _ = await asyncio.gather(batches.insert_all(scratch_db.items, documents), reaper(),
                                          return_exceptions=True)
        assert written is None or isinstance(written, batches.BatchLost), written
        kept = await scratch_db.items.count_documents({"round": round_})
        assert kept == (5 if written is None else 0), (round_, written, kept)
    assert await scratch_db[JOURNAL].count_documents({}) == 0


class _DeletesSeen:
    """A collection that notes the filter of each delete_many sent to it."""

    def __init__(self, inner: AsyncCollection) -> None:
        self.inner, self.name, self.database = inner, inner.name, inner.database
        self.deletes: list[dict] = []

    async def insert_many(self, documents: list[dict], **options: object) -> object:
        return await self.inner.insert_many(documents, **options)

    async def delete_many(self, query: dict) -> object:
        self.deletes.append(query)
        return await self.inner.delete_many(query)


async def test_a_batch_its_writer_rolls_back_is_deleted_by_its_ids(scratch_db: AsyncDatabase,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch refused part way (a unique key taken) is taken back by the ids its writer sent, which
    the `_id` index finds: by `batch` alone, which no index holds, each rollback read the whole
    collection (on the embedded default, every record of the lake for a keyed import's race)."""
    monkeypatch.setattr(batches, "CHUNK", 4)  # several chunks landed before the refused one
    await scratch_db.items.create_index("key", unique=True)
    await scratch_db.items.insert_many([{"key": f"old{n}"} for n in range(30)] + [{"key": "taken"}])
    items = _DeletesSeen(scratch_db.items)
    documents = [{"key": f"new{n}"} for n in range(10)] + [{"key": "taken"}] + [{"key": f"late{n}"} for n in range(5)]
    with pytest.raises(BulkWriteError) as refused:
        await batches.insert_all(items, documents)  # type: ignore[arg-type]
    assert refused.value.position == 10  # type: ignore[attr-defined]
    assert await scratch_db.items.count_documents({}) == 31  # the batch is gone, what was there stays
    assert await scratch_db.items.count_documents({"key": "taken", "batch": {"$exists": False}}) == 1
    assert items.deletes, "the rollback deleted nothing"
    sent = {document["_id"] for document in documents if "_id" in document}  # the driver names what it sends
    for query in items.deletes:
        assert set(query["_id"]["$in"]) <= sent, query
    if "ferretdbVersion" in await scratch_db.client.admin.command("buildInfo"):
        for query in items.deletes:
            plan = await scratch_db.command("explain", {"find": "items", "filter": query})
            steps = plan["queryPlanner"]["Plan"]
            assert any("_id_" in step for step in steps) and not any(" SCAN items" in s and "INDEX" not in s for s in steps), steps
