"""Records sent again under their keys are found, not stored twice.

A record may carry a key: its name in the source it came from (`coco:42`, a COCO annotation's id),
unique within its set by a unique index (documents/annotation.py). An import that died part-way is
run again; the batches the dead client had sent may still be landing while the rerun decides what
is missing, and without keys it would add those records a second time. With keys, a batch is
written whole (services/batches.py) unless a key is taken. Then the batch is rolled back, the
records holding those keys are read, and:
- one with the same content as the record sent is that record: its id is returned in its place,
  and nothing is stored for it;
- one with other content is a CONFLICT naming the key (the batch stores nothing);
- one still being written by another call (its batch is open in the write journal) is waited
  for, since that call may yet roll it back; if it is still open after WAIT_SECONDS, UNAVAILABLE.
The rest of the batch is then written again, the same way. Two calls sending the same keys at
once in other orders may each refuse the other's records and both roll back: each then waits a
jittered moment and tries again. A key refused while nothing on the batch's assets holds it is
held on another asset (a CONFLICT) or was held by a batch that rolled back since (a race): only
once that record has been refused so UNEXPLAINED_ROUNDS times, each after a longer pause, is it
the first.

Keyed records are looked up by asset and key (the `asset` index; an asset holds few records),
never by set and key: the embedded default answers a query from its own indexes only, and
a unique index is not one of them, while a set may hold millions of records.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from documents.json_value.text import loads_json
from services import batches
from services.errors import Conflict, Unavailable
from services.node_ids import NodeType, encode_id

WAIT_SECONDS = 30.0  # for a batch another call is writing; its lease is batches.LEASE
# Rounds in which a record is refused with nothing on the batch's assets holding its key before that
# is a CONFLICT. Two calls racing in opposite orders can each see the other's batch roll back between
# the refusal and the read; at two rounds that happened now and then (a CI run failed on it), and
# each further round (after a doubled, jittered pause) needs the same race again. A true conflict
# costs the caller these pauses (about 0.35 s) before its answer.
UNEXPLAINED_ROUNDS = 4
# What makes two records the same (all but who added it, when, and what happened to it since).
CONTENT = ("datum_id", "asset_id", "kind", "label", "score", "value", "geometry", "attributes", "source")


def same_content(held: dict[str, Any], sent: dict[str, Any]) -> bool:
    """Whether two records say the same (CONTENT): a record sent again is the one held."""
    return all(_content(held.get(name)) == _content(sent.get(name)) for name in CONTENT)


def _content(field: Any) -> Any:
    """A field as compared: JSON (attributes, stored as their text) by what it says, not by how it was
    written: the same attributes sent again with their keys in another order are the same record."""
    if isinstance(field, dict) and isinstance(field.get("json"), str):
        return orjson.dumps(loads_json(field["json"]), option=orjson.OPT_SORT_KEYS)
    return field


async def insert_keyed(collection: AsyncCollection, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert these new records of one set (some with a `key`), all or none; returns, in order, each
    document stored or the one the set held already under its key. Raises CONFLICT for a key held
    with other content, UNAVAILABLE if another call's batch holds a key for WAIT_SECONDS."""
    result: list[dict[str, Any] | None] = [None] * len(documents)
    pending = list(range(len(documents)))
    deadline = time.monotonic() + WAIT_SECONDS
    pause = 0.05
    unexplained: dict[int, int] = {}  # record -> rounds refused with nothing on the batch's assets holding its key
    while pending:
        try:
            await batches.insert_all(collection, [documents[i] for i in pending])
        except BulkWriteError as error:
            if not _taken_key(error):
                raise
            refused = pending[error.position]  # type: ignore[attr-defined]  # see batches.insert_all
        else:
            for i in pending:
                result[i] = documents[i]
            break
        # A key was taken: the batch was rolled back. Read what holds the batch's keys, then which of
        # those are committed (batches.still_written: the third read sees a rollback that ran
        # between the first two).
        keyed = [i for i in pending if documents[i].get("key") is not None]
        held = await _held(collection, [documents[i] for i in keyed])
        open_batches = await batches.still_written(collection.database, [d.get("batch") for d in held.values()])
        committed = await _there(collection, [d["_id"] for d in held.values() if d.get("batch") not in open_batches])
        waiting = resolved = False
        for i in keyed:
            found = held.get(documents[i]["key"])
            if found is None:
                continue
            if found.get("batch") in open_batches:
                waiting = True
            elif found["_id"] in committed:
                if not same_content(found, documents[i]):
                    held = encode_id(NodeType.ANNOTATION_RECORD, found["_id"])
                    raise Conflict(f"the set holds record {held} under this key, with other content",
                                   field=f"records[{i}].key", record=held)
                result[i] = found
                resolved = True
        puzzled = documents[refused].get("key") not in held
        if puzzled:
            # Nothing on the batch's assets holds the key refused: a record on another asset does, or
            # one whose batch rolled back since (see UNEXPLAINED_ROUNDS).
            unexplained[refused] = unexplained.get(refused, 0) + 1
            if unexplained[refused] >= UNEXPLAINED_ROUNDS:
                raise Conflict("the set holds a record on another asset under this key", field=f"records[{refused}].key")
        if waiting or puzzled or not resolved:
            if time.monotonic() > deadline:
                raise Unavailable("another call is still writing records with these keys; try again shortly",
                                  field="records")
            # Jittered: two calls sending the same keys at once must not retry in step forever.
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 1.0)
        pending = [i for i in pending if result[i] is None]
    return [document for document in result if document is not None]


def _taken_key(error: BulkWriteError) -> bool:
    """Whether a unique index refused the insert (for a record, only the set's key can be taken)."""
    errors = error.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == 11000 for e in errors)


async def _held(collection: AsyncCollection, documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The records of the documents' set holding their keys, by key."""
    if not documents:
        return {}
    set_id = documents[0]["set_id"]
    query = {"asset_id": {"$in": list({d["asset_id"] for d in documents})}, "key": {"$in": [d["key"] for d in documents]}}
    return {d["key"]: d async for d in collection.find(query) if d["set_id"] == set_id}


async def _there(collection: AsyncCollection, ids: list[Any]) -> set[Any]:
    """Which of these records exist now."""
    if not ids:
        return set()
    return {d["_id"] async for d in collection.find({"_id": {"$in": ids}}, {"_id": 1})}
