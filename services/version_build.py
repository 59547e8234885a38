"""Writing a dataset version's content once its build has claimed the name: its datums, a batch at
a time, copied with their records (services/snapshots.py), written with their members and pinned.

Each batch is read and copied while the one before is written: the database writes one while this
process makes the other's copies. Read then written one batch at a time, a COCO version of 2,000
images and 20,000 boxes kept each side idle half the time (docs/performance-history.md, session 56).
Whatever fails, copy_in returns only once no write of the build is under way, so the build's
discard (services/datasets.py) removes everything it wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from bson import ObjectId

from documents.asset import Asset
from documents.common import AssetStatus, RetentionOwnerType, Split
from documents.dataset import Datum
from documents.manifest import asset_digest
from services import delete_marks, retention, snapshots, version_content
from services.assets import in_use_despite_delete
from services.availability import no_time_limit
from services.errors import BadUserInput, Conflict
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, encode_id

BUILD_BATCH = 500  # datums a build reads, copies and writes at a time: one is read while the one before is written


async def copy_in(version_id: ObjectId, chosen: Mapping[ObjectId, Split], sets: Mapping[ObjectId, dict],
                  actor: str | None, content: version_content.ContentWriter | None) -> tuple[list[bytes], dict[str, int]]:
    """Copy the `chosen` datums (each with its split) and their records in `sets` into the version, pin
    their role assets, and write its content file's lines into `content`; the datums' manifest
    entries, and the records copied per set (its id as text)."""
    ids = list(chosen)
    digests: dict[ObjectId, str] = {}
    entries: list[bytes] = []
    records = {str(set_id): 0 for set_id in sets}  # a set with none on the version's datums counts 0
    unsettled: set[ObjectId] = set()  # write batches left out (snapshots._settled)
    writing: asyncio.Task[_Written] | None = None
    try:
        for start in range(0, len(ids), BUILD_BATCH):
            wanted = ids[start:start + BUILD_BATCH]
            batch = [snapshots.DatumRead.of(raw) for raw in
                     (await fields_by_ids(Datum, wanted, snapshots.DATUM_FIELDS)).values()]
            if len(batch) != len(wanted):
                gone = sorted(set(wanted) - {d.id for d in batch})
                raise Conflict("datum(s) deleted while the version was built: "
                               f"{', '.join(encode_id(NodeType.DATUM, d) for d in gone)}", field="addDatums")
            await _check_role_assets(batch, digests)
            copied = await snapshots.copy_batch(version_id, batch, chosen, sets, digests, records, unsettled)
            masks = await _mask_assets(copied)
            entries += copied.entries
            if writing is not None:  # shielded: a cancelled build still waits for its writes (below)
                await _still_held(await asyncio.shield(writing))
            with no_time_limit():  # undone by the build's discard if it fails; the task takes the block's context
                writing = asyncio.create_task(_write_batch(version_id, copied, batch, content, actor, masks))
        if writing is not None:
            await _still_held(await asyncio.shield(writing))
    finally:  # a failure: the discard runs once no write of the build is under way
        if writing is not None and not writing.done():
            await asyncio.wait([writing])
        if writing is not None and not writing.cancelled():
            writing.exception()  # retrieved: raised above, unless the build failed already
    return entries, records


async def _check_role_assets(datums: list[snapshots.DatumRead], digests: dict[ObjectId, str]) -> None:
    """A version holds finished data only: every role asset of its datums must be ACTIVE (not an
    upload still PENDING, one that FAILED, or a DELETED one). The same read gives their digests
    (into `digests`, as snapshots.asset_digests would): one read of the role assets, not two.
    By id alone, the status checked here: see services/id_reads.py."""
    role_assets = list({r["asset_id"] for d in datums for r in d.roles})
    found = await fields_by_ids(Asset, role_assets, ["status", "sha256", "storage"])
    unusable = {a: doc["status"] for a, doc in found.items() if doc.get("status") != AssetStatus.ACTIVE.value}
    for datum in datums:
        for role in datum.roles:
            if role["asset_id"] in unusable:
                raise BadUserInput(f"datum {encode_id(NodeType.DATUM, datum.id)}: its {role['role']!r} asset "
                                   f"{encode_id(NodeType.ASSET, role['asset_id'])} is {unusable[role['asset_id']]}; a version "
                                   "holds ACTIVE assets only", field="addDatums")
    digests.update({a: asset_digest(found.get(a)) for a in role_assets})


async def _mask_assets(copied: snapshots.CopiedBatch) -> list[ObjectId]:
    """The mask assets of a batch's records, which the version pins with its role assets: its copies
    name them, and once a record is deleted (the version keeps its copy) nothing else held its mask,
    which any contributor could then delete under the version. ACTIVE ones only, as role assets."""
    masks: dict[ObjectId, tuple[ObjectId, dict]] = {}
    for datum_id, copies in copied.by_datum.items():
        for copy in copies:
            if (copy.get("geometry") or {}).get("type") == "MASK":
                masks.setdefault(copy["geometry"]["asset_id"], (datum_id, copy))
    if not masks:
        return []
    found = await fields_by_ids(Asset, list(masks), ["status"])
    for asset_id, (datum_id, copy) in masks.items():
        status = (found.get(asset_id) or {}).get("status") or "gone"
        if status != AssetStatus.ACTIVE.value:
            raise BadUserInput(f"datum {encode_id(NodeType.DATUM, datum_id)}: the mask asset "
                               f"{encode_id(NodeType.ASSET, asset_id)} of record "
                               f"{encode_id(NodeType.ANNOTATION_RECORD, copy['record_id'])} is {status}; a version "
                               "holds ACTIVE assets only", field="addAnnotationSets")
    return list(masks)


@dataclass(frozen=True)
class _Written:
    """What a batch's write made the version hold: its datums (members), their role assets and its masks (pins)."""

    datums: list[ObjectId]
    roles: list[ObjectId]
    masks: list[ObjectId]


