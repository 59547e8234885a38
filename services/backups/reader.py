"""Restoring a backup into a lake: checked first, written under a marker, documents in raw batches.

Payloads are copied first, each to a temp name beside its place, synced, and checked against the
manifest's size and SHA-256 as it is read: a damaged backup is refused before anything is written.
Then the schema record is written, marked `restoring`: until the restore finishes, no server starts
on the database and no migration runs (a restore that died half-way is redone with `replace`).
Documents go in as the BSON they were backed up as, a thousand per insert; then the payloads are
renamed into place, so no stored object is ever half-written.
Indexes are the server's to make: it reconciles them when it starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from bson import decode_file_iter
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase

from documents.registry import COLLECTION_NAMES
from graphlake_client.direct import copy_hashing, on_local_disk
from migrations import SCHEMA_VERSION, STATE_COLLECTION, read_state
from migrations.occupancy import refuse_if_in_use
from migrations.runner import V1_COLLECTIONS
from migrations.v006_datum_uses import VERSION as USES_SINCE
from migrations.v007_asset_lineage import VERSION as LINKS_SINCE
from migrations.v011_record_packs import COPIES as UNPACKED_COPIES
from services import batches
from services.backups.layout import Manifest, NotAFile, PayloadEntry, file_digest, open_regular, verify_backup
from services.backups.open_batches import keep_whole_or_none
from services.backups.writer import NOT_BACKED_UP, RAW, Progress, durable
from services.datums import write_uses
from services.errors import BadUserInput, Conflict, Unavailable
from services.lineage import write_links
from services.mount_owners import others, owner_readers
from storage import ObjectStore
from storage.local import PUT_TEMP_PREFIX, LocalStore, SetDown, StagedFile, UnsafeKey, open_folder, split_key

BATCH = 1000


async def restore_backup(db: AsyncDatabase, source: Path, *, local_roots: Mapping[str, Path],
                         stores: Mapping[str, ObjectStore] | None = None, replace: bool = False,
                         replace_newer: bool = False, force: bool = False, progress: Progress | None = None,
                         replacing: Callable[[], object] | None = None) -> Manifest:
    """Restore the backup at `source` into `db` (which must hold no Graphlake documents unless
    `replace`, which drops them first) and its payloads into the local mounts of `local_roots` and
    the other mounts' `stores`. A mount another lake owns is written into by none: the restore is
    refused, before anything is written, if the backup holds objects of one (a local mount given no
    store in `stores` is asked through its root).
    A lake at a schema newer than this code's is refused unless `replace_newer`: only the
    collections this code knows would be dropped, and the newer release's others would stay beside
    the backup's, a database no release reads.
    The database is left at the backup's schema version: migrating it is the caller's next step.
    `replacing` is called once the database is marked as being restored (no server starts on it
    from then on) and before anything of it is dropped: what else belongs to the lake being
    replaced goes then (its audit journal); an error it raises stops the restore there. While a
    server or a backup uses `db`, occupancy.InUse unless `force`."""
    manifest, problems = await verify_backup(source, payloads=False, unlisted=False)  # objects: as they are copied
    if problems:
        raise BadUserInput("the backup does not match its manifest: " + "; ".join(problems[:5]), field="source")
    if manifest.schema_version > SCHEMA_VERSION:
        raise BadUserInput(f"the backup holds schema version {manifest.schema_version}, newer than this Graphlake "
                           f"reads ({SCHEMA_VERSION}); restore it with Graphlake {manifest.graphlake_version}",
                           field="source")
    stores = stores or {}
    remote = {name: store for name, store in stores.items() if name not in local_roots}
    missing = sorted({p.mount for p in manifest.payloads} - set(local_roots) - set(remote))
    if missing:
        raise BadUserInput(f"the backup holds objects of mount(s) {', '.join(missing)}, which this configuration "
                           "does not have", field="mounts")
    uploads = [p for p in manifest.payloads if p.mount in remote]
    local = [p for p in manifest.payloads if p.mount in local_roots]
    # With the collections of an older schema since retired (a lake not migrated yet holds them).
    ours = ({c.name for c in manifest.collections} | V1_COLLECTIONS | NOT_BACKED_UP | COLLECTION_NAMES | {batches.JOURNAL}
            | {UNPACKED_COPIES})
    replaced = await read_state(db)
    if replaced.version is not None and replaced.version > SCHEMA_VERSION and not replace_newer:
        raise Conflict(f"database {db.name!r} holds schema version {replaced.version} (written by Graphlake "
                       f"{replaced.written_by or 'a later release'}), newer than this Graphlake's {SCHEMA_VERSION}: "
                       "a restore would drop only the collections this release knows and leave the rest beside the "
                       f"backup's. Take the lake back to {SCHEMA_VERSION} with that release (graphlake db downgrade "
                       f"--to {SCHEMA_VERSION}), restore into an empty database, or replace it all the same",
                       field="replace_newer")
    present = [name for name in await db.list_collection_names() if name in ours]
    holding = [name for name in present if name != STATE_COLLECTION and await db[name].find_one({}, {"_id": 1})]
    if holding and not replace:
        raise Conflict(f"database {db.name!r} holds Graphlake data ({', '.join(sorted(holding))}); restore into an "
                       "empty lake, or replace what it holds", field="replace")
    if not force:
        await refuse_if_in_use(db, "a restore")
    written = {p.mount for p in manifest.payloads}
    await _refuse_others_mounts(db, {**owner_readers({name: root for name, root in local_roots.items() if name in written}),
                                     **{name: stores[name] for name in written if name in stores}})
    # A local mount whose root is not there (its file system not mounted on this host?) gets it made,
    # and the objects on whatever disk holds that path: said before, so the operator knows where they went.
    for mount in sorted({p.mount for p in local}):
        if progress and not await asyncio.to_thread(os.path.lexists, local_roots[mount]):
            progress(f"mount {mount}: {local_roots[mount]} does not exist; making it to restore the backup's "
                     f"{sum(p.mount == mount for p in local)} object(s) of the mount there (if the mount's file "
                     "system is not mounted there yet, they land on the disk below it)")
    # Objects first, each checked as it is copied to a temp name beside its place: a damaged one
    # stops the restore before anything is written.
    staged = await asyncio.to_thread(_stage, source, local, local_roots)
    for payload in uploads:  # objects for other stores (S3) are checked here, and sent once the documents are in
        try:
            size, sha256 = await asyncio.to_thread(file_digest, source / payload.file)
        except NotAFile as error:  # a backup writes only files: this one was put there since
            await asyncio.to_thread(_discard, staged)
            raise BadUserInput(f"{payload.file} in the backup is {error.what}, not a regular file", field="source") from None
        if (size, sha256) != (payload.size, payload.sha256):
            await asyncio.to_thread(_discard, staged)
            raise BadUserInput(f"{payload.file}: {size} bytes, SHA-256 {sha256}; the manifest says {payload.size} "
                               f"bytes, {payload.sha256}", field="source")
    try:
        history = [*manifest.schema_history, {"from": None, "to": manifest.schema_version, "at": datetime.now(UTC),
                                               "by": manifest.graphlake_version, "restored_from": str(source)}]
        await db[STATE_COLLECTION].replace_one({"_id": "schema"}, {
            "version": manifest.schema_version, "written_by": manifest.graphlake_version, "migrating": None,
            "history": history[-100:], "restoring": {"source": str(source), "started_at": datetime.now(UTC),
                                                     "host": socket.gethostname(), "pid": os.getpid(),
                                                     "replacing_version": replaced.version}},
            upsert=True)
        if replacing is not None:
            replacing()
        for name in present:
            if name != STATE_COLLECTION:
                await db.drop_collection(name)
        for entry in manifest.collections:
            await _insert_all(db, entry.name, source / entry.file)
            if progress:
                progress(f"{entry.name}: {entry.documents} documents")
        # Before the derived collections are made: from the documents that stay.
        if (parts := await keep_whole_or_none(db, manifest, NOT_BACKED_UP)) and progress:
            progress(f"removed the part the backup held of {parts} batch write(s) under way while it ran")
        if manifest.schema_version >= USES_SINCE:  # older ones get them from their migrations
            await write_uses(db)
        if manifest.schema_version >= LINKS_SINCE:
            await write_links(db)
        await asyncio.to_thread(_place, staged)
        for payload in uploads:
            await remote[payload.mount].write(payload.key, source / payload.file)
        if manifest.payloads and progress:
            progress(f"{len(manifest.payloads)} objects, {manifest.payload_bytes} bytes")
    finally:
        await asyncio.to_thread(_discard, staged)  # what was not placed (a failure on the way)
    await db[STATE_COLLECTION].update_one({"_id": "schema"}, {"$set": {"restoring": None}})
    return manifest


async def _refuse_others_mounts(db: AsyncDatabase, stores: Mapping[str, ObjectStore]) -> None:
    """Refuse the restore if a mount it would write objects into is another lake's, or its owner
    cannot be known now (storage/ownership.py: a lake writes only into its own mounts). A restore
    into another database makes a lake of its own (services/mount_owners.py): configured with the
    mounts of the lake backed up, a drill or a copy would write into that lake's mounts."""
    foreign = await others(db, stores)
    unknown = {name: str(why) for name, why in foreign.items() if not isinstance(why, str)}
    if unknown:
        raise Unavailable(f"which lake owns mount(s) {', '.join(sorted(unknown))}, which the backup holds objects of, "
                          f"cannot be known now ({'; '.join(unknown.values())}): restore when they answer",
                          field="mounts")
    if foreign:
        owned = ", ".join(f"{name} (lake {owner})" for name, owner in sorted(foreign.items()))
        raise Conflict(f"the backup holds objects of mount(s) another lake owns: {owned}, not the one it is "
                       f"restored into; a restore writes nothing there. If this lake replaces that one for "
                       f"good, take them over first ({'; '.join(f'graphlake mounts adopt {name}' for name in sorted(foreign))}), "
                       "then restore again; for a copy beside it, configure mounts of its own under those names "
                       "(another directory, bucket or prefix)", field="mounts")


