"""Opening uploads: each request checked, then its session (single PUT, multipart or direct write) and
PENDING asset stored at once; and fresh signed URLs for what a session still needs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bson import ObjectId
from pymongo.errors import BulkWriteError

from documents.asset import Asset, StorageRef
from documents.clock import to_millis, utcnow
from documents.collection import Collection, CollectionItem
from documents.common import AssetKind, AssetStatus, Ownership
from documents.duplicates import duplicates_only
from documents.json_value import StoredJson
from documents.sparse import stored
from documents.upload import UploadSession, UploadStatus, part_count
from services import collections
from services.checks import check_labels, check_media_type, check_metadata, check_name, get_or_not_found
from services.errors import BadUserInput, Conflict, NotFound, Unavailable
from services.id_reads import docs_by_ids
from services.node_ids import NodeType, encode_id
from services.uploads import claims, stat_hints
from services.uploads.finishing import file_completed
from services.uploads.mounts import cannot_take_uploads, choose_store
from services.uploads.verification import check_sha256
from storage import LocalStore, ObjectStore, StoreUnavailable
from storage.concurrency import bounded_gather
from storage.local import UnsafeKey
from storage.protocol import SignedRequest

log = logging.getLogger("graphlake.uploads")

MIB = 1024 * 1024


MIN_PART = 8 * MIB  # S3 needs >= 5 MiB for every part but the last


MAX_PARTS = 10_000
# The least a signed URL lives: one signed just before its session expires outlives it by this much.
MIN_URL_SECONDS = 60
# The most part URLs one request is handed, in all its fields (createUpload, createUploads,
# uploadSession, node(s)): the parts of one upload of the largest size. Each is signed here, about
# 17 us of CPU, and sent: 10,000 inputs of 80 GiB would have been 100 million URLs, tens of GB.
MAX_PART_URLS = MAX_PARTS
# URLs signed between two turns of the event loop (about 4 ms of signing).
SIGN_SLICE = 250
# Sessions of one request signed at once when read (each lists its stored parts from the store first).
SIGN_AT_ONCE = 8


class PartUrls:
    """The part URLs one request may still be handed (MAX_PART_URLS in all), and the turns its
    signing gives the event loop: signing is CPU alone, and nothing in it awaits."""

    def __init__(self, most: int = MAX_PART_URLS) -> None:
        self.left = most
        self._unyielded = 0
        self.at_once = asyncio.Semaphore(SIGN_AT_ONCE)  # sessions read by one request, signed a few at a time

    def check(self, counts: Sequence[tuple[int, str]]) -> None:
        """BAD_USER_INPUT naming the field of the first of these (part count, field) that does not fit
        in what is left, counting those before it."""
        wanted = 0
        for parts, where in counts:
            wanted += parts
            if wanted > self.left:
                raise BadUserInput(
                    f"a request is handed at most {MAX_PART_URLS} part URLs (a file of S bytes has at most "
                    f"ceil(S / {MIN_PART // MIB} MiB) parts); {self.left} are left in this one, and this upload "
                    f"needs {parts} ({wanted} with those before it in the request): ask for it, and any after it, "
                    "in another request", field=where)

    def take(self, parts: int, field: str) -> None:
        self.check([(parts, field)])
        self.left -= parts

    async def signed(self) -> None:
        """Count one URL signed; every SIGN_SLICE, give the event loop a turn."""
        self._unyielded += 1
        if self._unyielded >= SIGN_SLICE:
            self._unyielded = 0
            await asyncio.sleep(0)


class UploadSettings(Protocol):
    """What opening uploads reads from the server's settings (graphlake/settings.py says what each means)."""

    max_upload_bytes: int
    max_batch_items: int
    default_mount: str
    multipart_threshold_bytes: int
    upload_expiry_seconds: int


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


