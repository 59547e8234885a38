"""Retention pins: collections, dataset versions and people keep assets alive with them.

An asset left with no pin is not deleted here: it gets `unpinned_at`, and the garbage collector
(`services.assets.collect_unpinned`) removes it after a grace period. Writes are ordered so a crash leaves pins a retry completes.
"""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId
from pymongo.errors import BulkWriteError

from documents.asset import Asset
from documents.clock import utcnow
from documents.common import RetentionOwnerType
from documents.duplicates import duplicates_only
from documents.retention import AssetRetention
from documents.sparse import cleared
from services.node_ids import NodeType, encode_id

# The node type of what each kind of pin holds an asset for (a manual pin is its own holder).
_HOLDER_TYPES = {
    RetentionOwnerType.COLLECTION: NodeType.COLLECTION,
    RetentionOwnerType.DATASET_VERSION: NodeType.DATASET_VERSION,
    RetentionOwnerType.MANUAL_PIN: NodeType.ASSET_RETENTION,
}


def holder_id(owner_type: RetentionOwnerType, owner_id: ObjectId) -> str:
    """The global id of what a pin holds its asset for."""
    return encode_id(_HOLDER_TYPES[owner_type], owner_id)


async def pin(asset_ids: Sequence[ObjectId], owner_type: RetentionOwnerType, owner_id: ObjectId,
              actor: str | None, *, never_unpinned: bool = False) -> None:
    """Pin each asset for the owner; pins that exist already are kept as they are.
    `never_unpinned`: the assets were never flagged unpinned (just made), so none needs clearing."""
    if not asset_ids:
        return
    now = utcnow()
    docs = [
        {"asset_id": a, "owner_type": owner_type.value, "owner_id": owner_id, "created_at": now, "created_by": actor}
        for a in dict.fromkeys(asset_ids)
    ]
    try:
        await AssetRetention.get_pymongo_collection().insert_many(docs, ordered=False)
    except BulkWriteError as error:  # re-pinning is idempotent: ignore duplicates only
        duplicates_only(error)
    # Every asset by id alone, not `unpinned_at: {$ne: null}` beside it: FerretDB then scans the
    # whole collection (services/id_reads.py). An asset without unpinned_at is left as it is (no
    # write), here as in MongoDB: the field is cleared, not set to null (documents/sparse.py).
    if not never_unpinned:
        await Asset.get_pymongo_collection().update_many({"_id": {"$in": list(asset_ids)}}, cleared("unpinned_at"))


async def release(owner_type: RetentionOwnerType, owner_id: ObjectId, asset_ids: Sequence[ObjectId] | None = None) -> None:
    """Drop the owner's pins (on `asset_ids` only, if given) and flag assets no one pins any more."""
    query: dict = {"owner_type": owner_type.value, "owner_id": owner_id}
    if asset_ids is not None:
        query["asset_id"] = {"$in": list(asset_ids)}
    released = await AssetRetention.get_pymongo_collection().distinct("asset_id", query)
    await AssetRetention.get_pymongo_collection().delete_many(query)
    await flag_unpinned(released)


async def flag_unpinned(asset_ids: Sequence[ObjectId]) -> None:
    if not asset_ids:
        return
    still_pinned = set(await AssetRetention.get_pymongo_collection().distinct("asset_id", {"asset_id": {"$in": list(asset_ids)}}))
    orphans = [a for a in asset_ids if a not in still_pinned]
    if orphans:
        await Asset.get_pymongo_collection().update_many(
            {"_id": {"$in": orphans}, "unpinned_at": None}, {"$set": {"unpinned_at": utcnow()}}
        )
