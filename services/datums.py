"""Datum business steps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.annotation import AnnotationRecord
from documents.clock import to_millis, utcnow
from documents.dataset import USES_COLLECTION, Datum, DatumAsset, RoleRef, VersionMember
from documents.sparse import setting, stored
from services import batches, delete_marks, retention
from services.assets import existing_assets, in_use_despite_delete
from services.availability import no_time_limit
from services.checks import HOLDERS_NAMED, MAX_ROLES, check_at_most, check_metadata, check_no_controls, refuse_if_held
from services.compare_and_set import Stamp
from services.errors import BadUserInput, Conflict, NotFound
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, encode_id


async def create_datums(datums: Sequence[Datum], max_items: int) -> list[Datum]:
    """Check every datum (roles named once each, every asset existing), then insert them all, or none (services/batches.py)."""
    if not datums:
        raise BadUserInput("give at least one datum", field="inputs")
    if len(datums) > max_items:
        raise BadUserInput(f"at most {max_items} datums at once", field="inputs")
    for i, datum in enumerate(datums):
        if not datum.roles:
            raise BadUserInput("a datum needs at least one role", field=f"inputs[{i}].roles")
        check_at_most([r.role for r in datum.roles], MAX_ROLES, "roles in a datum", f"inputs[{i}].roles")
        seen: set[str] = set()
        for j, role in enumerate(datum.roles):
            if not role.role.strip():
                raise BadUserInput("a role needs a name", field=f"inputs[{i}].roles[{j}].role")
            check_no_controls(role.role, f"inputs[{i}].roles[{j}].role")  # a name's rule, as exports carry it
            if role.role in seen:
                raise BadUserInput(f"role {role.role!r} appears twice", field=f"inputs[{i}].roles[{j}].role")
            seen.add(role.role)
        check_metadata(datum.metadata, field=f"inputs[{i}].metadata")
    await existing_assets([r.asset_id for d in datums for r in d.roles],
                          [f"inputs[{i}].roles[{j}].assetId" for i, d in enumerate(datums) for j in range(len(d.roles))])
    now = utcnow()
    for datum in datums:
        datum.id = ObjectId()
        datum.created_at = now
    await insert_datums(datums)
    deleted = await in_use_despite_delete([r.asset_id for d in datums for r in d.roles])
    if deleted:  # a delete ran between the check and the write: the datums go, not the delete
        await remove_datums(datums)
        named = [encode_id(NodeType.ASSET, a) for a in deleted]
        raise Conflict(f"asset(s) deleted meanwhile: {', '.join(named)}", field="inputs", deleted=named)
    return list(datums)


async def insert_datums(datums: Sequence[Datum]) -> None:
    """Insert new datums (ids set) all or none, each with its uses of its assets (documents/dataset.DatumAsset).
    The uses' ids are made after the datums', in their order: an asset's uses in `_id` order list its
    datums oldest first. Their documents are made in a thread: some 8 ms a thousand datums, which
    a createDatums of 10,000 (or a version built from a collection) held the event loop for."""
    def documents() -> tuple[list[dict], list[dict]]:
        uses = [use for d in datums for use in _uses(d.id, [r.asset_id for r in d.roles])]
        return [stored(d) for d in datums], uses

    made, uses = await asyncio.to_thread(documents)
    await batches.insert_all(Datum.get_pymongo_collection(), made, before=[(DatumAsset.get_pymongo_collection(), uses)])


def _uses(datum_id: ObjectId, asset_ids: Sequence[ObjectId]) -> list[dict]:
    """A datum's uses of its role assets: one per asset (an asset in two roles is used once)."""
    return [{"_id": ObjectId(), "asset_id": asset_id, "datum_id": datum_id} for asset_id in dict.fromkeys(asset_ids)]


async def remove_datums(datums: Sequence[Datum]) -> None:
    """Delete datums, then their uses: in that order, so that a datum is never there without them (what
    uses an asset must see it). A use left by a crash in between names a datum that is gone, which
    every reader skips (services/asset_users.py)."""
    await _remove([d.id for d in datums], {r.asset_id for d in datums for r in d.roles})


async def remove_datums_by_id(datum_ids: Sequence[ObjectId], batch: int) -> None:
    """remove_datums of the datums with these ids (those still there), `batch` at a time: only
    their roles' assets are read (a failed build from a collection removes every datum it made)."""
    for start in range(0, len(datum_ids), batch):
        found = await fields_by_ids(Datum, datum_ids[start:start + batch], ["roles.asset_id"])
        await _remove(list(found), {r["asset_id"] for doc in found.values() for r in doc.get("roles", [])})


async def _remove(datum_ids: list[ObjectId], asset_ids: set[ObjectId]) -> None:
    await Datum.get_pymongo_collection().delete_many({"_id": {"$in": datum_ids}})
    await DatumAsset.get_pymongo_collection().delete_many({"asset_id": {"$in": list(asset_ids)},
                                                           "datum_id": {"$in": datum_ids}})
    await retention.flag_anew(asset_ids)  # perhaps their last use: a grace period from now


