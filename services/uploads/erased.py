"""The upload sessions of erased assets (a privacy erase: services/privacy/requests.py).

A session outlives its asset's delete, and is kept: the reconciler deletes its key one last time
once its URLs are dead (`sweep_due`: a presigned S3 URL can create the object again until it
expires, and a thumbnail's mark is such a session too), by its mount, key, multipart id and times
(reconciler.sweep_closed). What it recorded of the file, though, is the erased person's: its size,
its declared or computed SHA-256, and the collection and path it was to be filed at (a file name).
Nothing needs those once the asset is DELETED: a completion of a deleted asset's upload aborts it
whatever it finds (completion._complete_claimed), and an upload that is not `to_file` is never
filed. So they are cleared, and the session kept. (Its `created_by` is an identity field: the
erase rewrites it to the pseudonym, as everywhere.)

The ASSET_STATUS event an upload's end logged (finishing.status_event) recorded the file's size:
it is cleared too, and the event kept (what happened, and when, is the lake's history).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from documents.event import ASSET_STATUS, Event
from documents.json_value import StoredJson
from documents.json_value.query import JsonOp, predicate_filter
from documents.upload import UploadSession
from services.node_ids import NodeType, encode_id
from services.uploads.closing import close_open
from storage import ObjectStore

BATCH = 1000  # assets whose sessions one query reads

CLEARED: dict[str, Any] = {"size_bytes": 0, "sha256": None, "collection_id": None, "path": None, "to_file": False}
# A session that still holds any of it (a rerun of an erase finds nothing left).
_HOLDING: dict[str, Any] = {"$or": [{"size_bytes": {"$ne": 0}}, {"sha256": {"$ne": None}},
                                    {"collection_id": {"$ne": None}}, {"path": {"$ne": None}}]}


def _batches(asset_ids: Iterable[ObjectId]) -> Iterable[list[ObjectId]]:
    ids = list(asset_ids)
    return (ids[start:start + BATCH] for start in range(0, len(ids), BATCH))


async def to_clear(asset_ids: Iterable[ObjectId]) -> int:
    """How many sessions of these assets still hold something of their files (an erase's plan)."""
    sessions = UploadSession.get_pymongo_collection()
    return sum([await sessions.count_documents({"asset_id": {"$in": batch}, **_HOLDING}) for batch in _batches(asset_ids)])


async def clear_erased(asset_ids: Iterable[ObjectId], stores: Mapping[str, ObjectStore]) -> int:
    """Close the open uploads of these DELETED assets, and clear what their sessions recorded of
    the files (see the module's docstring); how many sessions were cleared."""
    sessions = UploadSession.get_pymongo_collection()
    cleared = 0
    for batch in _batches(asset_ids):
        await close_open(batch, stores)  # as deleteAsset does; here also for assets deleted before it did
        cleared += (await sessions.update_many({"asset_id": {"$in": batch}, **_HOLDING}, {"$set": CLEARED})).modified_count
    return cleared


async def status_events_to_clear(asset_ids: Iterable[ObjectId]) -> int:
    """How many ASSET_STATUS events of these assets still record a size (an erase's plan)."""
    return sum([len([event async for event in _sized_status_events(batch)]) for batch in _batches(asset_ids)])


async def clear_status_events(asset_ids: Iterable[ObjectId]) -> int:
    """Clear the size the ASSET_STATUS events of these DELETED assets recorded (see the module's
    docstring); how many events changed (none on a rerun)."""
    events = Event.get_pymongo_collection()
    cleared = 0
    for batch in _batches(asset_ids):
        writes = []
        async for event_id, data in _sized_status_events(batch):
            data["sizeBytes"] = None
            # Written back without a client's limits, as every erasure writes stored JSON (places.replaced).
            writes.append(UpdateOne({"_id": event_id},
                                    {"$set": {"data": StoredJson.encode(data, budget_paths=False).model_dump()}}))
        if writes:  # one round trip a batch, not one an event
            cleared += (await events.bulk_write(writes, ordered=False)).modified_count
    return cleared


async def _sized_status_events(asset_ids: list[ObjectId]) -> AsyncIterator[tuple[ObjectId, dict[str, Any]]]:
    """The ASSET_STATUS events of these assets that still record a size: each one's id and data."""
    about = predicate_filter("data", "assetId", JsonOp.IN, [encode_id(NodeType.ASSET, a) for a in asset_ids])
    async for event in Event.get_pymongo_collection().find({"event_type": ASSET_STATUS, **about}, {"data": 1}):
        data = StoredJson.model_validate(event["data"]).decode()
        if isinstance(data, dict) and data.get("sizeBytes") is not None:
            yield event["_id"], data