def check_request(request: UploadRequest, settings: UploadSettings, where: str = "") -> None:
    """BAD_USER_INPUT naming the field (prefixed by `where`, e.g. "inputs[3].", in a batch)."""
    request.name = check_name(request.name, field=f"{where}name")
    if not 0 <= request.size_bytes <= settings.max_upload_bytes:
        raise BadUserInput(f"must be between 0 and {settings.max_upload_bytes}", field=f"{where}sizeBytes")
    if request.sha256 is not None:
        request.sha256 = check_sha256(request.sha256, f"{where}sha256")
    check_media_type(request.media_type, f"{where}mediaType")
    request.labels = check_labels(request.labels, field=f"{where}labels")
    check_metadata(request.metadata or StoredJson.encode({}), field=f"{where}metadata")
    if request.path is not None and request.collection_id is None:
        # A path is where in a collection the file goes: without one it was accepted and dropped unsaid.
        raise BadUserInput("a path places the file in a collection: give collectionId too", field=f"{where}path")
    request.path = collections.check_path(request.path, f"{where}path")


@dataclass(frozen=True)
class Started:
    """An upload just begun: its session and its PENDING asset."""

    session: UploadSession
    asset: Asset
    unchanged: bool = False  # the same content was filed at that path already: its completed session, nothing to send


def asset_key(asset_id: ObjectId) -> str:
    """Where a file asset's bytes go in its mount: made here, never taken from a client. A session
    shares its asset's id, so its key names both (refuses_writes, the stray sweep)."""
    return f"assets/{asset_id}"


def file_asset(request: UploadRequest, asset_id: ObjectId, store: ObjectStore, status: AssetStatus, actor: str | None,
               **fields: object) -> Asset:
    """The FILE asset a request stores at assets/<asset_id> of `store` (an upload's PENDING one, an
    ingest's ACTIVE one, which passes its digest and collection in `fields`)."""
    key = asset_key(asset_id)
    return Asset(
        id=asset_id, kind=AssetKind.FILE, status=status, name=request.name, description=request.description,
        media_type=request.media_type, size_bytes=request.size_bytes,
        storage=StorageRef(mount=store.name, key=key, uri=store.uri(key)),
        metadata=request.metadata or StoredJson.encode({}), labels=request.labels, owner=request.owner or Ownership(),
        data_timestamp=to_millis(request.data_timestamp) if request.data_timestamp else None, created_by=actor, **fields,
    )


async def items_at(requests: Sequence[UploadRequest]) -> list[dict]:
    """Collection items (collection_id, path, asset_id) at the paths these requests file into, and
    maybe others (collections and paths are matched each on its own: one query)."""
    wanted = [r for r in requests if r.collection_id and r.path]
    if not wanted:
        return []
    return await CollectionItem.get_pymongo_collection().find(
        {"collection_id": {"$in": list({r.collection_id for r in wanted})}, "path": {"$in": list({r.path for r in wanted})}},
        {"collection_id": 1, "path": 1, "asset_id": 1}).to_list()


