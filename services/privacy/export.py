"""Writing a user's export: one JSON document of every place that names them, and with their files,
a zip holding that document and the files. Streamed: a user with a million events needs no more
memory than one with ten."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from services.node_ids import NodeType, encode_id
from services.privacy.requests import check_user, export_places, own_files
from storage import ObjectStore

DOCUMENT_NAME = "export.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def write_export(db: AsyncDatabase, user_id: str, output: Path, *,
                       stores: Mapping[str, ObjectStore] | None = None) -> dict[str, int]:
    """Write the export to `output`: the JSON document, or with `stores` a zip of it and the user's
    files (those on the given stores). How many documents by collection, and `files`."""
    user_id = check_user(user_id)
    # Owner-only from its first byte, as the data dir is: it holds a person's data.
    with os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # a file that was there keeps its mode through O_CREAT
        if stores is None:
            return await _write_document(db, user_id, out)
        return await _write_zip(db, user_id, out, stores)


async def _write_zip(db: AsyncDatabase, user_id: str, out: IO[bytes], stores: Mapping[str, ObjectStore]) -> dict[str, int]:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(DOCUMENT_NAME, "w", force_zip64=True) as entry:
            counts = await _write_document(db, user_id, entry)
        counts["files"] = 0
        for asset in await own_files(db, user_id):
            if asset.storage is None or asset.storage.mount not in stores:
                continue
            name = f"files/{encode_id(NodeType.ASSET, asset.id)}-{_UNSAFE.sub('_', asset.name)[:100]}"
            with archive.open(name, "w", force_zip64=True) as entry:
                async for chunk in stores[asset.storage.mount].read(asset.storage.key):
                    entry.write(chunk)
            counts["files"] += 1
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
