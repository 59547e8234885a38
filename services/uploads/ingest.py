"""Ingesting files the server reads itself: a dataset already on the lab's disk or NAS, under a
directory the operator listed in GRAPHLAKE_INGEST_ROOTS, copied into a local mount and filed as
ACTIVE assets in one request per batch.

An upload is built for a client the server cannot see: a session and a PENDING asset to say what
is coming, a signed URL or a direct write, a claim and a read-back to check what arrived, then the
flip to ACTIVE, about eleven document writes a file. Here the server makes the copy, so it knows
what it wrote: each file is hashed as it is copied, and only then is its asset stored, ACTIVE, with
that digest and its collection (one insert for the batch), pinned and filed, and announced: about
four writes a file, six when it is filed into a collection (its completed session, marked
`to_file` before the asset is stored and cleared once it is filed). Nothing is written to the
database before every copy is in place; a copy that fails, or finds its file is not the one
checked, removes this call's copies and names the file, and a filing that fails removes the
batch's assets too. A server stopping mid-call (or a request cancelled mid-copy) can leave copies
no asset names (bytes, never a record pointing at nothing), which the reconciler sets aside a day
later (reconciler.sweep_stray_copies); stopping between the asset insert and the filing, it leaves
ACTIVE assets whose sessions are still `to_file`, as a completion cut short does: calling again
files them where they were going (and drops the copies it made meanwhile), and else the
reconciler does (reconciler.file_unfiled). Until then the call holds a lease on those sessions
(`filing_at`, services/uploads/claims.py): another call ingesting the same files meanwhile must
not take them for a crash's leftovers (it would answer with assets this call removes if its filing
fails), so it waits for this one to end, or for a dead server's lease to lapse; the lease bears
this call's token, so a writer frozen past it removes nothing another took over. Two calls storing
the same new file at one path at once both read no item there: each looks for the other once its
assets are stored, and one gives way (_stored_by_others). Thumbnails and metrics follow as for
uploads (the resolver asks).

Only local mounts take ingests: a copy to S3 would carry every byte through the API process,
which the upload path's signed URLs exist to avoid.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from bson import ObjectId

from documents.asset import Asset
from documents.clock import utcnow
from documents.collection import CollectionItem
from documents.common import AssetStatus
from documents.object_ids import new_object_ids
from documents.retention import AssetRetention
from documents.sparse import cleared, stored
from documents.upload import UploadSession, completed_document
from services import collections
from services.errors import BadUserInput, Conflict, NotFound
from services.events.feed import FeedWriter
from services.id_reads import fields_by_ids
from services.uploads import claims
from services.uploads.finishing import status_event
from services.uploads.mounts import choose_store
from services.uploads.sessions import (
    UploadRequest,
    UploadSettings,
    asset_key,
    check_collections,
    check_distinct_paths,
    check_request,
    file_asset,
    filed_at,
    items_at,
    twins_of,
)
from storage import LocalStore, ObjectStore
from storage.concurrency import bounded_gather, in_file_thread
from storage.local import SourceChanged, sha256_of_source


@dataclass
class IngestRequest:
    """One file: `source` is its absolute path on the server; `upload` what createUpload would take
    (its size is the caller's view of the file, checked against the server's), but for its name and
    media type, which default to the file's name and what that suggests."""

    source: str
    upload: UploadRequest
    modified_ns: int | None = None  # the file's modification time as the caller sees it (ns since the epoch)
    name: str | None = None
    media_type: str | None = None


@dataclass(frozen=True)
class Ingested:
    asset: Asset
    unchanged: bool = False  # the same content was filed at that path already: nothing copied


