"""Asset business steps: store values and texts, update, alias, pin and delete.

Each validates everything first and writes only then; multi-write steps are ordered so a crash
leaves nothing a reader would mistake for finished work.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.asset import Alias, Asset
from documents.clock import to_millis, utcnow
from documents.collection import CollectionItem
from documents.common import AssetKind, AssetStatus, Ownership, RetentionOwnerType
from documents.json_value import StoredJson
from documents.retention import AssetRetention
from documents.sparse import cleared, setting, stored
from documents.upload import UploadSession
from services import asset_users, lineage, retention
from services.checks import (
    HOLDERS_NAMED,
    MAX_ALIASES,
    MAX_LINEAGE,
    check_alias,
    check_aliases,
    check_at_most,
    check_labels,
    check_media_type,
    check_metadata,
    check_name,
    get_or_not_found,
)
from services.compare_and_set import Stamp
from services.errors import BadUserInput, Conflict, NotFound, Unavailable
from services.field_pages import pages_between
from services.group_inserts import grouped
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, encode_id
from services.thumbnails import remove_thumbnails, thumbnail_keys
from services.uploads.closing import close_open_upload
from storage import ObjectStore
from storage.concurrency import bounded_gather

GC_BATCH = 500  # assets the garbage collector deletes per round trip

log = logging.getLogger("graphlake.assets")


async def get_asset(asset_id: ObjectId, field: str = "id") -> Asset:
    return await get_or_not_found(Asset, asset_id, field=field, what="asset")


async def existing_assets(asset_ids: Sequence[ObjectId], field: str | Sequence[str], *, allow_deleted: bool = False,
                          known: Mapping[ObjectId, Asset] | None = None) -> dict[ObjectId, datetime]:
    """NOT_FOUND naming every id (as the API gives it) that names no asset, else CONFLICT naming
    every DELETED one (unless `allow_deleted`); `field` is the input holding them all, or one per
    id, of which the first at fault is named. Only their status and creation time are read, in one
    round trip: a createDatums of 1,000 datums built a Beanie document for each asset. `known`:
    assets the caller has just read or written (a completion filing its uploads), not read again.
    Returns each asset's `created_at` (the key a collection's items keep: documents/collection.py)."""
    known = known or {}
    status = {a: doc.status.value for a, doc in known.items()}
    created = {a: doc.created_at for a, doc in known.items()}
    read = await fields_by_ids(Asset, [a for a in asset_ids if a not in known], ["status", "created_at"])
    status.update({a: doc.get("status") for a, doc in read.items()})
    created.update({a: doc.get("created_at") for a, doc in read.items()})
    fields = [field] * len(asset_ids) if isinstance(field, str) else list(field)
    missing = {a: f for a, f in zip(asset_ids, fields, strict=True) if a not in status}
    if missing:
        named = list(dict.fromkeys(encode_id(NodeType.ASSET, a) for a in missing))
        raise NotFound(f"no such asset(s): {', '.join(named)}", field=next(iter(missing.values())), missing=named)
    deleted = {a: f for a, f in zip(asset_ids, fields, strict=True)
               if not allow_deleted and status[a] == AssetStatus.DELETED.value}
    if deleted:
        named = list(dict.fromkeys(encode_id(NodeType.ASSET, a) for a in deleted))
        raise Conflict(f"asset(s) DELETED: {', '.join(named)}", field=next(iter(deleted.values())), deleted=named)
    return created


async def _check_aliases_free(aliases: list[str], asset_id: ObjectId | None, field: str) -> None:
    if not aliases:
        return
    taken = await Alias.find({"_id": {"$in": aliases}}).to_list()
    others = [a.id for a in taken if a.asset_id != asset_id]
    if others:
        raise Conflict(f"alias(es) already name another asset: {', '.join(others)}", field=field)


async def _insert_aliases(aliases: list[str], asset_id: ObjectId, field: str) -> None:
    if not aliases:
        return
    docs = [{"_id": a, "asset_id": asset_id, "created_at": utcnow()} for a in aliases]
    try:
        await Alias.get_pymongo_collection().insert_many(docs, ordered=False)
    except BulkWriteError as error:
        # Lost a race for a name (or it is ours already): undo only what this call inserted.
        failed = {docs[e["index"]]["_id"] for e in error.details.get("writeErrors", [])}
        mine = set(await Alias.get_pymongo_collection().distinct("_id", {"_id": {"$in": list(failed)}, "asset_id": asset_id}))
        clashing = failed - mine
        if clashing:
            inserted = [a for a in aliases if a not in failed]
            await Alias.get_pymongo_collection().delete_many({"_id": {"$in": inserted}, "asset_id": asset_id})
            raise Conflict(f"alias(es) already name another asset: {', '.join(sorted(clashing))}", field=field) from None


async def create_asset(
    *, kind: AssetKind, name: str, actor: str | None, value: StoredJson | None = None, text: str | None = None,
    media_type: str | None = None, description: str | None = None, labels: Sequence[str] | None = None,
    metadata: StoredJson | None = None, owner: Ownership | None = None, data_timestamp: datetime | None = None,
    aliases: Sequence[str] | None = None, derived_from: Sequence[ObjectId] = (),
) -> Asset:
    """A new ACTIVE VALUE or TEXT asset (FILE assets come from uploads)."""
    name = check_name(name)
    if media_type is not None:
        check_media_type(media_type)
    labels = check_labels(labels)
    alias_list = check_aliases(aliases)
    metadata = check_metadata(metadata or StoredJson.encode({}))
    if derived_from:
        check_at_most(derived_from, MAX_LINEAGE, "assets in a lineage", "derivedFrom")
        await existing_assets(derived_from, [f"derivedFrom[{i}]" for i in range(len(derived_from))], allow_deleted=True)
    await _check_aliases_free(alias_list, None, "aliases")
    payload = value.json.encode() if value is not None else (text or "").encode()
    asset = Asset(
        kind=kind, status=AssetStatus.ACTIVE, name=name, description=description, media_type=media_type,
        size_bytes=len(payload), sha256=hashlib.sha256(payload).hexdigest(), value=value, text=text,
        metadata=metadata, labels=labels, owner=owner or Ownership(),
        data_timestamp=to_millis(data_timestamp) if data_timestamp else None,
        created_by=actor, derived_from=list(dict.fromkeys(derived_from)),
    )
    # Inserted as the document it already is: Beanie's insert encodes it again (3.5 ms against 2.0 ms
    # for the same document raw, measured here), and Asset declares no event hooks for it to run.
    asset.id = ObjectId()
    await lineage.add(asset.id, asset.derived_from)  # before the asset: services/lineage.py
    # With other values being stored at the same moment, in one insert with theirs (services/group_inserts.py).
    await grouped(Asset.get_pymongo_collection()).insert_one(stored(asset))
    try:
        await _insert_aliases(alias_list, asset.id, "aliases")
    except Conflict:
        await asset.delete()  # nothing half-written: the asset goes with its names, and its links
        await lineage.unlink([asset.id])
        raise
    return asset


# The version stamp an update may be made on (services/compare_and_set.py). An asset stored with
# no `updated_at` at all reads as now (its default).
UPDATED_AT: Stamp[Asset] = Stamp(of=lambda asset: to_millis(asset.updated_at), name="updatedAt", what="the asset")


async def update_asset(asset_id: ObjectId, changes: dict[str, Any], *, expected_updated_at: datetime | None = None) -> Asset:
    """Apply validated `changes` (only keys present are changed). With `expected_updated_at`, only
    while the asset's `updated_at` is that (CONFLICT otherwise): `metadata` and `labels` are replaced
    whole, so two writers each changing one key of what they read lost one change unnoticed."""
    asset = await get_asset(asset_id)
    if asset.status is AssetStatus.DELETED:
        raise Conflict("the asset is deleted", field="id")
    expected = UPDATED_AT.expect(asset, expected_updated_at)
    if "name" in changes:
        changes["name"] = check_name(changes["name"] or "")
    if "labels" in changes:
        changes["labels"] = check_labels(changes["labels"])
    if "metadata" in changes:
        changes["metadata"] = check_metadata(changes["metadata"] or StoredJson.encode({}))
    if "data_timestamp" in changes and changes["data_timestamp"] is not None:
        changes["data_timestamp"] = to_millis(changes["data_timestamp"])
    if "owner" in changes:  # an Ownership, or None: stored without its null fields, and none at all when empty
        changes["owner"] = changes["owner"].model_dump() if changes["owner"] is not None else None
        changes["owner"] = changes["owner"] or None
    if "derived_from" in changes:
        given = list(changes["derived_from"] or [])
        derived = list(dict.fromkeys(given))
        if asset_id in derived:  # named where it stands, as every other derivedFrom error names its entry
            raise BadUserInput("an asset cannot derive from itself", field=f"derivedFrom[{given.index(asset_id)}]")
        check_at_most(derived, MAX_LINEAGE, "assets in a lineage", "derivedFrom")
        await existing_assets(given, [f"derivedFrom[{i}]" for i in range(len(given))], allow_deleted=True)
        if (looped := await lineage.cycle_through(asset_id, given)) is not None:
            raise BadUserInput(f"{encode_id(NodeType.ASSET, given[looped])} derives from this asset already (its "
                               "derivedFrom, or theirs, names it): a lineage cannot go round in a cycle",
                               field=f"derivedFrom[{looped}]")
        changes["derived_from"] = derived
    if not changes:
        return asset
    stored = {k: (v.model_dump() if isinstance(v, StoredJson) else v) for k, v in changes.items()}
    if "derived_from" in changes:
        await lineage.add(asset_id, changes["derived_from"])

    # Made only on the `updated_at` read, moving it on; made again on what the asset holds when
    # another writer's change came first, unless `expected` (services/compare_and_set.py).
    async def write(read: datetime, new: datetime) -> bool:
        stored["updated_at"] = new
        # Not on an asset a delete reached since the check: the change landed on it, answered as made.
        # (Without `expected`, also on an asset stored with no `updated_at` at all, which reads as now.)
        on = read if expected is not None else {"$in": [read, None]}
        written = await Asset.get_pymongo_collection().update_one(
            {"_id": asset_id, "status": {"$ne": AssetStatus.DELETED.value}, "updated_at": on}, setting(stored))
        return bool(written.matched_count)

    async def read_again() -> Asset:
        now = await get_asset(asset_id)  # NOT_FOUND if it is gone altogether
        if now.status is AssetStatus.DELETED:
            await lineage.unlink([asset_id])  # the links `add` wrote, which nothing backs
            raise Conflict("the asset was deleted meanwhile", field="id")
        return now

    try:
        await UPDATED_AT.write(asset, expected, write, read_again)
    except (Conflict, Unavailable):  # another writer's change came first (or a delete: relink then finds none)
        if "derived_from" in changes:
            await lineage.relink([asset_id])  # back to what the asset names
        raise
    if "derived_from" in changes:
        await lineage.relink([asset_id])
    return await get_asset(asset_id)


async def add_aliases(asset_id: ObjectId, aliases: Sequence[str]) -> Asset:
    asset = await get_asset(asset_id, field="assetId")
    if asset.status is AssetStatus.DELETED:
        raise Conflict("the asset is deleted", field="assetId")
    alias_list = check_aliases(aliases)
    await _check_aliases_free(alias_list, asset_id, "aliases")
    await _room_for_aliases(asset_id, alias_list, "aliases")
    await _insert_aliases(alias_list, asset_id, "aliases")
    if await in_use_despite_delete([asset_id]):  # a delete ran between the check and the write: the names go
        await Alias.get_pymongo_collection().delete_many({"_id": {"$in": alias_list}, "asset_id": asset_id})
        raise Conflict("the asset was deleted meanwhile", field="assetId")
    return asset


async def _room_for_aliases(asset_id: ObjectId, adding: list[str], field: str) -> None:
    """CONFLICT naming `field` when `adding` (those not the asset's already) would give the asset more
    than MAX_ALIASES: `Asset.aliases` is a plain list, bounded so (README: Lists). Two requests adding
    at once may each see room; a read gives the first MAX_ALIASES all the same (loaders.aliases)."""
    held = set(await Alias.get_pymongo_collection().distinct("_id", {"asset_id": asset_id}))
    new = [a for a in adding if a not in held]
    if new and len(held) + len(new) > MAX_ALIASES:
        raise Conflict(f"an asset holds at most {MAX_ALIASES} aliases; this one holds {len(held)}, and {len(new)} more "
                       "were asked for: remove some first (removeAliases)", field=field)


async def remove_aliases(asset_id: ObjectId, aliases: Sequence[str]) -> Asset:
    asset = await get_asset(asset_id, field="assetId")
    await Alias.get_pymongo_collection().delete_many({"_id": {"$in": list(aliases)}, "asset_id": asset_id})
    return asset


async def move_alias(alias: str, asset_id: ObjectId, expected: ObjectId | None = None) -> Asset:
    """Point `alias` at `asset_id` in one write, creating it if new: a reader resolves the alias to
    the old asset or the new one, never to nothing (what a save under a name needs). With
    `expected`, only while the alias names that asset (CONFLICT otherwise): two writers saving under
    one name then cannot overwrite each other's save unnoticed."""
    asset = await get_asset(asset_id, field="assetId")
    if asset.status is AssetStatus.DELETED:
        raise Conflict("the asset is deleted", field="assetId")
    alias = check_alias(alias, "alias")  # the argument's name, not `aliases[0]`
    await _room_for_aliases(asset_id, [alias], "assetId")
    query: dict[str, Any] = {"_id": alias} if expected is None else {"_id": alias, "asset_id": expected}
    try:  # what the alias named before, to give it back should the asset turn out deleted meanwhile
        before = await Alias.get_pymongo_collection().find_one_and_update(
            query, {"$set": {"asset_id": asset_id, "moved_at": utcnow()}, "$setOnInsert": {"created_at": utcnow()}},
            upsert=expected is None, return_document=ReturnDocument.BEFORE)
    except DuplicateKeyError:  # only with upsert: another writer created the alias first
        raise Conflict(f"alias {alias!r} was created by another writer meanwhile; try again", field="alias") from None
    if expected is not None and before is None:
        raise Conflict(f"alias {alias!r} no longer names the expected asset", field="expectedAssetId")
    if await in_use_despite_delete([asset_id]):
        await _alias_back(alias, asset_id, before)
        raise Conflict(f"the asset was deleted meanwhile; alias {alias!r} names what it named before", field="assetId")
    return asset


async def _alias_back(alias: str, asset_id: ObjectId, before: Mapping[str, Any] | None) -> None:
    """Undo a move of `alias` to `asset_id`, which a delete reached between move_alias's check and its
    write: left so, the alias named a DELETED asset for good (the delete had removed that asset's
    aliases before the move came), and the asset it named before, under no name, was lost to a
    save. The alias names its former asset again (none: it goes), unless a writer has moved it
    since, or that asset is DELETED too. The delete may have removed the alias meanwhile (it frees a
    deleted asset's names after its flip): then it is made again, as it was."""
    aliases = Alias.get_pymongo_collection()
    previous = before["asset_id"] if before is not None else None
    if previous is None or previous == asset_id or await in_use_despite_delete([previous]):
        await aliases.delete_one({"_id": alias, "asset_id": asset_id})
        return
    back = await aliases.update_one({"_id": alias, "asset_id": asset_id},
                                    {"$set": {"asset_id": previous, "moved_at": utcnow()}})
    if back.matched_count == 0:
        try:
            await aliases.insert_one({**before, "_id": alias, "asset_id": previous, "moved_at": utcnow()})
        except DuplicateKeyError:  # taken by another writer since: theirs stands
            pass


async def aliased_asset(alias: str) -> tuple[Asset | None, datetime | None]:
    """The asset `alias` names and since when it names it (Alias.names_since); (None, None) for no such alias."""
    found = await Alias.get(alias)
    return (await Asset.get(found.asset_id), found.names_since) if found else (None, None)




def holder_ids(pins: Sequence[AssetRetention]) -> list[str]:
    """The global ids of what these pins hold an asset for, in pin order, each once."""
    return list(dict.fromkeys(retention.holder_id(p.owner_type, p.owner_id) for p in pins))


# A forced delete names this many of the holders it broke (`DeletePayload.broken`), as its audit
# event keeps this many ids (services/events/audit.MAX_IDS), and counts them all (`brokenCount`): an
# image a dataset versions every night is pinned by 365 versions a year, and every one was named.
BROKEN_NAMED = 100


@dataclass
class Broken:
    """What a forced delete broke: the global ids of the first BROKEN_NAMED holders, and how many in all."""

    named: list[str] = field(default_factory=list)
    count: int = 0


@dataclass
class _Holding:
    """What holds or uses an asset: the global ids of the first BROKEN_NAMED pins' holders and of the
    first few datums and records using it (`holders`), how many pins, and, while anything holds or
    uses it, how many in all and the first few named."""

    holders: list[str]
    pins: int
    count: int = 0
    named: list[str] = field(default_factory=list)
    text: str = ""  # e.g. "2 holder(s) keep this asset (COLLECTION, DATUM: Q29s..., RGF0...)"


async def _holding(asset_id: ObjectId) -> _Holding:
    """Its pins read BROKEN_NAMED at most, in the order they were made, and counted (one pin per
    holder: a holder pins an asset once)."""
    pins = await AssetRetention.find({"asset_id": asset_id}).sort("_id").limit(BROKEN_NAMED).to_list()
    pin_count = len(pins) if len(pins) < BROKEN_NAMED else await AssetRetention.find({"asset_id": asset_id}).count()
    pinned_by = holder_ids(pins)
    users = await asset_users.users_of(asset_id)
    found = _Holding(pinned_by + [gid for _, named in users.values() for gid in named], pin_count,
                     pin_count + sum(count for count, _ in users.values()))
    if found.count:
        kinds = sorted({p.owner_type.value for p in pins} | {kind.name for kind in users})
        found.named = pinned_by[:HOLDERS_NAMED] + [gid for _, first in users.values() for gid in first]
        shown = ", ".join(found.named) + (", ..." if found.count > len(found.named) else "")
        found.text = f"{found.count} holder(s) keep this asset ({', '.join(kinds)}: {shown})"
    return found


async def holders_of(asset_id: ObjectId) -> str | None:
    """What keeps the asset from a delete without force (its holders, as that delete names them), or None."""
    return (await _holding(asset_id)).text or None


async def delete_asset(asset_id: ObjectId, force: bool, stores: dict[str, ObjectStore]) -> tuple[Asset, Broken]:
    """Mark an asset DELETED and remove its uploaded bytes (never an EXTERNAL object's); returns it
    with what the delete broke (Broken: its pins' holders, then the first few datums and annotation
    records using it, the first BROKEN_NAMED named, all counted). While anything holds or uses it,
    only `force` deletes it (the caller checks the role it needs): it drops the asset from its
    collections and releases its manual pins; dataset versions, datums and records keep their
    reference and show it DELETED."""
    asset = await get_asset(asset_id)
    if asset.status is AssetStatus.DELETED:
        # Asked again: finish what a delete cut short after its flip left (the store failed on the
        # bytes, the process died), or the thumbnails and aliases would stay for good.
        await _remove_what_it_left(asset, stores, flagged=asset.unpinned_at is not None)
        return asset, Broken()
    holding = await _holding(asset_id)
    if holding.count and not force:
        raise Conflict(f"{holding.text}; an ADMIN may pass force: true to delete it anyway", field="id",
                       pins=holding.pins, holders=holding.named)
    holders = holding.holders
    # Order: leave collections and pins first, then flip the status, then free the names.
    left: set[ObjectId] = set()  # the collections it left
    if force or asset.collection_ids:
        left |= await _leave_collections(asset_id)
    manual = 0
    if force:  # without force there were none: a pin now is one made meanwhile, which keeps the asset
        manual = (await AssetRetention.get_pymongo_collection().delete_many(
            {"asset_id": asset_id, "owner_type": RetentionOwnerType.MANUAL_PIN.value}
        )).deleted_count
    if _stored_bytes(asset):
        await _sweep_later([asset])  # before the flip: a delete cut short after it still loses the bytes
    now = utcnow()
    await Asset.get_pymongo_collection().update_one(
        {"_id": asset_id},
        {"$set": {"status": AssetStatus.DELETED.value, "deleted_at": now, "updated_at": now, "collection_ids": []}},
    )
    broken = Broken()
    if not force:
        await _still_unused(asset)
    else:
        # An addToCollection that wrote since the first pass looked for the delete before the flip,
        # saw none and kept its item: it goes now, as the delete promised.
        left |= await _leave_collections(asset_id)
        # And who holds it now: a version build that pinned it meanwhile is broken too, and named.
        # Counted as what it left (collections, manual pins) and what still points at it, not as
        # the first pass counted: that missed such a version, and counted a holder gone meanwhile.
        after = await _holding(asset_id)
        broken.named = list(dict.fromkeys(holders + after.holders))[:BROKEN_NAMED]
        broken.count = max(len(left) + manual + after.count, len(broken.named))
    # Leaving its collections released their pins, which flagged the asset (read unflagged above) if
    # nothing else pinned it: that flag goes too, or the collector took it for a delete cut short.
    await _remove_what_it_left(asset, stores, flagged=asset.unpinned_at is not None or force or bool(asset.collection_ids))
    return await get_asset(asset_id), broken


async def _leave_collections(asset_id: ObjectId) -> set[ObjectId]:
    """Take the asset out of every collection that holds it, as its items and its collections' pins
    say now: the asset's own `collection_ids`, read as the delete began, missed a collection an add
    put it in since, whose item and pin then stayed on the DELETED asset."""
    items = CollectionItem.get_pymongo_collection()
    held_in = {i["collection_id"] async for i in items.find({"asset_id": asset_id}, {"collection_id": 1})}
    held_in |= {p["owner_id"] async for p in AssetRetention.get_pymongo_collection().find(
        {"asset_id": asset_id, "owner_type": RetentionOwnerType.COLLECTION.value}, {"owner_id": 1})}
    if held_in:
        await items.delete_many({"asset_id": asset_id})
    for collection_id in held_in:
        await retention.release(RetentionOwnerType.COLLECTION, collection_id, [asset_id])
    return held_in


async def _remove_what_it_left(asset: Asset, stores: dict[str, ObjectStore], *, flagged: bool) -> None:
    """What goes once an asset is DELETED: its aliases, lineage links, its upload if still open,
    uploaded bytes and their thumbnails (each idempotent: run again by a retry of the delete). Should the store fail, the
    marks _sweep_later made have the reconciler delete the bytes and thumbnails later. Then its flag
    for the garbage collector, if it may have one (`flagged`)."""
    await Alias.get_pymongo_collection().delete_many({"asset_id": asset.id})
    await lineage.unlink([asset.id])
    if _stored_bytes(asset) and asset.status in (AssetStatus.PENDING, AssetStatus.DELETED):
        # Still uploading (or a delete cut short, asked again): its upload is aborted and its parts
        # removed now, not when it expires. Here, once the delete can no longer be undone
        # (_still_unused): undone, the asset would be PENDING with no upload left to finish it. An
        # ACTIVE or FAILED asset's upload is closed already: no read for it.
        await close_open_upload(asset.id, stores)
    if _stored_bytes(asset) and asset.storage and asset.storage.mount in stores:
        try:
            await stores[asset.storage.mount].delete(asset.storage.key)
            await remove_thumbnails(asset, stores)
        except Exception:  # any store failure: the asset is DELETED, and the sweep marks outlive this
            # Raised, the delete that took effect answered INTERNAL and went unaudited, and a retry found
            # the asset gone.
            log.warning("the bytes of deleted asset %s stay until the reconciler's sweep: the store failed",
                        asset.id, exc_info=True)
            return
        await _thumbnails_removed([asset])
    if flagged:  # last, as the collector's (_remove_left_by): flagged, it finishes a delete cut short
        await Asset.get_pymongo_collection().update_one(
            {"_id": asset.id, "status": AssetStatus.DELETED.value}, cleared("unpinned_at"))


def _stored_bytes(asset: Asset) -> bool:
    """Whether the asset's bytes are the lake's to delete (uploaded, never an EXTERNAL object)."""
    return asset.kind is AssetKind.FILE and asset.storage is not None and not asset.storage.external


async def _still_unused(asset: Asset) -> None:
    """Look again once the asset is DELETED: a datum, record, pin or collection item made while the
    delete checked (each of those checks the asset after it writes, too) keeps it, and the delete is
    undone (the collections it is in now are taken from their items)."""
    pins = await AssetRetention.find({"asset_id": asset.id}).count()
    users = await asset_users.users_of(asset.id)
    if pins or users:
        held_by = [i["collection_id"] async for i in CollectionItem.get_pymongo_collection().find(
            {"asset_id": asset.id}, {"collection_id": 1})]
        await Asset.get_pymongo_collection().update_one(
            {"_id": asset.id}, {"$set": {"status": asset.status.value, "collection_ids": held_by},
                                "$unset": {"deleted_at": ""}})
        raise Conflict("something began using this asset while it was being deleted; it is kept", field="id")


async def in_use_despite_delete(asset_ids: Sequence[ObjectId]) -> list[ObjectId]:
    """Which of these assets turned DELETED: asked after writing a datum or record that uses them,
    so that a delete racing the write is caught by one side or the other (see _still_unused)."""
    return [a["_id"] async for a in Asset.get_pymongo_collection().find(
        {"_id": {"$in": list(set(asset_ids))}, "status": AssetStatus.DELETED.value}, {"_id": 1})]


async def collect_unpinned(older_than: timedelta, stores: dict[str, ObjectStore], *, dry_run: bool = False) -> list[Asset]:
    """Every round of unpinned_rounds, as one list (tests, and lakes small enough to hold it)."""
    return [asset async for deleted in unpinned_rounds(older_than, stores, dry_run=dry_run) for asset in deleted]


async def unpinned_rounds(older_than: timedelta, stores: dict[str, ObjectStore], *,
                          dry_run: bool = False) -> AsyncIterator[list[Asset]]:
    """The garbage collector: delete, as deleteAsset does without `force`, every asset nothing has
    pinned for `older_than` and no datum or annotation record uses (uploaded bytes go, EXTERNAL
    objects never do). One pinned again in the meantime is kept. Yields what each round deleted
    (with `dry_run`, what it would delete).

    A round is GC_BATCH flagged assets, read in order of their flag (then `_id`) after the last
    round's, through the index on both: the candidates were read whole before, and a lake unpinning
    a million assets would have held all of their models; then, in `_id` order, each round's read
    sorted every candidate left to find its 500 (a backlog of n took n * n / 500 reads on the
    embedded default). A DELETED asset still flagged is a delete cut short after its flip (the
    flag goes last, _remove_left_by): once settled, its round finishes it, unlisted."""
    if older_than <= timedelta(0):
        raise BadUserInput("must be more than 0 days", field="olderThan")
    cutoff = utcnow() - older_than
    settled = utcnow() - DELETE_SETTLED
    due = {"unpinned_at": {"$ne": None, "$lt": cutoff},
           "status": {"$nin": [AssetStatus.DELETED.value, AssetStatus.PENDING.value]}}
    async for page in pages_between(Asset.get_pymongo_collection(), {}, "unpinned_at", GC_BATCH,
                                    after=None, before=cutoff):
        batch = [Asset.model_validate(raw) for raw in page
                 if raw.get("status") not in (AssetStatus.DELETED.value, AssetStatus.PENDING.value)]
        if dry_run:  # what _collect would keep, left out: one pinned again (or whose release was cut short), one in use
            ids = [a.id for a in batch]
            kept = await retention.pinned(ids) | await asset_users.used(ids) | await _in_collections(ids, repin=False)
            yield [a for a in batch if a.id not in kept]
            continue
        if cut_short := [Asset.model_validate(raw) for raw in page if raw.get("status") == AssetStatus.DELETED.value
                         and (raw.get("deleted_at") is None or raw["deleted_at"] < settled)]:  # none: from long ago
            try:
                await _remove_left_by(cut_short, stores)
            except Exception:  # a store still failing (away, refusing): their flags stay, a later round tries
                # again. Raised, it ended every round here, before this page's candidates: nothing was
                # collected, on any mount, until that store came back.
                log.warning("%d asset delete(s) cut short after the assets turned DELETED are not finished yet",
                            len(cut_short), exc_info=True)
            else:
                log.info("finished %d asset delete(s) cut short after the assets turned DELETED", len(cut_short))
        yield await _collect(batch, due, stores)


# How long after a delete's flip a DELETED asset still flagged counts as a delete cut short. Before
# it, the delete may still be running, or about to be undone (_still_unused, _collect's look again):
# finished then, an asset brought back would have lost its names and bytes.
DELETE_SETTLED = timedelta(hours=1)


async def _collect(batch: list[Asset], due: dict[str, Any], stores: dict[str, ObjectStore]) -> list[Asset]:
    """Delete a batch of unpinned assets in a few round trips, whatever its size. An unpinned
    asset is in no collection and has no pins, so only its status, its aliases and its bytes go."""
    ids = [a.id for a in batch]
    pinned = await retention.pinned(ids)
    if pinned:  # pinned again (or still: a release cut short, which flags anew when run again): no longer a
        # candidate. Only while `due`: a release since has flagged it from now, which must stay.
        await Asset.get_pymongo_collection().update_many({"_id": {"$in": list(pinned)}, **due}, cleared("unpinned_at"))
    ids = [i for i in ids if i not in pinned]
    held = await _in_collections(ids, repin=True)  # in a collection all the same: pinned again, kept
    ids = [i for i in ids if i not in held]
    in_use = await asset_users.used(ids)  # a datum's role or an annotation's asset: not collected while used
    if in_use:
        await _flag_again(list(in_use), due)
    ids = [i for i in ids if i not in in_use]
    if not ids:
        return []
    going = set(ids)
    await _sweep_later([a for a in batch if a.id in going and a.kind is AssetKind.FILE and a.storage
                        and not a.storage.external])  # before the flip, as deleteAsset's
    now = utcnow()
    # `due` again: an asset a pin reached meanwhile (its unpinned_at cleared) or deleted by hand is left alone.
    await Asset.get_pymongo_collection().update_many(
        {"_id": {"$in": ids}, **due},
        {"$set": {"status": AssetStatus.DELETED.value, "deleted_at": now, "updated_at": now, "collection_ids": []}})
    flipped = set(await Asset.get_pymongo_collection().distinct(
        "_id", {"_id": {"$in": ids}, "status": AssetStatus.DELETED.value, "deleted_at": now}))
    # Look again, as deleteAsset does: what a datum, record or pin took meanwhile is given back. One a
    # pin took loses its flag, as a pin's asset does; one only a datum or record took keeps it (_flag_again).
    pinned = await retention.pinned(list(flipped))
    taken = pinned | await asset_users.used(list(flipped))
    for asset in (a for a in batch if a.id in taken):
        back = {"$set": {"status": asset.status.value}, **cleared("deleted_at")}
        if asset.id in pinned:
            back["$unset"]["unpinned_at"] = ""
        else:
            back["$set"]["unpinned_at"] = utcnow()
        await Asset.get_pymongo_collection().update_one({"_id": asset.id}, back)
    flipped -= taken
    gone = [a.model_copy(update={"status": AssetStatus.DELETED, "deleted_at": now, "updated_at": now,
                                 "collection_ids": []}) for a in batch if a.id in flipped]
    await _remove_left_by(gone, stores)
    return gone


async def _flag_again(asset_ids: list[ObjectId], due: dict[str, Any]) -> None:
    """Keep these flagged assets that a datum or record uses flagged, from now: not collected while
    used, and collected by a later round once nothing uses them. Their flag was dropped here before,
    and nothing flagged them again when their last datum or record went (a use's removal does not
    look at pins), so their bytes stayed for good. Kept instead, the flag needs no writer of a datum
    or record to keep it right, so a use added or removed at the same time as this round cannot lose
    it: only a pin clears it (`due` again here: one a pin reached meanwhile is left as the pin left
    it). From now, not as it was: a round reads such an asset again only once the grace period has
    passed once more, not every round for as long as it is used. A datum's or record's delete moves
    the flag on to its own time (retention.flag_anew), so the grace period counts from the last use's
    removal; one cut short before that leaves the flag as this round set it, a shorter wait, never a
    lost flag."""
    await Asset.get_pymongo_collection().update_many({"_id": {"$in": asset_ids}, **due},
                                                     {"$set": {"unpinned_at": utcnow()}})


async def _remove_left_by(gone: list[Asset], stores: dict[str, ObjectStore]) -> None:
    """What goes once these assets are DELETED (as _remove_what_it_left, for a round at once): their
    aliases, lineage links, uploaded bytes and thumbnails; then their flag, last. A delete cut short
    before (a crash, a store that failed) leaves the flag on a DELETED asset, which the collector
    reads with its candidates and finishes (unpinned_rounds): names were held by a DELETED asset for
    good otherwise. Once done, the asset is no longer among the flagged ones every round reads."""
    if not gone:
        return
    ids = [a.id for a in gone]
    await Alias.get_pymongo_collection().delete_many({"asset_id": {"$in": ids}})
    await lineage.unlink(ids)
    files = [a.storage for a in gone if _stored_bytes(a) and a.storage and a.storage.mount in stores]
    await bounded_gather([lambda ref=ref: stores[ref.mount].delete(ref.key) for ref in files])
    await bounded_gather([lambda a=a: remove_thumbnails(a, stores) for a in gone])
    await _thumbnails_removed([a for a in gone if a.storage and a.storage.mount in stores])
    await Asset.get_pymongo_collection().update_many(
        {"_id": {"$in": ids}, "status": AssetStatus.DELETED.value}, cleared("unpinned_at"))


async def _in_collections(asset_ids: list[ObjectId], *, repin: bool) -> set[ObjectId]:
    """Those of these unpinned assets that a collection item holds all the same, pinned again for
    their collections (`repin`), which clears their flag. A removal racing an add of the same asset
    left that: the add pinned (its pin there already), the removal took the item and released the
    pin, the add wrote the item anew. Both now look again after their writes and settle it themselves
    (services/collections._settle); an add or a removal cut short before its look still leaves it.
    Collected, the asset was gone from under its collection."""
    items = CollectionItem.get_pymongo_collection()
    found = await items.find({"asset_id": {"$in": asset_ids}}, {"asset_id": 1, "collection_id": 1}).to_list()
    if repin and found:
        by_collection: dict[ObjectId, list[ObjectId]] = {}
        for item in found:
            by_collection.setdefault(item["collection_id"], []).append(item["asset_id"])
        for collection_id, held in by_collection.items():
            await retention.pin(held, RetentionOwnerType.COLLECTION, collection_id, None)
        # Looked for again once pinned: a removal of an item (or its collection's delete) after the
        # read above released its pins before this pin was made, which then kept the asset for good.
        # Either takes the item out before its pins, so an item gone now has its pin released here,
        # and one still there is taken out, pin and all, by that removal's release.
        still = {(i["collection_id"], i["asset_id"]) async for i in items.find(
            {"asset_id": {"$in": [i["asset_id"] for i in found]}}, {"asset_id": 1, "collection_id": 1})}
        for collection_id, held in by_collection.items():
            if left := [a for a in held if (collection_id, a) not in still]:
                await retention.release(RetentionOwnerType.COLLECTION, collection_id, left)
    return {item["asset_id"] for item in found}


async def _sweep_later(assets: list[Asset]) -> None:
    """Mark the asset's upload to have its key deleted once more by the reconciler
    (reconciler.sweep_closed), which it does only to the key of an asset then DELETED. Marked before
    the asset turns DELETED, so that a delete cut short (a crash, the store down) between that and
    the bytes' deletion still loses them; and after, since the upload's PUT URL (create-only, valid
    until the session expires) could store them again. A session shares its asset's id; a file
    stored without one (ingested, copied in) gets a closed one for this alone.

    An ACTIVE image's thumbnails (the only ones that may have any) are marked so too, each by a
    closed session of its own under the asset: a delete whose store failed (or that died) after the
    flip left them for good otherwise, since the sweep deleted the upload's key alone. Their marks
    go once the delete has removed them (_thumbnails_removed); the sweep spares them, as the
    bytes, if the delete is undone."""
    marks = []
    for asset in assets:
        if asset.storage is not None:
            made = UploadSession.completed_for(asset).model_dump(by_alias=True, exclude={"id", "sweep_due"})
            marks.append(UpdateOne({"_id": asset.id}, {"$set": {"sweep_due": True}, "$setOnInsert": made}, upsert=True))
            if asset.status is AssetStatus.ACTIVE:
                beside = {k: v for k, v in made.items() if k not in ("asset_id", "key")}
                marks += [UpdateOne({"asset_id": asset.id, "key": key}, {"$set": {"sweep_due": True}, "$setOnInsert": beside},
                                    upsert=True) for key in thumbnail_keys(asset)]
    if marks:
        await UploadSession.get_pymongo_collection().bulk_write(marks, ordered=False)


async def _thumbnails_removed(assets: list[Asset]) -> None:
    """Drop the marks of these assets' thumbnails (see _sweep_later): removed, nothing is left to sweep.
    (The upload's own mark stays: its PUT URL could store the bytes again until it expires.)"""
    keys = [key for asset in assets for key in thumbnail_keys(asset)]
    if keys:
        await UploadSession.get_pymongo_collection().delete_many(
            {"asset_id": {"$in": [a.id for a in assets]}, "key": {"$in": keys}, "_id": {"$nin": [a.id for a in assets]}})


async def pin_asset(asset_id: ObjectId, actor: str | None) -> AssetRetention:
    asset = await get_asset(asset_id, field="assetId")
    if asset.status is AssetStatus.DELETED:
        raise Conflict("the asset is deleted", field="assetId")
    pin_id = ObjectId()  # a manual pin owns itself: unpinning it removes exactly this pin
    pin = AssetRetention(id=pin_id, asset_id=asset_id, owner_type=RetentionOwnerType.MANUAL_PIN, owner_id=pin_id,
                         created_by=actor)
    await pin.insert()
    # Not a DELETED asset's flag: deleted since the check, its flag marks a delete the collector
    # finishes if it was cut short (retention._unflag).
    await Asset.get_pymongo_collection().update_one({"_id": asset_id, "status": {"$ne": AssetStatus.DELETED.value}},
                                                    cleared("unpinned_at"))
    if await in_use_despite_delete([asset_id]):  # a delete ran between the check and the pin: the pin goes
        await AssetRetention.get_pymongo_collection().delete_one({"_id": pin_id})
        raise Conflict("the asset was deleted meanwhile", field="assetId")
    return pin


async def unpin_asset(retention_id: ObjectId) -> None:
    pin = await AssetRetention.get(retention_id)
    if pin is None:  # released already (or by a forced delete): unpinning again is done. A removed pin
        # leaves no trace, so an ID no pin ever had cannot be told from it and is done too (no NOT_FOUND:
        # a retry of an unpin whose answer was lost would get one).
        return
    if pin.owner_type is not RetentionOwnerType.MANUAL_PIN:
        raise Conflict(f"this pin belongs to a {pin.owner_type.value.lower().replace('_', ' ')}; "
                       "remove the asset from it instead", field="retentionId")
    await retention.release(RetentionOwnerType.MANUAL_PIN, pin.owner_id)
