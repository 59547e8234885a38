"""All-or-nothing batch writes without transactions (FerretDB has none, and a replica set is not required).

A batch (createDatums, addAnnotations) is named in the `write_batches` journal before any of its
documents is written; each document carries the batch id, and the journal entry is removed once
they all are. If the writer dies in between, the documents already written are removed:
- at once by the next process to start on the same host (and boot and pid namespace), which can
  tell the writer is gone (migrations/liveness.py);
- otherwise once the entry's lease has lapsed. The writer renews the lease before a chunk once
  RENEW_AFTER has passed since it last set it, and stops (removing what it wrote) if its entry was
  taken meanwhile; removing the entry at the end checks the same. A reaper claims an entry
  (`reaping`) before it removes any document, and a writer's renewal and final removal match only
  an unclaimed entry: so a slow writer or a reaper with a skewed clock never leaves a batch that is
  half there and reported as stored, and a reaper never removes a batch its writer finished.
Until then a part of the batch is visible: what is promised is that it never stays.

The claim that decides between a writer finishing and a reaper is an insert, not the `reaping`
update: on FerretDB a conditional update is not atomic, and a writer's final removal of its entry
and a reaper's claim sent at once both succeeded (about one time in twenty): the batch was reported
stored and then removed. A reaper inserts the batch's id into REAPED (a unique key holds on every
server), then goes on only if the entry is still there; a writer, having removed its entry, fails
if that id is in REAPED. Whichever order they run in, one of them sees the other.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.clock import utcnow
from migrations.liveness import gone, this_process
from services import use_removal
from services.availability import no_time_limit

JOURNAL = "write_batches"
REAPED = "write_batches_reaped"  # the ids of batches a reaper claimed (see above), kept REAPED_KEPT
REAPED_KEPT = timedelta(days=1)  # far longer than a writer takes between removing its entry and looking here
LEASE = timedelta(minutes=2)  # far longer than the largest batch takes (max_batch_items, a thousand per insert)
CHUNK = 1000
# A lease set this recently has most of its time left: renewing it before every chunk was a command
# per chunk (an import's batches are mostly one chunk, so 40 of its 100 journal commands) that
# changed nothing. A taken entry is still found, by the next renewal or by the final delete.
RENEW_AFTER = LEASE / 4


class BatchLost(RuntimeError):
    """The batch's journal entry was taken (its lease lapsed and a reaper removed it) while it was written."""


async def insert_all(collection: AsyncCollection, documents: list[dict[str, Any]], *,
                     before: Sequence[tuple[AsyncCollection, list[dict[str, Any]]]] = ()) -> None:
    """Insert every document, or (after a failure here, or a crash) none of them stays. A unique
    index's refusal raises BulkWriteError with `position`: the index in `documents` it refused. Without a
    time limit: an insert this side gave up on may still commit on the server after the rollback ran.
    `before`: documents of other collections that belong to these (a datum's uses of its assets),
    written first in the same batch: they stay or go with it (`position` is then of the list refused)."""
    with no_time_limit():
        await _insert_all([*before, (collection, documents)])


