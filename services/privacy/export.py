"""Writing a user's export: one JSON document of every place that names them, and with their files,
a zip holding that document and the files. Streamed: a user with a million events needs no more
memory than one with ten.

Written under a temporary name beside the output and renamed to it once whole: an export that fails
half-way (a store that stops answering) leaves nothing, where a zip closed on the way out of its
`with` looked whole while missing files, and one that is killed leaves a temporary the next export
into that folder removes (graphlake_client/debris.py: held while written, so never a running one's)."""

from __future__ import annotations

import asyncio
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from graphlake_client.debris import hold, partial_temp, sweep
from services.errors import NotFound
from services.node_ids import NodeType, encode_id
from services.privacy.requests import check_user, export_places, own_files
from storage import ObjectStore

DOCUMENT_NAME = "export.json"
MISSING_NAME = "missing-files.json"  # the user's files the stores do not hold, listed instead
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def write_export(db: AsyncDatabase, user_id: str, output: Path, *,
                       stores: Mapping[str, ObjectStore] | None = None,
                       on_missing: Callable[[str], None] | None = None) -> dict[str, int]:
    """Write the export to `output`: the JSON document, or with `stores` a zip of it and the user's
    files (those on the given stores). How many documents by collection, and `files`. A file of
    theirs its store does not hold (an upload never finished, an object lost) is listed in the zip's
    `missing-files.json` and told to `on_missing`, and counted as `filesMissing`: the rest of the
    export is still theirs to have."""
    user_id = check_user(user_id)
    await asyncio.to_thread(sweep, output.parent, recursive=False)  # what killed exports left here
    temp = partial_temp(output)
    # Owner-only from its first byte, as the data dir is: it holds a person's data. Made new, never
    # through a name planted there.
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:  # said of the output asked for: the temporary's name is nothing to the asker
        raise OSError(error.errno, error.strerror, str(output)) from None
    out = os.fdopen(fd, "wb")
    try:
        with out:
            hold(out)
            if stores is None:
                counts = await _write_document(db, user_id, out)
            else:
                counts = await _write_zip(db, user_id, out, stores, on_missing)
            out.flush()
            await asyncio.to_thread(os.fsync, out.fileno())
            os.replace(temp, output)  # whole: under its name (while still held, as debris.writing does)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return counts


async def _write_zip(db: AsyncDatabase, user_id: str, out: IO[bytes], stores: Mapping[str, ObjectStore],
                     on_missing: Callable[[str], None] | None) -> dict[str, int]:
    missing: list[dict[str, str]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(DOCUMENT_NAME, "w", force_zip64=True) as entry:
            counts = await _write_document(db, user_id, entry)
        counts["files"] = 0
        for asset in await own_files(db, user_id):
            if asset.storage is None or asset.storage.mount not in stores:
                continue
            asset_id = encode_id(NodeType.ASSET, asset.id)
            store, key = stores[asset.storage.mount], asset.storage.key
            if await store.stat(key) is None:  # asked first: a zip entry, once opened, cannot be taken back
                missing.append({"asset": asset_id, "name": asset.name, "status": asset.status.value,
                                "mount": asset.storage.mount, "key": key})
                if on_missing is not None:
                    on_missing(f"asset {asset_id} ({asset.name}, {asset.status.value}): its file {asset.storage.mount}:"
                               f"{key} is not in the store; listed in {MISSING_NAME}")
                continue
            name = f"files/{asset_id}-{_UNSAFE.sub('_', asset.name)[:100]}"
            with archive.open(name, "w", force_zip64=True) as entry:
                try:
                    async for chunk in store.read(key):
                        entry.write(chunk)
                except FileNotFoundError:  # gone since it was asked after: the export is not written
                    raise NotFound(f"asset {asset_id} ({asset.name}): its file {asset.storage.mount}:{key} went "
                                   "while it was exported; run the export again") from None
            counts["files"] += 1
        if missing:
            archive.writestr(MISSING_NAME, orjson.dumps(missing, option=orjson.OPT_INDENT_2))
            counts["filesMissing"] = len(missing)
    return counts


async def _write_document(db: AsyncDatabase, user_id: str, out: IO[bytes]) -> dict[str, int]:
    """{"user", "exportedAt", "places": {collection: [documents]}}, written a document at a time."""
    out.write(b'{"user":' + orjson.dumps(user_id) + b',"exportedAt":' + orjson.dumps(utcnow().isoformat())
              + b',"places":{')
    counts: dict[str, int] = {}
    current = None
    async for collection, document in export_places(db, user_id):
        if collection != current:
            out.write((b"]," if current else b"") + orjson.dumps(collection) + b":[")
            current = collection
        else:
            out.write(b",")
        out.write(orjson.dumps(document))
        counts[collection] = counts.get(collection, 0) + 1
    out.write((b"]" if current else b"") + b"}}\n")
    return counts
