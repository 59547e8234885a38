"""Lineage downstream: the assets derived from an asset, kept beside them as links
(documents/asset.AssetLink), because the embedded default cannot index an asset's `derived_from`.

A link is made when an asset names its sources (at its creation, or by updateAsset) and removed when
that changes or the asset is deleted. It is not a rule anything relies on (lineage keeps nothing from
deletion), so it is written after the asset: a crash in between leaves the link missing or stale,
and readers skip links to assets that are gone or DELETED.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.asset import LINKS_COLLECTION, Asset, AssetLink
from documents.common import AssetStatus

CHUNK = 1000


async def link(asset_id: ObjectId, sources: Sequence[ObjectId]) -> None:
    """The asset derives from these too (each named once: derived_from is kept without repeats)."""
    if sources:
        await AssetLink.get_pymongo_collection().insert_many(
            [{"_id": ObjectId(), "source_id": source, "asset_id": asset_id} for source in sources])


async def unlink(asset_id: ObjectId, sources: Sequence[ObjectId]) -> None:
    """The asset no longer derives from these."""
    if sources:
        await AssetLink.get_pymongo_collection().delete_many({"source_id": {"$in": list(sources)}, "asset_id": asset_id})


async def unlink_deleted(deleted: Iterable[tuple[ObjectId, Sequence[ObjectId]]]) -> None:
    """Every link of these deleted assets (each given with its whole `derived_from`), in one query
    through the sources' index: a link (source, asset) exists only where the asset names the source."""
    deleted = [(asset_id, sources) for asset_id, sources in deleted if sources]
    if deleted:
        await AssetLink.get_pymongo_collection().delete_many({
            "source_id": {"$in": list({s for _, sources in deleted for s in sources})},
            "asset_id": {"$in": [asset_id for asset_id, _ in deleted]}})


async def write_links(db: AsyncDatabase) -> None:
    """Make every link again from the assets (a restore: backups leave them out, as they are derived)."""
    await db[LINKS_COLLECTION].delete_many({})
    links: list[dict] = []
    async for asset in db[Asset.Settings.name].find(
            {"derived_from.0": {"$exists": True}, "status": {"$ne": AssetStatus.DELETED.value}}, {"derived_from": 1},
            sort=[("_id", 1)]):
        links += [{"_id": ObjectId(), "source_id": source, "asset_id": asset["_id"]} for source in asset["derived_from"]]
        if len(links) >= CHUNK:
            await db[LINKS_COLLECTION].insert_many(links)
            links = []
    if links:
        await db[LINKS_COLLECTION].insert_many(links)
