"""Closing the uploads of deleted assets: what deleteAsset (services/assets.py) and a privacy erase
(services/uploads/erased.py) both do to a PENDING asset's open sessions, and removing an upload's
payload, which completion, abort and the reconciler do too.

Kept apart from finishing.py, which files into collections: services/collections.py imports
services/assets.py, which closes uploads here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from bson import ObjectId

from documents.asset import Asset
from documents.clock import utcnow
from documents.common import AssetStatus
from documents.upload import UploadSession, UploadStatus
from services.id_reads import docs_by_ids, fields_by_ids
from services.uploads.claims import claim, release
from storage import ObjectStore

log = logging.getLogger("graphlake.uploads")


async def discard_payload(session: UploadSession, stores: Mapping[str, ObjectStore]) -> None:
    """Remove what an upload stored: a multipart upload's parts (the store's abort) and the object at its key."""
    store = stores.get(session.mount)
    if store is None:
        return
    if session.multipart_id:
        await store.abort_multipart(session.key, session.multipart_id)
    await store.delete(session.key)


async def close_open(asset_ids: Sequence[ObjectId], stores: Mapping[str, ObjectStore]) -> None:
    """Close (see _close) the open uploads of these DELETED assets, every session naming them,
    also those from before a session shared its asset's id: a privacy erase's, which reaches
    assets deleted long ago. A read by `asset_id`, which the embedded default answers by a scan."""
    found = await UploadSession.find({"asset_id": {"$in": list(asset_ids)}, "status": UploadStatus.OPEN.value}).to_list()
    await _close(found, stores)


async def close_open_upload(asset_id: ObjectId, stores: Mapping[str, ObjectStore]) -> None:
    """Close (see _close) the open upload of this DELETED asset: deleteAsset's. Its session shares
    its id (sessions older than that have expired), so one read by `_id` alone (services/id_reads.py)."""
    await _close([s for s in await docs_by_ids(UploadSession, [asset_id]) if s.status is UploadStatus.OPEN], stores)


async def close_if_deleted(sessions: Sequence[UploadSession], stores: Mapping[str, ObjectStore]) -> set[ObjectId]:
    """Close (see _close) those of these uploads, read OPEN, whose asset is DELETED now; the ids of
    those closed here. A completion's that failed: a delete that came while it held their claims left
    them to it, and they would stay open under a DELETED asset until they expired. Called once it
    released them: a delete after this read finds them free and closes them itself."""
    if not sessions:
        return set()
    found = await fields_by_ids(Asset, {s.asset_id for s in sessions}, ["status"])
    return await _close([s for s in sessions if found.get(s.asset_id, {}).get("status") == AssetStatus.DELETED.value],
                        stores)


async def _close(found: list[UploadSession], stores: Mapping[str, ObjectStore]) -> set[ObjectId]:
    """Abort these open uploads of DELETED assets and remove what they stored: a multipart
    upload's parts stayed in the store (on S3 an incomplete multipart upload, billed) until the
    upload expired, up to a day, since a delete removes only the object at the key, and its client
    could go on sending parts meanwhile. Each is claimed as a completion claims it, so the two never
    both end it; those a completion holds right now are left to it: it closes them without bringing
    their DELETED asset back (completion._complete_claimed), and those it fails, once it lets
    them go (close_if_deleted). Closed first, each is swept once more
    after its URLs expire (`sweep_due`), which also removes what a store that fails here kept, and
    what a presigned S3 PUT stores after it. Returns the ids of those it closed."""
    if not found:
        return set()
    claimed = await claim([s.id for s in found if s.id is not None])
    closed_here: set[ObjectId] = set()
    try:
        for session in (s for s in found if s.id in claimed):
            closed = await UploadSession.get_pymongo_collection().update_one(  # still open: the reconciler may expire it
                {"_id": session.id, "status": UploadStatus.OPEN.value},
                {"$set": {"status": UploadStatus.ABORTED.value, "finished_at": utcnow(), "sweep_due": True}})
            if closed.modified_count:
                closed_here.add(session.id)
                await discard_quietly(session, stores)
    finally:
        await release(list(claimed))
    return closed_here


async def discard_quietly(session: UploadSession, stores: Mapping[str, ObjectStore]) -> None:
    """discard_payload for an upload closed over a DELETED asset; a store that fails leaves it to
    the reconciler's sweep (the session is marked `sweep_due`)."""
    try:
        await discard_payload(session, stores)
    except Exception:  # the store may be down: the sweep removes it later
        log.warning("what upload %s of deleted asset %s stored stays until the reconciler's sweep: the store failed",
                    session.id, session.asset_id, exc_info=True)