async def ingest_files(requests: Sequence[IngestRequest], roots: Sequence[Path], mount: str | None,
                       stores: dict[str, ObjectStore], settings: UploadSettings, feed: FeedWriter,
                       actor: str | None, *, private: Sequence[Path] = ()) -> list[Ingested]:
    """Copy each file into the mount and file it; in the order given. Every request is checked
    (and every file found, inside a root and outside `private` (the server's own data), of the
    size and modification time given) before anything is copied."""
    if not roots:
        raise BadUserInput("this server ingests from no directory (GRAPHLAKE_INGEST_ROOTS is empty): upload instead",
                           field="inputs")
    if not requests:
        raise BadUserInput("give at least one file", field="inputs")
    if len(requests) > settings.max_batch_items:
        raise BadUserInput(f"at most {settings.max_batch_items} files at once", field="inputs")
    found = await in_file_thread(_find_sources, [r.source for r in requests], roots, private)  # one thread
    uploads = [_named(r) for r in requests]
    for i, (request, upload, (_, seen)) in enumerate(zip(requests, uploads, found, strict=True)):
        check_request(upload, settings, f"inputs[{i}].")
        # Size and modification time: a client on another machine that mounts another disk at the
        # same path must be told, not given the server's file (same-sized frames are common).
        if seen.st_size != upload.size_bytes:
            raise Conflict(f"the server's file has {seen.st_size} bytes, not {upload.size_bytes}: it sees another file at "
                           "this path (another machine?); upload it instead", field=f"inputs[{i}].sizeBytes")
        if request.modified_ns is not None and seen.st_mtime_ns != request.modified_ns:
            raise Conflict(f"the server's file was modified at {seen.st_mtime_ns} ns, not {request.modified_ns}: it sees "
                           "another file at this path (another machine?), or it changed; upload it instead",
                           field=f"inputs[{i}].modifiedNs")
    check_distinct_paths(uploads, lambda i: f"inputs[{i}].")
    await check_collections(uploads, lambda i: f"inputs[{i}].")
    store = await choose_store(stores, mount, settings.default_mount)
    if not isinstance(store, LocalStore):
        raise BadUserInput(f"mount {store.name!r} is not local: ingest copies into local mounts only (upload to S3 "
                           "mounts, whose bytes never pass through the server)", field="mount")

    # A rerun: a file whose path in its collection holds an item already is hashed first (unless its
    # digest was given), and not copied if it is the same. The others are hashed as they are copied
    # (a first import reads each file once).
    items = await items_at(uploads)
    taken = {(item["collection_id"], item["path"]) for item in items}
    again = [i for i, u in enumerate(uploads) if (u.collection_id, u.path) in taken and not u.sha256]
    hashed = dict(zip(again, await bounded_gather([lambda i=i: in_file_thread(sha256_of_source, *found[i])
                                                   for i in again]), strict=True))
    digests = {**{i: u.sha256 for i, u in enumerate(uploads) if u.sha256}, **hashed}
    # A digest given is the request's own already: only the files hashed here need a new request.
    unchanged = await filed_at([replace(u, sha256=hashed[i]) if i in hashed else u for i, u in enumerate(uploads)], items)
    fresh = [i for i in range(len(uploads)) if i not in unchanged]
    ids = dict(zip(fresh, new_object_ids(len(fresh)), strict=True))  # see documents/object_ids.py
    copied = await _copy(store, {i: (found[i], asset_key(ids[i]), digests.get(i)) for i in fresh}, set(hashed))
    uploads = [replace(u, sha256=copied[i]) if i in copied else u for i, u in enumerate(uploads)]

    now = utcnow()  # the batch's assets are made, and announced, at one moment (the clock read once, not twice a file)
    made = {i: file_asset(uploads[i], ids[i], store, AssetStatus.ACTIVE, actor, sha256=uploads[i].sha256,  # see _file
                          collection_ids=[uploads[i].collection_id] if uploads[i].collection_id else [],
                          created_at=now, updated_at=now)
            for i in fresh}
    if made:
        # Each filed asset's completed session, `to_file`, goes first: a server stopping after the
        # assets' insert and before the filing leaves what a rerun (sessions.filed_at) or the
        # reconciler (file_unfiled) files, not assets that name their collection and are in it for
        # nobody. Stopping before the assets' insert leaves sessions that name no asset, which the
        # reconciler removes (the copies are then stray). Until this call has filed them, its
        # lease on them (`filing_at`, renewed while it works, under this call's `filing_owner`
        # token) keeps every other request from taking them for a crash's leftovers: it may yet
        # fail and remove them. A writer frozen past its lease is taken over (claims.take_over),
        # and then removes and renews nothing of what it no longer owns.
        owner = claims.filing_token()
        leased: list[ObjectId] = [ids[i] for i in made if uploads[i].collection_id]  # each session's id is its asset's
        renewing = asyncio.create_task(claims.keep_filing(leased, owner))
        try:
            try:
                await _store([made[i] for i in made], uploads, made, owner)
                # Another call storing the same file at the same path for the first time, at the
                # same moment, read no item there either: each must find the other now, after
                # its own assets are stored, so that one asset stays (the same read a rerun pays
                # for its crash's leftovers, moved here: none more for new files).
                for i, asset in (await _stored_by_others(store, uploads, made, owner)).items():
                    unchanged[i] = asset
                    del made[i]
                if made:
                    await _file(made, uploads, actor, settings.max_batch_items)
            except BaseException:  # a collection deleted since it was checked, say: nothing of the batch stays
                await _undo(store, list(made.values()), owner)
                raise
            if leased:  # filed: the lease ends with the mark, in the same write (if still this call's)
                await UploadSession.get_pymongo_collection().update_many(
                    {"_id": {"$in": leased}, "filing_owner": owner},
                    {"$set": {"to_file": False}, **cleared("filing_at", "filing_owner")})
        except BaseException:
            # What the undo could not remove (or a failed insert left) is a stopped writer's: the
            # lease goes, so a rerun or the reconciler files it now, not CLAIM_SECONDS later. Should
            # this write fail too, the lease runs out all the same; the error that stopped the call
            # is the one to tell.
            if leased:
                with contextlib.suppress(Exception):
                    await UploadSession.get_pymongo_collection().update_many({"_id": {"$in": leased}, "filing_owner": owner},
                                                                             cleared("filing_at"))
            raise
        finally:
            renewing.cancel()
        await feed.write([status_event(a, now) for a in made.values()])
    return [Ingested(unchanged[i], unchanged=True) if i in unchanged else Ingested(made[i]) for i in range(len(uploads))]


