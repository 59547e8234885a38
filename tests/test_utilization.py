"""Utilization: overlapping sessions of a group count once (USER stays within 0..1), busy time per
hour or day, and the sessions behind a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.events import log
from tests.operations import Api

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def workflow(event_type: str, workflow_id: str, minutes: int, user: str = "ann") -> dict:
    return {"eventType": event_type, "source": {"workflowId": workflow_id, "userId": user}, "timestamp": at(minutes)}


async def detail(api: Api, token: str, **variables: object) -> dict[str, dict]:
    data = await api.data("UtilizationDetail", {"from": at(0), "to": at(120), "groupBy": "USER", **variables}, token=token)
    return {e["node"]["group"]: e["node"] for e in data["utilization"]["edges"]}


async def test_a_users_overlapping_workflows_count_once(api: Api, contributor: str, viewer: str) -> None:
    # ann runs three workflows, two of them at once, a third inside the first: busy 0..90, not 150 minutes.
    await api.data("LogEvents", {"inputs": [
        workflow("WORKFLOW_START", "w1", 0), workflow("WORKFLOW_COMPLETE", "w1", 60),
        workflow("WORKFLOW_START", "w2", 30), workflow("WORKFLOW_FAILED", "w2", 90),
        workflow("WORKFLOW_START", "w3", 20), workflow("WORKFLOW_CANCELLED", "w3", 50),
        workflow("WORKFLOW_START", "w9", 100, user="bob"),  # still running at the window's end
    ]}, token=contributor)
    rows = await detail(api, viewer)
    ann, bob = rows["ann"], rows["bob"]
    assert (ann["busySeconds"], ann["sessions"], ann["utilization"]) == (90 * 60, 3, 0.75)
    assert ann["buckets"] == []  # none asked for
    assert [(s["workflowId"], s["start"], s["end"], s["open"]) for s in ann["sessionList"]] == [
        ("w1", at(0), at(60), False), ("w3", at(20), at(50), False), ("w2", at(30), at(90), False)]
    assert bob["sessionList"] == [{"workflowId": "w9", "start": at(100), "end": at(120), "open": True}]
    assert bob["busySeconds"] == 20 * 60
    assert len((await detail(api, viewer, sessions=1))["ann"]["sessionList"]) == 1
    # Never above 1, however many run at once.
    await api.data("LogEvents", {"inputs": [workflow("WORKFLOW_START", f"x{i}", 0, user="cy") for i in range(5)]},
                   token=contributor)
    assert (await detail(api, viewer))["cy"]["utilization"] == 1.0


async def test_utilization_by_hour_and_by_day(api: Api, contributor: str, viewer: str) -> None:
    await api.data("LogEvents", {"inputs": [
        workflow("WORKFLOW_START", "w1", 0), workflow("WORKFLOW_COMPLETE", "w1", 60),
        workflow("WORKFLOW_START", "w2", 30), workflow("WORKFLOW_COMPLETE", "w2", 90),
    ]}, token=contributor)
    hourly = (await detail(api, viewer, bucket="HOUR"))["ann"]["buckets"]
    assert hourly == [{"start": at(0), "end": at(60), "busySeconds": 3600.0, "utilization": 1.0},
                      {"start": at(60), "end": at(120), "busySeconds": 1800.0, "utilization": 0.5}]
    # Days are UTC days, clipped to the window: here one, of two hours.
    daily = (await detail(api, viewer, bucket="DAY"))["ann"]["buckets"]
    assert daily == [{"start": at(0), "end": at(120), "busySeconds": 5400.0, "utilization": 0.75}]
    # A window that does not start on the hour: its first and last hours are partial.
    data = await api.data("UtilizationDetail", {"from": at(15), "to": at(75), "groupBy": "USER", "bucket": "HOUR"},
                          token=viewer)
    [row] = [e["node"] for e in data["utilization"]["edges"]]
    assert row["buckets"] == [{"start": at(15), "end": at(60), "busySeconds": 2700.0, "utilization": 1.0},
                              {"start": at(60), "end": at(75), "busySeconds": 900.0, "utilization": 1.0}]


async def test_too_many_buckets_are_refused(api: Api, viewer: str) -> None:
    error = await api.error("UtilizationDetail", {"from": at(0), "to": (T0 + timedelta(days=200)).isoformat(),
                                                  "bucket": "HOUR"}, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "bucket"}


async def test_a_rows_sessions_page_through_them_all(api: Api, contributor: str, viewer: str) -> None:
    """`sessionList` shows a row's first sessions; `allSessions` pages through every one, in the order they began."""
    await api.data("LogEvents", {"inputs": [
        e for i in range(5) for e in (workflow("WORKFLOW_START", f"w{i}", 10 * i), workflow("WORKFLOW_COMPLETE", f"w{i}", 10 * i + 5))
    ]}, token=contributor)
    seen, after, counts = [], None, set()
    while True:
        data = await api.data("UtilizationSessions", {"from": at(0), "to": at(120), "groupBy": "USER", "first": 2,
                                                      "after": after}, token=viewer)
        [row] = [e["node"] for e in data["utilization"]["edges"]]
        page = row["allSessions"]
        counts.add(page["totalCount"])
        seen += [(e["node"]["workflowId"], e["node"]["start"], e["node"]["end"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [(f"w{i}", at(10 * i), at(10 * i + 5)) for i in range(5)] and counts == {5} and row["sessions"] == 5


async def test_a_window_of_too_many_session_events_is_refused(api: Api, contributor: str, viewer: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A utilization reads at most MAX_SESSION_EVENTS start and stop events (all of a lab's history had
    been read into memory at once); one more is BAD_USER_INPUT naming `from`."""
    monkeypatch.setattr(log, "MAX_SESSION_EVENTS", 4)
    await api.data("LogEvents", {"inputs": [
        e for i in range(2) for e in (workflow("WORKFLOW_START", f"w{i}", 10 * i), workflow("WORKFLOW_COMPLETE", f"w{i}", 10 * i + 5))
    ]}, token=contributor)
    assert (await detail(api, viewer))["ann"]["sessions"] == 2  # four events: read
    await api.data("LogEvents", {"inputs": [workflow("WORKFLOW_START", "w9", 50)]}, token=contributor)
    error = await api.error("UtilizationDetail", {"from": at(0), "to": at(120), "groupBy": "USER"}, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "from"}
    assert "more than 4 start and stop events" in error["message"]


async def test_days_weeks_and_months_follow_a_time_zones_calendar(api: Api, contributor: str, viewer: str) -> None:
    """As MADSci's reports in the user's time zone: days from Berlin's midnight (23 hours on the
    day its clocks go forward), weeks from Monday, months their own length."""
    def on(day: str, hour: int) -> str:
        return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").isoformat()

    # One workflow from Saturday 28 March 2026 22:00 UTC to Sunday 29 March 02:00 UTC (Berlin: 23:00 to 04:00 summer time).
    await api.data("LogEvents", {"inputs": [
        {"eventType": "WORKFLOW_START", "source": {"workflowId": "night", "userId": "dora"}, "timestamp": on("2026-03-28", 22)},
        {"eventType": "WORKFLOW_COMPLETE", "source": {"workflowId": "night", "userId": "dora"}, "timestamp": on("2026-03-29", 2)},
    ]}, token=contributor)
    window = {"from": on("2026-03-27", 23), "to": on("2026-03-30", 22), "groupBy": "USER"}  # Berlin: 28 00:00 to 31 00:00

    async def buckets(bucket: str, zone: str | None) -> list[tuple[str, str, float]]:
        data = await api.data("UtilizationDetail", {**window, "bucket": bucket, "timeZone": zone}, token=viewer)
        [row] = [e["node"] for e in data["utilization"]["edges"]]
        return [(b["start"], b["end"], b["busySeconds"]) for b in row["buckets"]]

    assert await buckets("DAY", "Europe/Berlin") == [
        (on("2026-03-27", 23), on("2026-03-28", 23), 3600.0),   # the 28th in Berlin: 23:00 to midnight
        (on("2026-03-28", 23), on("2026-03-29", 22), 3 * 3600.0),  # the 29th: 23 hours long, busy to 04:00
        (on("2026-03-29", 22), on("2026-03-30", 22), 0.0)]
    assert [b[:2] for b in await buckets("DAY", None)][:2] == [  # UTC by default
        (on("2026-03-27", 23), on("2026-03-28", 0)), (on("2026-03-28", 0), on("2026-03-29", 0))]
    assert await buckets("WEEK", "Europe/Berlin") == [  # Monday 23 March to Monday 30 March, then the next week
        (on("2026-03-27", 23), on("2026-03-29", 22), 4 * 3600.0), (on("2026-03-29", 22), on("2026-03-30", 22), 0.0)]
    assert await buckets("MONTH", "Europe/Berlin") == [(on("2026-03-27", 23), on("2026-03-30", 22), 4 * 3600.0)]
    error = await api.error("UtilizationDetail", {**window, "bucket": "DAY", "timeZone": "Mars/Olympus"}, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "timeZone"} and "Mars/Olympus" in error["message"]



async def test_groups_of_long_names_page_past_them(api: Api, contributor: str, viewer: str) -> None:
    """A group's name comes from an event's source, of any length: a cursor holding a name of over 2,048
    characters was refused (longer than any cursor), so the list could not be paged past it. Such a
    cursor holds a prefix and a digest; names sharing the prefix still page one by one, in order."""
    shared = "é" * 3000
    users = sorted([shared + "1", shared + "2", "a" * 2100, "b", shared[:1024]])
    await api.data("LogEvents", {"inputs": [workflow("WORKFLOW_START", f"w{i}", 0, user=u) for i, u in enumerate(users)]},
                   token=contributor)
    seen, after = [], None
    for _ in range(len(users) + 1):
        data = (await api.data("Utilization", {"from": at(0), "to": at(120), "groupBy": "USER", "first": 1, "after": after},
                               token=viewer))["utilization"]
        seen += [e["node"]["group"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == users
