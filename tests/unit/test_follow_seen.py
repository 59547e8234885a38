"""`Seen` (graphlake_client/follow.py): the IDs a follow gave lately, to drop a resume's repeats. It
keeps those within SEEN_WINDOW_MS of the newest and at most SEEN_MOST, dropping from the oldest end."""

from __future__ import annotations

import pytest

from graphlake_client import follow
from graphlake_client.follow import SEEN_WINDOW_MS, Seen


def test_ids_older_than_the_window_before_the_newest_are_dropped() -> None:
    seen = Seen()
    for ms in range(0, 10_000, 100):
        seen.add(f"e{ms}", ms)
    assert len(seen) == SEEN_WINDOW_MS // 100 + 1  # 9,900 back to 6,900, the window's edge kept
    assert "e6900" in seen and "e6800" not in seen and "e0" not in seen and "e9900" in seen


def test_an_event_received_late_but_within_the_window_is_kept() -> None:
    """Another process's events come up to 50 ms late: received after a newer one, not dropped for it."""
    seen = Seen()
    seen.add("new", 10_000)
    seen.add("late", 9_960)
    seen.add("newer", 10_010)
    assert "new" in seen and "late" in seen and "newer" in seen


def test_at_most_seen_most_are_kept_however_fast_events_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "SEEN_MOST", 50)
    seen = Seen()
    for n in range(200):
        seen.add(f"e{n}", 5_000)  # all in one millisecond: the window keeps them, the bound does not
        assert len(seen) <= 50
    assert "e199" in seen and "e150" in seen and "e149" not in seen


def test_an_id_without_a_time_is_kept_until_the_bound_drops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cursor given as a position says no time: the window cannot place it, so it stays (and
    what came after it) until SEEN_MOST pushes it out."""
    monkeypatch.setattr(follow, "SEEN_MOST", 5)
    seen = Seen()
    seen.add("cursor", None)
    seen.add("a", 0)
    seen.add("b", 100_000)
    assert "cursor" in seen and "a" in seen
    for n in range(5):
        seen.add(f"c{n}", 100_000 + n)
    assert "cursor" not in seen and "a" not in seen and "b" not in seen and len(seen) == 5
