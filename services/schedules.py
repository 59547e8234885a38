"""Jobs a cluster runs once per period (scheduled backups, automatic anonymization, the daily
sweeps): which process takes each run, when a run that failed is tried again, and when the next run
is due once the period changed (_due)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow

log = logging.getLogger("graphlake.schedules")
SCHEDULES = "graphlake_schedules"  # one record per job (when its next run is due, and who claimed the last), and claims
# A run that failed is due again this long after (or its period, if shorter), not a whole period on:
# a daily sweep or anonymization that met a passing fault (a full disk, a dropped connection)
# would otherwise wait a day. Not sooner: a fault that stays would fail every maintenance round.
RETRY_AFTER = timedelta(hours=1)
# How long a run's claim is kept (see _claim): far longer than a process takes between reading a job
# due and claiming its run.
CLAIMS_KEPT = timedelta(days=1)
# How long a claim may stand with its job's record not moved on before another process takes the run
# over: its winner moves the record milliseconds after its insert, so one older than this died (or
# lost its database) between the two writes, and its run would otherwise never be claimed again.
CLAIM_ABANDONED_AFTER = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


async def claim_due(db: AsyncDatabase, job: str, every: timedelta) -> ObjectId | None:
    """This process's claim of `job`'s run now due (the next one moved `every` ahead), or None: of
    several processes, one wins each period. A job never run before is due at once. A caller that
    reports a failed run rather than raising it hands the claim to `failed` (run_due does so itself)."""
    return await _claim(db, job, every)


async def failed(db: AsyncDatabase, job: str, every: timedelta, claim: ObjectId) -> None:
    """The run of `claim` failed: `job` is due again RETRY_AFTER from now (or its period, if shorter),
    its claim given back; a claim another process took since is left alone. Never raises: the
    database the work failed on may still be away (then the run waits its period, as logged)."""
    retry = min(every, RETRY_AFTER)
    try:
        await db[SCHEDULES].update_one({"_id": job, "claim": claim}, {"$set": {"next_at": utcnow() + retry, "retry": True}})
    except Exception:
        log.warning("%s failed, and its next run could not be brought forward to %s from now: it runs "
                    "again %s from its start", job, retry, every, exc_info=True)


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
        await failed(db, job, every, claim)  # the work's error is the one raised
        raise


async def _claim(db: AsyncDatabase, job: str, every: timedelta) -> ObjectId | None:
    """The claim this process took of `job`'s run now due; None when it is not due, or another took it.

    Decided by a unique key, not by a conditional update of the job's record: on FerretDB that update
    is not atomic (of processes sending it at once, several matched the due record and ran the job).
    Each process that reads the record due inserts a claim named by the job and the record as read:
    one insert of that `_id` succeeds, on every server. The winner then moves the record a period on;
    one that read the record before that finds the claim taken. Each state of the record is another
    name, so a claim is wanted only for the moments around its taking: claims a day old go."""
    now, claim = utcnow(), ObjectId()
    record = await db[SCHEDULES].find_one({"_id": job})
    if record is None:  # never run: due at once, since the time its first record (one process's) says
        try:
            await db[SCHEDULES].insert_one({"_id": job, "next_at": now})
        except DuplicateKeyError:
            pass
        record = await db[SCHEDULES].find_one({"_id": job})
    if record is None or _due(record, every) > _millis(now):
        return None
    # Named by the due time and the claim before (the record's two changes), so by no other state of the record.
    name = f"{job} due {_millis(record['next_at'])} after {record.get('claim')}"
    while True:
        try:
            await db[SCHEDULES].insert_one({"_id": name, "job": job, "claim": claim, "claimed_at": now})
            break
        except DuplicateKeyError:  # another process took this run: unless it died before moving the record on
            taken = await db[SCHEDULES].find_one({"_id": name})
            if taken is not None and _millis(taken["claimed_at"]) > _millis(now - CLAIM_ABANDONED_AFTER):
                return None
            name = f"{name} taken over"  # one process takes the abandoned claim over, by the same rule
    await db[SCHEDULES].update_one({"_id": job}, {"$set": {"next_at": now + every, "claimed_at": now, "claim": claim,
                                                           "every_seconds": every.total_seconds()},
                                                  "$unset": {"retry": ""}})
    await db[SCHEDULES].delete_many({"job": job, "claimed_at": {"$lt": now - CLAIMS_KEPT}})
    return claim


def _due(record: dict[str, Any], every: timedelta) -> int:
    """When the job of `record` is due (milliseconds since the epoch) under the period `every` in force
    now. Its `next_at` was set under the period of its last run (`every_seconds`): that one, while
    the period is the same. Once it changed (the settings say so at a restart), a period after the
    last run began: going from weekly to hourly waited a week otherwise, and from hourly to weekly
    ran once more an hour on. A failed run's retry (`retry`, see `failed`) still stands if it comes
    sooner; so does `next_at` of a record an older Graphlake wrote (no `every_seconds`), as the
    period it was set under is not known. `retry` is stored, not read off `next_at` differing from
    `claimed_at` plus the period: a run of a period of an hour or less that failed within the
    millisecond it was claimed (a job that fails at once, on a fast database) is due again when a
    success would be, and told apart by nothing else; and processes of an older version in the
    same cluster read the flag."""
    next_at = _millis(record["next_at"])
    if "claimed_at" not in record or record.get("every_seconds") == every.total_seconds():
        return next_at
    regular = _millis(record["claimed_at"]) + every // timedelta(milliseconds=1)
    return min(next_at, regular) if record.get("retry") or "every_seconds" not in record else regular


def _millis(value: datetime) -> int:
    """A stored time as any client reads it (tz-aware, or naive UTC): milliseconds since the epoch."""
    return ((value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH) // timedelta(milliseconds=1)