async def _write_batch(version_id: ObjectId, copied: snapshots.CopiedBatch, datums: list[snapshots.DatumRead],
                       content: version_content.ContentWriter | None, actor: str | None,
                       masks: list[ObjectId]) -> _Written:
    """Write a batch of the version (its copies and members, and its lines into `content`) and pin its
    datums' role assets and its records' masks, at once. Ends only when none of its writes is under way."""
    roles: list[ObjectId] = [r["asset_id"] for d in datums for r in d.roles]
    done = await asyncio.gather(snapshots.write_batch(copied, content),
                                retention.pin(roles + masks, RetentionOwnerType.DATASET_VERSION, version_id, actor),
                                return_exceptions=True)
    if failed := next((d for d in done if isinstance(d, BaseException)), None):
        raise failed
    return _Written([d.id for d in datums], roles, masks)


async def _still_held(written: _Written) -> None:
    """CONFLICT if what a batch's write made the version hold went meanwhile: its assets
    (_pinned_assets_kept), or a datum whose delete marked it before it looked for versions holding
    it, and so did not see these members (services/datums.delete_datum): looked for once the members
    are written, whichever comes second sees the other. A delete still looking is waited out: it
    finds this build's members, is refused and takes its mark back."""
    await _pinned_assets_kept((written.roles, written.masks))
    found = await delete_marks.settled(Datum.get_pymongo_collection(), written.datums, "deleting_at",
                                       delete_marks.WAIT_SECONDS)
    if gone := sorted(d for d, there in found.items() if there is not delete_marks.Found.CLEAR):
        raise Conflict("datum(s) deleted while the version was built: "
                       f"{', '.join(encode_id(NodeType.DATUM, d) for d in gone)}", field="addDatums")


async def _pinned_assets_kept(pinned: tuple[list[ObjectId], list[ObjectId]]) -> None:
    """CONFLICT if one of these assets (role assets, masks), now pinned by the version, was deleted.
    Looked at again once pinned: a forced delete that read the holders before these pins existed (and
    so will not name this version as one it broke) has flipped its asset by now, or will find the pins
    when it reads them again after its flip (services/assets.delete_asset). Named as the checks before
    the build name them (_check_role_assets, _mask_assets): a role asset on `addDatums`, which brought
    its datum in, a mask on `addAnnotationSets`, which brought its record in."""
    roles, masks = pinned
    deleted = await in_use_despite_delete(roles + masks)
    for kind, field, assets in (("asset(s)", "addDatums", set(roles)), ("mask asset(s)", "addAnnotationSets", set(masks))):
        if named := [a for a in deleted if a in assets]:
            raise Conflict(f"{kind} deleted while the version was built: "
                           f"{', '.join(encode_id(NodeType.ASSET, a) for a in named)}", field=field)
