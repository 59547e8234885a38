"""A delete's mark on what it deletes, for deletes that look for holders and may be refused.

A delete that checks for holders and then removes in rounds races the writes that would make a
holder, or that read what it removes. So it marks the document first, then looks for holders, and
the writes look for the mark after their own write (each module says where): whichever comes second
sees the other. A delete refused after it marked must take its mark back, but only its own, and
only while no delete of the same document has gone past its checks: two deletes at once would
otherwise clear each other's marks (one refused by a holder that the other then saw gone), and
a document being removed could be shown again half empty. So a mark carries a token of its delete
(`delete_token`), and a delete that passes its checks commits (`delete_committed`) before it
removes anything, and only while its token is still the mark's. Taking a mark back matches the
token and no commit. Nothing here is a lock: a delete cut short (a crash) leaves its mark, and the
next delete of the same document marks it again and finishes (the maintenance runs one whose mark
is old: services/unfinished_deletes.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from enum import Enum
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from services.availability import no_time_limit
from services.errors import Conflict, NotFound
from services.node_ids import NodeType, encode_id

TOKEN = "delete_token"
COMMITTED = "delete_committed"
MARK_FIELDS = {TOKEN: 1, COMMITTED: 1}  # a projection keeping what found() reads
POLL_SECONDS = 0.05  # how often a writer waiting out a mark (waited_out) looks again
# How long a writer waits out a delete's mark on what it needs while the delete is still looking for
# holders: it takes a few reads, and finds the writer's (a version build's members, records, a set).
WAIT_SECONDS = 2.0

_Looked = TypeVar("_Looked")


class Found(Enum):
    """What a writer that looks for a mark finds on a document it needs."""

    CLEAR = "clear"  # there, unmarked
    # Marked by a delete still looking for holders: refused (by this very writer, say), it takes its
    # mark back; past its checks, it commits.
    PENDING = "pending"
    GONE = "gone"  # not there, or marked by a delete past its checks (or cut short before marks had tokens)


async def mark(collection: AsyncCollection, document_id: ObjectId, fields: dict[str, Any],
               condition: dict[str, Any] | None = None) -> ObjectId | None:
    """Set `fields` (what writes look for) and this delete's token on the document, while it meets
    `condition`; None if it is gone (or does not meet it)."""
    token = ObjectId()
    marked = await collection.update_one({"_id": document_id, **(condition or {})}, {"$set": {**fields, TOKEN: token}})
    return token if marked.matched_count else None


async def commit(collection: AsyncCollection, document_id: ObjectId, token: ObjectId, what: str) -> None:
    """Past its checks: from here on the mark stays. CONFLICT if another delete of the document has
    marked it since (it decides; this one may try again)."""
    committed = await collection.update_one({"_id": document_id, TOKEN: token}, {"$set": {COMMITTED: True}})
    if committed.matched_count == 0:
        raise Conflict(f"another delete of {what} is under way; try again once it is done", field="id")


async def committed(collection: AsyncCollection, document_id: ObjectId, condition: dict[str, Any],
                    fields: dict[str, Any]) -> bool:
    """Commit the document's mark, whoever made it, with `fields` (the mark writers look for), while
    it meets `condition`: a removal needing no checks of its own (an abandoned build's, a committed
    delete's retry). False if it does not (a refused delete has shown it again, or it is gone)."""
    done = await collection.update_one({"_id": document_id, **condition}, {"$set": {**fields, COMMITTED: True}})
    return done.matched_count == 1


async def take_back(collection: AsyncCollection, document_id: ObjectId, token: ObjectId, update: dict[str, Any]) -> None:
    """Undo this delete's mark with `update` (and drop the token), unless another delete has marked
    the document since or any delete has committed."""
    undo = {**update, "$unset": {**update.get("$unset", {}), TOKEN: ""}}
    with no_time_limit():  # timed out, the document would stay marked (hidden, or closed to writes) until a retry
        await collection.update_one({"_id": document_id, TOKEN: token, COMMITTED: {"$exists": False}}, undo)


def gone(what: str, node: NodeType, document_id: ObjectId, field: str) -> NotFound:
    """NOT_FOUND for a write that needs a document that is not there, or that a delete has marked:
    to the writer the two are one (the delete is finishing)."""
    return NotFound(f"no {what} {encode_id(node, document_id)} (or it is being deleted)", field=field)


def found(document: dict[str, Any] | None, marked: bool) -> Found:
    """What the document (read with MARK_FIELDS) is to a writer; `marked`: whether it holds the mark
    writers look for (a `deleting_at`, a version's DELETING)."""
    if document is None:
        return Found.GONE
    if not marked:
        return Found.CLEAR
    return Found.PENDING if document.get(TOKEN) is not None and not document.get(COMMITTED) else Found.GONE


async def settled(collection: AsyncCollection, ids: Collection[ObjectId], marked_by: str,
                  seconds: float) -> dict[ObjectId, Found]:
    """What each document of `ids` is to a writer (`marked_by`: the field a delete's mark sets), once
    the deletes still looking for holders have decided: one read, again while any is PENDING
    (waited_out). For writers that look after their write whether what they need is being deleted."""
    async def look() -> dict[ObjectId, Found]:
        read = {d["_id"]: d async for d in collection.find({"_id": {"$in": list(ids)}}, {marked_by: 1, **MARK_FIELDS})}
        return {i: found(read.get(i), (read.get(i) or {}).get(marked_by) is not None) for i in ids}

    return await waited_out(look, lambda looked: Found.PENDING in looked.values(), seconds)


async def waited_out(look: Callable[[], Awaitable[_Looked]], pending: Callable[[_Looked], bool],
                     seconds: float) -> _Looked:
    """`look`, again every POLL_SECONDS while what it found is `pending`, for `seconds` at most; what it
    found last. For a writer that makes a holder (a version build): a delete that marked what it
    needs and then finds it holding it is refused and takes its mark back, so the writer goes on,
    where failing at once would fail both. A delete cut short leaves its mark pending until it is
    run again: the writer then gives up after `seconds`, as if the mark were committed."""
    deadline = time.monotonic() + seconds
    # The delete may run in another server process: only the database tells of its step.
    while pending(looked := await look()) and time.monotonic() < deadline:  # noqa: ASYNC110 (see above)
        await asyncio.sleep(POLL_SECONDS)
    return looked
