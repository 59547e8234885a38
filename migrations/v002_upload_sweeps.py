"""Version 2: closed upload sessions say whether their leftover parts still need sweeping.

Version 1 swept the parts of dead uploads by walking every mount hourly; version 2 marks a session
`sweep_due` when it closes without completing, and sweeps just those (services/uploads/reconciler.py).
Sessions closed under version 1 carry no mark, so their leftovers would never be swept: forward marks
them due (a sweep of an already clean session finds nothing to remove). It also drops the empty
`graphlake_probe` collection version 1 made to learn the server's index support.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

VERSION = 2
SUMMARY = "closed upload sessions carry sweep_due; the index probe collection goes"

# The shapes of this version's time, frozen here.
SESSIONS = "upload_sessions"
OPEN, COMPLETED = "OPEN", "COMPLETED"
PROBE = "graphlake_probe"


async def forward(db: AsyncDatabase) -> None:
    sessions = db[SESSIONS]
    unmarked = {"sweep_due": {"$exists": False}}
    await sessions.update_many({**unmarked, "status": {"$nin": [OPEN, COMPLETED]}}, {"$set": {"sweep_due": True}})
    await sessions.update_many(unmarked, {"$set": {"sweep_due": False}})
    if PROBE in await db.list_collection_names():
        await db.drop_collection(PROBE)


async def backward(db: AsyncDatabase) -> None:
    # Version 1 creates its probe collection itself when it starts.
    await db[SESSIONS].update_many({"sweep_due": {"$exists": True}}, {"$unset": {"sweep_due": ""}})
