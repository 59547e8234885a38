"""Batches (services/batches.py) written while a backup ran: the backup notes them, a restore keeps
each whole or not at all.

A backup reads the collections one after another while writers go on, so it may hold part of a
batch: it read `datums` half-way through a createDatums. The batch's journal entry says it is under
way only while it is, and the batch may be finished (its entry gone) by the time the backup reads
anything after `datums`; restored, the part would stay for good. So the backup reads the journal
before each collection, once the collection's read has begun (its first documents came) and after
the last, and notes every batch it saw under way with how many documents the batch writes into each
collection (its entry says). A restore counts, for each such batch, the documents the backup holds:
it keeps the batch if it holds them all, and removes the part otherwise.

What this cannot see is a batch that began after one of those journal reads and ended before the
next, of which the backup still holds a part:
- FerretDB reads a collection from a snapshot taken when the read begins, so such a batch would have
  to begin and end in the milliseconds between the journal read before the read and the one after
  its first documents, and have one of its chunks written at the snapshot and another not (a chunk,
  a thousand documents, is one insert, written in one transaction there);
- MongoDB's read is no snapshot, but it returns a collection's documents in the order they were
  written (new ones at the end): a batch that began and ended during the rest of the read is held
  whole, unless its inserts committed out of order with other writers' (a document it skipped).
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.database import AsyncDatabase

from services import batches
from services.backups.layout import Manifest, OpenBatch

_Seen = dict[Any, OpenBatch]  # by batch id


async def note_open(db: AsyncDatabase, seen: _Seen) -> None:
    """Add the batches under way now to `seen` (by batch id)."""
    async for entry in db[batches.JOURNAL].find({}, {"collection": 1, "collections": 1, "documents": 1, "reaping": 1}):
        counts = entry.get("documents")
        if entry.get("reaping") or not isinstance(counts, dict):
            counts = None  # being taken back, or by a writer that did not say: keep none of it
        known = seen.get(entry["_id"])
        if known is not None and known.documents is None:
            continue
        seen[entry["_id"]] = OpenBatch(id=str(entry["_id"]), documents=counts,
                                       collections=list(entry.get("collections") or [entry.get("collection")]))


async def settle(db: AsyncDatabase, seen: _Seen) -> list[OpenBatch]:
    """The batches noted, after a last look at the journal. One a reaper claimed (its writer died, or
    its lease lapsed) is taken back whole, even where the backup read every document of it."""
    await note_open(db, seen)
    if seen:
        async for claimed in db[batches.REAPED].find({"_id": {"$in": list(seen)}}, {"_id": 1}):
            seen[claimed["_id"]].documents = None
    return sorted(seen.values(), key=lambda batch: batch.id)


async def keep_whole_or_none(db: AsyncDatabase, manifest: Manifest, derived: frozenset[str]) -> int:
    """After a restore has put the backup's documents in: remove the documents of each batch the
    backup saw under way and does not hold whole; how many batches went. The collections in
    `derived` are made again from the others after this, and not counted."""
    removed = 0
    for batch in manifest.open_batches:
        try:
            batch_id: Any = ObjectId(batch.id)
        except InvalidId:
            batch_id = batch.id
        whole = batch.documents is not None
        for name, count in (batch.documents or {}).items():
            if whole and name not in derived:
                whole = await db[name].count_documents({"batch": batch_id}) == count
        if not whole:
            for name in reversed(batch.collections):
                if name not in derived:
                    await db[name].delete_many({"batch": batch_id})
            removed += 1
    return removed
