"""Events sent again under their keys are found, not stored twice.

An event may carry a key: a name its client chose (a UUID made per event), unique among the lake's
keyed events by a unique index (documents/event.py). A client whose call timed out cannot tell
whether its batch was stored; with keys it simply sends the batch again. For each keyed event:
- the lake holds an event under its key with the same content (_same): that event is the answer,
  its id returned in the new one's place, and nothing is stored, broadcast, alerted or counted;
- the lake holds one with other content: CONFLICT naming the key, and nothing of the batch is stored;
- else it is new, and stored with the rest of the batch in one write.

The keys are looked up before the write, and the write is stored whole or not at all
(FeedWriter.write): so when another call stores one of the keys between the lookup and the write
(two senders of one event at once: a retry while the first attempt is still in flight), the write
is refused, nothing of it stays, and the batch is looked up and written again, after a jittered
pause (two calls sending the same keys in opposite orders may each refuse the other's write), for
at most WAIT_SECONDS: then UNAVAILABLE, which a client sends again (as its keys make safe).

The lookup reads `{key: {$in: ...}}`: through the partial unique index on MongoDB (the query names
its filter, `$type: "string"`, so the server may use it), and on the embedded default through the
plain `key` index beside its unique one, which serves no query (tests/test_query_plans.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from documents.common import Ownership
from documents.event import Event
from services.availability import no_time_limit
from services.errors import Conflict, Unavailable
from services.events.feed import FeedWriter
from services.node_ids import NodeType, encode_id

log = logging.getLogger("graphlake.events")

WAIT_SECONDS = 10.0  # for another call storing the same keys; a write of a whole batch takes milliseconds
# What makes two events the same: all a client sends (the timestamp only when the resend gives one,
# see _same), none of what the server adds (id, archived, by_lake).
CONTENT = ("event_type", "level", "message", "alert", "trace_id", "span_id")


def _same(held: dict[str, Any], sent: Event, timed: bool) -> bool:
    """Whether the stored event `held` is the one `sent` again. A resend that gives no timestamp
    matches any (the first was stamped with the time the server stored it, a resend's would be later)."""
    if any(held.get(name) != getattr(sent, name) for name in CONTENT):
        return False
    if timed and held.get("timestamp") != sent.timestamp:
        return False
    if Ownership.model_validate(held.get("source") or {}) != sent.source:
        return False
    return Event.model_validate(held).data.decode() == sent.data.decode()


def lookup(keys: list[str]) -> dict[str, Any]:
    """The filter that finds the events holding these keys (see the module docstring for its index)."""
    return {"key": {"$type": "string", "$in": keys}}


async def _held(keys: list[str]) -> dict[str, dict[str, Any]]:
    """The stored events holding these keys, by key."""
    if not keys:
        return {}
    return {d["key"]: d async for d in Event.get_pymongo_collection().find(lookup(keys))}


def _taken_key(error: BulkWriteError) -> bool:
    """Whether a unique index refused the insert (for an event, only its key can be taken)."""
    errors = error.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == 11000 for e in errors)


