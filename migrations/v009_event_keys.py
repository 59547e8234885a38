"""Version 9: an event may carry its client's key, unique among the lake's keyed events.

`logEvents` is safe to send again when its events carry keys: an event the lake holds under its
key is found, not stored twice (services/events/keys.py), through a unique index on the key (and
on the embedded default a plain one beside it, which serves the lookup). Forward has nothing to
change: no earlier event has a key, and every start makes the indexes its code declares. Backward
makes the data what version 8 reads: the keys go (version 8 would keep them on no index it makes,
and lose them on no write), and so do the indexes, which version 8 neither makes nor drops, so
each would go on costing every event stored.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

VERSION = 9
SUMMARY = "events may carry their client's key, so a batch sent again is not stored twice"

# The shapes of this version's time, frozen here.
EVENTS = "events"
INDEXES = ("key_unique", "key", "key_unique_partial")


async def forward(db: AsyncDatabase) -> None:
    return None


async def backward(db: AsyncDatabase) -> None:
    await db[EVENTS].update_many({"key": {"$exists": True}}, {"$unset": {"key": ""}})
    present = await db[EVENTS].index_information()
    for name in INDEXES:
        if name in present:
            await db[EVENTS].drop_index(name)
