"""Jobs a cluster runs once per period (services/schedules.py): one process takes each run, and a
run that fails is tried again an hour later, not a whole period on."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timedelta

import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from graphlake import app as app_module
from resolvers.context import AppState
from services.schedules import RETRY_AFTER, SCHEDULES, run_due

DAY = timedelta(days=1)


class Broken(Exception):
    pass


@pytest.fixture(autouse=True)
async def no_schedules(state: AppState) -> None:
    """The schedules collection is not among those emptied between tests (the app's own jobs use it)."""
    jobs = ["nightly", "often", "stray-copies", "stale-links", "content-files", "unfinished-deletes", "cut-short-adds",
            "event-archive"]
    await state.db[SCHEDULES].delete_many({"$or": [{"_id": {"$in": jobs}}, {"job": {"$in": jobs}}]})  # and their claims


async def _next_at(state: AppState, job: str) -> datetime:
    """When the job is next due, as stored."""
    return (await state.db[SCHEDULES].find_one({"_id": job}))["next_at"]


def _about(when: datetime, expected: datetime) -> bool:
    """Whether a stored time (milliseconds, naive UTC as the driver gives it back) is within a minute of `expected`."""
    return abs(when.replace(tzinfo=None) - expected.replace(tzinfo=None)) < timedelta(minutes=1)


async def test_a_due_job_runs_in_one_process_of_a_period(state: AppState) -> None:
    runs: list[str] = []

    async def work() -> str:
        runs.append("ran")
        return "done"

    assert await run_due(state.db, "nightly", DAY, work) == "done"  # never run: due at once
    assert await run_due(state.db, "nightly", DAY, work) is None  # another process, the same day
    assert runs == ["ran"] and _about(await _next_at(state, "nightly"), utcnow() + DAY)


async def test_of_processes_asking_at_once_one_takes_each_run(scratch_db: AsyncDatabase) -> None:
    """Sixteen at once, a job never run and then 49 times due again: one run each time. FerretDB's
    conditional update of the due record let several match (up to four ran the job)."""
    runs: list[int] = []
    for round_ in range(50):
        if round_:
            await scratch_db[SCHEDULES].update_one({"_id": "together"}, {"$set": {"next_at": utcnow()}})  # due again

        async def work(round_: int = round_) -> int:
            runs.append(round_)
            return round_

        outcomes = await asyncio.gather(*(run_due(scratch_db, "together", DAY, work) for _ in range(16)))
        assert runs == list(range(round_ + 1)) and sorted(outcomes, key=str) == [round_] + [None] * 15, (round_, outcomes)
        assert _about((await scratch_db[SCHEDULES].find_one({"_id": "together"}))["next_at"], utcnow() + DAY)


async def test_a_claim_whose_process_died_before_moving_the_record_on_is_taken_over(scratch_db: AsyncDatabase) -> None:
    """The winner inserts its claim, then moves the job's record on: one that dies in between (or
    whose update fails) leaves the record due and its claim standing, and every later process found
    the claim taken, for good. Once the claim is older than CLAIM_ABANDONED_AFTER, one process takes
    the run over."""
    from services import schedules

    runs: list[str] = []

    async def work() -> str:
        runs.append("ran")
        return "done"

    collection = scratch_db[SCHEDULES]
    due = utcnow() - timedelta(seconds=1)
    await collection.insert_one({"_id": "stranded", "next_at": due})
    # What a winner that died between its two writes left: its claim, and the record as it found it.
    await collection.insert_one({"_id": f"stranded due {schedules._millis(due)} after None", "job": "stranded",
                                 "claim": ObjectId(), "claimed_at": utcnow()})
    assert await run_due(scratch_db, "stranded", DAY, work) is None  # young: its process may yet go on
    await collection.update_many({"job": "stranded"}, {"$set": {"claimed_at": utcnow() - schedules.CLAIM_ABANDONED_AFTER * 2}})
    outcomes = await asyncio.gather(*(run_due(scratch_db, "stranded", DAY, work) for _ in range(8)))
    assert outcomes.count("done") == 1 and outcomes.count(None) == 7 and runs == ["ran"]
    assert _about((await collection.find_one({"_id": "stranded"}))["next_at"], utcnow() + DAY)


async def test_a_run_that_fails_is_due_again_an_hour_later_not_a_period_later(state: AppState) -> None:
    async def failing() -> None:
        raise Broken("the database went away")

    with pytest.raises(Broken):
        await run_due(state.db, "nightly", DAY, failing)
    assert _about(await _next_at(state, "nightly"), utcnow() + RETRY_AFTER)
    calls: list[str] = []

    async def work() -> str:
        calls.append("ran")
        return "done"

    assert await run_due(state.db, "nightly", DAY, work) is None and calls == []  # not every round: an hour on
    await state.db[SCHEDULES].update_one({"_id": "nightly"}, {"$set": {"next_at": utcnow()}})  # that hour has passed
    assert await run_due(state.db, "nightly", DAY, work) == "done"
    assert _about(await _next_at(state, "nightly"), utcnow() + DAY)

    # A job whose period is shorter than the hour is tried again after its period.
    with pytest.raises(Broken):
        await run_due(state.db, "often", timedelta(minutes=10), failing)
    assert _about(await _next_at(state, "often"), utcnow() + timedelta(minutes=10))


async def _time_passes(state: AppState, job: str, passed: timedelta) -> None:
    """What `passed` of waiting does to the job's record (tests cannot wait for hours)."""
    record = await state.db[SCHEDULES].find_one({"_id": job})
    await state.db[SCHEDULES].update_one({"_id": job}, {"$set": {
        "next_at": record["next_at"] - passed, "claimed_at": record["claimed_at"] - passed}})


async def test_a_changed_period_applies_from_the_last_run_not_after_the_next(state: AppState) -> None:
    """A job's period comes from the settings (scheduled backups, the maintenance interval): the next
    run was due a whole old period after the last, so going from weekly to hourly waited a week.
    The period in force now counts from the last run, whichever way it changed."""
    week, hour = timedelta(days=7), timedelta(hours=1)
    runs: list[str] = []

    async def work() -> str:
        runs.append("ran")
        return "done"

    assert await run_due(state.db, "nightly", week, work) == "done"
    assert await run_due(state.db, "nightly", hour, work) is None  # the last run was just now
    await _time_passes(state, "nightly", 2 * hour)
    assert await run_due(state.db, "nightly", hour, work) == "done"  # not six days and more on
    assert _about(await _next_at(state, "nightly"), utcnow() + hour) and runs == ["ran", "ran"]

    await _time_passes(state, "nightly", 2 * hour)  # hourly, due an hour ago, and now weekly
    assert await run_due(state.db, "nightly", week, work) is None and runs == ["ran", "ran"]
    await _time_passes(state, "nightly", week)
    assert await run_due(state.db, "nightly", week, work) == "done"

    async def failing() -> None:
        raise Broken("the disk is full")

    await _time_passes(state, "nightly", week)
    with pytest.raises(Broken):
        await run_due(state.db, "nightly", week, failing)
    await _time_passes(state, "nightly", 2 * hour)  # the hour's retry is due, and the period is now two weeks
    assert await run_due(state.db, "nightly", 2 * week, work) == "done"  # a failed run's retry stands


async def test_a_failed_run_leaves_the_claim_another_process_took_since_alone(state: AppState) -> None:
    async def slow_then_failing() -> None:
        # The run outlasts its period: the job falls due and another process takes the next run.
        await state.db[SCHEDULES].update_one({"_id": "nightly"}, {"$set": {"next_at": utcnow()}})

        async def other() -> str:
            return "the other's"

        assert await run_due(state.db, "nightly", DAY, other) == "the other's"
        raise Broken("late failure")

    with pytest.raises(Broken):
        await run_due(state.db, "nightly", DAY, slow_then_failing)
    assert _about(await _next_at(state, "nightly"), utcnow() + DAY)  # the other's claim: a day on, not an hour


async def test_a_failing_step_of_the_maintenance_leaves_the_others_to_run(state: AppState,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async def sweep_fails(_stores: object) -> None:  # the stray-copies sweep meets a disk that fails
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(app_module, "sweep_stray_copies", sweep_fails)
    assert state.metrics is not None

    def runs(task: str, outcome: str) -> float:
        return state.metrics.registry.get_sample_value(  # type: ignore[union-attr]
            "graphlake_background_runs_total", {"task": task, "outcome": outcome}) or 0.0

    counted = {(task, outcome): runs(task, outcome) for task in ("stray-copies", "stale-links", "asset-gc")
               for outcome in ("ok", "error")}
    before = time.monotonic()
    with pytest.raises(app_module.StepsFailed, match="stray-copies failed") as failure:
        await app_module._maintenance_round(state, -math.inf)  # the hourly temp sweep due too
    assert failure.value.swept_at >= before  # handed back: that sweep is not run again each round
    assert _about(await _next_at(state, "stray-copies"), utcnow() + RETRY_AFTER)
    assert _about(await _next_at(state, "stale-links"), utcnow() + DAY)  # the step after it ran
    assert _about(await _next_at(state, "content-files"), utcnow() + app_module.CONTENT_FILES_EVERY)  # and the next
    assert _about(await _next_at(state, "unfinished-deletes"), utcnow() + app_module.UNFINISHED_DELETES_EVERY)
    # The metrics say which step failed (a round's `error` alone did not), and that the others ran.
    moved = {key: runs(*key) - n for key, n in counted.items()}
    assert moved == {("stray-copies", "ok"): 0, ("stray-copies", "error"): 1, ("stale-links", "ok"): 1,
                     ("stale-links", "error"): 0, ("asset-gc", "ok"): 1, ("asset-gc", "error"): 0}