async def _insert_all(db: AsyncDatabase, name: str, path: Path) -> None:
    collection = db.get_collection(name, codec_options=RAW)
    with path.open("rb") as file:
        documents: Iterator[RawBSONDocument] = decode_file_iter(file, RAW)
        while batch := await asyncio.to_thread(lambda: list(islice(documents, BATCH))):
            await collection.insert_many(batch, ordered=False)


Staged = list[SetDown]


def _stage(source: Path, payloads: list[PayloadEntry], roots: Mapping[str, Path]) -> Staged:
    """Copy each object (synced to disk) to a temp name beside its place in its mount, checking its
    size and SHA-256 against the manifest; on any difference remove them all and refuse. A temp name
    the reconciler sweeps if a crash leaves it. Blocking: a thread's work.

    Written through the descriptor of the object's folder, opened (made where missing) through no
    link, under a new name nobody can guess (StagedFile): a direct writer sharing the mount may put a
    link anywhere in it, and a restore that made folders and files by path would write through it,
    outside the mount. A key that is no object's (`..`, absolute) is refused before anything."""
    staged: Staged = []
    bypass_cache = {mount: on_local_disk(root) for mount, root in roots.items()}
    try:
        for payload in payloads:
            try:
                folders, name = split_key(payload.key)
            except UnsafeKey:
                raise BadUserInput(f"{payload.file}: the manifest names it {payload.key!r}, which is no object's "
                                   "key", field="source") from None
            try:
                reader = open_regular(source / payload.file)
            except NotAFile as error:  # a backup writes only files: this one was put there since
                raise BadUserInput(f"{payload.file} in the backup is {error.what}, not a regular file",
                                   field="source") from None
            root = roots[payload.mount]
            with reader:
                try:
                    folder = open_folder(root, folders, make=True)
                except UnsafeKey:
                    raise BadUserInput(f"{payload.mount}:{payload.key}: a folder on its way in the mount is a symbolic "
                                       "link, which a restore never writes through", field="mounts") from None
                target = StagedFile(folder, name, f"{PUT_TEMP_PREFIX}restore-", 0o600, write_only=True)
                try:
                    size, actual = copy_hashing(reader, target.file, bypass_cache=bypass_cache[payload.mount])
                    durable(target.file)
                    LocalStore.record_sha256(target.file.fileno(), actual)
                    staged.append(target.set_down(root, folders))
                finally:
                    target.close()  # set down: nothing left to close; cut short: its temporary name goes
            if (size, actual) != (payload.size, payload.sha256):
                raise BadUserInput(f"{payload.file}: {size} bytes, SHA-256 {actual}; the manifest says {payload.size} "
                                   f"bytes, {payload.sha256}", field="source")
    except BaseException:
        _discard(staged)
        raise
    return staged


