"""What uses an asset without pinning it: datums (as a role) and annotation records (as the asset they
annotate, or as a mask). A delete or the garbage collector must not leave these pointing at nothing.

They are found by query rather than pinned (a pin per record would double the writes of
addAnnotations, a hot batch write, to speed up deletes, which are rare), through indexes on both
servers: annotation records by their asset fields, datums by their uses of assets
(documents/dataset.DatumAsset: a small document per datum and asset, which the embedded default can
index where it cannot index a datum's `roles` array).
"""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId

from documents.annotation import AnnotationRecord
from documents.dataset import Datum, DatumAsset
from services.batches import still_written
from services.field_pages import field_pages
from services.node_ids import NodeType, encode_id
from services.use_fields import USE_FIELDS, fields_of

NAMED = 5  # a refusal names this many users of each kind, and counts them all
USES_PAGE = 100  # an asset's uses checked at once for a datum that is gone
USES_SWEPT = 1000  # uses checked at once by remove_orphaned_uses
_USE_FIELDS = {"asset_id": 1, "datum_id": 1, "batch": 1}


async def used(asset_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Those of these assets that a datum or an annotation record uses: one query per kind of use. A
    use whose datum is gone still counts here (the asset is kept, never lost); users_of clears it."""
    wanted = set(asset_ids)
    found: set[ObjectId] = set()
    for model, field in USE_FIELDS:
        if wanted - found:
            values = await model.get_pymongo_collection().distinct(field, {field: {"$in": list(wanted - found)}})
            found |= wanted & set(values)
    return found


async def users_of(asset_id: ObjectId) -> dict[NodeType, tuple[int, list[str]]]:
    """For each kind that uses the asset (DATUM, ANNOTATION_RECORD): how many, and the global ids of
    the first NAMED. Datums are counted by their uses, once the first ones read are checked: a use left
    by a crash further on counts until a delete reads that far."""
    users = {}
    if datums := await _first_datums(asset_id):
        count = await DatumAsset.get_pymongo_collection().count_documents({"asset_id": asset_id})
        users[NodeType.DATUM] = (count, [encode_id(NodeType.DATUM, d) for d in datums])
    collection = AnnotationRecord.get_pymongo_collection()
    query = {"$or": [{field: asset_id} for field in fields_of(collection.name)]}
    if count := await collection.count_documents(query):
        first = await collection.find(query, {"_id": 1}, sort=[("_id", 1)], limit=NAMED).to_list()
        users[NodeType.ANNOTATION_RECORD] = (count, [encode_id(NodeType.ANNOTATION_RECORD, doc["_id"]) for doc in first])
    return users


async def _first_datums(asset_id: ObjectId) -> list[ObjectId]:
    """The first NAMED datums using the asset, through its uses in order; orphaned uses met on the way
    are removed (_orphaned)."""
    found: list[ObjectId] = []
    async for page in field_pages(DatumAsset.get_pymongo_collection(), {}, "asset_id", USES_PAGE, values=[asset_id],
                                  projection=_USE_FIELDS):
        there, orphans = await _orphaned(page)
        found += [u["datum_id"] for u in page if u["datum_id"] in there]
        if orphans:
            await DatumAsset.get_pymongo_collection().delete_many({"_id": {"$in": orphans}})
        if len(found) >= NAMED:
            break
    return found[:NAMED]


async def remove_orphaned_uses() -> int:
    """Remove every use whose datum is gone (_orphaned), reading every use once (services/field_pages.py);
    how many. Until then an asset's `datums` skips them, and so does its `totalCount` within the uses it checks
    (resolvers/pagination.linked_connection), not past them."""
    removed = 0
    async for page in field_pages(DatumAsset.get_pymongo_collection(), {}, "asset_id", USES_SWEPT,
                                  projection=_USE_FIELDS):
        removed += await _remove_orphans(page)
    return removed


async def _remove_orphans(uses: list[dict]) -> int:
    _, orphans = await _orphaned(uses)
    if not orphans:
        return 0
    return (await DatumAsset.get_pymongo_collection().delete_many({"_id": {"$in": orphans}})).deleted_count


async def _orphaned(uses: list[dict]) -> tuple[set[ObjectId], list[ObjectId]]:
    """Of these uses, the datums that are there, and the ids of the uses that are orphans: left by a
    delete that died between removing a datum and its uses (services/datums.remove_datums). A use
    whose datum is missing is no orphan while its batch is being written (the datum may be about to
    come), nor once its datum came since (see batches.still_written: a batch that ended between the
    reads has its datum now; without the second look a delete racing createDatums removed the new
    datum's use, then found nothing using the asset)."""
    datums = Datum.get_pymongo_collection()
    there = set(await datums.distinct("_id", {"_id": {"$in": [u["datum_id"] for u in uses]}}))
    gone = [u for u in uses if u["datum_id"] not in there]
    if not gone:
        return there, []
    writing = await still_written(DatumAsset.get_pymongo_collection().database, [u.get("batch") for u in gone])
    ended = [u for u in gone if u.get("batch") not in writing]
    if ended:
        there |= set(await datums.distinct("_id", {"_id": {"$in": [u["datum_id"] for u in ended]}}))
    return there, [u["_id"] for u in ended if u["datum_id"] not in there]
