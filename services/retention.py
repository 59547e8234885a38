"""Retention pins: collections, dataset versions and people keep assets alive with them.

An asset left with no pin is not deleted here: it gets `unpinned_at`, and the garbage collector
(`services.assets.unpinned_rounds`) removes it after a grace period. Writes are ordered so a crash leaves pins a retry completes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from documents.asset import Asset
from documents.clock import utcnow
from documents.common import AssetStatus, RetentionOwnerType
from documents.duplicates import duplicates_only
from documents.retention import AssetRetention
from documents.sparse import cleared
from services import bulk_deletes
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, encode_id
from storage.concurrency import bounded_gather

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
              actor: str | None, *, never_unpinned: bool = False, adding: bool = False) -> list[ObjectId]:
    """Pin each asset for the owner; pins that exist already are kept as they are. Returns the ids
    of the pins made. `never_unpinned`: the assets were never flagged unpinned (just made), so none
    needs clearing. `adding`: the pins made carry `adding_at` (documents/retention.py), which the
    caller clears (added) once what they pin for is written."""
    if not asset_ids:
        return []
    now = utcnow()
    docs = [
        {"_id": ObjectId(), "asset_id": a, "owner_type": owner_type.value, "owner_id": owner_id, "created_at": now,
         "created_by": actor, **({"adding_at": now} if adding else {})}
        for a in dict.fromkeys(asset_ids)
    ]
    present: set[int] = set()
    try:
        await AssetRetention.get_pymongo_collection().insert_many(docs, ordered=False)
    except BulkWriteError as error:  # re-pinning is idempotent: ignore duplicates only
        present = set(duplicates_only(error))
    if not never_unpinned:
        await _unflag(list(dict.fromkeys(asset_ids)))
    return [doc["_id"] for i, doc in enumerate(docs) if i not in present]


async def added(pin_ids: Sequence[ObjectId]) -> None:
    """Clear the `adding_at` mark of these pins (pin's `adding`): what they pin for is written."""
    if pin_ids:  # by `_id` alone (services/id_reads.py)
        await AssetRetention.get_pymongo_collection().update_many({"_id": {"$in": list(pin_ids)}},
                                                                  {"$unset": {"adding_at": ""}})


async def _unflag(asset_ids: list[ObjectId]) -> None:
    """Clear the flag of these pinned assets, but not of a DELETED one: there it marks a delete cut
    short after its flip, which the collector finishes (services/assets.unpinned_rounds), and a pin
    whose check came before that flip (it takes itself back once it sees the asset DELETED) cleared
    it, so the asset's names stayed held for good. Read first, by id alone (not `unpinned_at` or
    `status` beside it: FerretDB then scans the whole collection, services/id_reads.py), so only
    flagged assets are written; one that turned DELETED between that read and the clear gets its
    flag back as it was, on the safe side: finishing a delete again changes nothing."""
    read = await fields_by_ids(Asset, asset_ids, ["status", "unpinned_at"])
    flagged = {a: doc["unpinned_at"] for a, doc in read.items()
               if doc.get("unpinned_at") is not None and doc.get("status") != AssetStatus.DELETED.value}
    if not flagged:
        return
    await Asset.get_pymongo_collection().update_many({"_id": {"$in": list(flagged)}}, cleared("unpinned_at"))
    now = await fields_by_ids(Asset, list(flagged), ["status"])
    if back := [UpdateOne({"_id": a, "status": AssetStatus.DELETED.value}, {"$set": {"unpinned_at": flagged[a]}})
                for a, doc in now.items() if doc.get("status") == AssetStatus.DELETED.value]:
        await Asset.get_pymongo_collection().bulk_write(back)


async def release(owner_type: RetentionOwnerType, owner_id: ObjectId, asset_ids: Sequence[ObjectId] | None = None,
                  *, also: dict[str, Any] | None = None) -> None:
    """Drop the owner's pins (on `asset_ids` only, if given) and flag the assets no one pins any more,
    a round of pins at a time (services/bulk_deletes.py): a collection or a version pins as many
    assets as it holds. `also`: an update every released asset gets in the write that flags it (a
    collection takes itself out of them), so that each is written once: FerretDB rewrites a whole
    asset for each update, and two were most of a big collection's delete. A release cut short is
    finished by releasing again: each round's pins go last, after its assets' write."""
    owner = {"owner_type": owner_type.value, "owner_id": owner_id}
    if asset_ids is not None:
        wanted = list(dict.fromkeys(asset_ids))
        for start in range(0, len(wanted), bulk_deletes.DELETE_ROUND):
            await _release_round(owner, wanted[start:start + bulk_deletes.DELETE_ROUND], also)
        return
    # The owner's pins through its index, in `_id` order; each round's are gone before the next read.
    while found := await bulk_deletes.first_left(AssetRetention.get_pymongo_collection(), owner, ["asset_id"]):
        await _release_round(owner, [pin["asset_id"] for pin in found], also)


async def _release_round(owner: dict[str, Any], asset_ids: list[ObjectId], also: dict[str, Any] | None) -> None:
    """Drop the owner's pins on these assets, flagging first those that no other pin holds. Flagged
    before the pins go: a release cut short in between leaves assets flagged that its own pins still
    hold, which the garbage collector leaves alone (it looks for pins before it deletes) and a retry
    releases; the other way round it would leave assets that nothing pins and nothing flagged, which
    nothing would ever collect."""
    mine = await AssetRetention.get_pymongo_collection().find(
        {**owner, "asset_id": {"$in": asset_ids}}, {"asset_id": 1}, batch_size=len(asset_ids) + 1).to_list()
    held = await _held([p["asset_id"] for p in mine], owner)
    await _write_released(list({p["asset_id"] for p in mine} - held), asset_ids, also)
    if mine:
        await AssetRetention.get_pymongo_collection().delete_many({"_id": {"$in": [p["_id"] for p in mine]}})


async def _write_released(orphans: list[ObjectId], asset_ids: list[ObjectId], also: dict[str, Any] | None) -> None:
    """Flag the orphans for the garbage collector, from now, and give every one of `asset_ids` the
    update `also`, in one command. An asset the first statement wrote is left as it is by the second
    (it changes nothing there), so none is written twice.

    From now even for one flagged already: the grace period counts from the release that left the
    asset unpinned. A flag already there is one a pin outlived: a pin racing an earlier release
    (which read no other pin, then flagged the asset after the pin had cleared its flag) left it
    flagged while pinned, and kept, that old time had the collector delete the asset as soon as
    this pin went, weeks of grace later. (A release cut short and run again flags anew: a later
    time, on the safe side.)"""
    flag = dict(also or {})
    flag["$set"] = {**flag.get("$set", {}), "unpinned_at": utcnow()}  # beside any field `also` sets, not in place of them
    writes = [UpdateMany({"_id": {"$in": orphans}}, flag)] if orphans else []
    if also:
        writes.append(UpdateMany({"_id": {"$in": asset_ids}}, also))
    if writes:
        await Asset.get_pymongo_collection().bulk_write(writes)


async def flag_anew(asset_ids: Iterable[ObjectId]) -> None:
    """Move the flag of those of these assets that are flagged on to now: a datum or annotation
    record using them has just gone, perhaps their last use, and the grace period counts from then,
    as from a release. The collector keeps a used asset's flag (services/assets._flag_again), so
    nothing is lost without this, but the flag is as old as the last round that found the asset used,
    and the asset could go at the next round after its datum. Only a flag there is moved (not one a
    pin cleared meanwhile: checked in each write), never one made: an asset never pinned is never
    collected; nor a DELETED asset's, which marks a delete for the collector to finish (_unflag)."""
    read = await fields_by_ids(Asset, asset_ids, ["status", "unpinned_at"])
    flagged = [a for a, doc in read.items()
               if doc.get("unpinned_at") is not None and doc.get("status") != AssetStatus.DELETED.value]
    if flagged:  # each by `_id` alone, not `$in` beside the conditions (services/id_reads.py)
        now = utcnow()
        await Asset.get_pymongo_collection().bulk_write([UpdateOne(
            {"_id": a, "unpinned_at": {"$ne": None}, "status": {"$ne": AssetStatus.DELETED.value}},
            {"$set": {"unpinned_at": now}}) for a in flagged], ordered=False)


async def pinned(asset_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Those of these assets that some pin holds."""
    return await _held(asset_ids, None)


# Pins read at most, per asset asked about, in the one read that answers for most assets.
PINS_READ_PER_ASSET = 4


async def _held(asset_ids: Sequence[ObjectId], owner: dict[str, Any] | None) -> set[ObjectId]:
    """Those of these assets some pin holds, not counting `owner`'s. Read as documents and told apart
    here, not by `distinct`: FerretDB's distinct compares each value with every one kept so far, so its
    time grows with the square of the values (20,000 took 4 s, 100,000 93 s, and went on using a core
    after its client gave up). And not every pin: an image a dataset versions every night holds one
    per version, 365 in a year, and reading all of a round's took 180,000 documents. So one read, in
    the order of the index on `asset_id`, of at most PINS_READ_PER_ASSET pins an asset answers for the
    assets it read whole (a pin or two each, as usual); each one it did not is asked alone, for at
    most two pins (one may be `owner`'s)."""
    def others(pin: dict[str, Any]) -> bool:
        return owner is None or (pin["owner_type"], pin["owner_id"]) != (owner["owner_type"], owner["owner_id"])

    return await _with_pins(asset_ids, others, lambda asset_id: ({"asset_id": asset_id}, 2))


async def pinned_by(owner_type: RetentionOwnerType, owner_id: ObjectId, asset_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Those of these assets the owner pins. Read by the assets, as _held reads: a filter on the owner
    beside them is answered from the owner's index on the embedded default, which reads every pin of a
    collection of 100,000 assets to tell a few."""
    owner = (owner_type.value, owner_id)

    def mine(pin: dict[str, Any]) -> bool:
        return (pin["owner_type"], pin["owner_id"]) == owner

    return await _with_pins(asset_ids, mine, lambda asset_id: (
        {"asset_id": asset_id, "owner_type": owner_type.value, "owner_id": owner_id}, 1))


async def _with_pins(asset_ids: Sequence[ObjectId], counts: Callable[[dict[str, Any]], bool],
                     alone: Callable[[ObjectId], tuple[dict[str, Any], int]]) -> set[ObjectId]:
    """Those of these assets a pin that `counts` holds (see _held); `alone`: the filter and limit
    asking for one asset's such pin, for those the first read did not answer for."""
    wanted = sorted(dict.fromkeys(asset_ids))
    if not wanted:
        return set()
    limit = PINS_READ_PER_ASSET * len(wanted)
    pins = await AssetRetention.get_pymongo_collection().find(
        {"asset_id": {"$in": wanted}}, {"asset_id": 1, "owner_type": 1, "owner_id": 1},
        sort=[("asset_id", 1)], limit=limit, batch_size=limit).to_list()  # an index on either server holds this order
    held = {p["asset_id"] for p in pins if counts(p)}
    if len(pins) < limit:
        return held  # every pin on them read
    # Cut short: assets past the last one read were not reached, and that one perhaps not whole.
    undecided = [a for a in wanted if a >= pins[-1]["asset_id"] and a not in held]

    async def one(asset_id: ObjectId) -> set[ObjectId]:
        query, at_most = alone(asset_id)
        found = await AssetRetention.get_pymongo_collection().find(
            query, {"asset_id": 1, "owner_type": 1, "owner_id": 1}, limit=at_most).to_list()
        return {p["asset_id"] for p in found if counts(p)}

    for found in await bounded_gather([lambda a=a: one(a) for a in undecided]):
        held |= found
    return held
