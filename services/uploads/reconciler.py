"""The upload reconciler, run at start and periodically (graphlake/app.py): it expires sessions
past their time and settles what a crash left half-finished, so no PENDING asset outlives its
session. Safe to run from several server processes at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from documents.asset import Asset
from documents.clock import utcnow
from documents.common import AssetKind, AssetStatus
from documents.dataset import DatasetVersion
from documents.sparse import cleared
from documents.upload import UploadClaim, UploadSession, UploadStatus
from services.events.feed import FeedWriter
from services.field_pages import pages_between
from services.id_reads import docs_by_ids, fields_by_ids
from services.schedules import SCHEDULES
from services.uploads.claims import CLAIM_SECONDS, take_over
from services.uploads.closing import discard_payload
from services.uploads.finishing import (
    assets_by_id,
    assets_of,
    file_completed,
    finish_many,
    status_event,
)
from services.uploads.interrupted import finish_interrupted
from services.uploads.sessions import MIN_URL_SECONDS
from services.uploads.settling import settle
from storage import LocalStore, ObjectStore, StoreUnavailable, as_s3
from storage.concurrency import bounded_gather
from storage.protocol import STRAY_DIR

log = logging.getLogger("graphlake.uploads")

# What one round reads back to fill in missing digests: a backlog of huge files waits for later rounds.
DIGEST_FILES_PER_ROUND = 64
DIGEST_BYTES_PER_ROUND = 8 * 1024**3
# A file whose digest could not be read (missing, changed, unreadable) is tried again after this,
# not every round, so that a few broken files never hold up the digests of new ones.
DIGEST_RETRY = timedelta(days=1)
SWEEP_PER_ROUND = 500  # closed uploads whose keys one round deletes once more
EXPIRE_PER_ROUND = 500  # sessions past their time one round expires
FILE_PER_ROUND = 500  # completed uploads a crash left unfiled one round files
# Past a closed upload's last URL: server clocks differ a little, and a URL signed as it closed lives on.
SWEEP_MARGIN_SECONDS = 60
# Stray copies (sweep_stray_copies): judged once this old, kept this long after being set aside.
STRAY_AFTER = timedelta(days=1)
STRAY_KEPT = timedelta(days=7)
STRAY_BATCH = 1000  # keys listed, and ids asked of the database, at once
STRAY_HELD = 10_000  # strays a sweep keeps in memory to move; past that, it lists the folder again to move them
STRAY_MOST = 100  # more strays than this, and more than half the files: the database, not the files, is wrong
# settle_stranded's walks: where they stopped (their record in SCHEDULES); how old a closing or a
# PENDING file must be before they read it: far past what a completion takes (CLAIM_SECONDS), and
# past a few minutes of difference between the servers' clocks, or of a server paused between taking
# the time and writing it, which would otherwise land behind the position and never be read.
STRANDED_POSITION = "stranded uploads position"
STRANDED_LAG = timedelta(minutes=5)
STRANDED_PAGE = 500
STRANDED_PER_ROUND = 5_000  # documents each walk reads in a round at most: a backlog goes over several


async def reconcile(stores: dict[str, ObjectStore], feed: FeedWriter) -> int:
    """Expire every open session past its time: abort its multipart upload, delete what it left,
    fail its asset. First it drops stale completion claims, settles what a crash left half
    finished (completions cut short after they marked their session, assets still PENDING,
    completed uploads not yet filed) and reads the SHA-256 of direct writes that declared none. Safe to run from several processes at once; returns how
    many sessions it expired."""
    await drop_stale_claims()
    await finish_interrupted(stores, feed)
    await settle_stranded(feed)
    await file_unfiled()
    await fill_digests(stores)
    await sweep_closed(stores)
    # A session marked completing is finish_interrupted's: its completion began before the expiry.
    # The first EXPIRE_PER_ROUND along the expiry index; a backlog (a day of abandoned uploads) over several rounds.
    due = await UploadSession.find({"status": UploadStatus.OPEN.value, "expires_at": {"$lte": utcnow()},
                                    "completing_at": None}).sort("expires_at").limit(EXPIRE_PER_ROUND).to_list()
    if not due:
        return 0
    # A session still claimed is being completed right now (it was verified before it expired):
    # left to a later round, when its completion has closed it or its claim has gone stale.
    held = {c["_id"] for c in await UploadClaim.get_pymongo_collection().find(
        {"_id": {"$in": [s.id for s in due]}}, {"_id": 1}).to_list()}
    due = [s for s in due if s.id not in held]
    assets = await assets_of(due) if due else {}
    expired: list[UploadSession] = []
    completed: list[UploadSession] = []
    for session in due:
        # A settled asset means a completion crashed between its two updates: it decides the session's end.
        asset_status = assets[session.asset_id].status if session.asset_id in assets else AssetStatus.PENDING
        status = {AssetStatus.ACTIVE: UploadStatus.COMPLETED, AssetStatus.FAILED: UploadStatus.ABORTED}.get(
            asset_status, UploadStatus.EXPIRED)
        claimed = await UploadSession.get_pymongo_collection().update_one(
            {"_id": session.id, "status": UploadStatus.OPEN.value},
            {"$set": {"status": status.value, "finished_at": utcnow(),  # settle_stranded needs the time
                      "to_file": status is UploadStatus.COMPLETED and session.collection_id is not None,
                      "sweep_due": status is not UploadStatus.COMPLETED}})
        if claimed.modified_count == 0:
            continue  # another process took it
        if status is UploadStatus.COMPLETED:
            completed.append(session)
        elif status is UploadStatus.EXPIRED:
            try:
                await discard_payload(session, stores)
            except Exception:  # the store may be down: the asset still must not stay PENDING
                log.exception("could not remove the payload of expired upload %s", session.id)
            expired.append(session)
    await finish_many([(s, {}) for s in expired], UploadStatus.EXPIRED, AssetStatus.FAILED, feed, assets)
    await _file_settled(completed)
    return len(expired)


async def settle_stranded(feed: FeedWriter) -> int:
    """Settle the assets a crash left PENDING: after their session closed (between finish_many's
    two updates), a completed session's asset turns ACTIVE (its object was verified before the
    session closed) and is filed into its collection; an aborted or expired one's turns FAILED.
    An asset whose session was never written (a crash within createUpload) turns FAILED.

    Each round reads on from where the last one stopped (a position kept in the database): the
    sessions closed since, and the PENDING files created since, each only once it is STRANDED_LAG
    old, and at most STRANDED_PER_ROUND of each (the rest next round). Every round had read every
    PENDING file older than 30 s and its session: uploads in flight stay open up to a day, and 2,000
    of them were read every round to settle none. Returns how many it settled."""
    positions = UploadSession.get_pymongo_collection().database[SCHEDULES]
    record = await positions.find_one({"_id": STRANDED_POSITION}) or {}
    before = utcnow() - STRANDED_LAG
    settled = 0
    closed_at = record.get("closed")
    async for page in _read_on(UploadSession.get_pymongo_collection(), {}, "finished_at", closed_at, before,
                               {"asset_id": 1, "finished_at": 1}):
        statuses = await fields_by_ids(Asset, [s["asset_id"] for s in page], ["status"])
        settled += await _settle_closed([s["_id"] for s in page
                                         if statuses.get(s["asset_id"], {}).get("status") == AssetStatus.PENDING.value], feed)
        closed_at = (page[-1]["finished_at"], page[-1]["_id"])
    created_at = record.get("created")
    async for page in _read_on(Asset.get_pymongo_collection(), {"status": AssetStatus.PENDING.value, "kind": AssetKind.FILE.value},
                               "created_at", created_at, before, {"created_at": 1}):
        # A session closed over one of them is the sessions' walk's, now or when it closes.
        with_session = {s["asset_id"] for s in await UploadSession.get_pymongo_collection().find(
            {"asset_id": {"$in": [a["_id"] for a in page]}}, {"asset_id": 1}).to_list()}
        settled += await _fail_sessionless([a["_id"] for a in page if a["_id"] not in with_session], feed)
        created_at = (page[-1]["created_at"], page[-1]["_id"])
    await positions.update_one({"_id": STRANDED_POSITION}, {"$set": {"closed": closed_at, "created": created_at}},
                               upsert=True)
    if settled:
        log.warning("settled %d upload(s) a crash had left half-finished", settled)
    return settled


async def _read_on(collection: AsyncCollection, query: dict[str, Any], field: str, after: Sequence[Any] | None,
                   before: datetime, projection: dict[str, int]) -> AsyncIterator[list[dict]]:
    """settle_stranded's pages of one walk: on from `after`, up to STRANDED_PER_ROUND documents."""
    read = 0
    async for page in pages_between(collection, query, field, STRANDED_PAGE, after=tuple(after) if after else None,
                                    before=before, projection=projection):
        yield page
        read += len(page)
        if read >= STRANDED_PER_ROUND:
            return