async def _store(assets: list[Asset], uploads: Sequence[UploadRequest], made: dict[int, Asset], owner: str) -> None:
    """The assets' completed sessions (`to_file`, leased to `owner`, for those filed into a
    collection), then the assets."""
    at = {a.id: i for i, a in made.items()}
    now = utcnow()
    filing = [completed_document(a, now, collection_id=upload.collection_id, path=upload.path, owner=owner)
              for a in assets if (upload := uploads[at[a.id]]).collection_id]
    if filing:
        await UploadSession.get_pymongo_collection().insert_many(filing)
    await Asset.get_pymongo_collection().insert_many([stored(a) for a in assets])


async def _stored_by_others(store: LocalStore, uploads: Sequence[UploadRequest], made: dict[int, Asset],
                            owner: str) -> dict[int, Asset]:
    """The files of `made` (stored, not yet filed) that another call stores too, at the same path of
    the same collection: the other's asset for each, this call's own removed (its copy too).

    Each call stores its assets, then looks (_others): of two racing, the later to look sees the
    other. One that sees the other's asset filed, or left unfiled by a crash, or leased with a
    smaller id than its own, gives way: it removes its own and answers with the other's, as
    filed_at finds it (waiting while the other still files it). One that sees only twins of larger
    ids, still leased, waits until they are removed (they gave way) or filed (they looked first and
    saw nothing: it gives way then). Should the other fail and remove its batch, this call stores
    its own again. Waits run while this call holds its own lease, and a call only waits for twins
    that looked before it stored (else they saw it and gave way), so two calls never wait for each
    other; a batch's insert seen half-done could, and ends as CONFLICT after FILING_WAIT_SECONDS,
    the batch removed. A file with no twin, the common case, costs one read: the one a rerun paid
    before (sessions._unfiled_sessions), moved after the insert."""
    given: dict[int, Asset] = {}
    stale: set[ObjectId] = set()  # filed twins whose item left this path: no other call's, never given way to again
    checking = [i for i in made if uploads[i].collection_id and uploads[i].path]
    while checking:
        twins = {i: live for i, found in (await _others(uploads, {i: made[i].id for i in checking})).items()
                 if (live := [t for t in found if t["_id"] not in stale])}
        waiting = {t["_id"]: i for i, found in twins.items() if all(_ahead(t, made[i].id) for t in found) for t in found}
        giving = [i for i in twins if i not in waiting.values()]
        again: list[int] = []
        if giving:
            # One taken over (this call was frozen past its lease) is the taker's to file, and
            # filed_at may answer with it: its copy is the asset's, not a spare.
            taken = await _undo(store, [made[i] for i in giving], owner, keep_copies=True)
            answers = await filed_at([uploads[i] for i in giving], where=lambda j, giving=giving: f"inputs[{giving[j]}].")
            for j, i in enumerate(giving):
                if j in answers:
                    given[i] = answers[j]
                    if answers[j].id != made[i].id:
                        await store.delete(asset_key(made[i].id))
            # Nothing there after all: the other failed and removed its asset, or its item was moved
            # to another path since its session recorded this one (stale: not given way to again,
            # else it sends this file round for ever). This call's is stored once more and looked
            # at again, as a first store is: a third call that looked while it was removed saw
            # neither, and may be filing its own.
            again = [i for i in giving if i not in given and made[i].id not in taken]
            if again:
                stale.update(t["_id"] for i in again for t in twins[i] if not t.get("to_file"))
                await _store([made[i] for i in again], uploads, made, owner)
        if waiting:
            still = await claims.filing_ended(set(waiting))
            if still:
                raise Conflict("another request is still storing this file at this path (an ingest of it); try again "
                               "once it has answered", field=f"inputs[{min(waiting[id] for id in still)}].path")
        checking = sorted({*waiting.values(), *again})
    return given


