"""Deleting a query's documents a round at a time, so that no one command holds the database.

A `delete_many` is one command however much it matches, and on the embedded default one write
transaction (scripts/ferretdb/patch.py, step 12), while SQLite lets one writer in at a time: deleting
a collection's 100,000 items took 1.9 s, and every other write of the lake waited behind it, up to
1.24 s. So a delete of something that grows with the lake (a collection's items, a set's records, a
version's copies, an owner's pins) reads the first DELETE_ROUND documents left, in the order of an
index that serves the query, and deletes those by `_id`, until none is left: each command is a few
milliseconds, and other writes get their turn between them.

Each round deletes what it read, so the next one reads the next documents from the index's start;
one written meanwhile is met too. A delete cut short has removed whole rounds, and what it left is
found the same way by its retry (each caller deletes the record that names what it removes last).

An update of all a query matches, where it grows with the lake too (archiving a backlog of old
events: 60,000 in one command held the writer 12.7 s), goes by the same rounds (update_all): the
update takes each round's documents out of the query, as a delete does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

# Documents per round. Deleting 500 holds the embedded default's one writer about 20 ms here; a
# collection's round also rewrites its 500 assets as their pins go (services/retention.py), 100-200 ms.
DELETE_ROUND = 500


async def first_left(collection: AsyncCollection, query: dict[str, Any], fields: Sequence[str] = (),
                     order: Sequence[str] = ("_id",)) -> list[dict[str, Any]]:
    """The first DELETE_ROUND documents matching `query` in `order`, their `_id` and `fields` only.
    `order`: the fields of an index after those `query` holds to one value each (documents/indexes.py),
    so that the read walks that index and stops after its round (tests/test_query_plans.py)."""
    return await collection.find(query, {"_id": 1, **dict.fromkeys(fields, 1)}, sort=[(f, 1) for f in order],
                                 limit=DELETE_ROUND, batch_size=DELETE_ROUND).to_list()


async def delete_all(collection: AsyncCollection, query: dict[str, Any], order: Sequence[str] = ("_id",),
                     *, onwards: bool = False, fields: Sequence[str] = (),
                     then: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None) -> int:
    """Delete every document matching `query`, a round at a time (see the module); how many went.
    Each round's delete repeats `query`, so a document changed meanwhile to no longer match it (an
    event un-archived) stays. `onwards`: each round reads from where the last one ended, by the first
    field of `order`, not from the index's start: where the index walked also holds documents the
    query passes over (the AUDIT events a purge keeps, at the oldest end), every round read them all.
    `then`: given each round's documents (their `_id` and `fields`) once they are deleted."""
    async def delete(found: list[dict[str, Any]]) -> int:
        deleted = (await collection.delete_many({**query, "_id": {"$in": [d["_id"] for d in found]}})).deleted_count
        if then is not None:
            await then(found)
        return deleted

    return await _in_rounds(collection, query, order, delete, onwards=onwards, fields=fields)


async def update_all(collection: AsyncCollection, query: dict[str, Any], update: dict[str, Any],
                     order: Sequence[str] = ("_id",)) -> int:
    """Apply `update` to every document matching `query`, a round at a time (see the module); how
    many changed. The update must take a document out of `query` (the next round reads from the
    index's start again), and each round's repeats `query`, as delete_all's does."""
    async def change(found: list[dict[str, Any]]) -> int:
        return (await collection.update_many({**query, "_id": {"$in": [d["_id"] for d in found]}}, update)).modified_count

    return await _in_rounds(collection, query, order, change, stop_when_unchanged=True)


async def _in_rounds(collection: AsyncCollection, query: dict[str, Any], order: Sequence[str],
                     act: Callable[[list[dict[str, Any]]], Awaitable[int]], *, onwards: bool = False,
                     stop_when_unchanged: bool = False, fields: Sequence[str] = ()) -> int:
    """`act` on each round of documents matching `query` (their `_id` and `fields`) until none is left; the sum of
    what it answered. `stop_when_unchanged`: a round `act` changed nothing of ends it (an update that
    left its documents in the query would otherwise read them again for ever)."""
    assert "_id" not in query, "a round's ids are its own condition on _id"
    done, since = 0, None
    while True:
        # The bound beside the query's own on that field, where the index's range is read from.
        reading = query if since is None else {**query, order[0]: {**query.get(order[0], {}), "$gte": since}}
        found = await first_left(collection, reading, fields=[*fields, *(order[:1] if onwards else ())], order=order)
        if not found:
            return done
        acted = await act(found)
        done += acted
        if stop_when_unchanged and not acted:
            return done
        if onwards:  # from the last one's value on: others of that value, which sort after it, are read again
            since = found[-1][order[0]]
