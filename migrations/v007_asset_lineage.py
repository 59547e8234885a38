"""Version 7: which assets derive from which is stored beside them, in `asset_lineage`.

An asset's `derivedAssets` (lineage downstream) was found by `derived_from`, an array the embedded
default cannot index: each such read walked every asset. Version 7 keeps one link per asset and
source it derives from, for assets that are not DELETED (services/lineage.py), read through an index.

Forward writes them for every such asset (again from the start if a run died half way), in asset
order, and drops MongoDB's multikey index on `derived_from`, which nothing reads any more. Backward
drops the collection; version 6 makes that index again when it starts.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

VERSION = 7
SUMMARY = "assets' lineage downstream is stored beside them, for an indexed lookup"

# The shapes of this version's time, frozen here.
ASSETS, LINKS = "assets", "asset_lineage"
OLD_INDEX = "derived_from"
BATCH = 1000


async def forward(db: AsyncDatabase) -> None:
    await db.drop_collection(LINKS)
    batch: list[dict] = []
    async for asset in db[ASSETS].find({"derived_from.0": {"$exists": True}, "status": {"$ne": "DELETED"}},
                                       {"derived_from": 1}, sort=[("_id", 1)]):
        batch += [{"_id": ObjectId(), "source_id": source, "asset_id": asset["_id"]}
                  for source in dict.fromkeys(asset["derived_from"])]
        if len(batch) >= BATCH:
            await db[LINKS].insert_many(batch)
            batch = []
    if batch:
        await db[LINKS].insert_many(batch)
    if OLD_INDEX in await db[ASSETS].index_information():
        await db[ASSETS].drop_index(OLD_INDEX)


async def backward(db: AsyncDatabase) -> None:
    await db.drop_collection(LINKS)