async def _settle_closed(session_ids: list[ObjectId], feed: FeedWriter) -> int:
    """Settle the PENDING assets of these closed sessions as their sessions ended; how many."""
    by_status: dict[UploadStatus, list[UploadSession]] = {}
    for session in await docs_by_ids(UploadSession, session_ids):
        if session.status is not UploadStatus.OPEN:
            by_status.setdefault(session.status, []).append(session)
    for status, closed in by_status.items():
        if status is UploadStatus.COMPLETED:
            settled = {a.id for a in await finish_many([(s, {"sha256": s.sha256}) for s in closed], status,
                                                       AssetStatus.ACTIVE, feed)}
            await _file_settled([s for s in closed if s.asset_id in settled])  # not one deleted meanwhile
        else:
            await finish_many([(s, {}) for s in closed], status, AssetStatus.FAILED, feed)
    return sum(map(len, by_status.values()))


async def _fail_sessionless(asset_ids: list[ObjectId], feed: FeedWriter) -> int:
    """FAILED for PENDING assets no session will ever complete; returns how many."""
    assets = await assets_by_id(asset_ids)
    if not assets:
        return 0
    now = utcnow()
    failed = await settle(assets, AssetStatus.FAILED, {"status": AssetStatus.PENDING.value},
                          lambda a: a.status is AssetStatus.PENDING)
    await feed.write([status_event(assets[a].model_copy(update={"status": AssetStatus.FAILED, "updated_at": at}), now)
                      for a, at in failed.items()])
    return len(failed)


