"""Lineage downstream: the assets derived from an asset, kept beside them as links
(documents/asset.AssetLink), because the embedded default cannot index an asset's `derived_from`.

Links follow the asset. After a write to its `derived_from` (a new asset, updateAsset), `relink`
makes them what the asset says then (one per source), reading the asset after that write: of two
writes racing, the relink that reads last settles them, and a relink lost to a crash is settled by
the asset's next one. Once the asset is DELETED (a delete, the collector), `unlink` removes them all;
an update racing the delete relinks from what it reads after its write, a DELETED asset: none.
Lineage keeps nothing from deletion, so nothing relies on a link being there: the reader keeps an
asset only if it still names the source and is not DELETED (resolvers/assets/types.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.asset import LINKS_COLLECTION, Asset, AssetLink
from documents.common import AssetStatus

CHUNK = 1000


async def relink(asset_ids: Sequence[ObjectId]) -> None:
    """Make the links of these assets what each says now."""
    if not asset_ids:
        return
    links = AssetLink.get_pymongo_collection()
    for start in range(0, len(asset_ids), CHUNK):
        chunk = list(asset_ids[start:start + CHUNK])
        wanted = {(source, asset["_id"]) async for asset in Asset.get_pymongo_collection().find(
            {"_id": {"$in": chunk}, "status": {"$ne": AssetStatus.DELETED.value}}, {"derived_from": 1})
                  for source in asset.get("derived_from", [])}
        held: dict[tuple[ObjectId, ObjectId], ObjectId] = {}
        stale: list[ObjectId] = []
        async for link in links.find({"asset_id": {"$in": chunk}}, {"source_id": 1, "asset_id": 1}):
            pair = (link["source_id"], link["asset_id"])
            if pair in wanted and pair not in held:
                held[pair] = link["_id"]
            else:  # no longer named, or a second link of one pair (two relinks racing)
                stale.append(link["_id"])
        if missing := [{"_id": ObjectId(), "source_id": source, "asset_id": asset_id}
                       for source, asset_id in wanted if (source, asset_id) not in held]:
            await links.insert_many(missing)
        if stale:
            await links.delete_many({"_id": {"$in": stale}})


async def unlink(deleted: Sequence[ObjectId]) -> None:
    """Every link of these assets, once DELETED (what relink would do, in one command)."""
    if deleted:
        await AssetLink.get_pymongo_collection().delete_many({"asset_id": {"$in": list(deleted)}})


async def write_links(db: AsyncDatabase) -> None:
    """Make every link again from the assets (a restore: backups leave them out, as they are derived)."""
    await db[LINKS_COLLECTION].delete_many({})
    links: list[dict] = []
    async for asset in db[Asset.Settings.name].find(
            {"derived_from.0": {"$exists": True}, "status": {"$ne": AssetStatus.DELETED.value}}, {"derived_from": 1},
            sort=[("_id", 1)]):
        links += [{"_id": ObjectId(), "source_id": source, "asset_id": asset["_id"]}
                  for source in dict.fromkeys(asset["derived_from"])]
        if len(links) >= CHUNK:
            await db[LINKS_COLLECTION].insert_many(links)
            links = []
    if links:
        await db[LINKS_COLLECTION].insert_many(links)
