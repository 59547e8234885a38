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

A batch that began after one of those journal reads and ended before the next is never seen under
way, and the backup may hold a part of it: it began after the read before a collection's, had a chunk
written when the read began (FerretDB reads from a snapshot taken then; MongoDB's read, no snapshot,
may reach the end of the collection between two of its chunks) and ended before the read after the
first documents came (or, on MongoDB, after the last). So the backup also notes, as it copies each
document, the batch of every document that names one begun shortly before the backup or during it
(RecentBatches: its id, an ObjectId, holds the time its writer made it), and once it has read
everything, compares how many of each such batch's documents it holds with how many the lake holds
now that the batch has ended: one of which the lake holds more (the backup holds a part), or none
(it was taken back), is noted as one to keep none of. One of which the lake holds fewer had documents
deleted since the backup read them, and is kept: it may have been written before the backup began.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from bson.raw_bson import RawBSONDocument
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
            # A plain delete, not use_removal.remove_uses (which restarts the grace period of the assets a
            # removed use held): the restored lake holds none of the batch, as if it was never written,
            # and no server has run on it yet (none starts on a database being restored), so no reader
            # or collector of it met the part. Its assets' flags stay as the backup holds them, as every
            # restored asset's: one a round of the old lake found used by the part keeps that round's
            # time, one none did the time from before the batch. (Nor are the part's datums' uses there
            # to read: datum_assets is made again after this.)
            for name in reversed(batch.collections):
                if name not in derived:
                    await db[name].delete_many({"batch": batch_id})
            removed += 1
    return removed


BATCH_MARK = b"\x07batch\x00"  # an ObjectId element named `batch`, as services/batches.py marks each document
# How far a writer's clock may lag the backup's: a batch whose id says it began earlier than this
# before the backup started, and that the backup's first journal read did not find under way, had
# ended before the backup read anything, and is held whole.
CLOCK_SKEW = timedelta(minutes=5)


class RecentBatches:
    """The batches begun since shortly before `started` (by their ids) of which the backup copies
    documents: how many of each it holds, by collection. Looked for in each document's BSON as it
    goes to the backup file: a search of its bytes, as cheap as hashing them, and only a document
    whose bytes may name a recent batch decoded (its top level, in C)."""

    def __init__(self, started: datetime) -> None:
        # An ObjectId starts with its time, big-endian: one begun since compares greater, as bytes.
        self.since = ObjectId.from_datetime(started - CLOCK_SKEW).binary
        self.held: dict[ObjectId, Counter[str]] = {}

    def look(self, collection: str, document: bytes) -> None:
        """Note `document`'s batch, if it names a recent one. The mark's bytes say only that it may:
        they can be inside a value before the `batch` element (a name or label holding "\x07batch\x00"
        and twelve more characters, a binary field). Taken for the batch, the first of them counted
        the real batch short (a restore removed it, held whole) and counted the batch the value named
        (removed, where the lake held none of it). So a document whose bytes may name a recent batch
        is read, its top level only, for the batch it is of."""
        at = document.find(BATCH_MARK)
        while at >= 0:
            start = at + len(BATCH_MARK)
            if document[start:start + 12] >= self.since:
                break
            at = document.find(BATCH_MARK, start)
        else:
            return  # names no recent batch: most documents, told by the search alone
        batch_id = RawBSONDocument(document).get("batch")
        if isinstance(batch_id, ObjectId) and batch_id.binary >= self.since:
            self.held.setdefault(batch_id, Counter())[collection] += 1


async def held_in_part(db: AsyncDatabase, recent: RecentBatches, seen: _Seen) -> list[OpenBatch]:
    """The recent batches never seen under way (not in `seen`: settle's) of which the backup holds a
    part (the lake holds more of it now) or that were taken back (the lake holds none), each to be kept
    none of. Each has ended (the last journal read did not find it), so what the lake holds of it now
    is all it wrote, less what was deleted since. One count per collection they are in."""
    ended = {batch_id: counts for batch_id, counts in recent.held.items() if batch_id not in seen}
    by_collection: dict[str, list[ObjectId]] = {}
    for batch_id, counts in ended.items():
        for name in counts:
            by_collection.setdefault(name, []).append(batch_id)
    now: dict[tuple[ObjectId, str], int] = {}
    for name, ids in by_collection.items():
        groups = await db[name].aggregate([{"$match": {"batch": {"$in": ids}}}, {"$group": {"_id": "$batch", "n": {"$sum": 1}}}])
        async for group in groups:
            now[(group["_id"], name)] = group["n"]

    def in_part(batch_id: ObjectId, counts: Counter[str]) -> bool:
        return any(not (lake := now.get((batch_id, name), 0)) or lake > held for name, held in counts.items())

    return [OpenBatch(id=str(batch_id), collections=sorted(counts), documents=None)
            for batch_id, counts in ended.items() if in_part(batch_id, counts)]