async def _file_settled(completed: Sequence[UploadSession]) -> None:
    """File uploads whose completion a crash cut short into the collections they named, as the reconciler."""
    unfiled = await file_completed(completed, "reconciler")  # a collection deleted meanwhile, say
    for error in {str(e): e for e in unfiled.values()}.values():  # once per collection, not per upload
        log.warning("could not file completed uploads: %s", error)


async def file_unfiled() -> int:
    """File completed uploads a crash left unfiled (their session still marked `to_file`), once
    they are older than a completion can take and no ingest still holds them (its lease renewed
    within CLAIM_SECONDS: a big batch can take longer to file, and it removes what it stored if
    its filing fails); returns how many."""
    cutoff = utcnow() - timedelta(seconds=CLAIM_SECONDS)
    # The first FILE_PER_ROUND through the index on the mark (few sessions hold it), the rest next round.
    unfiled = await UploadSession.find({"to_file": True, "status": UploadStatus.COMPLETED.value,
                                        "finished_at": {"$lt": cutoff},
                                        "$or": [{"filing_at": None}, {"filing_at": {"$lt": cutoff}}]}
                                       ).sort("_id").limit(FILE_PER_ROUND).to_list()
    # An ingest writes its sessions before its assets (services/uploads/ingest.py): a server stopping
    # between the two left sessions that name no asset. Filed with the others, they would fail their
    # whole collection's group (NOT_FOUND); removed, their copies are the stray sweep's.
    present = await fields_by_ids(Asset, [s.asset_id for s in unfiled], ["_id"])
    orphans = [s.id for s in unfiled if s.asset_id not in present]
    if orphans:
        await UploadSession.get_pymongo_collection().delete_many({"_id": {"$in": orphans}, "to_file": True})
    # A lapsed ingest lease is taken first: its writer may only be frozen, and removes on waking
    # what it still owns (ingest._undo). One renewed or removed since the read is left alone.
    leased = [s for s in unfiled if s.asset_id in present and s.filing_at is not None]
    taken = await take_over([s.id for s in leased])
    filing = [s for s in unfiled if s.asset_id in present and (s.filing_at is None or s.id in taken)]
    await _file_settled(filing)
    return len(filing)