async def write_keyed(writer: FeedWriter, events: list[Event], timed: list[bool], where: Callable[[int], str],
                      then: Callable[[list[Event]], Sequence[Callable[[], None]]]) -> tuple[list[Event], list[Event]]:
    """Store the new ones of these events (some keyed) in one write; returns, in order, each event
    stored or the one the lake held already under its key, and those this call stored (`then(...)`
    runs once they are stored: their alerts). `timed[i]`: whether event i was sent with a timestamp.
    CONFLICT for a key held with other content (nothing of the batch stored, but what a refused
    round stored, which stays and is named), UNAVAILABLE when other calls keep refusing this one's
    keys for WAIT_SECONDS (what it stored of them stays: sent again, the batch finds it by key).

    A write refused part-way keeps the keyed events it stored before the refusal (FeedWriter._insert):
    taken out again, they would be seen by a third sender of the same batch in between, which would
    answer with ids that then named nothing. So the next round finds them by key, by the ids this
    call gave them, and counts them as its own; and they stay even when the batch then ends in
    CONFLICT (the error names them: sent again without the conflicting event, they are found)."""
    events = list(events)  # a retried event is replaced by a copy, never changed: a kept one went out as it is
    result: list[Event | None] = [None] * len(events)
    attempted: set[ObjectId] = set()  # every id this call wrote under (each round's write gives new ones)
    adopted: list[Event] = []  # its own, stored by a round that then failed
    deadline = time.monotonic() + WAIT_SECONDS
    pause = 0.05

    def adopt(i: int, event: Event) -> None:
        result[i] = event
        adopted.append(event)

    try:
        while True:
            pending = [i for i in range(len(events)) if result[i] is None]
            held = await _held([events[i].key for i in pending if events[i].key is not None])
            for i in pending:
                found = held.get(events[i].key) if events[i].key is not None else None
                if found is None:
                    continue
                if found["_id"] in attempted:  # kept, though a round's error did not say so (an earlier round's)
                    adopt(i, Event.model_validate(found))
                    continue
                if not _same(found, events[i], timed[i]):
                    raise _conflict(found, where(i), adopted)  # what it adopted stays (a sender may hold its ids)
                result[i] = Event.model_validate(found)
            round_ = [i for i in range(len(events)) if result[i] is None]
            new = [events[i] for i in round_]
            by_object = {id(events[i]): i for i in round_}  # a round's event objects, to their places
            try:
                if new:
                    await writer.write(new, then=then(new), now=True)  # which gives them their IDs
            except BulkWriteError as error:
                attempted.update(event.id for event in new)  # the IDs the write gave them
                for event in getattr(error, "kept", ()):  # stored and delivered (FeedWriter._insert): ours now
                    adopt(by_object[id(event)], event)
                if not _taken_key(error):
                    raise
                # Another call stored one of these keys since the lookup.
                if time.monotonic() > deadline:
                    raise Unavailable("other calls are storing events under these keys; send the batch again "
                                      "shortly", field=where(0).partition("[")[0]) from None
                # Jittered: two calls sending the same keys at once must not retry in step forever.
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 1.0)
                for i in round_:  # a fresh object for the next round (whose write numbers it again)
                    if result[i] is None:
                        events[i] = events[i].model_copy()
                continue
            except BaseException:
                # A lost answer, a time limit, the request cancelled: the insert may have stored some
                # of them. Those found are stored events like any: delivered, alerted, this call's.
                found = await asyncio.shield(_stored_after_all(writer, new))
                for event in found:
                    adopt(by_object[id(event)], event)
                raise
            return [event if event is not None else events[i] for i, event in enumerate(result)], [*adopted, *new]
    finally:
        _call(then(adopted))  # stored, whatever the call ends in: alerted once


async def _stored_after_all(writer: FeedWriter, events: list[Event]) -> list[Event]:
    """Those of `events` a failed insert stored all the same, handed to the subscribers as any
    stored event (FeedWriter.stored_after_all); none when the database cannot say."""
    if not events:
        return []
    try:
        with no_time_limit():
            present = {d["_id"] async for d in Event.get_pymongo_collection().find(
                {"_id": {"$in": [e.id for e in events]}}, {"_id": 1})}
    except Exception:  # the database away: a resend finds them by key, undelivered (logged)
        log.warning("event log: could not learn which of %d keyed event(s) a failed insert stored", len(events))
        return []
    found = [e for e in events if e.id in present]
    writer.stored_after_all(found)
    return found


def _call(calls: Sequence[Callable[[], None]]) -> None:
    for call in calls:
        call()


def _conflict(held: dict[str, Any], where: str, adopted: list[Event]) -> Conflict:
    held_id = encode_id(NodeType.EVENT, held["_id"])
    message = f"the lake holds event {held_id} under this key, with other content"
    if not adopted:
        return Conflict(message, field=f"{where}.key", event=held_id)
    stored = [encode_id(NodeType.EVENT, e.id) for e in adopted]
    return Conflict(f"{message}; {len(stored)} other event(s) of this batch were stored before it was found "
                    "(`extensions.stored`; sent again, they are found by key)", field=f"{where}.key", event=held_id,
                    stored=stored)