def _ahead(twin: dict, mine: ObjectId) -> bool:
    """Whether a twin found by _others is another call's, storing the same file at the same moment,
    that gives way to this one if it saw this one's (a larger id, still leased)."""
    return claims.leased(twin.get("to_file"), twin.get("filing_at")) and twin["_id"] > mine


async def _others(uploads: Sequence[UploadRequest], mine: dict[int, ObjectId]) -> dict[int, list[dict]]:
    """Other calls' ACTIVE assets of these files' SHA-256, in their collection at their path, by
    request index: their sessions (to_file, filing_at), which say the path. One read
    (sessions.twins_of), and one more by id when any."""
    wanted = {(uploads[i].collection_id, uploads[i].path, uploads[i].sha256): i for i in mine}
    candidates = await twins_of(wanted, excluding=set(mine.values()))
    if not candidates:
        return {}
    found: dict[int, list[dict]] = {}
    for id, session in (await fields_by_ids(UploadSession, candidates,
                                            ["collection_id", "path", "to_file", "filing_at"])).items():
        i = wanted.get((session.get("collection_id"), session.get("path"), candidates[id]))
        if i is not None:
            found.setdefault(i, []).append(session)
    return found


def _find_sources(sources: Sequence[str], roots: Sequence[Path], private: Sequence[Path]) -> list[tuple[Path, os.stat_result]]:
    """Each source resolved (links followed) to a regular file inside a root and outside `private`,
    with what stat says of it (the reads check they open that same file); or the error naming the
    first that is not."""
    inside = [root.resolve() for root in roots]
    hidden = [path.resolve() for path in private]
    found = []
    for i, source in enumerate(sources):
        field = f"inputs[{i}].source"
        if not os.path.isabs(source) or "\x00" in source:
            raise BadUserInput("must be an absolute path on the server", field=field)
        try:
            path = Path(source).resolve()
        except (OSError, RuntimeError) as error:  # a link loop (RuntimeError before Python 3.13)
            raise BadUserInput(f"the server cannot follow its links: {error}", field=field) from None
        # Where it leads is judged before anything is asked of it: whether a file outside exists is not told.
        if not any(path.is_relative_to(root) for root in inside) or any(path.is_relative_to(h) for h in hidden):
            raise BadUserInput(f"is not under an ingest root ({', '.join(map(str, roots))})", field=field)
        try:
            found_stat = path.stat()
        except FileNotFoundError:
            raise NotFound(f"the server has no file {source}", field=field) from None
        except OSError as error:  # a directory it may not enter
            raise BadUserInput(f"the server cannot read it: {error.strerror}", field=field) from None
        if not stat.S_ISREG(found_stat.st_mode):
            raise BadUserInput("is not a regular file", field=field)
        if not os.access(path, os.R_OK):
            raise BadUserInput("the server may not read it (its permissions)", field=field)
        found.append((path, found_stat))
    return found


