"""Settling finished sessions: close them, flip their assets, log ASSET_STATUS events, file uploads into the collections they named."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo import UpdateMany

from documents.asset import Asset
from documents.clock import utcnow
from documents.common import AssetStatus
from documents.event import ASSET_STATUS, LEVELS, Event, new_event_id
from documents.json_value import StoredJson
from documents.sparse import cleared
from documents.upload import UploadSession, UploadStatus
from services import collections
from services.auth import with_person
from services.errors import GraphlakeError, NotFound
from services.events.feed import FeedWriter
from services.id_reads import docs_by_ids
from services.node_ids import NodeType, encode_id
from services.uploads.settling import settle


async def finish_many(outcomes: Sequence[tuple[UploadSession, dict[str, object]]], status: UploadStatus,
                      asset_status: AssetStatus, feed: FeedWriter, assets: dict[ObjectId, Asset] | None = None) -> list[Asset]:
    """Close the sessions and flip their assets (both at once: a crash between the two leaves a
    closed session with a PENDING asset, or an open session with a settled asset, and the
    reconciler settles either), then log one ASSET_STATUS event per asset: the event log carries
    it to `assetStatusChanged` subscribers on every server process.

    The assets are read before the writes (or given, read by the caller while it verified) and
    changed here as in the database, rather than read back after them: one round trip fewer."""
    if not outcomes:
        return []
    if assets is None:
        assets = await assets_of([s for s, _ in outcomes])
    now = utcnow()
    filed = status is UploadStatus.COMPLETED
    # A completed upload's asset joins its collection in the same write that settles it (file_completed
    # adds the item): FerretDB rewrites a whole document for each update, and this was a second one.
    joins = {s.asset_id: s.collection_id for s, _ in outcomes if filed and s.collection_id}
    # An aborted or expired upload's key is deleted once more after its URLs expire (sweep_closed). A
    # completed one's mark is left as it is: a delete of its asset may have just set it.
    closing = {"status": status.value, "finished_at": now, **({} if filed else {"sweep_due": True})}
    to_file = [s.id for s, _ in outcomes if s.asset_id in joins]  # see file_completed
    rest = [s.id for s, _ in outcomes if s.asset_id not in joins]
    asset_fields = {s.asset_id: f for s, f in outcomes}

    def change(asset: Asset) -> dict:
        joined = joins.get(asset.id)
        return {"$set": dict(asset_fields[asset.id]), **({"$addToSet": {"collection_ids": joined}} if joined else {})}

    # A crash between a session's insert and its asset's leaves a session with no asset: nothing to flip.
    # An asset deleted while it was uploading stays DELETED (and is not reported as settled); should the
    # delete be undone (services/assets._still_unused), it is settled if that came before the write, else
    # it is PENDING under a closed session, which the reconciler settles, and the sweep spares it
    # (reconciler.sweep_closed).
    _, stamps = await asyncio.gather(
        UploadSession.get_pymongo_collection().bulk_write(
            [UpdateMany({"_id": {"$in": ids}}, {"$set": {**closing, "to_file": mark}})
             for ids, mark in ((to_file, True), (rest, False)) if ids]),
        settle({a: assets[a] for a in asset_fields if a in assets}, asset_status,
               {"status": {"$ne": AssetStatus.DELETED.value}}, lambda a: a.status is not AssetStatus.DELETED, change))
    # Not filed: the asset is DELETED (its delete marked the session's key for the sweep).
    missed = [s.id for s, _ in outcomes if s.asset_id in assets and s.asset_id not in stamps]
    if missed and filed:
        await UploadSession.get_pymongo_collection().update_many({"_id": {"$in": missed}}, {"$set": {"to_file": False}})
    finished = [_settled(assets[session.asset_id], {"status": asset_status, "updated_at": stamps[session.asset_id],
                                                    **fields}, joins.get(session.asset_id))
                for session, fields in outcomes if session.asset_id in stamps]
    await feed.write([status_event(asset, now) for asset in finished])
    return finished


def _settled(asset: Asset, changes: dict[str, object], joined: ObjectId | None) -> Asset:
    """`asset` as finish_many just wrote it."""
    if joined is not None and joined not in asset.collection_ids:
        changes = {**changes, "collection_ids": [*asset.collection_ids, joined]}
    return asset.model_copy(update=changes)


async def assets_of(sessions: Sequence[UploadSession]) -> dict[ObjectId, Asset]:
    """The assets these sessions fill, by id."""
    return await assets_by_id([s.asset_id for s in sessions])


async def assets_by_id(asset_ids: Sequence[ObjectId]) -> dict[ObjectId, Asset]:
    return {a.id: a for a in await docs_by_ids(Asset, asset_ids)}


def status_event(asset: Asset, at: datetime) -> Event:
    """The ASSET_STATUS event of an asset that just turned ACTIVE or FAILED."""
    asset_id, status = encode_id(NodeType.ASSET, asset.id), asset.status.value
    return Event(
        id=new_event_id(), event_type=ASSET_STATUS, level=LEVELS["INFO" if asset.status is AssetStatus.ACTIVE else "WARNING"],
        # The asset by its ID, not its name: a person's file names are theirs, and an erase renames the
        # asset but would not reach the name written into text here.
        message=f"asset {asset_id} is {status}",
        source=with_person(asset.owner, asset.created_by), timestamp=at,
        data=StoredJson.encode({"assetId": asset_id, "status": status,
                                "sizeBytes": asset.size_bytes, "mount": asset.storage.mount if asset.storage else None}),
    )


async def finish(session: UploadSession, status: UploadStatus, asset_status: AssetStatus, feed: FeedWriter,
                  **asset_fields: object) -> Asset | None:
    """finish_many for one session; its asset as settled, or None if it was deleted meanwhile (or never stored)."""
    settled = await finish_many([(session, asset_fields)], status, asset_status, feed)
    return settled[0] if settled else None


async def file_completed(sessions: Sequence[UploadSession], actor: str | None, max_items: int | None = None,
                         assets: Mapping[ObjectId, Asset] | None = None) -> dict[ObjectId, GraphlakeError]:
    """File completed uploads into the collections they named, one add per collection, then clear
    their `to_file` mark. A crash before that leaves the mark, and the reconciler files them again
    (adding an item twice changes nothing). A collection deleted meanwhile cannot take its uploads:
    the collection is taken out of their assets again, their mark cleared all the same, and the
    error returned for each of them (by session id): the others are filed. `assets`: theirs, as
    finish_many just settled them, which joined them to their collection already (not read again,
    nor written a second time); without them (the reconciler, after a crash) the assets are joined here."""
    groups: dict[ObjectId, list[UploadSession]] = {}
    for session in sessions:
        if session.collection_id:
            groups.setdefault(session.collection_id, []).append(session)
    errors: dict[ObjectId, GraphlakeError] = {}
    for collection_id, group in groups.items():
        items = [collections.NewItem(s.asset_id, s.path, None) for s in group]
        try:
            await collections.add_items(collection_id, items, actor, max_items or len(items), read=assets,
                                        joined=assets is not None)
        except NotFound as error:
            if error.extensions.get("field") == "collectionId":  # the collection is gone: so is its place in the assets
                await Asset.get_pymongo_collection().update_many(
                    {"_id": {"$in": [s.asset_id for s in group]}}, {"$pull": {"collection_ids": collection_id}})
            errors.update((s.id, _unfiled(error)) for s in group)
        except GraphlakeError as error:
            # Items of assets deleted meanwhile were taken out again; the rest of the group is filed.
            # (`deleted` names them as the API does; without it, the error is every session's.)
            deleted = set(error.extensions.get("deleted") or [encode_id(NodeType.ASSET, s.asset_id) for s in group])
            errors.update((s.id, _unfiled(error)) for s in group if encode_id(NodeType.ASSET, s.asset_id) in deleted)
    if groups:
        await UploadSession.get_pymongo_collection().update_many(
            {"_id": {"$in": [s.id for group in groups.values() for s in group]}},
            {"$set": {"to_file": False}, **cleared("filing_at", "filing_owner")})  # an ingest's lease ends with it
    return errors


@dataclass(frozen=True)
class Unfiled:
    """A completed upload the collection it named could not take (deleted meanwhile): its asset is
    ACTIVE, in no collection, and `error` says why (NOT_FOUND on collectionId, as completeUpload's)."""

    asset: Asset
    error: GraphlakeError


def _unfiled(error: GraphlakeError) -> GraphlakeError:
    """The filing error as its upload's outcome: the same kind and code, on collectionId, saying the file is stored."""
    field = error.extensions.get("field")
    details = {k: v for k, v in error.extensions.items() if k not in ("code", "field")}
    text = str(error).removeprefix(f"{field}: ") if field else str(error)
    # The collection is the upload's input at fault, whatever the filing's own error named.
    return type(error)(f"the upload completed, but it could not be filed: {text}",
                       field="collectionId", **details)