async def write_uses(db: AsyncDatabase) -> None:
    """Write every datum's uses again from its roles (a restore: backups leave them out, see
    services/backups/writer.py), in datum order. The datums of a batch still in the journal get none:
    unfinished, they go at the next start (services/batches.remove_abandoned)."""
    await db[USES_COLLECTION].delete_many({})
    unfinished = [entry["_id"] async for entry in db[batches.JOURNAL].find({}, {"_id": 1})]
    uses: list[dict] = []
    async for datum in db[Datum.Settings.name].find({"batch": {"$nin": unfinished}}, {"roles.asset_id": 1},
                                                    sort=[("_id", 1)]):
        uses += _uses(datum["_id"], [role["asset_id"] for role in datum.get("roles", [])])
        if len(uses) >= batches.CHUNK:
            await db[USES_COLLECTION].insert_many(uses)
            uses = []
    if uses:
        await db[USES_COLLECTION].insert_many(uses)


def role_refs(roles: Sequence[tuple[str, ObjectId]]) -> list[RoleRef]:
    return [RoleRef(role=role, asset_id=asset_id) for role, asset_id in roles]


def updated_at(datum: Datum) -> datetime:
    """When the datum last changed: its `updated_at`, or its `created_at` until an update set one."""
    return to_millis(datum.updated_at or datum.created_at)


UPDATED_AT: Stamp[Datum] = Stamp(of=updated_at, name="updatedAt", what="the datum")  # services/compare_and_set.py


async def update_datum(datum_id: ObjectId, changes: dict[str, Any], *, expected_updated_at: datetime | None = None) -> Datum:
    """Apply `changes` (split, metadata: only keys present). With `expected_updated_at`, only while the
    datum's updatedAt is that (CONFLICT otherwise): `metadata` is replaced whole, so two writers each
    changing one key of what they read lost one change unnoticed. Every write is made on the updatedAt
    it read and moves it on by at least a millisecond (as services/assets.update_asset's)."""
    datum = await Datum.get(datum_id)
    if datum is None:
        raise NotFound(f"no datum {encode_id(NodeType.DATUM, datum_id)}", field="id")
    expected = UPDATED_AT.expect(datum, expected_updated_at)
    if "metadata" in changes:
        changes["metadata"] = check_metadata(changes["metadata"]).model_dump()
    if "split" in changes:
        if changes["split"] is None:
            raise BadUserInput("a datum always has a split (UNASSIGNED at least)", field="split")
        changes["split"] = changes["split"].value
    if not changes:
        return datum

    async def write(read: datetime, new: datetime) -> bool:
        changes["updated_at"] = new
        # On the updatedAt read: stored, or (none stored yet) its created_at.
        on = {"$or": [{"updated_at": read}, {"updated_at": None, "created_at": read}]}
        return bool((await Datum.get_pymongo_collection().update_one({"_id": datum_id, **on}, setting(changes))).matched_count)

    await UPDATED_AT.write(datum, expected, write, partial(_read_again, datum_id))
    return await _read_again(datum_id)


async def _read_again(datum_id: ObjectId) -> Datum:
    """The datum once an update has written, or lost a race. A delete may land between the update's
    look and its write, or after it: NOT_FOUND either way, not the INTERNAL error a datum read back as
    nothing gave."""
    datum = await Datum.get(datum_id)
    if datum is None:
        raise NotFound(f"no datum {encode_id(NodeType.DATUM, datum_id)} (deleted meanwhile)", field="id")
    return datum


async def delete_datum(datum_id: ObjectId) -> None:
    """Delete a datum that no dataset version and no annotation record holds (those would point at
    nothing). Its assets stay; the garbage collector takes those nothing else holds. One gone
    already is done.

    Marked first (services/delete_marks.py), as an annotation set's delete is: the datum is marked
    (`deleting_at`) before its holders are looked for, and addAnnotations and version builds look for
    the mark after writing their records or members (services/annotations.add_records,
    services/version_build._still_held), so whichever comes second sees the other. Nothing is removed until the delete has passed its checks: refused, it only takes its
    mark back, and a delete of one of its role assets meanwhile still finds the datum using it (the
    delete removed the datum and its uses, then brought them back, and an asset delete in between
    took the asset from under the datum). A delete cut short leaves its mark: addAnnotations refuses
    the datum until a retry, or the maintenance (services/unfinished_deletes.py), finishes it."""
    datums = Datum.get_pymongo_collection()
    token = await delete_marks.mark(datums, datum_id, {"deleting_at": utcnow()})
    if token is None:
        return
    limit = HOLDERS_NAMED + 1
    try:
        versions = VersionMember.get_pymongo_collection().find({"datum_id": datum_id}, {"version_id": 1}).limit(limit)
        refuse_if_held("this datum", {
            "dataset versions": [encode_id(NodeType.DATASET_VERSION, m["version_id"]) async for m in versions],
            "annotation records": await _records_on(datum_id, limit),
        }, "delete those first")
        await delete_marks.commit(datums, datum_id, token, "this datum")
    except BaseException:
        await delete_marks.take_back(datums, datum_id, token, {"$unset": {"deleting_at": ""}})
        raise
    # Past its checks: cut short here (a slow database), the datum would stay marked until a retry.
    with no_time_limit():
        datum = await datums.find_one({"_id": datum_id}, {"roles.asset_id": 1})
        if datum is not None:
            await _remove([datum_id], {r["asset_id"] for r in datum.get("roles", [])})


async def _records_on(datum_id: ObjectId, limit: int) -> list[str]:
    """The IDs of the first `limit` annotation records on a datum."""
    records = AnnotationRecord.get_pymongo_collection().find({"datum_id": datum_id}, {"_id": 1}).limit(limit)
    return [encode_id(NodeType.ANNOTATION_RECORD, r["_id"]) async for r in records]