async def filed_at(requests: Sequence[UploadRequest], items: list[dict] | None = None,
                   where: Callable[[int], str] = lambda i: f"inputs[{i}].") -> dict[int, Asset]:
    """The requests whose file is in their collection already, at the same path with the same
    SHA-256 and ACTIVE (a directory uploaded or ingested again): those assets, by request index.
    `items`: items_at's answer for these requests, if the caller has read it already.

    An ingest still filing such a file (its sessions leased: services/uploads/claims.py) may yet
    fail and remove it, as its batch is all-or-nothing: this waits for it to end and answers with
    what it left. One that still files after FILING_WAIT_SECONDS is CONFLICT on the request's
    path (`where` prefixes it: "inputs[3]." in a batch)."""
    asked = {(r.collection_id, r.path, r.sha256): i for i, r in enumerate(requests) if r.collection_id and r.path and r.sha256}
    if not asked:
        return {}
    if items is None:
        items = await items_at([r for r in requests if r.sha256])
    # By id alone, the status checked here, and only when there is something to find: see services/id_reads.py.
    assets = {a.id: a for a in await docs_by_ids(Asset, [i["asset_id"] for i in items])
              if a.status is AssetStatus.ACTIVE}
    found: dict[int, Asset] = {}
    for item in items:
        asset = assets.get(item["asset_id"])
        index = asked.get((item["collection_id"], item["path"], asset.sha256)) if asset else None
        if asset and index is not None:
            found[index] = asset
    missed = {key: i for key, i in asked.items() if i not in found}
    unfiled = await _unfiled_sessions(missed) if missed else {}
    # Both what an ingest has filed already (an item of a batch filing into several collections)
    # and what it has yet to file: a session shares its asset's id.
    asking: dict[ObjectId, int] = {id: i for id, (i, _) in unfiled.items()}
    asking.update((a.id, i) for i, a in found.items() if a.id)
    # The unfiled sessions were just read whole: only the filed ones' leases are read.
    held = {id for id, (_, s) in unfiled.items() if claims.leased(s.to_file, s.filing_at)}
    held |= await claims.filing([a.id for a in found.values() if a.id])
    if held:
        still = await claims.filing_ended(held)
        if still:
            raise Conflict("another request is still filing this file at this path (an ingest of it); try again once "
                           "it has answered", field=f"{where(min(asking[id] for id in still))}path")
        return await filed_at(requests, where=where)  # filed or removed meanwhile: read again
    if unfiled:
        sessions = [session for _, session in unfiled.values()]
        # An ingest's lapsed lease is taken before its sessions are filed: its writer may only be
        # frozen, and waking it removes what it still owns if its filing fails (ingest._undo).
        # What was renewed or removed meanwhile is left to the read below.
        taken = await claims.take_over([s.id for s in sessions if s.filing_at is not None])
        sessions = [s for s in sessions if s.filing_at is None or s.id in taken]
        for actor in {s.created_by for s in sessions}:
            await file_completed([s for s in sessions if s.created_by == actor], actor)
        return await filed_at(requests, where=where)  # their items are there now
    return found


async def twins_of(files: Iterable[tuple[ObjectId, str, str]], excluding: Container[ObjectId] = ()) -> dict[ObjectId, str]:
    """The ACTIVE assets (but those `excluding`) with the SHA-256 of one of these (collection, path,
    SHA-256) and in one of their collections: each one's SHA-256, by id (its session, which shares
    its id, says the path). Found through the assets' SHA-256 index: by their session's collection
    and path, the embedded default would scan every session. One read."""
    files = list(files)
    twins = await Asset.get_pymongo_collection().find(
        {"sha256": {"$in": list({sha for _, _, sha in files})}, "status": AssetStatus.ACTIVE.value},
        {"sha256": 1, "collection_ids": 1}).to_list()
    wanted = {collection for collection, _, _ in files}
    return {t["_id"]: t["sha256"] for t in twins
            if t["_id"] not in excluding and wanted.intersection(t.get("collection_ids") or ())}


async def _unfiled_sessions(missed: dict[tuple[ObjectId, str, str], int]) -> dict[ObjectId, tuple[int, UploadSession]]:
    """The completed uploads of these (collection, path, SHA-256) that a completion cut short left
    unfiled (ACTIVE, their session still `to_file`), by session id, with the index `missed` gives
    them, for filed_at to file. A rerun after a crash asks for them before the reconciler files
    them (CLAIM_SECONDS on): it sent them again, and both copies ended up at one path. Filing twice
    changes nothing, so a completion still filing them in another request does no harm; an ingest
    still filing them may yet remove them (filed_at waits for it)."""
    candidates = await twins_of(missed)
    if not candidates:
        return {}
    return {s.id: (missed[(s.collection_id, s.path, candidates[s.asset_id])], s)
            for s in await docs_by_ids(UploadSession, list(candidates))
            if s.id and s.to_file and s.status is UploadStatus.COMPLETED and s.collection_id and s.path
            and (s.collection_id, s.path, candidates[s.asset_id]) in missed}


