"""Writing a backup: every collection streamed as raw BSON, and with payloads, the local mounts' objects.

Documents are never decoded: the driver hands over each one's BSON bytes (RawBSONDocument), which go
to the file as they are, so a backup costs about what reading the collection does. Files are written
and hashed in a worker thread, a megabyte at a time, so a backup inside the server never holds its
event loop for longer than one such write.

What a backup taken while writers run holds: every document written (acknowledged) before the backup
started, as it was then or as a later write left it. Writes during the backup may or may not be in
it, and collections are read one after another, not at one instant; so an upload or a dataset
version that was under way restores as under way, which the reconciler and the version builder
finish or expire as they would after a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bson import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase

from documents.event import FEED_COLLECTION
from migrations import STATE_COLLECTION, read_state
from services.backups.layout import CHUNK, CollectionEntry, Manifest, PayloadEntry
from services.errors import BadUserInput, Conflict
from services.events.feed import WRITERS_COLLECTION
from services.schedules import SCHEDULES
from storage.local import is_stored_object_name

# The live feed, its writers' heartbeats and the schedule are a running server's scratch space; the
# schema record travels in the manifest instead (a restore writes its own).
NOT_BACKED_UP = frozenset({FEED_COLLECTION, WRITERS_COLLECTION, STATE_COLLECTION, SCHEDULES})
RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)

Progress = Callable[[str], None]


async def write_backup(db: AsyncDatabase, destination: Path, *, graphlake_version: str,
                       local_roots: Mapping[str, Path] | None = None, referenced_mounts: Sequence[str] = (),
                       progress: Progress | None = None) -> Manifest:
    """Back up `db` into the new directory `destination`: with `local_roots` (mount name to root),
    those mounts' objects too. The directory appears complete or not at all."""
    if destination.exists():
        raise Conflict(f"{destination} exists already; a backup goes to a new directory", field="destination")
    state = await read_state(db)
    if state.version is None:
        raise BadUserInput(f"database {db.name!r} holds no Graphlake data", field="database")
    partial = destination.with_name(f".{destination.name}.partial")
    if partial.exists():  # a backup that died here before
        await asyncio.to_thread(shutil.rmtree, partial)
    (partial / "collections").mkdir(parents=True)
    manifest = Manifest(graphlake_version=graphlake_version, schema_version=state.version, database=db.name,
                        started_at=datetime.now(UTC).isoformat(), schema_history=state.history,
                        referenced_mounts=sorted(referenced_mounts))
    names = sorted(n for n in await db.list_collection_names()
                   if n not in NOT_BACKED_UP and not n.startswith("system."))
    for name in names:
        manifest.collections.append(await _write_collection(db, name, partial))
        if progress:
            progress(f"{name}: {manifest.collections[-1].documents} documents")
    for mount, root in (local_roots or {}).items():
        copied = await asyncio.to_thread(_copy_mount, root, partial / "payloads" / mount, mount)
        manifest.payloads.extend(copied)
        if progress:
            progress(f"mount {mount}: {len(copied)} objects, {sum(p.size for p in copied)} bytes")
    manifest.finished_at = datetime.now(UTC).isoformat()
    manifest.write(partial)
    await asyncio.to_thread(_fsync_tree, partial)
    partial.rename(destination)
    return manifest


async def _write_collection(db: AsyncDatabase, name: str, directory: Path) -> CollectionEntry:
    entry = CollectionEntry(name=name, file=f"collections/{name}.bson")
    digest = hashlib.sha256()
    buffer = bytearray()
    with (directory / entry.file).open("wb") as out:
        def flush(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        async for document in db.get_collection(name, codec_options=RAW).find({}, batch_size=1000):
            buffer += document.raw
            entry.documents += 1
            if len(buffer) >= CHUNK:
                await asyncio.to_thread(flush, bytes(buffer))
                entry.bytes += len(buffer)
                buffer.clear()
        await asyncio.to_thread(flush, bytes(buffer))
        entry.bytes += len(buffer)
    entry.sha256 = digest.hexdigest()
    return entry


def _copy_mount(root: Path, target: Path, mount: str) -> list[PayloadEntry]:
    """Copy every stored object under `root` (not uploads in progress or temp files), hashing it as
    it is read. Blocking: a thread's work."""
    copied = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .multipart: uploads in progress
        for name in sorted(filter(is_stored_object_name, files)):
            source = Path(folder, name)
            key = source.relative_to(root).as_posix()
            destination = target / key
            destination.parent.mkdir(parents=True, exist_ok=True)
            size, sha256 = copy_hashing(source, destination)
            copied.append(PayloadEntry(mount=mount, key=key, size=size, sha256=sha256))
    return copied


def copy_hashing(source: Path, destination: Path) -> tuple[int, str]:
    """Copy a file, returning its size and SHA-256 from the one read."""
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync_tree(directory: Path) -> None:
    """Make the backup durable before its rename says it is complete."""
    for folder, _dirs, files in os.walk(directory):
        for name in files:
            with Path(folder, name).open("rb") as file:
                os.fsync(file.fileno())
