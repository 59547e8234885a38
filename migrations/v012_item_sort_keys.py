"""Version 12: each collection item keeps its asset's creation time (`asset_created_at`).

`assets(filter: {collectionId})`, newest (or oldest) first, pages through the collection's items in
that order (services/collections.assets_by_items), through an index on (collection, asset_created_at,
asset_id): a page's cost no longer grows with the lake. Items written from version 12 on carry the
key as they are stored; an asset's `created_at` never changes, so neither does the key. Forward gives
the earlier items theirs, read from their assets a batch at a time; an item whose asset is gone keeps
none (it lists nothing either way). Idempotent: items keyed already are passed over, so a run that
died half way is run again. Backward clears the field and drops the index, which version 11 does not
make or read.
"""

from __future__ import annotations

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

VERSION = 12
SUMMARY = "collection items keep their asset's creation time, to page a collection's assets by"

# The shapes of this version's time, frozen here.
ITEMS, ASSETS = "collection_items", "assets"
KEY = "asset_created_at"
INDEX = "collection_created"
BATCH = 1000  # items keyed per write: their assets are one read by `_id`


async def forward(db: AsyncDatabase) -> None:
    batch: list[dict] = []
    # Every item, in whatever order the server keeps them (a sort by `_id` would sort the whole
    # collection first on the embedded default); those keyed already are passed over.
    async for item in db[ITEMS].find({}, {"asset_id": 1, KEY: 1}):
        if item.get(KEY) is None:
            batch.append(item)
        if len(batch) >= BATCH:
            await _key(db, batch)
            batch = []
    if batch:
        await _key(db, batch)


async def _key(db: AsyncDatabase, items: list[dict]) -> None:
    """Give the items their assets' creation time, in one read of the assets and one write."""
    asset_ids = list({item["asset_id"] for item in items})
    created = {asset["_id"]: asset.get("created_at") async for asset in db[ASSETS].find(
        {"_id": {"$in": asset_ids}}, {"created_at": 1}, batch_size=len(asset_ids) + 1)}
    updates = [UpdateOne({"_id": item["_id"]}, {"$set": {KEY: created[item["asset_id"]]}})
               for item in items if created.get(item["asset_id"]) is not None]
    if updates:
        await db[ITEMS].bulk_write(updates, ordered=False)


async def backward(db: AsyncDatabase) -> None:
    await db[ITEMS].update_many({KEY: {"$exists": True}}, {"$unset": {KEY: ""}})
    if INDEX in await db[ITEMS].index_information():
        await db[ITEMS].drop_index(INDEX)
