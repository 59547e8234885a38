"""Completing and aborting uploads: claim, verify, finish, file; each session of a batch on its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from bson import ObjectId

from documents.asset import Asset
from documents.common import AssetStatus
from documents.upload import UploadSession, UploadStatus
from services.errors import BadUserInput, Conflict, GraphlakeError, NotFound
from services.events.feed import FeedWriter
from services.id_reads import docs_by_ids
from services.node_ids import NodeType, encode_id
from services.uploads import stat_hints
from services.uploads.claims import claim, release, renew
from services.uploads.closing import close_if_deleted, discard_payload, discard_quietly
from services.uploads.finishing import (
    Unfiled,
    assets_by_id,
    assets_of,
    file_completed,
    finish,
    finish_many,
)
from services.uploads.sessions import get_session
from services.uploads.stat_hints import Early
from services.uploads.verification import Verified, mismatch, verify
from storage import ObjectStore
from storage.concurrency import bounded_gather

log = logging.getLogger("graphlake.uploads")


async def complete_uploads(session_ids: Sequence[ObjectId], stores: dict[str, ObjectStore], feed: FeedWriter,
                           actor: str | None, max_items: int,
                           late_sha256: Mapping[ObjectId, str] | None = None) -> list[Asset | Unfiled | GraphlakeError]:
    """Finish several uploads, each on its own: per session, in the order given, its ACTIVE asset,
    that asset with why its collection could not take it (Unfiled), or the error that stopped it (a
    mismatch also fails its asset and removes the object).
    `late_sha256`: digests given now for sessions created without one."""
    if not session_ids:
        raise BadUserInput("give at least one upload", field="ids")
    if len(session_ids) > max_items:
        raise BadUserInput(f"at most {max_items} uploads at once", field="ids")
    if len(set(session_ids)) != len(session_ids):
        raise BadUserInput("the same upload appears twice", field="ids")
    # Everything that needs only the ids at once: the claims, the sessions, their assets (which
    # share their ids) and, for uploads started here, what the store holds.
    early = stat_hints.stored_here.ask_early(session_ids, stores)
    claimed, sessions, assets = await asyncio.gather(
        claim(session_ids), docs_by_ids(UploadSession, session_ids),
        assets_by_id(session_ids))
    renewing = asyncio.create_task(renew(list(claimed)))
    outcomes: list[Asset | Unfiled | GraphlakeError] = []
    found = {s.id: s for s in sessions}
    try:
        outcomes = await _complete_claimed(session_ids, claimed, found, assets, early, stores,
                                           feed, actor, max_items, late_sha256 or {})
    finally:
        renewing.cancel()
        for started in early.values():
            started.drop()
        # A completed session is closed for good, so its claim can wait for the reconciler to
        # drop it; the others (not uploaded yet, a store error) must be free for a retry now.
        done = {id for id, o in zip(session_ids, outcomes, strict=False) if not isinstance(o, GraphlakeError)}
        failed = [id for id in claimed if id not in done]
        await release(failed)
    # A delete that came while this held the claims left those uploads to it: the failed ones are
    # closed now, not left open under a DELETED asset. (Those whose asset was read DELETED are closed.)
    closed = await close_if_deleted([found[id] for id in failed if id in found and found[id].status is UploadStatus.OPEN
                                     and not _read_deleted(assets.get(found[id].asset_id))], stores)
    return [_deleted(found[id]) if id in closed else outcome for id, outcome in zip(session_ids, outcomes, strict=True)]


async def _complete_claimed(session_ids: Sequence[ObjectId], claimed: set[ObjectId], found: dict[ObjectId, UploadSession],
                            assets: dict[ObjectId, Asset], early: dict[ObjectId, Early], stores: dict[str, ObjectStore],
                            feed: FeedWriter, actor: str | None, max_items: int,
                            late_sha256: Mapping[ObjectId, str]) -> list[Asset | Unfiled | GraphlakeError]:

    def of_deleted(session: UploadSession) -> bool:  # as read with the claims (older sessions' assets: below)
        return _read_deleted(assets.get(session.asset_id))

    async def check_one(session_id: ObjectId) -> Verified | GraphlakeError:
        session = found.get(session_id)
        if session is None:
            return NotFound(f"no upload session {encode_id(NodeType.UPLOAD_SESSION, session_id)}", field="id")
        if session.status is not UploadStatus.OPEN:  # said first: a finished session keeps its claim a while
            if session.status is not UploadStatus.COMPLETED and of_deleted(session):
                # Closed by the delete (services/uploads/closing.py). A presigned S3 PUT may have
                # stored the object since: removed now rather than at the sweep, as nothing can
                # want it (an upload that did not complete never gives its asset these bytes).
                await discard_quietly(session, stores)
                return _deleted(session)
            return Conflict(f"the upload is {session.status.value.lower()}", field="id")
        if session_id not in claimed:
            return Conflict("another request is completing this upload right now", field="id")
        if of_deleted(session):  # its bytes are not checked, nor its parts joined: aborted below
            return _deleted(session)
        started = early.get(session_id)
        try:
            return await verify(session, stores[session.mount], "id",
                                 started.stat if started and started.serves(session) else None,
                                 late_sha256.get(session_id))
        except GraphlakeError as error:
            return error

    # Sessions from before a session shared its asset's id: their assets are read while the store answers.
    older = [s for s in found.values() if s.asset_id not in assets]
    checks, more = await asyncio.gather(bounded_gather([lambda i=i: check_one(i) for i in session_ids]),
                                        assets_of(older))
    assets = {**assets, **more}  # finish_many changes them as it writes
    verified = dict(zip(session_ids, checks, strict=True))
    # An asset deleted while it was uploading (its delete left the upload to this claim, or was cut
    # short before it closed it) is not brought back: its upload is aborted and what it stored
    # removed, the asset stays DELETED (finish_many leaves it so), and the caller is told.
    deleted = [found[i] for i, v in verified.items() if found.get(i) is not None and found[i].status is UploadStatus.OPEN
               and i in claimed and (asset := assets.get(found[i].asset_id)) is not None
               and asset.status is AssetStatus.DELETED]
    for session in deleted:
        verified[session.id] = _deleted(session)
    await finish_many([(session, {}) for session in deleted], UploadStatus.ABORTED, AssetStatus.FAILED, feed, assets)
    await bounded_gather([lambda s=s: discard_quietly(s, stores) for s in deleted])  # closed first: else the sweep's
    good = [(found[i], {"sha256": v.sha256}) for i, v in verified.items() if isinstance(v, Verified) and not v.problems]
    bad = [(found[i], {}) for i, v in verified.items() if isinstance(v, Verified) and v.problems]
    completed = {a.id: a for a in await finish_many(good, UploadStatus.COMPLETED, AssetStatus.ACTIVE, feed, assets)}
    for session, _ in good:
        if session.asset_id not in completed:  # deleted since it was read above (finishing.finish_many leaves it DELETED)
            verified[session.id] = Conflict("the asset was deleted while its upload was being completed", field="id")
    good = [(session, fields) for session, fields in good if session.asset_id in completed]
    await finish_many(bad, UploadStatus.ABORTED, AssetStatus.FAILED, feed, assets)
    # Each upload a collection could not take (deleted meanwhile) reports why; the others are filed.
    unfiled = await file_completed([session for session, _ in good], actor, max_items, completed)
    return [Unfiled(completed[found[i].asset_id], unfiled[i]) if i in unfiled
            else completed[found[i].asset_id] if isinstance(v, Verified) and not v.problems
            else mismatch(v.problems) if isinstance(v, Verified) else v
            for i, v in verified.items()]


def _deleted(session: UploadSession) -> Conflict:
    return Conflict(f"asset {encode_id(NodeType.ASSET, session.asset_id)} was deleted while it was uploading; "
                    "the upload is aborted", field="id")


def _read_deleted(asset: Asset | None) -> bool:
    return asset is not None and asset.status is AssetStatus.DELETED


async def complete_upload(session_id: ObjectId, stores: dict[str, ObjectStore], feed: FeedWriter,
                          actor: str | None, max_items: int, late_sha256: Mapping[ObjectId, str] | None = None) -> Asset:
    [outcome] = await complete_uploads([session_id], stores, feed, actor, max_items, late_sha256)
    if isinstance(outcome, GraphlakeError):
        raise outcome
    if isinstance(outcome, Unfiled):  # completed all the same
        raise outcome.error
    return outcome


async def abort_upload(session_id: ObjectId, stores: dict[str, ObjectStore], feed: FeedWriter) -> UploadSession:
    session = await get_session(session_id)
    if session.status is UploadStatus.OPEN:
        await discard_payload(session, stores)
        await finish(session, UploadStatus.ABORTED, AssetStatus.FAILED, feed)
    return await get_session(session_id)
