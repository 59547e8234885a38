"""Collection business steps. Writes are ordered so a crash only ever leaves extra pins:
adding pins (and writes the collection into its assets) before it writes items; removing drops
items before it releases pins; an add's pins are marked until its items are written, and the
maintenance settles the pins of an add cut short in between (settle_cut_short_adds). An add and a
removal of the same asset at once each look again after their writes and settle what the other's
writes left (_settle)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from documents.asset import Asset
from documents.clock import to_millis, utcnow
from documents.collection import Collection, CollectionItem
from documents.common import RetentionOwnerType, Split
from documents.duplicates import duplicates_only, is_duplicate_key
from documents.json_value import StoredJson
from documents.retention import AssetRetention
from services import bulk_deletes, delete_marks, retention
from services.assets import existing_assets, in_use_despite_delete
from services.checks import check_metadata, check_name, check_no_controls, get_or_not_found
from services.compare_and_set import Stamp
from services.errors import BadUserInput, Conflict
from services.node_ids import NodeType, encode_id

log = logging.getLogger("graphlake.collections")


@dataclass(frozen=True)
class NewItem:
    asset_id: ObjectId
    path: str | None
    split: Split | None


def check_path(path: str | None, field: str) -> str | None:
    """A relative, normalised item path; nothing a client sends can climb out of its collection."""
    if path is None:
        return None
    parts = path.split("/")
    if path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts) or len(path) > 1024:
        raise BadUserInput("must be a relative path of non-empty segments, without '.', '..' or NUL", field=field)
    return check_no_controls(path, field)  # as a name's: a path names the file in exports and listings


# How `assets(filter: {collectionId})` reads a collection's assets. The embedded default indexes no
# array, so the assets' `collection_ids` lead to no index there: a list walking the lake's assets in
# its order and testing each (about 5 us an asset) read the whole lake for a page of a collection of
# old assets, newest first (0.6 s at 100,000).
#
# In the list's default order (created_at, then `_id`, either way) each item keeps its asset's
# `created_at`, and a page walks the collection's items in that order from its cursor, through their
# index, reading their assets by id a round at a time and testing the rest of the filter on them,
# until the page is full (assets_by_items). Its cost grows with the items it reads, not the lake: a
# page and a little more where most of the collection's assets pass the filter; where few do (a
# status or kind that one asset in a hundred of the collection has), it reads on through the
# collection's items, up to ITEM_BUDGET of them.
ITEM_ROUND = 1_000  # items read at most in one round (a round's assets are one read by `_id`)
# Items a page reads at most before it finds the rest of its page by walking the lake's assets
# from the position reached, testing the collection on each (the list's read before schema 12):
# where few of a big collection's assets pass the filter (a rare label, one status), reading on
# through the items costs about 65 us an item (6.5 s for 100,000 that none passes) against about 5
# us an asset walked (0.6 s for a lake of 100,000). So a page costs at most ITEM_BUDGET items
# (about 0.3 s) plus, past them, what the walk cost before.
ITEM_BUDGET = 5_000
#
# In the other orders (name, size, data timestamp) the items hold no key: the first WALK_PROBE
# assets of the list's walk (a few ms) tell how often the collection's assets come there. Where the
# walk costs less it walks; else the page reads the collection's items (the items, then those assets
# by id, sorted), about 60 us an item the collection holds, ITEM_COST assets walked (about 50 ms for
# 1,000 items); a collection of more than MAX_HELD_READ items is walked (assets_to_read).
WALK_PROBE = 64
ITEM_COST = 12
MAX_HELD_READ = 10_000  # items read at most (0.45 s): a bigger collection is walked


async def assets_by_items(collection_id: ObjectId, query: dict[str, Any], direction: int,
                          start: tuple[datetime, ObjectId] | None, wanted: int) -> list[dict[str, Any]]:
    """Up to `wanted` raw assets the collection holds that `query` matches, in order of `created_at`
    then `_id` (`direction`: 1 oldest first, -1 newest first), strictly past `start` (such a pair, an
    asset's; None: from the start). Read through the items' (collection, asset_created_at, asset_id)
    index: a round of items from the position reached, then their assets by id with `query` beside
    the ids, until `wanted` are found or the items run out. The first round reads `wanted` items
    (where the filter lets most through, the page); each further one four times the last, up to ITEM_ROUND.
    Past ITEM_BUDGET items, the rest is walked for (`query` holds the collection's condition)."""
    items, assets = CollectionItem.get_pymongo_collection(), Asset.get_pymongo_collection()
    order = [("asset_created_at", direction), ("asset_id", direction)]
    found: list[dict[str, Any]] = []
    size, read = min(wanted, ITEM_ROUND), 0
    while True:
        if read >= ITEM_BUDGET and start is not None:
            walk = {"$and": [query, _past(start, direction, ("created_at", "_id"))]}
            return found + await assets.find(walk, sort=[("created_at", direction), ("_id", direction)],
                                              limit=wanted - len(found), batch_size=wanted - len(found) + 1).to_list()
        round_ = await items.find({"collection_id": collection_id, **_past(start, direction)},
                                  {"asset_id": 1, "asset_created_at": 1, "_id": 0}, sort=order, limit=size,
                                  batch_size=size + 1).to_list()
        ids = [item["asset_id"] for item in round_]
        if ids:
            by_id = {doc["_id"]: doc async for doc in assets.find({"_id": {"$in": ids}, **query}, batch_size=len(ids) + 1)}
            found += [by_id[a] for a in ids if a in by_id]
        if len(found) >= wanted or len(round_) < size:
            return found[:wanted]
        start = (round_[-1]["asset_created_at"], round_[-1]["asset_id"])
        read += len(round_)
        size = min(size * 4, ITEM_ROUND)


def _past(start: tuple[datetime, ObjectId] | None, direction: int,
          keys: tuple[str, str] = ("asset_created_at", "asset_id")) -> dict[str, Any]:
    """The items strictly past `start` in `direction`, of those with a key (an item without one, its
    asset gone, lists nothing); with `keys` ("created_at", "_id"), the assets past it. The bound on
    the time alone beside the keyset's `$or` is implied by it; it lets the embedded default start its
    walk of the index at the position (only the items created in the same millisecond are read and
    passed over) instead of at the collection's first item."""
    time, tiebreak = keys
    if start is None:
        return {time: {"$gte": _EARLIEST}}
    created, asset_id = start
    beyond, reached = ("$gt", "$gte") if direction > 0 else ("$lt", "$lte")
    return {time: {reached: created},
            "$or": [{time: {beyond: created}}, {time: created, tiebreak: {beyond: asset_id}}]}


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # before any `created_at` (the server's clock): leaves out items without one


async def held_asset_ids(collection_id: ObjectId, held: int | None = None) -> list[ObjectId] | None:
    """The ids of the assets the collection holds (its items'), or None if it holds more than
    MAX_HELD_READ (`held`: how many, when the caller counted them)."""
    items = CollectionItem.get_pymongo_collection()
    if held is None:
        # Counted whole: on the embedded default a count with a limit reads every document it counts,
        # and one without counts entries of the items' index (10 ms for 50,000).
        held = await items.count_documents({"collection_id": collection_id})
    if held > MAX_HELD_READ:
        return None
    # In the order of the (collection, `_id`) index, which the query walks; the order itself does not matter.
    return [item["asset_id"] async for item in items.find(
        {"collection_id": collection_id}, {"asset_id": 1, "_id": 0}, sort=[("_id", 1)], batch_size=held + 1)]


async def assets_to_read(collection_id: ObjectId, walk: dict[str, Any], sort: list[tuple[str, int]],
                         wanted: int) -> list[ObjectId] | None:
    """The ids of the assets the collection holds (its items'), to read a page of them by; or None
    when walking the list for `wanted` of them (`walk`, in `sort` order, without the collection's
    condition) costs less by what its first WALK_PROBE assets hold, or the collection holds more than
    MAX_HELD_READ. For the orders the items keep no key of (see above)."""
    probed = await Asset.get_pymongo_collection().find(walk, {"collection_ids": 1}, sort=sort, limit=WALK_PROBE,
                                                       batch_size=WALK_PROBE + 1).to_list()
    met = sum(collection_id in doc.get("collection_ids", ()) for doc in probed)
    if len(probed) < WALK_PROBE or met >= wanted:  # the walk's page lies within what was probed
        return None
    held = await CollectionItem.get_pymongo_collection().count_documents({"collection_id": collection_id})
    if held > MAX_HELD_READ or (met and wanted * WALK_PROBE / met <= held * ITEM_COST):
        return None
    return await held_asset_ids(collection_id, held)


async def get_collection(collection_id: ObjectId, field: str = "id") -> Collection:
    return await get_or_not_found(Collection, collection_id, field=field, what="collection")


async def create_collection(name: str, description: str | None, metadata: StoredJson, actor: str | None) -> Collection:
    collection = Collection(name=check_name(name), description=description, metadata=check_metadata(metadata),
                            created_by=actor)
    try:
        await collection.insert()
    except DuplicateKeyError:
        taken = await Collection.get_pymongo_collection().find_one({"name": collection.name}, {"deleting_at": 1})
        if taken is not None and taken.get("deleting_at") is not None:  # its name is free once the delete ends
            raise Conflict(f"a collection named {name!r} is being deleted; make this one once that delete has ended",
                           field="name") from None
        raise Conflict(f"a collection named {name!r} exists already", field="name") from None
    return collection


def edited_at(collection: Collection) -> datetime:
    """When the collection's name, description or metadata last changed (its created_at until then)."""
    return to_millis(collection.edited_at or collection.created_at)


# Not its updatedAt, which every addToCollection moves (services/compare_and_set.py).
EDITED_AT: Stamp[Collection] = Stamp(of=edited_at, name="editedAt", what="the collection")


async def update_collection(collection_id: ObjectId, changes: dict[str, Any], *,
                            expected_edited_at: datetime | None = None) -> Collection:
    """Apply `changes` (name, description, metadata: only keys present). With `expected_edited_at`,
    only while the collection's editedAt is that (CONFLICT otherwise): `metadata` is replaced whole,
    so two writers each changing one key of what they read lost one change unnoticed. Compared on
    editedAt, not updatedAt, which every addToCollection moves. Every write is made on the editedAt
    it read and moves it on by at least a millisecond (as services/assets.update_asset's updatedAt)."""
    collection = await get_collection(collection_id)
    expected = EDITED_AT.expect(collection, expected_edited_at)
    if "name" in changes:
        changes["name"] = check_name(changes["name"] or "")
    if "metadata" in changes:
        changes["metadata"] = check_metadata(changes["metadata"]).model_dump()
    if not changes:
        return collection

    async def write(read: datetime, new: datetime) -> bool:
        changes["edited_at"] = changes["updated_at"] = new
        # On the editedAt read: stored, or (none stored yet) its created_at.
        on = {"$or": [{"edited_at": read}, {"edited_at": None, "created_at": read}]}
        try:
            written = await Collection.get_pymongo_collection().update_one({"_id": collection_id, **on}, {"$set": changes})
        except PyMongoError as error:
            if not is_duplicate_key(error):
                raise
            raise Conflict(f"a collection named {changes['name']!r} exists already", field="name") from None
        return bool(written.matched_count)

    # Read again after a lost race: NOT_FOUND if it is gone.
    await EDITED_AT.write(collection, expected, write, lambda: get_collection(collection_id))
    return await get_collection(collection_id)


async def add_items(collection_id: ObjectId, items: Sequence[NewItem], actor: str | None, max_items: int,
                    *, read: Mapping[ObjectId, Asset] | None = None, joined: bool = False,
                    made_here: bool = False) -> Collection:
    """Add (or move) the items. `read`: the assets as the caller has just read or written them (a
    completion filing its uploads), checked here instead of reading them again; a delete racing
    the add is caught after the write either way. `joined`: the caller has just written this
    collection into the assets' `collection_ids` (a completion, as it settled them), so they need
    no update per asset (FerretDB reads and rewrites each one). `made_here`: joined, and the assets
    were just stored so, never unpinned (an ingest): no pin of theirs needs clearing either.
    Returns the collection as read at the start, with its new `updated_at` (not read again: an
    import filing its files paid for a read per call that told it nothing new); NOT_FOUND, with
    nothing of the call left, if the collection was deleted meanwhile."""
    collection = await get_collection(collection_id, field="collectionId")
    if collection.deleting_at is not None:
        raise delete_marks.gone("collection", NodeType.COLLECTION, collection_id, "collectionId")
    if not items:
        raise BadUserInput("give at least one item", field="items")
    if len(items) > max_items:
        raise BadUserInput(f"at most {max_items} items at once", field="items")
    seen: set[ObjectId] = set()
    for i, item in enumerate(items):
        if item.asset_id in seen:
            raise BadUserInput("the same asset appears twice", field=f"items[{i}].assetId")
        seen.add(item.asset_id)
    asset_ids = [item.asset_id for item in items]
    created = await existing_assets(asset_ids, [f"items[{i}].assetId" for i in range(len(items))], known=read)
    # A crash between these writes and the items' leaves pins, and the collection in the assets, with
    # no item: the asset kept for good, listed in the collection by what reads `collection_ids` (and
    # refused a plain deleteAsset), though not by its items. No reader meets it: the collector reads
    # only unpinned assets. So the pins this call makes are marked until the items are written, and
    # the maintenance settles a mark left long after (settle_cut_short_adds). Not a completion's
    # (`joined`) or an ingest's (`made_here`): their uploads' `to_file` mark has the reconciler file
    # them again after a crash (services/uploads/finishing.file_completed).
    marked = not (joined or made_here)
    made = await retention.pin(asset_ids, RetentionOwnerType.COLLECTION, collection_id, actor,
                               never_unpinned=made_here, adding=marked)
    # The collection goes into the assets with their pins, before the items (as a completion's does,
    # `joined`): a removal racing this add then takes both out after the item, or neither.
    if not (joined or made_here):
        await Asset.get_pymongo_collection().update_many({"_id": {"$in": asset_ids}},
                                                         {"$addToSet": {"collection_ids": collection_id}})
    now = utcnow()
    await _write_items(collection_id, items, created, actor, now)
    if marked:
        await retention.added(made)
    # Matched only while no delete has started: one marked since the check above may have passed these
    # items in its rounds (delete_collection), so they go, not the delete. Unmarked now, the delete's
    # rounds, which follow its mark, find them.
    touched = await Collection.get_pymongo_collection().update_one({"_id": collection_id, "deleting_at": None},
                                                                   {"$set": {"updated_at": now}})
    if touched.matched_count == 0:
        await _take_out(collection_id, asset_ids)
        raise delete_marks.gone("collection", NodeType.COLLECTION, collection_id, "collectionId")
    deleted = await in_use_despite_delete(asset_ids)
    if deleted:  # a delete ran between the check and the write: these items go, not the delete
        await remove_items(collection_id, deleted)
        named = [encode_id(NodeType.ASSET, a) for a in deleted]
        raise Conflict(f"asset(s) deleted meanwhile: {', '.join(named)}", field="items", deleted=named)
    # Each item stands on its pin, unless a removal of the same asset released the pin (ours, or one
    # there before) after pinning and before or after our item write: the item, left without a pin,
    # was flagged for the garbage collector. One read of the pins tells (any gone: settle them). Not
    # for assets this call has just made (an ingest), whose ids no client was answered with yet: a
    # removal naming one found it listed in the moment between, and the collector still pins such an
    # item's asset again (services/assets._in_collections); an ingest's commands are counted to the one.
    if not made_here:
        pinned = await retention.pinned_by(RetentionOwnerType.COLLECTION, collection_id, asset_ids)
        if len(pinned) < len(asset_ids):
            await _settle(collection_id, [a for a in asset_ids if a not in pinned], actor)
    collection.updated_at = now
    return collection


async def _write_items(collection_id: ObjectId, items: Sequence[NewItem], created: Mapping[ObjectId, datetime],
                       actor: str | None, now: datetime) -> None:
    """Each item added, or moved (to its path and split) if the collection holds its asset already,
    with its asset's `created_at` (`created`), which it is listed by (assets_by_items).
    New items, the usual case (uploads filed, an import), go in one insert; the unique index on
    (collection, asset) turns away those present, which are then updated. An upsert per item would
    say the same, but FerretDB answers each upsert with a query, an insert and a commit of its own."""
    def split(item: NewItem) -> str | None:
        return item.split.value if item.split else None

    docs = [{"_id": ObjectId(), "collection_id": collection_id, "asset_id": item.asset_id, "path": item.path,
             "split": split(item), "added_at": now, "added_by": actor, "asset_created_at": created[item.asset_id]}
            for item in items]
    try:
        await CollectionItem.get_pymongo_collection().insert_many(docs, ordered=False)
        return
    except BulkWriteError as error:
        present = [items[i] for i in duplicates_only(error)]
    # An upsert still: the item may have been removed since the insert turned it away.
    await CollectionItem.get_pymongo_collection().bulk_write([
        UpdateOne({"collection_id": collection_id, "asset_id": item.asset_id},
                  {"$set": {"path": item.path, "split": split(item), "asset_created_at": created[item.asset_id]},
                   "$setOnInsert": {"added_at": now, "added_by": actor}},
                  upsert=True)
        for item in present
    ], ordered=False)


async def remove_items(collection_id: ObjectId, asset_ids: Sequence[ObjectId]) -> Collection:
    await get_collection(collection_id, field="collectionId")
    await _take_out(collection_id, asset_ids)
    await Collection.get_pymongo_collection().update_one({"_id": collection_id}, {"$set": {"updated_at": utcnow()}})
    return await get_collection(collection_id, field="collectionId")


async def _take_out(collection_id: ObjectId, asset_ids: Sequence[ObjectId], item_ids: Sequence[ObjectId] | None = None) -> None:
    """The assets' items in the collection (`item_ids`, when the caller read them) removed, then its
    place in the assets and its pins on them, in one write of each asset as the pins are released.
    An asset whose item went keeps its pin until it has left the collection: a delete cut short in
    between finds it through the pin."""
    asset_ids = list(dict.fromkeys(asset_ids))
    await CollectionItem.get_pymongo_collection().delete_many(
        {"_id": {"$in": list(item_ids)}} if item_ids is not None else {"collection_id": collection_id, "asset_id": {"$in": asset_ids}})
    await retention.release(RetentionOwnerType.COLLECTION, collection_id, asset_ids, also=_leaving(collection_id))
    # An add of one of these assets may have written its item after ours went and before the release
    # took its pin (and the collection out of the asset): that item, which stands, is pinned again.
    if back := await _items_of(collection_id, asset_ids):
        await _settle(collection_id, list(back), None)


SETTLE_ROUNDS = 20  # looks of one _settle at most, each after another writer changed the items since the last


async def _items_of(collection_id: ObjectId, asset_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Those of these assets the collection holds an item of. Read by the assets (an asset is in a
    few collections): a filter on the collection beside them is answered from its index on the
    embedded default, which reads every item of a collection of 100,000 to tell a few."""
    return {item["asset_id"] async for item in CollectionItem.get_pymongo_collection().find(
        {"asset_id": {"$in": list(asset_ids)}}, {"asset_id": 1, "collection_id": 1, "_id": 0})
        if item["collection_id"] == collection_id}


async def _settle(collection_id: ObjectId, asset_ids: Sequence[ObjectId], actor: str | None) -> None:
    """Make the collection's pins on these assets, and its place in them (`collection_ids`), agree
    with its items: pinned and joined again where an item stands, released and left where none does.

    An add and a removal of the same asset at once (no transactions to make either whole) interleave
    their writes: the add pins and joins, then writes the item; the removal deletes the item, then
    releases the pin and leaves. The removal's release could come after the add's item write: an
    item without its pin or its place in the asset, the asset flagged for the garbage collector (which
    deleted it from under its collection until it learnt to pin such an asset again). So each looks again after its own last write (the add at its pins, the removal
    at the items) and settles here what it finds disagreeing, then looks again at all three, since
    the other may have written meanwhile; whoever writes last looks last, so what stays agrees. An
    item wins over a release that did not see it, as it would had the add come second. A re-pin that
    lands after the collection's delete released its pins needs no check for the delete's mark: the
    delete took the items out before their pins, so the look after the re-pin finds no item and
    releases it again (tests/test_collections.py, a re-pin racing the delete)."""
    assets = Asset.get_pymongo_collection()
    for _ in range(SETTLE_ROUNDS):
        held = await _items_of(collection_id, asset_ids)
        pinned = await retention.pinned_by(RetentionOwnerType.COLLECTION, collection_id, asset_ids)
        joined = {doc["_id"] async for doc in assets.find({"_id": {"$in": list(asset_ids)}}, {"collection_ids": 1})
                  if collection_id in (doc.get("collection_ids") or ())}
        unpinned = [a for a in asset_ids if a in held and (a not in pinned or a not in joined)]
        stray = [a for a in asset_ids if a not in held and (a in pinned or a in joined)]
        if not (unpinned or stray):
            return
        if unpinned:
            await retention.pin(unpinned, RetentionOwnerType.COLLECTION, collection_id, actor)
            await assets.update_many({"_id": {"$in": unpinned}}, {"$addToSet": {"collection_ids": collection_id}})
        if stray:
            await retention.release(RetentionOwnerType.COLLECTION, collection_id, stray, also=_leaving(collection_id))
    # Still changing after every look: the other writers look again after their own writes, and the
    # garbage collector pins an item's asset again before it deletes (services/assets._in_collections).
    log.warning("collection %s: items of %d asset(s) kept changing while their pins were settled", collection_id,
                len(asset_ids))


# How old an add's mark on its pins is before the add counts as cut short (it writes its items
# within a request), and how many marked pins a round of settle_cut_short_adds reads.
ADD_CUT_SHORT = timedelta(minutes=30)
CUT_SHORT_ROUND = 500


async def settle_cut_short_adds() -> int:
    """Settle (_settle) the assets of pins an add marked and never cleared (add_items): it died
    between its pins and its items, leaving the pins and the collection in the assets without an
    item, which are taken out; where an item was written after all, all stays. Then the marks go.
    Safe beside an add of the same asset still running: that add looks at its pins after its item
    write and pins again what this released. Returns how many marks were settled."""
    pins = AssetRetention.get_pymongo_collection()
    cutoff, settled = utcnow() - ADD_CUT_SHORT, 0
    while found := await pins.find({"adding_at": {"$lt": cutoff}}, {"asset_id": 1, "owner_id": 1},
                                   sort=[("adding_at", 1), ("_id", 1)], limit=CUT_SHORT_ROUND,
                                   batch_size=CUT_SHORT_ROUND + 1).to_list():
        by_collection: dict[ObjectId, list[ObjectId]] = {}
        for pin in found:
            by_collection.setdefault(pin["owner_id"], []).append(pin["asset_id"])
        for collection_id, asset_ids in by_collection.items():
            await _settle(collection_id, asset_ids, None)
        await retention.added([pin["_id"] for pin in found])  # those _settle released are gone already
        settled += len(found)
        if len(found) < CUT_SHORT_ROUND:
            break
    return settled


def _leaving(collection_id: ObjectId) -> dict[str, Any]:
    """The update that takes the collection out of an asset."""
    return {"$pull": {"collection_ids": collection_id}}


async def delete_collection(collection_id: ObjectId) -> None:
    """Removes the collection, its items and its pins. Its assets stay; those no one else pins are
    flagged for garbage collection. A round of items at a time (services/bulk_deletes.py), each
    round taken out whole as `_take_out` says, so that no command holds the database for long; the
    assets are found through the items and pins (a query on the assets' `collection_ids` reads every
    asset on the embedded default, which indexes no array). The collection record goes last, so a
    retry finishes a delete cut short; one gone already is done.

    The collection is marked (`deleting_at`) before the first round, and an add checks for the mark
    after its write (add_items): an add that sees none wrote before the rounds began, which take its
    items out; one that sees it takes them out itself."""
    marked = await Collection.get_pymongo_collection().update_one({"_id": collection_id},
                                                                  {"$set": {"deleting_at": utcnow()}})
    if marked.matched_count == 0:
        return
    items = CollectionItem.get_pymongo_collection()
    while found := await bulk_deletes.first_left(items, {"collection_id": collection_id}, ["asset_id"]):
        await _take_out(collection_id, [item["asset_id"] for item in found], [item["_id"] for item in found])
    # The pins of a round cut short after its items went: their assets are taken out of the collection too.
    await retention.release(RetentionOwnerType.COLLECTION, collection_id, also=_leaving(collection_id))
    await Collection.get_pymongo_collection().delete_one({"_id": collection_id})