async def drop_stale_claims() -> int:
    """Remove claims nobody renewed for CLAIM_SECONDS: those of completed uploads, and of requests
    that died. Run by the reconciler; returns how many went."""
    stale = utcnow() - timedelta(seconds=CLAIM_SECONDS)
    return (await UploadClaim.get_pymongo_collection().delete_many({"claimed_at": {"$lt": stale}})).deleted_count


async def sweep_closed(stores: dict[str, ObjectStore]) -> int:
    """Delete, one last time, the key of each upload aborted or expired whose URLs have all expired.
    A signed S3 URL stays valid until then, and can create the object again after an abort (it
    cannot replace one: single PUTs are create-only; a local mount refuses closed uploads outright).
    A URL lives until its session's expiry, or MIN_URL_SECONDS after it was signed, and none is
    signed once the session is closed: so all are dead past both the expiry and a minute after
    closing. Returns how many sessions it swept."""
    now = utcnow()
    due = await UploadSession.find({"sweep_due": True, "expires_at": {"$lt": now},
                                    "finished_at": {"$lt": now - timedelta(seconds=MIN_URL_SECONDS + SWEEP_MARGIN_SECONDS)}},
                                   ).limit(SWEEP_PER_ROUND).to_list()
    # An ACTIVE asset's object is never swept (its mark is dropped), nor a PENDING one's while it is
    # (looked at again next round): a delete undone after it closed its upload (finishing._settled_now)
    # leaves the session marked over a PENDING asset, which settle_stranded turns ACTIVE; a crash
    # between an expiry's two writes, over one it turns FAILED.
    statuses = {a: doc.get("status") for a, doc in (await fields_by_ids(Asset, [s.asset_id for s in due], ["status"])).items()}
    spared = [s.id for s in due if statuses.get(s.asset_id) == AssetStatus.ACTIVE.value]
    due = [s for s in due if statuses.get(s.asset_id) not in (AssetStatus.ACTIVE.value, AssetStatus.PENDING.value)]
    swept: list[ObjectId] = []

    async def sweep(session: UploadSession) -> None:
        try:
            await discard_payload(session, stores)
            swept.append(session.id)
        except Exception:  # the store may be down: tried again next round
            log.exception("could not sweep the key of closed upload %s", session.id)

    await bounded_gather([lambda s=s: sweep(s) for s in due])  # a few at a time, not one after another
    if swept or spared:
        await UploadSession.get_pymongo_collection().update_many({"_id": {"$in": swept + spared}},
                                                                 {"$set": {"sweep_due": False}})
    return len(swept)


async def fill_digests(stores: dict[str, ObjectStore]) -> int:
    """The SHA-256 of ACTIVE files stored without one: a direct write or an S3 upload that declared
    none (completion does not read the object back, so a big upload need not wait for its hash). Read
    back here, in the background, a bounded amount per round, so that every ACTIVE file ends up
    with the digest of the bytes a download returns (single S3 PUTs are create-only, so they stay
    those bytes). Returns how many assets it filled."""
    mounts = list(stores)
    if not mounts:
        return 0
    now = utcnow()
    missing = await Asset.get_pymongo_collection().find(
        {"status": AssetStatus.ACTIVE.value, "kind": AssetKind.FILE.value, "sha256": None, "storage.mount": {"$in": mounts},
         "$or": [{"digest_failed_at": None}, {"digest_failed_at": {"$lt": now - DIGEST_RETRY}}]},
        {"storage": 1, "size_bytes": 1}, sort=[("_id", 1)], limit=DIGEST_FILES_PER_ROUND).to_list()
    digests: dict[ObjectId, str] = {}
    failures: dict[ObjectId, str] = {}
    budget = DIGEST_BYTES_PER_ROUND
    for doc in missing:
        if budget <= 0:
            break
        if digests and (doc.get("size_bytes") or 0) > budget:
            continue  # one read never runs far past the round's budget; a round always reads at least one
        store, key = stores[doc["storage"]["mount"]], doc["storage"]["key"]
        try:
            info = await store.stat(key)
            if info is None or info.size != doc.get("size_bytes"):  # gone, or changed behind the server's back
                failures[doc["_id"]] = ("its file is missing" if info is None
                                        else f"its file is {info.size} bytes, not {doc.get('size_bytes')}")
                continue
            budget -= info.size
            digests[doc["_id"]] = await store.sha256(key)
        except StoreUnavailable:
            continue  # the store is down for now, not the file broken: the next round asks again
        except Exception as error:  # unreadable now, for whatever reason: tried again after DIGEST_RETRY
            failures[doc["_id"]] = f"{type(error).__name__}: {error}"
    for asset_id, reason in failures.items():
        log.warning("cannot read the SHA-256 of asset %s (trying again in %s): %s", asset_id, DIGEST_RETRY, reason)
    writes = [UpdateOne({"_id": asset_id, "sha256": None}, {"$set": {"sha256": digest}, **cleared("digest_error", "digest_failed_at")})
              for asset_id, digest in digests.items()]
    writes += [UpdateOne({"_id": asset_id}, {"$set": {"digest_failed_at": now, "digest_error": reason}})
               for asset_id, reason in failures.items()]
    if writes:
        await Asset.get_pymongo_collection().bulk_write(writes, ordered=False)  # one write for the round
    return len(digests)