def _place(staged: Staged) -> None:
    """Rename each staged object into place, and make the renames durable (each folder once)."""
    folders: dict[tuple[int, int], SetDown] = {}
    for target in staged:
        folders.setdefault(target.place(), target)
    for target in folders.values():
        target.sync_folder()


def _discard(staged: Staged) -> None:
    """Remove what was staged and not placed (a failure on the way)."""
    for target in staged:
        target.discard()


async def missing_local_files(db: AsyncDatabase, local_roots: Mapping[str, Path]) -> dict[str, int]:
    """How many stored files each local mount lacks: those of the ACTIVE FILE assets on it, and the
    content files of READY dataset versions (their exporters and `verify --deep` read them), that are
    not under its root. What a restore of a backup made without its payloads (the default) leaves to
    the operator to copy over, said after the restore rather than at each download that fails."""
    missing: dict[str, int] = {}
    for mount, root in local_roots.items():
        gone = 0
        for collection, field, query in (("assets", "storage", {"kind": "FILE", "status": "ACTIVE", "storage.mount": mount}),
                                         ("dataset_versions", "content", {"status": "READY", "content.mount": mount})):
            # A page of keys at a time, never every key of the lake at once.
            page: list[str] = []
            async for document in db[collection].find(query, {f"{field}.key": 1}, batch_size=BATCH):
                page.append(document[field]["key"])
                if len(page) == BATCH:
                    gone += await asyncio.to_thread(_absent, root, page)
                    page = []
            gone += await asyncio.to_thread(_absent, root, page)
        if gone:
            missing[mount] = gone
    return missing


