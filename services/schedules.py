"""Jobs a cluster runs once per period (scheduled backups, automatic anonymization): which process takes each run."""

from __future__ import annotations

from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow

SCHEDULES = "graphlake_schedules"  # one record per job: when its next run is due


async def claim_due(db: AsyncDatabase, job: str, every: timedelta) -> bool:
    """Whether this process takes `job`'s run now due (moving the next one `every` ahead): of several
    processes, one wins each period. A job never run before is due at once."""
    now = utcnow()
    try:  # matches a due record, or makes the first one
        await db[SCHEDULES].update_one({"_id": job, "next_at": {"$lte": now}},
                                       {"$set": {"next_at": now + every, "claimed_at": now}}, upsert=True)
    except DuplicateKeyError:  # the record exists and is not due yet
        return False
    return True
