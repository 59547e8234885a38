"""Event streams that survive a reconnect: `events(after:)` replays what was logged since a position,
in the order it arrived, then goes live with nothing missed or repeated at the seam (one process,
over WebSockets and SSE, and across two processes); and `events` reads oldest first and newer than
a position."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from documents.event import Event as EventDocument
from graphlake.settings import Settings
from resolvers.context import AppState
from services.events import log as log_service
from tests.conftest import Served
from tests.operations import Api, document, object_id
from tests.processes import start_server_process
from tests.test_sse import sse
from tests.waiting import live_subscribers, wait_for
from tests.ws_client import Subscriber, last_comes_next, next_events


async def log(api: Api, token: str, *messages: str, event_type: str = "RESUME", node: str = "n") -> list[str]:
    inputs = [{"eventType": event_type, "message": m, "source": {"nodeId": node}} for m in messages]
    return (await api.data("LogEvents", {"inputs": inputs}, token=token))["logEvents"]["ids"]


async def messages(api: Api, token: str, **variables: object) -> tuple[list[str], dict]:
    data = (await api.data("Events", {"filter": {"eventTypes": ["RESUME"]}, **variables}, token=token))["events"]
    return [e["node"]["message"] for e in data["edges"]], data


async def receive(ws: Subscriber, count: int) -> list[str]:
    return [event["message"] for event in await next_events(ws, count)]


async def test_events_read_oldest_first_and_newer_than_a_position(api: Api, contributor: str, viewer: str) -> None:
    ids = await log(api, contributor, *[f"m{i}" for i in range(6)])
    first, page = await messages(api, viewer, orderBy="RECEIVED", direction="ASC", first=3)
    rest, _ = await messages(api, viewer, orderBy="RECEIVED", direction="ASC", after=page["pageInfo"]["endCursor"])
    assert (first, rest) == (["m0", "m1", "m2"], ["m3", "m4", "m5"])
    # Newer than an event's ID, or than a cursor of the same order in either direction.
    assert (await messages(api, viewer, orderBy="RECEIVED", direction="ASC", newerThan=ids[2]))[0] == ["m3", "m4", "m5"]
    newest_first, page = await messages(api, viewer, orderBy="RECEIVED", first=4)
    assert newest_first == ["m5", "m4", "m3", "m2"]
    cursor = page["edges"][-1]["cursor"]  # m2's, from the newest-first list
    assert (await messages(api, viewer, orderBy="RECEIVED", direction="ASC", newerThan=cursor))[0] == ["m3", "m4", "m5"]
    assert (await messages(api, viewer, orderBy="RECEIVED", newerThan=cursor))[0] == ["m5", "m4", "m3"]
    # Pages of a list newer than a position go on as any list does.
    one, page = await messages(api, viewer, orderBy="RECEIVED", direction="ASC", newerThan=ids[0], first=2)
    two, _ = await messages(api, viewer, orderBy="RECEIVED", direction="ASC", newerThan=ids[0],
                            after=page["pageInfo"]["endCursor"])
    assert one + two == ["m1", "m2", "m3", "m4", "m5"]


async def test_newer_than_in_timestamp_order(api: Api, contributor: str, viewer: str) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    # Logged out of order: by the sender's clock m0 is oldest.
    inputs = [{"eventType": "RESUME", "message": f"m{i}", "timestamp": (t0 + timedelta(minutes=i)).isoformat()}
              for i in (2, 0, 3, 1)]
    ids = (await api.data("LogEvents", {"inputs": inputs}, token=contributor))["logEvents"]["ids"]
    assert (await messages(api, viewer, direction="ASC"))[0] == ["m0", "m1", "m2", "m3"]
    assert (await messages(api, viewer, direction="ASC", newerThan=ids[3]))[0] == ["m2", "m3"]  # newer than m1
    _, page = await messages(api, viewer, first=2)  # m3, m2
    assert (await messages(api, viewer, direction="ASC", newerThan=page["pageInfo"]["endCursor"]))[0] == ["m3"]
    error = await api.error("Events", {"orderBy": "TIMESTAMP", "newerThan": page["pageInfo"]["endCursor"] + "x"},
                            token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "newerThan"}
    _, received = await messages(api, viewer, orderBy="RECEIVED", first=1)
    error = await api.error("Events", {"newerThan": received["pageInfo"]["endCursor"]}, token=viewer)  # another order's
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "newerThan"}


async def test_a_subscription_resumes_after_the_last_event_it_received(
        api: Api, served: Served, state: AppState, viewer: str, contributor: str) -> None:
    variables = {"filter": {"eventTypes": ["RESUME"]}}
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStream", variables)
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the subscription to listen")
        ids = await log(api, contributor, "a0", "a1", "a2")
        assert await receive(ws, 3) == ["a0", "a1", "a2"]
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the first subscription to end")
    away = await log(api, contributor, "b0", "b1")  # while away
    # Archived meanwhile (by age): out of default queries, but a resume must not skip it.
    await EventDocument.get_pymongo_collection().update_one({"_id": object_id(away[1])}, {"$set": {"archived": True}})
    await log(api, contributor, "other", event_type="UNWATCHED")
    await log(api, contributor, "b2")
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStreamFrom", {**variables, "after": ids[-1]})
        assert await receive(ws, 3) == ["b0", "b1", "b2"]
        await log(api, contributor, "c0", "c1")
        assert await receive(ws, 2) == ["c0", "c1"]
        await last_comes_next(ws, lambda: log(api, contributor, "last"))


async def test_no_event_is_lost_or_repeated_at_the_seam_while_events_keep_coming(
        api: Api, served: Served, state: AppState, viewer: str, contributor: str) -> None:
    [start] = await log(api, contributor, "start")
    batches, size = 20, 5
    expected = [f"{b}-{i}" for b in range(batches) for i in range(size)]

    async def keep_logging() -> None:
        for b in range(batches):
            await log(api, contributor, *[f"{b}-{i}" for i in range(size)])
            await asyncio.sleep(0)

    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        writer = asyncio.create_task(keep_logging())
        await log(api, contributor, "noise", event_type="UNWATCHED")  # the writer has begun meanwhile
        await ws.subscribe("EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": start})
        got = await receive(ws, len(expected))
        await writer
        await last_comes_next(ws, lambda: log(api, contributor, "last"))
    assert got == expected


async def test_a_position_that_is_no_event_nor_cursor_is_refused(served: Served, viewer: str) -> None:
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStreamFrom", {"after": "not a position"})
        message = await asyncio.wait_for(ws.receive(), 10)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}, message


async def test_a_replay_longer_than_the_limit_ends_with_an_error_after_the_limit(
        api: Api, served: Served, settings: Settings, viewer: str, contributor: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "max_event_replay", 3)
    [start] = await log(api, contributor, "start")
    await log(api, contributor, *[f"m{i}" for i in range(5)])
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": start})
        assert await receive(ws, 3) == ["m0", "m1", "m2"]
        final = await asyncio.wait_for(ws.receive(), 10)
    assert final["type"] == "error" or final["payload"].get("errors"), final
    errors = final["payload"] if final["type"] == "error" else final["payload"]["errors"]
    assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    assert "GRAPHLAKE_MAX_EVENT_REPLAY" in errors[0]["message"]


async def test_a_subscription_over_sse_resumes_too(api: Api, served: Served, state: AppState, viewer: str,
                                                   contributor: str) -> None:
    [start, *_] = await log(api, contributor, "start", "m0", "m1")
    async with sse(served.base_url, "EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": start},
                   token=viewer) as stream:
        replayed = [await stream.message() for _ in range(2)]
        await log(api, contributor, "m2")
        live = await stream.message()
    assert [data["data"]["events"]["message"] for _, data in [*replayed, live]] == ["m0", "m1", "m2"]


async def test_a_subscription_resumes_across_processes(api: Api, served: Served, state: AppState, settings: Settings,
                                                       viewer: str, contributor: str, tmp_path: Path) -> None:
    """Events logged on the other process while away are replayed here, then its new ones arrive
    live; and a resume while that process keeps logging loses and repeats nothing."""
    process, other_url = await start_server_process(settings.mongodb_url.get_secret_value(), settings.database, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=other_url, timeout=60,
                                     headers={"Authorization": f"Bearer {contributor}"}) as other:

            async def log_there(*messages: str) -> list[str]:
                inputs = [{"eventType": "RESUME", "message": m, "source": {"nodeId": "b"}} for m in messages]
                response = await other.post("/graphql", json={"query": document("LogEvents"), "operationName": "LogEvents",
                                                              "variables": {"inputs": inputs}})
                assert not response.json().get("errors"), response.text[:300]
                return response.json()["data"]["logEvents"]["ids"]

            ids = await log_there("x0", "x1", "x2")
            async with Subscriber(served.ws_url) as ws:
                await ws.connect({"Authorization": f"Bearer {viewer}"})
                await ws.subscribe("EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": ids[0]})
                assert await receive(ws, 2) == ["x1", "x2"]
                await log_there("x3", "x4")
                assert await receive(ws, 2) == ["x3", "x4"]
            await wait_for(lambda: live_subscribers(state.events) == 0, what="the subscription to end")

            # Resuming while the other process keeps logging: the seam holds across processes too.
            [start] = await log_there("start")
            expected = [f"{b}-{i}" for b in range(15) for i in range(4)]

            async def keep_logging() -> None:
                for b in range(15):
                    await log_there(*[f"{b}-{i}" for i in range(4)])

            async with Subscriber(served.ws_url) as ws:
                await ws.connect({"Authorization": f"Bearer {viewer}"})
                writer = asyncio.create_task(keep_logging())
                await log_there("noise-0")  # the writer has begun meanwhile
                await ws.subscribe("EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": start})
                got = await receive(ws, len(expected) + 1)
                await writer
                await last_comes_next(ws, lambda: log_there("last"))
            # Each once; the writer's in its order (the other request's event falls somewhere between).
            assert sorted(got) == sorted(["noise-0", *expected])
            assert [m for m in got if m != "noise-0"] == expected
    finally:
        process.terminate()
        await process.wait()


async def test_a_replay_reads_page_after_page_archived_or_not(api: Api, served: Served, viewer: str, contributor: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_service, "REPLAY_PAGE", 2)
    [start, *ids] = await log(api, contributor, "start", *[f"m{i}" for i in range(7)])
    archived = [object_id(ids[i]) for i in (1, 2, 5)]
    await EventDocument.get_pymongo_collection().update_many({"_id": {"$in": archived}}, {"$set": {"archived": True}})
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": start})
        assert await receive(ws, 7) == [f"m{i}" for i in range(7)]
        await last_comes_next(ws, lambda: log(api, contributor, "last"))


async def test_a_late_copy_of_an_event_before_the_position_is_not_sent_live(api: Api, served: Served, state: AppState,
                                                                            viewer: str, contributor: str) -> None:
    """Another process's feed copy of an event logged before a resume's position can arrive after the
    subscription listens (copies go out up to 50 ms apart): it is not news to that subscriber."""
    [start] = await log(api, contributor, "start")
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStreamFrom", {"filter": {"eventTypes": ["RESUME"]}, "after": start})
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the resuming subscription to listen")
        stored = await EventDocument.get(object_id(start))
        assert stored is not None
        state.events.publish_all([stored])  # as the feed tail hands over another process's copy, late
        await log(api, contributor, "after")
        assert await receive(ws, 1) == ["after"]
        await last_comes_next(ws, lambda: log(api, contributor, "last"))