async def sweep_stray_copies(stores: dict[str, ObjectStore], *, after: timedelta = STRAY_AFTER) -> int:
    """Set aside the files under a mount's `assets/` that no asset and no upload session names
    (their keys are assets/<the id of both>): what an ingest left when its server stopped or its
    request was cancelled mid-copy; and those under `versions/` that no version names as its content
    file (versions/<its id>.jsonl: services/version_content.py), what a build left when its server
    stopped between storing the file and naming it, or a version's delete that could not remove it.
    Only files written and named (by their id's time) more than `after` ago, so never a copy,
    upload or build under way, nor a restore's fresh files. They go to the mount's STRAY_DIR (on S3
    a copy there, then a delete), and are deleted STRAY_KEPT later: if this database is not the
    mount's (a wrong GRAPHLAKE_DATABASE), they can still be moved back. When most old files of a
    folder look stray, nothing of it is moved, and the log says why. Lists each mount's folders:
    once a day (graphlake/app.py). A mount that fails it is logged and the others are still swept;
    then it raises StrayMountsFailed, so the run is tried again an hour later (schedules.run_due).
    Returns how many files it set aside."""
    moved = 0
    failed: list[str] = []
    for store in stores.values():
        if not store.ownership.owned:  # its files are another lake's, which this database does not name
            log.info("mount %r was not swept for stray files: it belongs to lake %s, not to this one",
                     store.name, store.ownership.owner)
            continue
        try:
            moved += await _set_aside_stray(store, "assets", "", _named_by_assets, after)
            moved += await _set_aside_stray(store, "versions", ".jsonl", _named_by_versions, after)
            await _stray_call(store, "remove_set_aside", STRAY_KEPT.total_seconds())
        except Exception:  # a disk or a store that fails: whatever it raised, the other mounts still go
            log.warning("mount %r was not swept for stray files", store.name, exc_info=True)
            failed.append(store.name)
    if failed:
        raise StrayMountsFailed(f"mount(s) {', '.join(map(repr, failed))} not swept for stray files (logged above); "
                                f"{moved} file(s) of the others set aside")
    return moved


class StrayMountsFailed(Exception):
    """sweep_stray_copies could not sweep some mounts (it swept the others)."""


async def _stray_call(store: ObjectStore, method: str, *args: Any) -> Any:
    """A stray-file call (set_aside, remove_set_aside; files_older_than is _listing's) of either backend: a
    LocalStore's block on the file system (a thread), an S3Store's are requests (awaited). Both take
    the same arguments and give the same answers; they are no part of ObjectStore, as only this
    sweep uses them."""
    call = getattr(store, method)
    return await (asyncio.to_thread(call, *args) if isinstance(store, LocalStore) else call(*args))


async def _named_by_assets(by_id: dict[ObjectId, str]) -> set[ObjectId]:
    return {d["_id"] for model in (Asset, UploadSession)
            for d in await model.get_pymongo_collection().find({"_id": {"$in": list(by_id)}}, {"_id": 1}).to_list()}


async def _named_by_versions(by_id: dict[ObjectId, str]) -> set[ObjectId]:
    return {d["_id"] for d in await DatasetVersion.get_pymongo_collection().find(
        {"_id": {"$in": list(by_id)}}, {"content.key": 1}).to_list() if (d.get("content") or {}).get("key") == by_id[d["_id"]]}


