"""Jobs a cluster runs once per period (scheduled backups, automatic anonymization, the daily
sweeps): which process takes each run, and when a run that failed is tried again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow

log = logging.getLogger("graphlake.schedules")
SCHEDULES = "graphlake_schedules"  # one record per job: when its next run is due, and who claimed the last
# A run that failed is due again this long after (or its period, if shorter), not a whole period on:
# a daily sweep or anonymization that met a passing fault (a full disk, a dropped connection)
# would otherwise wait a day. Not sooner: a fault that stays would fail every maintenance round.
RETRY_AFTER = timedelta(hours=1)

T = TypeVar("T")


async def claim_due(db: AsyncDatabase, job: str, every: timedelta) -> bool:
    """Whether this process takes `job`'s run now due (moving the next one `every` ahead): of several
    processes, one wins each period. A job never run before is due at once."""
    return await _claim(db, job, every) is not None


async def run_due(db: AsyncDatabase, job: str, every: timedelta, work: Callable[[], Awaitable[T]]) -> T | None:
    """`work()`'s result if `job`'s run is due and this process takes it (claim_due); None if not.
    A run that raises is due again RETRY_AFTER later (its claim given back; another process's claim
    taken since is left alone), and the error raised. A run cut short by its process stopping or
    dying is due again a period later, as before: taking a run for an hour at a time instead would
    let a second process start a run that lasts longer."""
    claim = await _claim(db, job, every)
    if claim is None:
        return None
    try:
        return await work()
    except Exception:
        retry = min(every, RETRY_AFTER)
        try:
            await db[SCHEDULES].update_one({"_id": job, "claim": claim}, {"$set": {"next_at": utcnow() + retry}})
        except Exception:  # the database the work failed on, still away: the work's error is the one to raise
            log.warning("%s failed, and its next run could not be brought forward to %s from now: it runs "
                        "again %s from its start", job, retry, every, exc_info=True)
        raise


async def _claim(db: AsyncDatabase, job: str, every: timedelta) -> ObjectId | None:
    """The claim this process took of `job`'s run now due; None when it is not due."""
    now, claim = utcnow(), ObjectId()
    try:  # matches a due record, or makes the first one
        await db[SCHEDULES].update_one({"_id": job, "next_at": {"$lte": now}},
                                       {"$set": {"next_at": now + every, "claimed_at": now, "claim": claim}}, upsert=True)
    except DuplicateKeyError:  # the record exists and is not due yet
        return None
    return claim