def _absent(root: Path, keys: list[str]) -> int:
    """How many of `keys` have no file under `root`. Blocking: a thread's work."""
    return sum(not (root / key).is_file() for key in keys)


async def files_on_unknown_mounts(db: AsyncDatabase, mounts: Collection[str]) -> dict[str, int]:
    """How many stored files (ACTIVE FILE and EXTERNAL assets, READY versions' content files) name a
    mount outside `mounts`: a backup references an S3 mount's objects rather than copying them
    (unless --with-s3-payloads), and a lake restored without that mount configured serves them as
    ACTIVE with no download URL, saying nothing. Said after the restore instead. A link registered
    by URL names no mount (""): its URL is its download, whatever the lake's mounts."""
    found: dict[str, int] = {}
    for mount in await db["assets"].distinct("storage.mount", {"status": "ACTIVE", "kind": {"$in": ["FILE", "EXTERNAL"]}}):
        if isinstance(mount, str) and mount and mount not in mounts:
            found[mount] = await db["assets"].count_documents(
                {"status": "ACTIVE", "kind": {"$in": ["FILE", "EXTERNAL"]}, "storage.mount": mount})
    for mount in await db["dataset_versions"].distinct("content.mount", {"status": "READY"}):
        if isinstance(mount, str) and mount not in mounts:
            found[mount] = found.get(mount, 0) + await db["dataset_versions"].count_documents(
                {"status": "READY", "content.mount": mount})
    return found
