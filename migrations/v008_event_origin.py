"""Version 8: the events Graphlake writes itself say so (`by_lake: true`).

`events(filter: {origin: CLIENT})` lists what instruments, workflows and scripts logged, apart from
the lake's own events (an AUDIT event per mutation buried them), through indexes that pin the field.
Events written from version 8 on carry it as they are stored; forward marks the earlier ones by
type: the reserved types only Graphlake can write, and the two of scheduled backups (a client could
have logged a type of that name too: it is taken as the lake's). Idempotent, so a run that died
half way is run again. Backward clears the field and drops the two indexes that pin it, which
version 7 does not make or read.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

VERSION = 8
SUMMARY = "events Graphlake writes itself are marked, so lists can leave them out"

# The shapes of this version's time, frozen here.
EVENTS = "events"
LAKE_TYPES = ["AUDIT", "ASSET_STATUS", "ALERT_DELIVERY_FAILED", "BACKUP_COMPLETED", "BACKUP_FAILED"]
INDEXES = ("origin_timeline", "origin_received")


BATCH = 1000  # events marked per update: one update of a year's audit trail would hold the database for minutes


async def forward(db: AsyncDatabase) -> None:
    ids = []
    async for event in db[EVENTS].find({"event_type": {"$in": LAKE_TYPES}, "by_lake": None}, {"_id": 1}):
        ids.append(event["_id"])
        if len(ids) >= BATCH:
            await db[EVENTS].update_many({"_id": {"$in": ids}}, {"$set": {"by_lake": True}})
            ids = []
    if ids:
        await db[EVENTS].update_many({"_id": {"$in": ids}}, {"$set": {"by_lake": True}})


async def backward(db: AsyncDatabase) -> None:
    await db[EVENTS].update_many({"by_lake": True}, {"$unset": {"by_lake": ""}})
    present = await db[EVENTS].index_information()
    for name in INDEXES:
        if name in present:
            await db[EVENTS].drop_index(name)
