"""Version 3: a dataset version holds copies of what it shows, so it never changes once READY.

Version 2 kept only each member's datum id and split, and read datums and annotation records live,
so a later updateDatum, a new record in one of its sets or a verification changed what an old
version showed. Version 3 copies, at build, each datum's roles, metadata and creation time into its
member record, and each record of the version's sets on its datums into `version_records`.

Forward fills those copies for the versions built before, from the datums and records as they are
at migration time (the best record left of what they were). Backward drops them.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

VERSION = 3
SUMMARY = "dataset versions hold copies of their datums and annotation records"

# The shapes of this version's time, frozen here.
VERSIONS, MEMBERS, DATUMS, RECORDS, COPIES = "dataset_versions", "version_members", "datums", "annotation_records", "version_records"
BATCH = 1000


async def forward(db: AsyncDatabase) -> None:
    async for version in db[VERSIONS].find({"status": "READY"}, {"annotation_set_ids": 1}):
        await _fill_members(db, version["_id"])
        await _copy_records(db, version["_id"], version.get("annotation_set_ids", []))


async def _fill_members(db: AsyncDatabase, version_id: ObjectId) -> None:
    """Copy each member's datum into it, for members without a copy (a rerun goes on where it stopped)."""
    pending = db[MEMBERS].find({"version_id": version_id, "roles": {"$exists": False}}, {"datum_id": 1})
    batch: list[dict] = []
    async for member in pending:
        batch.append(member)
        if len(batch) >= BATCH:
            await _fill(db, batch)
            batch = []
    if batch:
        await _fill(db, batch)


async def _fill(db: AsyncDatabase, members: list[dict]) -> None:
    datums = {d["_id"]: d async for d in db[DATUMS].find({"_id": {"$in": [m["datum_id"] for m in members]}})}
    updates = [UpdateOne({"_id": m["_id"]}, {"$set": {
        "roles": datums[m["datum_id"]].get("roles", []), "metadata": datums[m["datum_id"]]["metadata"],
        "datum_created_at": datums[m["datum_id"]]["created_at"]}}) for m in members if m["datum_id"] in datums]
    if updates:
        await db[MEMBERS].bulk_write(updates)


async def _copy_records(db: AsyncDatabase, version_id: ObjectId, set_ids: list[ObjectId]) -> None:
    """Copy the version's records, all over again (so a copy that died half-way is never doubled)."""
    await db[COPIES].delete_many({"version_id": version_id})
    if not set_ids:
        return
    datum_ids = [m["datum_id"] async for m in db[MEMBERS].find({"version_id": version_id}, {"datum_id": 1})]
    for start in range(0, len(datum_ids), BATCH):
        found = db[RECORDS].find({"set_id": {"$in": set_ids}, "datum_id": {"$in": datum_ids[start:start + BATCH]}})
        copies = [{**r, "_id": ObjectId(), "record_id": r["_id"], "version_id": version_id}
                  async for r in found.sort([("_id", 1)])]
        if copies:
            await db[COPIES].insert_many(copies)


async def backward(db: AsyncDatabase) -> None:
    await db[MEMBERS].update_many({}, {"$unset": {"roles": "", "metadata": "", "datum_created_at": ""}})
    if COPIES in await db.list_collection_names():
        await db.drop_collection(COPIES)
