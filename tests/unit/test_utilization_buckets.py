"""services/events/log._buckets sweeps the merged busy time once: the same busy seconds per bucket as
testing every interval against every bucket, which it replaced."""

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.events.log import Session, _buckets, _merged

START = datetime(2026, 3, 27, 5, 17, tzinfo=UTC)


def _every_interval(busy: list[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    return sum(max(0.0, (min(e, hi) - max(s, lo)).total_seconds()) for s, e in busy if s < hi and e > lo)


@pytest.mark.parametrize(("bucket", "zone"), [("HOUR", UTC), ("DAY", ZoneInfo("Europe/Berlin")), ("WEEK", UTC),
                                              ("MONTH", ZoneInfo("America/New_York"))])
def test_each_buckets_busy_time_is_every_overlapping_intervals(bucket: str, zone: ZoneInfo) -> None:
    rng = random.Random(7)
    end = START + timedelta(days=70)
    sessions = []
    for _ in range(400):  # overlapping, long and short, some across the window's edges
        began = START - timedelta(hours=30) + timedelta(minutes=rng.randrange(0, 70 * 24 * 60 + 3000))
        sessions.append(Session(start=max(began, START), end=min(end, began + timedelta(minutes=rng.choice([1, 50, 600, 4000]))),
                                open=False, workflow_id=None))
    busy = _merged([s for s in sessions if s.end > s.start])
    rows = _buckets(busy, START, end, bucket, zone)
    assert rows and rows[0].start == START and rows[-1].end == end
    for row in rows:
        assert row.busy_seconds == pytest.approx(_every_interval(busy, row.start, row.end)), row
    assert sum(r.busy_seconds for r in rows) == pytest.approx(sum((e - s).total_seconds() for s, e in busy))
