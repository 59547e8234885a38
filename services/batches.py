"""All-or-nothing batch writes without transactions (FerretDB has none, and a replica set is not required).

A batch (createDatums, addAnnotations) is named in the `write_batches` journal before any of its
documents is written; each document carries the batch id, and the journal entry is removed once
they all are. If the writer dies in between, the documents already written are removed:
- at once by the next process to start on the same host, which can tell the writer is gone (its
  process id no longer runs);
- otherwise (another host, which cannot tell) once the entry's lease has lapsed.
Until then a part of the batch is visible: what is promised is that it never stays.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow

JOURNAL = "write_batches"
LEASE = timedelta(minutes=2)  # far longer than the largest batch takes (max_batch_items, a thousand per insert)
CHUNK = 1000


async def insert_all(collection: AsyncCollection, documents: list[dict[str, Any]]) -> None:
    """Insert every document, or (after a failure here, or a crash) none of them stays."""
    batch_id = ObjectId()
    journal = collection.database[JOURNAL]
    await journal.insert_one({"_id": batch_id, "collection": collection.name, "host": socket.gethostname(),
                              "pid": os.getpid(), "expires_at": utcnow() + LEASE})
    for document in documents:
        document["batch"] = batch_id
    try:
        for start in range(0, len(documents), CHUNK):
            await collection.insert_many(documents[start:start + CHUNK])
    except BaseException:
        await collection.delete_many({"batch": batch_id})
        raise
    await journal.delete_one({"_id": batch_id})


async def remove_abandoned(db: AsyncDatabase) -> int:
    """Remove the documents of batches whose writer died; how many batches there were."""
    removed = 0
    async for entry in db[JOURNAL].find():
        if entry["expires_at"] > utcnow() and not _dead_here(entry):
            continue
        await db[entry["collection"]].delete_many({"batch": entry["_id"]})
        await db[JOURNAL].delete_one({"_id": entry["_id"]})
        removed += 1
    return removed


def _dead_here(entry: dict[str, Any]) -> bool:
    """Whether the entry's writer ran on this host and runs no more."""
    if entry.get("host") != socket.gethostname() or not isinstance(entry.get("pid"), int) or entry["pid"] == os.getpid():
        return False
    try:
        os.kill(entry["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