def _named(request: IngestRequest) -> UploadRequest:
    """The upload request with the name and media type given, or defaulted from the file's name (as
    given: a link's own name, as an upload of it would have)."""
    name = PurePosixPath(request.source).name if request.name is None else request.name
    media_type = request.media_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return replace(request.upload, name=name, media_type=media_type)


async def _copy(store: LocalStore, copies: dict[int, tuple[tuple[Path, os.stat_result], str, str | None]],
                hashed: set[int]) -> dict[int, str]:
    """Every copy (the source as found, key, the digest it must have), or none; their digests. A file
    of another digest than the one given is refused (BAD_USER_INPUT, as an upload's); one that is
    not the file found, or whose bytes changed since they were `hashed` here (being written while it
    is ingested), CONFLICT. Either way the call stops with this call's copies removed."""
    async def one(i: int) -> str | BaseException:  # every copy ends before any is judged, or removed
        (source, seen), key, _ = copies[i]
        try:
            return await in_file_thread(store.copy_in, key, source, seen)
        except SourceChanged as error:
            return Conflict(f"{error}: ingest it again once it is written", field=f"inputs[{i}].source")
        except (FileNotFoundError, PermissionError) as error:  # the source went, or its permissions changed
            return BadUserInput(f"the server cannot read it: {error.strerror}", field=f"inputs[{i}].source")

    outcomes = await bounded_gather([lambda i=i: one(i) for i in copies], return_exceptions=True)
    problem = next(((i, o) for i, o in zip(copies, outcomes, strict=True)
                    if isinstance(o, BaseException) or copies[i][2] not in (None, o)), None)
    if problem is None:
        return dict(zip(copies, outcomes, strict=True))  # type: ignore[arg-type]
    await asyncio.gather(*(store.delete(key) for _, key, _ in copies.values()), return_exceptions=True)
    i, outcome = problem
    if isinstance(outcome, BaseException):
        raise outcome
    if i in hashed:
        raise Conflict("the file changed while it was copied: ingest it again once it is written",
                       field=f"inputs[{i}].source")
    raise BadUserInput(f"the file's SHA-256 is {outcome}, not the one given", field=f"inputs[{i}].sha256")


async def _undo(store: LocalStore, assets: list[Asset], owner: str, *, keep_copies: bool = False) -> set[ObjectId]:
    """Remove what this call stored and still owns: the assets, whatever of their filing happened,
    their copies (unless `keep_copies`). A session whose lease another took over (this call was
    frozen past it: claims.take_over) is left with its asset, which the other has filed and may
    have answered with; the first delete, conditional on this call's token, tells them apart. A
    file stored with no collection has no session, and is this call's alone. Returns the ids left
    to their taker."""
    ids = [a.id for a in assets]
    sessions = UploadSession.get_pymongo_collection()
    gone = await sessions.delete_many({"_id": {"$in": ids}, "filing_owner": owner})
    kept: dict[ObjectId, dict] = {}
    if gone.deleted_count < len(ids):  # taken over, or never leased (no collection), or never written
        kept = await fields_by_ids(UploadSession, ids, ["filing_owner"])
        ids = [id for id in ids if id not in kept]
        assets = [a for a in assets if a.id not in kept]
    if not ids:
        return set(kept)
    await asyncio.gather(CollectionItem.get_pymongo_collection().delete_many({"asset_id": {"$in": ids}}),
                         AssetRetention.get_pymongo_collection().delete_many({"asset_id": {"$in": ids}}))
    await Asset.get_pymongo_collection().delete_many({"_id": {"$in": ids}})
    if not keep_copies:
        await asyncio.gather(*(store.delete(a.storage.key) for a in assets if a.storage), return_exceptions=True)
    return set(kept)


async def _file(made: dict[int, Asset], uploads: Sequence[UploadRequest], actor: str | None, max_items: int) -> None:
    """File the new assets into the collections their requests named, one add per collection. They
    were stored with their collection in `collection_ids` already (one write each, not two)."""
    groups: dict[ObjectId, list[collections.NewItem]] = {}
    for i, asset in made.items():
        if uploads[i].collection_id:
            groups.setdefault(uploads[i].collection_id, []).append(collections.NewItem(asset.id, uploads[i].path, None))
    read = {a.id: a for a in made.values()}
    for collection_id, items in groups.items():
        await collections.add_items(collection_id, items, actor, max_items, read=read, made_here=True)