async def _filed_already(requests: Sequence[UploadRequest], where: Callable[[int], str]) -> dict[int, Started]:
    """filed_at's, with their completed sessions (what createUploads answers with; a session's id is
    its asset's). A file filed without an upload (ingested: services/uploads/ingest.py) gets its
    completed session now, once, so uploading it again stores nothing twice either."""
    assets = await filed_at(requests, where=where)
    done = {s.id: s for s in await docs_by_ids(UploadSession, [a.id for a in assets.values()])}
    missing = {a.id: UploadSession.completed_for(a) for a in assets.values() if a.id not in done and a.storage}
    if missing:
        try:
            await UploadSession.get_pymongo_collection().insert_many(
                [s.model_dump(by_alias=True) for s in missing.values()], ordered=False)
        except BulkWriteError as error:  # another request gave it one meanwhile: the same, completed
            duplicates_only(error)
        done.update(missing)
    return {i: Started(done[a.id], a, unchanged=True) for i, a in assets.items()
            if a.id in done and done[a.id].status is UploadStatus.COMPLETED}


def check_distinct_paths(requests: Sequence[UploadRequest], where: Callable[[int], str]) -> None:
    """BAD_USER_INPUT naming the second request of a batch to file into a collection at a path an
    earlier one names: which of the two files the path holds would be a race, and two of the same
    bytes were stored twice (neither sees the other as stored: sessions.filed_at, ingest._others)."""
    first: dict[tuple[ObjectId, str], int] = {}
    for i, request in enumerate(requests):
        if request.collection_id and request.path:
            earlier = first.setdefault((request.collection_id, request.path), i)
            if earlier != i:
                raise BadUserInput(f"{where(earlier)}path names the same path of the same collection: a batch files "
                                   "one file at a path", field=f"{where(i)}path")


async def check_collections(requests: Sequence[UploadRequest], where: Callable[[int], str]) -> None:
    """NOT_FOUND naming the first request whose collection does not exist."""
    wanted = {r.collection_id for r in requests if r.collection_id}
    found = {c["_id"] for c in await Collection.get_pymongo_collection().find({"_id": {"$in": list(wanted)}}, {"_id": 1})
             .to_list()} if wanted else set()
    for i, request in enumerate(requests):
        if request.collection_id and request.collection_id not in found:
            raise NotFound(f"no collection {encode_id(NodeType.COLLECTION, request.collection_id)}",
                           field=f"{where(i)}collectionId")


