"""Version 6: each datum's uses of its assets are stored beside it, in `datum_assets`.

The datums using an asset (an asset's `datums`, a delete's or the collector's check of what uses it,
a bundle import's lookups) were found by `roles.asset_id`, an array the embedded default cannot
index: each such read walked every datum. Version 6 keeps one document per datum and asset it uses
(services/datums.insert_datums), read through an index on both servers.

Forward writes them for every datum (again from the start if a run died half way: it drops what an
earlier run wrote), in datum order so that the uses' ids keep it, and drops MongoDB's multikey index
on `roles.asset_id`, which nothing reads any more. Backward drops the collection; version 5 makes that
index again when it starts.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

VERSION = 6
SUMMARY = "datums' uses of assets are stored beside them, for an indexed lookup"

# The shapes of this version's time, frozen here.
DATUMS, USES, JOURNAL = "datums", "datum_assets", "write_batches"
OLD_INDEX = "role_asset"
BATCH = 1000


async def forward(db: AsyncDatabase) -> None:
    await db.drop_collection(USES)
    # The datums of a batch its writer left unfinished get none: the next start removes them (by the
    # journal entry's `collection`, which names only `datums` in entries version 5 wrote).
    unfinished = [entry["_id"] async for entry in db[JOURNAL].find({}, {"_id": 1})]
    batch: list[dict] = []
    async for datum in db[DATUMS].find({"batch": {"$nin": unfinished}}, {"roles.asset_id": 1}, sort=[("_id", 1)]):
        assets = dict.fromkeys(role["asset_id"] for role in datum.get("roles", []))
        batch += [{"_id": ObjectId(), "asset_id": asset_id, "datum_id": datum["_id"]} for asset_id in assets]
        if len(batch) >= BATCH:
            await db[USES].insert_many(batch)
            batch = []
    if batch:
        await db[USES].insert_many(batch)
    if OLD_INDEX in await db[DATUMS].index_information():
        await db[DATUMS].drop_index(OLD_INDEX)


async def backward(db: AsyncDatabase) -> None:
    await db.drop_collection(USES)