async def _insert_all(writes: list[tuple[AsyncCollection, list[dict[str, Any]]]]) -> None:
    batch_id = ObjectId()
    journal = writes[-1][0].database[JOURNAL]
    names = [c.name for c, _ in writes]
    # `collection` is the one an entry of an older Graphlake names; `collections` all of this batch's;
    # `documents` how many it writes into each, so that a backup taken while it was written can tell
    # whether it holds all of them (services/backups/open_batches.py).
    counts: dict[str, int] = {}
    for collection, documents in writes:
        counts[collection.name] = counts.get(collection.name, 0) + len(documents)
    await journal.insert_one({"_id": batch_id, "collection": names[-1], "collections": names, "documents": counts,
                              **this_process(), "expires_at": utcnow() + LEASE})
    leased = time.monotonic()
    # What may be in the database, by collection: every chunk sent (one whose answer never came may
    # have landed), less what a refusal stopped. The rollback takes back the uses of assets among them.
    sent: dict[str, list[dict[str, Any]]] = {}
    try:
        for collection, documents in writes:
            for document in documents:
                document["batch"] = batch_id
            for start in range(0, len(documents), CHUNK):
                if time.monotonic() - leased > RENEW_AFTER.total_seconds():
                    renewed = await journal.update_one(_unclaimed(batch_id), {"$set": {"expires_at": utcnow() + LEASE}})
                    if renewed.matched_count == 0:
                        raise BatchLost("the batch's journal entry lapsed while it was written; nothing of it is kept")
                    leased = time.monotonic()
                chunk = documents[start:start + CHUNK]
                landed = sent.setdefault(collection.name, [])
                landed += chunk
                try:
                    await collection.insert_many(chunk)
                except BulkWriteError as error:  # ordered: the first refusal stops it (scripts/ferretdb/patch.py, 11)
                    if refused := error.details.get("writeErrors"):  # none: a write concern's error, all of it landed
                        del landed[len(landed) - len(chunk) + refused[0].get("index", 0):]
                    error.position = start + (refused or [{}])[0].get("index", 0)  # type: ignore[attr-defined]  # of `documents`
                    raise
        if ((await journal.delete_one(_unclaimed(batch_id))).deleted_count == 0
                or await journal.database[REAPED].find_one({"_id": batch_id}, {"_id": 1})):
            raise BatchLost("the batch's journal entry lapsed while it was written; nothing of it is kept")
    except BaseException:
        # Visible once written, its uses may be the ones the collector's last round found (see
        # services/use_removal.py): taken back, they restart their assets' grace period.
        await use_removal.remove_uses([c for c, _ in writes], {"batch": batch_id}, written=sent)
        await journal.delete_one({"_id": batch_id})
        raise


async def still_written(db: AsyncDatabase, batch_ids: Iterable[Any]) -> set[Any]:
    """Which of these batches are still being written: their journal entries are there.

    What a reader may conclude about the others: a batch writes its documents before it drops its
    entry, and rolls back by removing them before it drops its entry. So a document of a batch
    whose entry is gone is committed if it is there when read after this answer (read again: it may
    have come, or gone, since the first read)."""
    wanted = [b for b in set(batch_ids) if b is not None]
    if not wanted:
        return set()
    return {entry["_id"] async for entry in db[JOURNAL].find({"_id": {"$in": wanted}}, {"_id": 1})}


def _unclaimed(batch_id: ObjectId) -> dict[str, Any]:
    """The batch's journal entry, unless a reaper has claimed it (see remove_abandoned)."""
    return {"_id": batch_id, "reaping": {"$exists": False}}


async def remove_abandoned(db: AsyncDatabase) -> int:
    """Remove the documents of batches whose writer died; how many batches there were."""
    removed = 0
    async for entry in db[JOURNAL].find():
        if entry["expires_at"] > utcnow() and not gone(entry):
            continue
        # Claimed first: its writer, finishing now, then finds it taken and removes its documents
        # itself; and one it finished since it was read is not there to claim. Another reaper's
        # claim is no matter: removing the documents twice removes them.
        with contextlib.suppress(DuplicateKeyError):
            await db[REAPED].insert_one({"_id": entry["_id"], "at": utcnow()})
        # `reaping` too: the claim a writer of an earlier Graphlake looks for.
        if (await db[JOURNAL].update_one({"_id": entry["_id"]}, {"$set": {"reaping": True}})).matched_count == 0:
            continue
        names = entry.get("collections") or [entry["collection"]]
        # Perhaps the last use of an asset goes with the batch: its grace period counts from now
        # (services/use_removal.py). Its documents are read for it: the reaper does not know them.
        await use_removal.remove_uses([db[name] for name in names], {"batch": entry["_id"]})
        await db[JOURNAL].delete_one({"_id": entry["_id"]})
        removed += 1
    await db[REAPED].delete_many({"at": {"$lt": utcnow() - REAPED_KEPT}})
    return removed