async def create_uploads(requests: Sequence[UploadRequest], stores: dict[str, ObjectStore], settings: UploadSettings,
                         actor: str | None, *, part_urls: PartUrls, batch: bool = True) -> list[Started]:
    """Sessions and PENDING assets for several files: every request is checked before anything is
    written, then all sessions and all assets are stored with one bulk insert each. A file filed in
    its collection already (same path, same declared SHA-256) is not uploaded again: its completed
    session comes back, marked unchanged. The parts of those to upload must fit in `part_urls`, the
    URLs the request may still be handed (their signing takes them: sign_session)."""
    if batch and not requests:
        raise BadUserInput("give at least one upload", field="inputs")
    if len(requests) > settings.max_batch_items:
        raise BadUserInput(f"at most {settings.max_batch_items} uploads at once", field="inputs")
    where = (lambda i: f"inputs[{i}].") if batch else (lambda i: "")
    for i, request in enumerate(requests):
        check_request(request, settings, where(i))
    check_distinct_paths(requests, where)
    await check_collections(requests, where)
    chosen: dict[str | None, ObjectStore] = {}
    for i, request in enumerate(requests):  # one reachability check per mount, not per file
        if request.mount not in chosen:
            chosen[request.mount] = await choose_store(stores, request.mount, settings.default_mount, field=f"{where(i)}mount")
        store = chosen[request.mount]
        if request.direct and not (isinstance(store, LocalStore) and store.direct_writes):
            raise BadUserInput(f"mount {store.name!r} does not take direct writes (only local mounts with direct_writes on)",
                               field=f"{where(i)}direct")

    async def session_for(i: int, request: UploadRequest) -> UploadSession:
        store = chosen[request.mount]
        asset_id = ObjectId()  # the session's id too: a completion reads both at once, knowing only it
        key = asset_key(asset_id)
        # A direct write is one file written in place, whatever its size: no parts.
        part_size = None if request.direct else part_size_for(request.size_bytes, settings.multipart_threshold_bytes)
        try:
            multipart_id = await store.start_multipart(key, content_type=request.media_type) if part_size else None
        except UnsafeKey as error:  # a link someone sharing the local mount put where its uploads' parts go
            raise Unavailable(f"mount {store.name!r} cannot take uploads in parts now: {error}",
                              field=f"{where(i)}mount") from None
        except StoreUnavailable as error:  # failed since its check (a bucket deleted, credentials narrowed): said as it would be
            raise cannot_take_uploads(store.name, error, f"{where(i)}mount") from None
        return UploadSession(
            id=asset_id, asset_id=asset_id, mount=store.name, key=key, size_bytes=request.size_bytes,
            sha256=request.sha256, media_type=request.media_type, multipart_id=multipart_id, part_size=part_size,
            collection_id=request.collection_id, path=request.path, direct=request.direct,
            expires_at=utcnow() + timedelta(seconds=settings.upload_expiry_seconds), created_by=actor,
        )

    unchanged = await _filed_already(requests, where)
    fresh = [(i, r) for i, r in enumerate(requests) if i not in unchanged]
    if not fresh:
        return [unchanged[i] for i in range(len(requests))]
    part_urls.check([(0 if r.direct else part_count(r.size_bytes, part_size_for(r.size_bytes, settings.multipart_threshold_bytes)),
                      f"{where(i)}sizeBytes") for i, r in enumerate(requests) if i not in unchanged])
    sessions = await _started([lambda i=i, r=r: session_for(i, r) for i, r in fresh], stores)
    assets = [file_asset(request, session.asset_id, chosen[request.mount], AssetStatus.PENDING, actor)
              for (_, request), session in zip(fresh, sessions, strict=True)]
    # Both at once: a crash between the two leaves a session with no asset, which expires, or a
    # PENDING asset with no session, which settle_stranded fails.
    try:
        await asyncio.gather(
            UploadSession.get_pymongo_collection().insert_many([s.model_dump(by_alias=True) for s in sessions]),
            Asset.get_pymongo_collection().insert_many([stored(a) for a in assets]))
    except Exception:
        # The client hears of none of them, so no part can be sent. A session the database took all
        # the same (an answer lost) expires, and finds its upload aborted already.
        await _abort_quietly(sessions, stores)
        raise
    for session in sessions:
        stat_hints.stored_here.remember(session)
    started = iter(Started(session, asset) for session, asset in zip(sessions, assets, strict=True))
    return [unchanged[i] if i in unchanged else next(started) for i in range(len(requests))]


async def _started(jobs: Sequence[Callable[[], Awaitable[UploadSession]]],
                   stores: Mapping[str, ObjectStore]) -> list[UploadSession]:
    """The sessions `jobs` make (each starting its multipart upload in the store); if one fails, its
    error, once every other has ended and the multipart uploads they started are aborted. Without
    this, a batch one of whose uploads the store refused (a SlowDown, a mount gone) left the others'
    multipart uploads open in S3, which no session names and so no reconciler aborts."""
    outcomes = await bounded_gather(jobs, return_exceptions=True)  # an error is raised below, once the others ended
    failed = [o for o in outcomes if isinstance(o, Exception)]
    if failed:
        await _abort_quietly([o for o in outcomes if isinstance(o, UploadSession)], stores)
        raise failed[0]
    return outcomes  # type: ignore[return-value]


