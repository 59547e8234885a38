"""Payload business steps: upload sessions (single PUT or multipart), completion with verification,
abort, and signed downloads. Expiry and crash repair are in `reconciler.py`; registering external
objects in place is in `external.py`.

Bytes never pass through here: the store signs URLs and reports what it holds. A session and its
PENDING asset share their id and are written at once; the session is closed as the asset turns
ACTIVE or FAILED. The reconciler fails the asset of an expired session and settles what a crash
left between the two (a PENDING asset behind a closed session or behind none, an open session
behind a settled asset), so no PENDING asset outlives its session.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlparse

from bson import ObjectId
from pymongo import UpdateMany
from pymongo.errors import BulkWriteError

from documents.asset import Asset, StorageRef
from documents.clock import to_millis, utcnow
from documents.collection import Collection
from documents.common import AssetKind, AssetStatus, Ownership
from documents.event import ASSET_STATUS, LEVELS, Event
from documents.json_value import StoredJson
from documents.upload import UploadClaim, UploadSession, UploadStatus
from graphlake.database import duplicates_only
from graphlake.settings import Settings
from resolvers.assets.service import check_labels, check_metadata, check_name
from resolvers.collections import service as collections
from resolvers.common import get_or_not_found
from resolvers.errors import BadUserInput, Conflict, GraphlakeError, NotFound
from resolvers.events.feed import FeedWriter
from resolvers.relay import encode_id
from storage import LocalStore, ObjectStore, StoreUnavailable
from storage.concurrency import bounded_gather
from storage.protocol import ObjectInfo, SignedRequest

log = logging.getLogger("graphlake.uploads")

MIB = 1024 * 1024
# A completion renews its claims every CLAIM_RENEW_SECONDS while it works (reading a huge object
# back can take minutes); a claim not renewed for CLAIM_SECONDS is from a request that died, and a
# retry of its upload may take it over. Short, so a crashed server holds up a retry briefly; three
# renewals long, so a busy one is not overtaken.
CLAIM_SECONDS = 30
CLAIM_RENEW_SECONDS = 10
MIN_PART = 8 * MIB  # S3 needs >= 5 MiB for every part but the last
MAX_PARTS = 10_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


class MountUnavailable(GraphlakeError):
    """The chosen mount cannot take uploads now, and no fallback can."""

    code = "INTERNAL"


@dataclass
class UploadRequest:
    name: str
    size_bytes: int
    media_type: str = "application/octet-stream"
    sha256: str | None = None
    mount: str | None = None
    description: str | None = None
    labels: list[str] = field(default_factory=list)
    metadata: StoredJson | None = None
    owner: Ownership | None = None
    data_timestamp: datetime | None = None
    collection_id: ObjectId | None = None
    path: str | None = None
    direct: bool = False  # the client writes the file into the local mount itself


@dataclass
class SignedSession:
    """A session with fresh signatures: one URL, or one per part with whether it is stored; or,
    for a direct write, the path to write to."""

    session: UploadSession
    single: SignedRequest | None
    parts: list[tuple[int, SignedRequest, bool]]
    direct_path: str | None = None


def part_size_for(size: int, threshold: int) -> int | None:
    """None below the multipart threshold; else whole MiB, >= 8 MiB, at most 10,000 parts."""
    if size < threshold:
        return None
    needed = -(-size // MAX_PARTS)
    return max(MIN_PART, -(-needed // MIB) * MIB)


# Whether each store answered lately, and when to ask again: a reachability check is a round trip
# to S3 (about 2 ms, or a whole connect timeout while it is down) that every small upload paid.
# Readiness probes (/readyz) still ask every time.
CHECK_SECONDS = 5.0
_checked: weakref.WeakKeyDictionary[ObjectStore, tuple[float, StoreUnavailable | None]] = weakref.WeakKeyDictionary()


async def _check(store: ObjectStore) -> None:
    """store.check(), its answer (up or down) remembered for CHECK_SECONDS."""
    now = time.monotonic()
    until, error = _checked.get(store, (0.0, None))
    if until <= now:
        try:
            await store.check()
            error = None
        except StoreUnavailable as failure:
            error = failure
        _checked[store] = (now + CHECK_SECONDS, error)
    if error is not None:
        raise error


async def choose_store(stores: dict[str, ObjectStore], requested: str | None, default: str,
                       field: str = "mount") -> ObjectStore:
    """The requested (or default) mount, or its fallback while it is unreachable (MADSci's behaviour)."""
    name = requested or default
    store = stores.get(name)
    if store is None:
        raise BadUserInput(f"no mount named {name!r} (have: {', '.join(sorted(stores))})", field=field)
    try:
        await _check(store)
        return store
    except StoreUnavailable as error:
        if store.fallback and store.fallback in stores:
            log.warning("mount %s unreachable (%s); uploading to fallback %s", name, error, store.fallback)
            fallback = stores[store.fallback]
            await _check(fallback)
            return fallback
        raise MountUnavailable(f"mount {name!r} cannot take uploads now: {error}", field=field) from None


def _check_request(request: UploadRequest, settings: Settings, where: str = "") -> None:
    """BAD_USER_INPUT naming the field (prefixed by `where`, e.g. "inputs[3].", in a batch)."""
    request.name = check_name(request.name, field=f"{where}name")
    if not 0 <= request.size_bytes <= settings.max_upload_bytes:
        raise BadUserInput(f"must be between 0 and {settings.max_upload_bytes}", field=f"{where}sizeBytes")
    if request.sha256 is not None:
        check_sha256(request.sha256, f"{where}sha256")
    if not _MEDIA_TYPE.match(request.media_type):
        raise BadUserInput("must look like type/subtype", field=f"{where}mediaType")
    request.labels = check_labels(request.labels, field=f"{where}labels")
    check_metadata(request.metadata or StoredJson.encode({}), field=f"{where}metadata")
    request.path = collections.check_path(request.path, f"{where}path")


class StoredHere:
    """Where the single-object uploads this process started put their objects: a completion asks
    the store about the object (a HEAD, on S3: a round trip of its own) while it claims and reads
    the session, instead of after. Only a hint, used when the session it reads agrees; a miss (a
    session another process started) asks after the read, as before."""

    def __init__(self, limit: int = 10_000) -> None:
        self._where: OrderedDict[ObjectId, tuple[str, str]] = OrderedDict()
        self._limit = limit

    def remember(self, session: UploadSession) -> None:
        if session.multipart_id is None and not session.direct:  # a direct write's stat is local anyway
            self._where[session.id] = (session.mount, session.key)
            while len(self._where) > self._limit:
                self._where.popitem(last=False)

    def ask_early(self, session_ids: Sequence[ObjectId], stores: dict[str, ObjectStore]) -> dict[ObjectId, Early]:
        """A stat started now for each session remembered here (a hint is used once)."""
        early = {}
        for session_id in session_ids:
            mount, key = self._where.pop(session_id, (None, None))
            if mount in stores:
                early[session_id] = Early(mount, key, asyncio.ensure_future(stores[mount].stat(key)))
        return early


@dataclass(frozen=True)
class Early:
    """A stat begun before its session was read."""

    mount: str
    key: str
    stat: asyncio.Future[ObjectInfo | None]

    def serves(self, session: UploadSession) -> bool:
        return session.multipart_id is None and (session.mount, session.key) == (self.mount, self.key)

    def drop(self) -> None:
        if self.stat.done():
            if not self.stat.cancelled():
                self.stat.exception()  # retrieved, so an unused failure is not logged as unhandled
        else:
            self.stat.cancel()


_stored_here = StoredHere()


@dataclass(frozen=True)
class Started:
    """An upload just begun: its session and its PENDING asset."""

    session: UploadSession
    asset: Asset


async def create_uploads(requests: Sequence[UploadRequest], stores: dict[str, ObjectStore], settings: Settings,
                         actor: str | None, *, batch: bool = True) -> list[Started]:
    """Sessions and PENDING assets for several files: every request is checked before anything is
    written, then all sessions and all assets are stored with one bulk insert each."""
    if batch and not requests:
        raise BadUserInput("give at least one upload", field="inputs")
    if len(requests) > settings.max_batch_items:
        raise BadUserInput(f"at most {settings.max_batch_items} uploads at once", field="inputs")
    where = (lambda i: f"inputs[{i}].") if batch else (lambda i: "")
    for i, request in enumerate(requests):
        _check_request(request, settings, where(i))
    wanted = {r.collection_id for r in requests if r.collection_id}
    found = {c["_id"] for c in await Collection.get_pymongo_collection().find({"_id": {"$in": list(wanted)}}, {"_id": 1})
             .to_list()} if wanted else set()
    for i, request in enumerate(requests):
        if request.collection_id and request.collection_id not in found:
            raise NotFound(f"no collection {request.collection_id}", field=f"{where(i)}collectionId")
    chosen: dict[str | None, ObjectStore] = {}
    for i, request in enumerate(requests):  # one reachability check per mount, not per file
        if request.mount not in chosen:
            chosen[request.mount] = await choose_store(stores, request.mount, settings.default_mount, field=f"{where(i)}mount")
        store = chosen[request.mount]
        if request.direct and not (isinstance(store, LocalStore) and store.direct_writes):
            raise BadUserInput(f"mount {store.name!r} does not take direct writes (only local mounts with direct_writes on)",
                               field=f"{where(i)}direct")

    async def session_for(request: UploadRequest) -> UploadSession:
        store = chosen[request.mount]
        asset_id = ObjectId()  # the session's id too: a completion reads both at once, knowing only it
        key = f"assets/{asset_id}"  # made here, never taken from a client
        # A direct write is one file written in place, whatever its size: no parts.
        part_size = None if request.direct else part_size_for(request.size_bytes, settings.multipart_threshold_bytes)
        multipart_id = await store.start_multipart(key, content_type=request.media_type) if part_size else None
        return UploadSession(
            id=asset_id, asset_id=asset_id, mount=store.name, key=key, size_bytes=request.size_bytes,
            sha256=request.sha256, media_type=request.media_type, multipart_id=multipart_id, part_size=part_size,
            collection_id=request.collection_id, path=request.path, direct=request.direct,
            expires_at=utcnow() + timedelta(seconds=settings.upload_expiry_seconds), created_by=actor,
        )

    sessions = await bounded_gather([lambda r=r: session_for(r) for r in requests])
    assets = [
        Asset(
            id=session.asset_id, kind=AssetKind.FILE, status=AssetStatus.PENDING, name=request.name,
            description=request.description, media_type=request.media_type, size_bytes=request.size_bytes,
            storage=StorageRef(mount=session.mount, key=session.key, uri=chosen[request.mount].uri(session.key)),
            metadata=request.metadata or StoredJson.encode({}), labels=request.labels, owner=request.owner or Ownership(),
            data_timestamp=to_millis(request.data_timestamp) if request.data_timestamp else None, created_by=actor,
        )
        for request, session in zip(requests, sessions, strict=True)
    ]
    # Both at once: a crash between the two leaves a session with no asset, which expires, or a
    # PENDING asset with no session, which settle_stranded fails.
    await asyncio.gather(
        UploadSession.get_pymongo_collection().insert_many([s.model_dump(by_alias=True) for s in sessions]),
        Asset.get_pymongo_collection().insert_many([a.model_dump(by_alias=True) for a in assets]))
    for session in sessions:
        _stored_here.remember(session)
    return [Started(session, asset) for session, asset in zip(sessions, assets, strict=True)]


async def create_upload(request: UploadRequest, stores: dict[str, ObjectStore], settings: Settings,
                        actor: str | None) -> Started:
    [started] = await create_uploads([request], stores, settings, actor, batch=False)
    return started


async def get_session(session_id: ObjectId, field: str = "id") -> UploadSession:
    return await get_or_not_found(UploadSession, session_id, field=field, what="upload session")


async def sign_session(session: UploadSession, stores: dict[str, ObjectStore]) -> SignedSession:
    """Fresh URLs for what is still to upload; URLs of an open session live until it expires."""
    if session.status is not UploadStatus.OPEN:
        return SignedSession(session=session, single=None, parts=[])
    store = stores[session.mount]
    if session.direct and isinstance(store, LocalStore):
        return SignedSession(session=session, single=None, parts=[], direct_path=str(store.direct_path(session.key)))
    expires_in = max(60, int((session.expires_at - utcnow()).total_seconds()))
    if session.multipart_id is None:
        single = await store.sign_put(session.key, size=session.size_bytes, content_type=session.media_type,
                                      sha256=session.sha256, expires_in=expires_in)
        return SignedSession(session=session, single=single, parts=[])
    stored = {p.number for p in await store.list_parts(session.key, session.multipart_id)}
    parts = []
    for number in range(1, session.part_count + 1):
        size = min(session.part_size, session.size_bytes - (number - 1) * session.part_size)
        signed = await store.sign_part(session.key, session.multipart_id, number, size=size,
                                       offset=(number - 1) * session.part_size, expires_in=expires_in)
        parts.append((number, signed, number in stored))
    return SignedSession(session=session, single=None, parts=parts)


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
    # One update per distinct change (the checksums usually differ), each one statement for all its assets.
    changes: dict[tuple, list[ObjectId]] = {}
    for session, fields in outcomes:
        changes.setdefault(tuple(sorted(fields.items())), []).append(session.asset_id)
    closing = {"status": status.value, "finished_at": now}
    filed = status is UploadStatus.COMPLETED
    to_file = [s.id for s, _ in outcomes if filed and s.collection_id]  # see file_completed
    rest = [s.id for s, _ in outcomes if not (filed and s.collection_id)]
    await asyncio.gather(
        UploadSession.get_pymongo_collection().bulk_write(
            [UpdateMany({"_id": {"$in": ids}}, {"$set": {**closing, "to_file": mark}})
             for ids, mark in ((to_file, True), (rest, False)) if ids]),
        Asset.get_pymongo_collection().bulk_write(
            [UpdateMany({"_id": {"$in": ids}}, {"$set": {"status": asset_status.value, "updated_at": now, **dict(change)}})
             for change, ids in changes.items()]))
    # A crash between a session's insert and its asset's leaves a session with no asset: nothing to flip.
    finished = [assets[session.asset_id].model_copy(update={"status": asset_status, "updated_at": now, **fields})
                for session, fields in outcomes if session.asset_id in assets]
    await feed.write([status_event(asset, now) for asset in finished])
    return finished


async def assets_of(sessions: Sequence[UploadSession]) -> dict[ObjectId, Asset]:
    """The assets these sessions fill, by id."""
    return await assets_by_id([s.asset_id for s in sessions])


async def assets_by_id(asset_ids: Sequence[ObjectId]) -> dict[ObjectId, Asset]:
    if not asset_ids:
        return {}
    return {a.id: a for a in await Asset.find({"_id": {"$in": list(asset_ids)}}).to_list()}


def status_event(asset: Asset, at: datetime) -> Event:
    """The ASSET_STATUS event of an asset that just turned ACTIVE or FAILED."""
    return Event(
        id=ObjectId(), event_type=ASSET_STATUS, level=LEVELS["INFO" if asset.status is AssetStatus.ACTIVE else "WARNING"],
        message=f"{asset.name} is {asset.status.value}", source=asset.owner, timestamp=at,
        data=StoredJson.encode({"assetId": encode_id("Asset", asset.id), "status": asset.status.value,
                                "sizeBytes": asset.size_bytes, "mount": asset.storage.mount if asset.storage else None}),
    )


async def _finish(session: UploadSession, status: UploadStatus, asset_status: AssetStatus, feed: FeedWriter,
                  **asset_fields: object) -> Asset:
    [asset] = await finish_many([(session, asset_fields)], status, asset_status, feed)
    return asset


def check_sha256(sha256: str, field: str) -> str:
    if not _SHA256.match(sha256):
        raise BadUserInput("must be 64 lowercase hex digits", field=field)
    return sha256


def late_digests(session_ids: Sequence[ObjectId], sha256s: Sequence[str | None] | None) -> dict[ObjectId, str]:
    """completeUploads' `sha256s`: digests for sessions created without one, null where declared."""
    if sha256s is None:
        return {}
    if len(sha256s) != len(session_ids):
        raise BadUserInput(f"give one digest (or null) per id: {len(sha256s)} for {len(session_ids)} ids", field="sha256s")
    return {session_id: check_sha256(sha256, f"sha256s[{i}]")
            for i, (session_id, sha256) in enumerate(zip(session_ids, sha256s, strict=True)) if sha256 is not None}


async def _declare_late(session: UploadSession, sha256: str) -> None:
    """Take a digest given at completion as if createUpload had declared it. It is stored on the
    session before it is checked, so a retry must give the same one, and the reconciler settling a
    completion a crash cut short gives the asset this digest."""
    if session.sha256 == sha256:
        return
    if session.sha256 is not None:
        raise BadUserInput(f"differs from the SHA-256 createUpload declared ({session.sha256})", field="sha256")
    # Only the request holding the session's claim gets here: no other digest can come in between.
    await UploadSession.get_pymongo_collection().update_one({"_id": session.id}, {"$set": {"sha256": sha256}})
    session.sha256 = sha256


@dataclass
class _Verified:
    """What the store holds for a session: its SHA-256 when it matches, else what differs."""

    sha256: str | None
    problems: list[str]


async def _verify(session: UploadSession, store: ObjectStore, field: str,
                  stat: Awaitable[ObjectInfo | None] | None = None, late_sha256: str | None = None) -> _Verified:
    """Check an open session's object against what was declared; raise what the client must fix.
    `stat`: the store's answer for a single object, asked for before the session was read;
    `late_sha256`: a digest the completion gives (see _declare_late)."""
    if session.status is not UploadStatus.OPEN:
        raise Conflict(f"the upload is {session.status.value.lower()}", field=field)
    if session.expires_at <= utcnow():
        raise Conflict("the upload session has expired; start a new one", field=field)
    if late_sha256 is not None:
        await _declare_late(session, late_sha256)
    if session.multipart_id:
        parts = await store.list_parts(session.key, session.multipart_id)
        missing = sorted(set(range(1, session.part_count + 1)) - {p.number for p in parts})
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            raise BadUserInput(f"parts not uploaded yet: {shown}; fetch uploadSession for their URLs", field=field,
                               missingParts=missing[:1000])
        await store.complete_multipart(session.key, session.multipart_id, [p for p in parts if p.number <= session.part_count])
    info = await (stat if stat is not None else store.stat(session.key))
    if info is None:
        raise BadUserInput("no regular file has been written to this session's directPath yet" if session.direct
                           else "nothing has been uploaded to this session's URL yet", field=field)
    problems = []
    if info.size != session.size_bytes:
        problems.append(f"size: declared {session.size_bytes} bytes, stored {info.size}")
    sha256 = None if session.direct else info.sha256  # a direct writer could have recorded any digest
    if session.sha256 and not problems:
        sha256 = sha256 or await store.sha256(session.key)
        if sha256 != session.sha256:
            problems.append(f"sha256: declared {session.sha256}, stored {sha256}")
    if problems:
        await store.delete(session.key)
    return _Verified(sha256=sha256, problems=problems)


def _mismatch(problems: list[str]) -> BadUserInput:
    return BadUserInput("; ".join(problems) + ". The asset is FAILED and the object removed.",
                        field="sha256" if problems[0].startswith("sha256") else "sizeBytes")


async def _claim(session_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Claim sessions for completion: of two requests completing the same upload at once, one
    verifies and finishes it and the other is told so (CONFLICT). Returns the ones this call got.
    A claim not renewed for CLAIM_SECONDS is from a request that died: it is taken over."""
    claims = UploadClaim.get_pymongo_collection()

    async def insert(ids: list[ObjectId]) -> list[ObjectId]:  # -> the ones someone else holds
        try:
            await claims.insert_many([{"_id": i, "claimed_at": utcnow()} for i in ids], ordered=False)
        except BulkWriteError as error:  # a duplicate key each
            return [ids[i] for i in duplicates_only(error)]
        return []

    held = await insert(list(session_ids))
    if held:  # take over the claims of requests that died, then try those once more
        await claims.delete_many({"_id": {"$in": held}, "claimed_at": {"$lt": utcnow() - timedelta(seconds=CLAIM_SECONDS)}})
        held = await insert(held)
    return set(session_ids) - set(held)


async def _release(session_ids: Sequence[ObjectId]) -> None:
    """Drop this call's claims on these sessions."""
    if session_ids:
        await UploadClaim.get_pymongo_collection().delete_many({"_id": {"$in": list(session_ids)}})


async def complete_uploads(session_ids: Sequence[ObjectId], stores: dict[str, ObjectStore], feed: FeedWriter,
                           actor: str | None, max_items: int,
                           late_sha256: Mapping[ObjectId, str] | None = None) -> list[Asset | GraphlakeError]:
    """Finish several uploads, each on its own: per session, in the order given, its ACTIVE asset or
    the error that stopped it (a mismatch also fails its asset and removes the object).
    `late_sha256`: digests given now for sessions created without one."""
    if not session_ids:
        raise BadUserInput("give at least one upload", field="ids")
    if len(session_ids) > max_items:
        raise BadUserInput(f"at most {max_items} uploads at once", field="ids")
    if len(set(session_ids)) != len(session_ids):
        raise BadUserInput("the same upload appears twice", field="ids")
    # Everything that needs only the ids at once: the claims, the sessions, their assets (which
    # share their ids) and, for uploads started here, what the store holds.
    early = _stored_here.ask_early(session_ids, stores)
    claimed, sessions, assets = await asyncio.gather(
        _claim(session_ids), UploadSession.find({"_id": {"$in": list(session_ids)}}).to_list(),
        assets_by_id(session_ids))
    renewing = asyncio.create_task(_renew(list(claimed)))
    outcomes: list[Asset | GraphlakeError] = []
    try:
        outcomes = await _complete_claimed(session_ids, claimed, {s.id: s for s in sessions}, assets, early, stores,
                                           feed, actor, max_items, late_sha256 or {})
        return outcomes
    finally:
        renewing.cancel()
        for started in early.values():
            started.drop()
        # A completed session is closed for good, so its claim can wait for the reconciler to
        # drop it; the others (not uploaded yet, a store error) must be free for a retry now.
        done = {id for id, o in zip(session_ids, outcomes, strict=False) if not isinstance(o, GraphlakeError)}
        await _release([id for id in claimed if id not in done])


async def _renew(session_ids: list[ObjectId]) -> None:
    """Keep this call's claims fresh until it is cancelled."""
    while session_ids:
        await asyncio.sleep(CLAIM_RENEW_SECONDS)
        await UploadClaim.get_pymongo_collection().update_many({"_id": {"$in": session_ids}},
                                                               {"$set": {"claimed_at": utcnow()}})


async def file_completed(sessions: Sequence[UploadSession], actor: str | None,
                         max_items: int | None = None) -> list[GraphlakeError]:
    """File completed uploads into the collections they named, one add per collection, then clear
    their `to_file` mark. A crash before that leaves the mark, and the reconciler files them again
    (adding an item twice changes nothing). A collection deleted meanwhile cannot take its uploads:
    its error is returned and their mark cleared all the same."""
    groups: dict[ObjectId, list[UploadSession]] = {}
    for session in sessions:
        if session.collection_id:
            groups.setdefault(session.collection_id, []).append(session)
    errors: list[GraphlakeError] = []
    for collection_id, group in groups.items():
        items = [collections.NewItem(s.asset_id, s.path, None) for s in group]
        try:
            await collections.add_items(collection_id, items, actor, max_items or len(items))
        except GraphlakeError as error:
            errors.append(error)
    if groups:
        await UploadSession.get_pymongo_collection().update_many(
            {"_id": {"$in": [s.id for group in groups.values() for s in group]}}, {"$set": {"to_file": False}})
    return errors


async def _complete_claimed(session_ids: Sequence[ObjectId], claimed: set[ObjectId], found: dict[ObjectId, UploadSession],
                            assets: dict[ObjectId, Asset], early: dict[ObjectId, Early], stores: dict[str, ObjectStore],
                            feed: FeedWriter, actor: str | None, max_items: int,
                            late_sha256: Mapping[ObjectId, str]) -> list[Asset | GraphlakeError]:

    async def verify(session_id: ObjectId) -> _Verified | GraphlakeError:
        session = found.get(session_id)
        if session is None:
            return NotFound(f"no upload session {session_id}", field="id")
        if session.status is not UploadStatus.OPEN:  # said first: a finished session keeps its claim a while
            return Conflict(f"the upload is {session.status.value.lower()}", field="id")
        if session_id not in claimed:
            return Conflict("another request is completing this upload right now", field="id")
        started = early.get(session_id)
        try:
            return await _verify(session, stores[session.mount], "id",
                                 started.stat if started and started.serves(session) else None,
                                 late_sha256.get(session_id))
        except GraphlakeError as error:
            return error

    # Sessions from before a session shared its asset's id: their assets are read while the store answers.
    older = [s for s in found.values() if s.asset_id not in assets]
    checks, more = await asyncio.gather(bounded_gather([lambda i=i: verify(i) for i in session_ids]),
                                        assets_of(older))
    assets = {**assets, **more}  # finish_many changes them as it writes
    verified = dict(zip(session_ids, checks, strict=True))
    good = [(found[i], {"sha256": v.sha256}) for i, v in verified.items() if isinstance(v, _Verified) and not v.problems]
    bad = [(found[i], {}) for i, v in verified.items() if isinstance(v, _Verified) and v.problems]
    completed = {a.id: a for a in await finish_many(good, UploadStatus.COMPLETED, AssetStatus.ACTIVE, feed, assets)}
    await finish_many(bad, UploadStatus.ABORTED, AssetStatus.FAILED, feed, assets)
    unfiled = await file_completed([session for session, _ in good], actor, max_items)
    if unfiled:
        raise unfiled[0]
    return [completed[found[i].asset_id] if isinstance(v, _Verified) and not v.problems
            else _mismatch(v.problems) if isinstance(v, _Verified) else v
            for i, v in verified.items()]


async def complete_upload(session_id: ObjectId, stores: dict[str, ObjectStore], feed: FeedWriter,
                          actor: str | None, max_items: int, late_sha256: Mapping[ObjectId, str] | None = None) -> Asset:
    [outcome] = await complete_uploads([session_id], stores, feed, actor, max_items, late_sha256)
    if isinstance(outcome, GraphlakeError):
        raise outcome
    return outcome


async def abort_upload(session_id: ObjectId, stores: dict[str, ObjectStore], feed: FeedWriter) -> UploadSession:
    session = await get_session(session_id)
    if session.status is UploadStatus.OPEN:
        await discard_payload(session, stores)
        await _finish(session, UploadStatus.ABORTED, AssetStatus.FAILED, feed)
    return await get_session(session_id)


async def discard_payload(session: UploadSession, stores: dict[str, ObjectStore]) -> None:
    store = stores.get(session.mount)
    if store is None:
        return
    if session.multipart_id:
        await store.abort_multipart(session.key, session.multipart_id)
    await store.delete(session.key)


async def download_url(asset: Asset, stores: dict[str, ObjectStore], expires_in: int, max_seconds: int) -> str | None:
    """A signed GET for a FILE or EXTERNAL asset's bytes, keeping its name; null for other kinds."""
    if asset.storage is None or asset.status in (AssetStatus.PENDING, AssetStatus.DELETED):
        return None
    if not 1 <= expires_in <= max_seconds:
        raise BadUserInput(f"must be between 1 and {max_seconds}", field="expiresInSeconds")
    if asset.storage.uri.startswith(("https://", "http://")):
        return asset.storage.uri
    store = stores.get(asset.storage.mount)
    if store is None:
        return None
    bucket = None
    if asset.storage.external:
        bucket = urlparse(asset.storage.uri).netloc
    return await store.sign_get(asset.storage.key, filename=asset.name, content_type=asset.media_type,
                                expires_in=expires_in, bucket=bucket)
