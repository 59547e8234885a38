"""Restoring a backup into a lake: checked first, written under a marker, documents in raw batches.

The schema record is written first, marked `restoring`: until the restore finishes, no server starts on
the database and no migration runs (a restore that died half-way is redone with `replace`). Documents
go in as the BSON they were backed up as, a thousand per insert; payloads go to a temp name and are
renamed into place once their SHA-256 matched the manifest's, so no stored object is ever half-written.
Indexes are the server's to make: it reconciles them when it starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from bson import decode_file_iter
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase

from documents import COLLECTION_NAMES
from migrations import SCHEMA_VERSION, STATE_COLLECTION, read_state
from migrations.runner import V1_COLLECTIONS
from services.backups.layout import Manifest, verify_backup
from services.backups.writer import NOT_BACKED_UP, RAW, Progress, copy_hashing
from services.errors import BadUserInput, Conflict
from storage.local import PUT_TEMP_PREFIX, LocalStore

BATCH = 1000


async def restore_backup(db: AsyncDatabase, source: Path, *, local_roots: Mapping[str, Path], replace: bool = False,
                         progress: Progress | None = None) -> Manifest:
    """Restore the backup at `source` into `db` (which must hold no Graphlake documents unless
    `replace`, which drops them first) and its payloads into the local mounts of `local_roots`.
    The database is left at the backup's schema version: migrating it is the caller's next step."""
    manifest, problems = await verify_backup(source)
    if problems:
        raise BadUserInput("the backup does not match its manifest: " + "; ".join(problems[:5]), field="source")
    if manifest.schema_version > SCHEMA_VERSION:
        raise BadUserInput(f"the backup holds schema version {manifest.schema_version}, newer than this Graphlake "
                           f"reads ({SCHEMA_VERSION}); restore it with Graphlake {manifest.graphlake_version}",
                           field="source")
    missing = sorted({p.mount for p in manifest.payloads} - set(local_roots))
    if missing:
        raise BadUserInput(f"the backup holds objects of local mount(s) {', '.join(missing)}, which this "
                           "configuration does not have as local mounts", field="mounts")
    ours = {c.name for c in manifest.collections} | V1_COLLECTIONS | NOT_BACKED_UP | COLLECTION_NAMES
    present = [name for name in await db.list_collection_names() if name in ours]
    holding = [name for name in present if name != STATE_COLLECTION and await db[name].find_one({}, {"_id": 1})]
    if holding and not replace:
        raise Conflict(f"database {db.name!r} holds Graphlake data ({', '.join(sorted(holding))}); restore into an "
                       "empty lake, or replace what it holds", field="replace")
    state = await read_state(db)
    history = [*manifest.schema_history, {"from": None, "to": manifest.schema_version, "at": datetime.now(UTC),
                                           "by": manifest.graphlake_version, "restored_from": str(source)}]
    await db[STATE_COLLECTION].replace_one({"_id": "schema"}, {
        "version": manifest.schema_version, "written_by": manifest.graphlake_version, "migrating": None,
        "history": history[-100:], "restoring": {"source": str(source), "started_at": datetime.now(UTC),
                                                 "host": socket.gethostname(), "pid": os.getpid(),
                                                 "replacing_version": state.version}},
        upsert=True)
    for name in present:
        if name != STATE_COLLECTION:
            await db.drop_collection(name)
    for entry in manifest.collections:
        await _insert_all(db, entry.name, source / entry.file)
        if progress:
            progress(f"{entry.name}: {entry.documents} documents")
    for payload in manifest.payloads:
        await asyncio.to_thread(_put_object, source / payload.file, local_roots[payload.mount], payload.key,
                                payload.sha256)
    if manifest.payloads and progress:
        progress(f"{len(manifest.payloads)} objects, {manifest.payload_bytes} bytes")
    await db[STATE_COLLECTION].update_one({"_id": "schema"}, {"$set": {"restoring": None}})
    return manifest


async def _insert_all(db: AsyncDatabase, name: str, path: Path) -> None:
    collection = db.get_collection(name, codec_options=RAW)
    with path.open("rb") as file:
        documents: Iterator[RawBSONDocument] = decode_file_iter(file, RAW)
        while batch := await asyncio.to_thread(lambda: list(islice(documents, BATCH))):
            await collection.insert_many(batch, ordered=False)


def _put_object(source: Path, root: Path, key: str, sha256: str) -> None:
    """Copy one object into its mount under a temp name, then into place if its digest is the
    manifest's. Blocking: a thread's work."""
    target = root / key
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f"{PUT_TEMP_PREFIX}restore-{target.name}")
    _size, actual = copy_hashing(source, temp)
    if actual != sha256:
        temp.unlink()
        raise BadUserInput(f"{source} changed while it was restored: SHA-256 {actual}, the manifest says {sha256}",
                           field="source")
    LocalStore.record_sha256(temp, actual)
    os.replace(temp, target)