async def _abort_quietly(sessions: Sequence[UploadSession], stores: Mapping[str, ObjectStore]) -> None:
    """Abort the multipart uploads of sessions no client was told of; a store that fails this too is
    logged (a bucket's lifecycle rule for incomplete multipart uploads takes those: README)."""
    async def abort(session: UploadSession) -> None:
        assert session.multipart_id is not None
        try:
            await stores[session.mount].abort_multipart(session.key, session.multipart_id)
        except Exception:
            log.warning("the multipart upload of %s on mount %s, started for a request that failed, stays open",
                        session.key, session.mount, exc_info=True)

    await bounded_gather([lambda s=s: abort(s) for s in sessions if s.multipart_id is not None])


async def create_upload(request: UploadRequest, stores: dict[str, ObjectStore], settings: UploadSettings,
                        actor: str | None, *, part_urls: PartUrls) -> Started:
    [started] = await create_uploads([request], stores, settings, actor, part_urls=part_urls, batch=False)
    return started


async def get_session(session_id: ObjectId, field: str = "id") -> UploadSession:
    return await get_or_not_found(UploadSession, session_id, field=field, what="upload session")


async def sign_session(session: UploadSession, stores: dict[str, ObjectStore], part_urls: PartUrls,
                       field: str = "id") -> SignedSession:
    """Fresh URLs for what is still to upload; URLs of an open session live until it expires. Its
    parts are taken from `part_urls` (BAD_USER_INPUT naming `field` once the request has had its
    share), and signed a slice at a time."""
    if session.status is not UploadStatus.OPEN:
        return SignedSession(session=session, single=None, parts=[])
    store = stores[session.mount]
    if session.direct and isinstance(store, LocalStore):
        # In a worker thread: it makes the key's folders (LocalStore.start_multipart says why).
        direct_path = await asyncio.to_thread(store.direct_path, session.key)
        return SignedSession(session=session, single=None, parts=[], direct_path=str(direct_path))
    expires_in = max(MIN_URL_SECONDS, int((session.expires_at - utcnow()).total_seconds()))
    if session.multipart_id is None:
        single = await store.sign_put(session.key, size=session.size_bytes, content_type=session.media_type,
                                      sha256=session.sha256, expires_in=expires_in)
        await part_urls.signed()
        return SignedSession(session=session, single=single, parts=[])
    part_urls.take(session.part_count, field)
    stored = {p.number for p in await store.list_parts(session.key, session.multipart_id)}
    parts = []
    for number in range(1, session.part_count + 1):
        size = min(session.part_size, session.size_bytes - (number - 1) * session.part_size)
        signed = await store.sign_part(session.key, session.multipart_id, number, size=size,
                                       offset=(number - 1) * session.part_size, expires_in=expires_in)
        parts.append((number, signed, number in stored))
        await part_urls.signed()
    return SignedSession(session=session, single=None, parts=parts)


async def refuses_writes(key: str) -> str | None:
    """Why the signed URLs of the upload storing `key` may no longer write, or None while its session
    is open. The local mount asks after a single PUT's body, before its bytes are kept (a multipart
    part needs no asking: a closed upload's part file is gone), so a completed or aborted upload's URL cannot put
    bytes back (S3 URLs are create-only, and the reconciler sweeps what an aborted one left). A
    session shares its id with its asset, whose key is assets/<id>: one lookup by _id."""
    raw = key.removeprefix("assets/")
    if raw == key or not ObjectId.is_valid(raw):
        return "no upload writes to this key"
    session = await UploadSession.get_pymongo_collection().find_one({"_id": ObjectId(raw)}, {"status": 1, "expires_at": 1})
    if session is None:
        return "no upload writes to this key"
    if session["status"] != UploadStatus.OPEN.value:
        return f"its upload is {session['status'].lower()}: this URL can no longer write"
    if session["expires_at"] <= utcnow():  # not yet closed by the reconciler, but no completion will take it
        return "its upload has expired: this URL can no longer write"
    return None