async def _set_aside_stray(store: ObjectStore, folder: str, suffix: str,
                           named: Callable[[dict[ObjectId, str]], Awaitable[set[ObjectId]]], after: timedelta) -> int:
    """sweep_stray_copies for one folder of a mount: its files `<id><suffix>` of ids `named` does not return.

    The folder is listed a page at a time (a mount of millions of files was held whole, twice), each
    page checked against the database as it comes; the guard against another database than the
    mount's needs only the counts. The strays found are kept to move once the whole folder has
    been counted, unless more than STRAY_HELD: then a second listing finds them again to move them."""
    stray, old = 0, 0
    held: list[str] | None = []
    async with aclosing(_strays(store, folder, suffix, named, after)) as found:
        async for keys, checked in found:
            stray, old = stray + len(keys), old + checked
            held = held + keys if held is not None and stray <= STRAY_HELD else None
    if stray > STRAY_MOST and stray * 2 > old:
        log.error("mount %r: %d of the %d older files under %s/ are named by nothing of this database; is it the "
                  "lake's database? Nothing was set aside", store.name, stray, old, folder)
        return 0
    if not stray:
        return 0

    async def again() -> AsyncIterator[list[str]]:
        async with aclosing(_strays(store, folder, suffix, named, after)) as found:
            async for keys, _ in found:
                yield keys

    moved = 0
    async with aclosing(_as_pages(held) if held is not None else again()) as pages:  # a listing open till the end
        async for keys in pages:
            for key in keys:
                try:
                    await _stray_call(store, "set_aside", key)
                    moved += 1
                except (OSError, StoreUnavailable) as error:  # gone meanwhile, say: the others still go (the next run is a day away)
                    log.warning("could not set aside %s of mount %r: %s", key, store.name, error)
    if moved:
        log.warning("mount %r: set aside %d file(s) nothing names, under %s", store.name, moved, STRAY_DIR)
    return moved


async def _as_pages(keys: list[str]) -> AsyncIterator[list[str]]:
    yield keys


async def _strays(store: ObjectStore, folder: str, suffix: str, named: Callable[[dict[ObjectId, str]], Awaitable[set[ObjectId]]],
                  after: timedelta) -> AsyncIterator[tuple[list[str], int]]:
    """Per page of the folder's listing: the keys of its old files `named` does not return, and how
    many old files `<id><suffix>` it held (named or not)."""
    cutoff = utcnow() - after
    async with aclosing(_listing(store, folder, after.total_seconds())) as pages:
        async for page in pages:
            by_id = {ObjectId(stem): key for key in page
                     if (name := key.rsplit("/", 1)[1]).endswith(suffix) and ObjectId.is_valid(stem := name.removesuffix(suffix))
                     and ObjectId(stem).generation_time < cutoff}
            if by_id:
                known = await named(by_id)
                yield [key for i, key in by_id.items() if i not in known], len(by_id)


async def _listing(store: ObjectStore, folder: str, seconds: float) -> AsyncIterator[list[str]]:
    """files_older_than of either backend (see _stray_call), a page of STRAY_BATCH keys at a time:
    a LocalStore's pages are each listed in a thread, an S3Store's are its list requests."""
    if isinstance(store, LocalStore):
        pages = store.files_older_than(folder, seconds, STRAY_BATCH)
        try:
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                yield page
        finally:
            pages.close()  # the directory it holds open
    elif (s3 := as_s3(store)) is not None:
        async with aclosing(s3.files_older_than(folder, seconds, STRAY_BATCH)) as listed:
            async for page in listed:
                yield page


async def sweep_temp_files(stores: dict[str, ObjectStore], older_than: timedelta) -> int:
    """Remove the temp files of uploads that died on local mounts (a signed PUT's, a direct
    writer's), once nobody has written to them for `older_than`, the upload expiry: by then no
    session can still own one. Lists each mount's directories, so it runs far less often than
    `reconcile` (graphlake/app.py). Returns how many files went."""
    removed = 0
    for store in stores.values():
        if isinstance(store, LocalStore):
            try:
                removed += await asyncio.to_thread(store.remove_stale_temp_files, older_than.total_seconds())
            except OSError as error:
                log.warning("could not sweep the temp files of mount %r: %s", store.name, error)
    return removed
