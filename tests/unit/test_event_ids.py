"""Event ids sort by the millisecond they were made, on every process (documents/event.py): a
resuming subscription and `events(orderBy: RECEIVED)` read in id order."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from documents.event import _EventIds, new_event_id


def test_ids_grow_within_a_process_and_tell_the_second() -> None:
    ids = [new_event_id() for _ in range(50_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert abs((datetime.now(UTC) - ids[-1].generation_time).total_seconds()) < 2


def test_ids_of_two_processes_sort_by_time_not_by_process(monkeypatch) -> None:
    first, second = _EventIds(), _EventIds()
    now = time.time_ns()
    clock = iter([now, now + 1_000_000, now + 2_000_000, now + 3_000_000])  # one ms apart
    monkeypatch.setattr(time, "time_ns", lambda: next(clock))
    made = [first.new(), second.new(), first.new(), second.new()]
    assert sorted(made) == made


def test_a_clock_that_steps_back_keeps_the_order(monkeypatch) -> None:
    ids = _EventIds()
    now = time.time_ns()
    clock = iter([now, now - 5_000_000_000, now])
    monkeypatch.setattr(time, "time_ns", lambda: next(clock))
    made = [ids.new(), ids.new(), ids.new()]
    assert made == sorted(made) and len(set(made)) == 3
