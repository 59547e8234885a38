"""Two server processes sharing one database: every subscriber, on either process, receives each
event of a burst exactly once, in order per source, whichever process it was logged on; an asset
completed on one process is announced to `assetStatusChanged` subscribers on the other; and a
stream of single writes shares its questions to the other processes without losing a copy."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from documents.event import FEED_COLLECTION, Event
from graphlake.local_services import free_port
from graphlake.settings import Settings
from resolvers.context import AppState
from services.broadcast import Broadcast
from services.events import feed as feed_module
from services.events.feed import ASK_EVERY_SECONDS, WRITERS_COLLECTION, FeedTail, FeedWriter, ensure_feed
from tests.conftest import Served
from tests.operations import Api, document
from tests.processes import start_server_process
from tests.waiting import live_subscribers, wait_for
from tests.ws_client import Subscriber, last_comes_next, next_events

BURST = 5000
BATCH = 250


async def start_second_server(settings: Settings, tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    return await start_server_process(settings.mongodb_url.get_secret_value(), settings.database, tmp_path)


async def listening(state: AppState, other_since: datetime, *, here: bool) -> bool:
    """Whether subscriptions are ready to receive what the other process logs: each process announces
    its first subscriber in `feed_writers` (services/events/feed.py), and another writes the feed
    copies of its events only while it sees such an announcement. The other process (started since
    `other_since`) has announced its subscriber; and with `here`, this process's one has too."""
    writers = state.db[WRITERS_COLLECTION]
    if here and not (live_subscribers(state.events) == 1
                     and await writers.find_one({"_id": state.feed.writer, "listening": True})):
        return False
    return await writers.find_one(
        {"_id": {"$ne": state.feed.writer}, "started_at": {"$gte": other_since}, "listening": True}) is not None


async def test_burst_across_two_processes(api: Api, served: Served, state: AppState, settings: Settings, viewer: str,
                                          contributor: str, tmp_path: Path) -> None:
    before = utcnow()
    process, other_url = await start_second_server(settings, tmp_path)
    try:
        other_ws = other_url.replace("http", "ws", 1) + "/graphql"
        async with Subscriber(served.ws_url) as on_a, Subscriber(other_ws) as on_b:
            for ws in (on_a, on_b):
                await ws.connect({"Authorization": f"Bearer {viewer}"})
                await ws.subscribe("EventStream", {"filter": {"eventTypes": ["BURST"]}})
            await wait_for(lambda: listening(state, before, here=True),
                           what="both processes to announce their subscriber")

            async def log_via(base_url: str, source: str, count: int) -> None:
                async with httpx.AsyncClient(base_url=base_url, timeout=60,
                                             headers={"Authorization": f"Bearer {contributor}"}) as http:
                    for start in range(0, count, BATCH):
                        inputs = [{"eventType": "BURST", "message": f"{source}-{i}", "source": {"nodeId": source}}
                                  for i in range(start, min(start + BATCH, count))]
                        response = await http.post("/graphql", json={"query": document("LogEvents"),
                                                                     "operationName": "LogEvents",
                                                                     "variables": {"inputs": inputs}})
                        assert not response.json().get("errors"), response.text[:300]

            # Half logged through each process, at the same time.
            await asyncio.gather(log_via(served.base_url, "node-a", BURST // 2), log_via(other_url, "node-b", BURST // 2))
            got_a, got_b = await asyncio.gather(next_events(on_a, BURST, timeout=60), next_events(on_b, BURST, timeout=60))
            for got in (got_a, got_b):
                assert len({e["id"] for e in got}) == BURST  # none twice
                for source in ("node-a", "node-b"):  # none lost, in order per source
                    messages = [e["message"] for e in got if e["source"]["nodeId"] == source]
                    assert messages == [f"{source}-{i}" for i in range(BURST // 2)]
            # And nothing more arrives: an event logged last through each process comes next on each
            # socket, as each process's events arrive in the order it stored them.
            async def log_last() -> None:
                await log_via(served.base_url, "last-a", 1)
                await log_via(other_url, "last-b", 1)

            await last_comes_next((on_a, on_b), log_last, ("last-a-0", "last-b-0"))
    finally:
        process.terminate()
        await process.wait()


async def test_asset_status_reaches_subscribers_on_another_process(api: Api, served: Served, state: AppState,
                                                                   settings: Settings, contributor: str,
                                                                   tmp_path: Path) -> None:
    before = utcnow()
    process, other_url = await start_second_server(settings, tmp_path)
    try:
        data = b"x" * 4096
        session = (await api.data("CreateUpload", {"input": {"name": "far.bin", "sizeBytes": len(data), "mount": "local"}},
                                  token=contributor))["createUpload"]
        async with Subscriber(other_url.replace("http", "ws", 1) + "/graphql") as on_b:
            await on_b.connect({"Authorization": f"Bearer {contributor}"})
            await on_b.subscribe("AssetStatusChanged", {"ids": [session["asset"]["id"]]})
            await wait_for(lambda: listening(state, before, here=False),
                           what="the other process to announce its subscriber")
            async with httpx.AsyncClient() as http:
                assert (await http.put(session["url"], content=data, headers=session["headers"])).status_code == 200
            await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)  # on process A
            message = await asyncio.wait_for(on_b.receive(), 10)
        assert message["payload"]["data"]["assetStatusChanged"]["id"] == session["asset"]["id"]
        assert message["payload"]["data"]["assetStatusChanged"]["status"] == "ACTIVE"
        logged = (await api.data("Events", {"filter": {"eventTypes": ["ASSET_STATUS"]}}, token=contributor))["events"]
        assert [e["node"]["data"]["assetId"] for e in logged["edges"]] == [session["asset"]["id"]]
    finally:
        process.terminate()
        await process.wait()


class PublisherClock:
    """Time as one FeedWriter's publisher sees it. services/events/feed.py reads it from the running loop
    and waits on asyncio.sleep; set as that module's `asyncio`, this stands still for the publisher until
    the test moves it on, so which writes a round takes follows from the order of what happened rather
    than from how fast the inserts ran. Every other caller there gets asyncio itself."""

    def __init__(self, writer: FeedWriter) -> None:
        self.writer = writer
        self.now = 0.0
        self._moved = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def _publishing(self) -> bool:
        return asyncio.current_task() is self.writer._publisher

    def get_running_loop(self) -> Any:
        return self if self._publishing() else asyncio.get_running_loop()

    def time(self) -> float:  # the loop's, as the publisher asks it
        return self.now

    def sleep(self, delay: float) -> Awaitable[None]:
        return self._until(self.now + delay) if self._publishing() else asyncio.sleep(delay)

    async def _until(self, when: float) -> None:
        while self.now < when:
            await self._moved.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()  # wakes the waiting publisher, which then waits on a new one if it must
        self._moved = asyncio.Event()


async def test_a_stream_of_writes_shares_each_question_and_the_feed_loses_nothing(
        scratch_db: AsyncDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """One write at a time, as a client storing values one by one makes them: the writer asks whether
    another process listens at most once per ASK_EVERY_SECONDS (the first at once), not once per
    write, and every event still reaches the feed once, in order. On the loop's own clock, how many
    writes fit in a round depended on the machine's speed; the publisher's clock stands still here
    while the client writes, so the rounds are exactly those the design makes."""
    await ensure_feed(scratch_db, 1 << 20)
    now = utcnow()
    await scratch_db[WRITERS_COLLECTION].insert_one(
        {"_id": "another process", "alive_at": now, "started_at": now, "seq": 0, "listening": True})
    writer = FeedWriter(scratch_db)
    clock = PublisherClock(writer)
    monkeypatch.setattr("services.events.feed.asyncio", clock)
    asked: list[float] = []  # the publisher's time at each question
    ask = writer._others_listening

    async def counted() -> bool:
        asked.append(clock.now)
        return await ask()

    writer._others_listening = counted  # type: ignore[method-assign]  # counts the real question
    writes = 40
    for i in range(writes):
        await writer.write([Event(id=ObjectId(), event_type="STREAM", level=20, message=str(i))])
        await asyncio.sleep(0.001)  # the client's next request
    # The first write's round asked at once; the 39 after it, however long they took, came within the
    # same ASK_EVERY_SECONDS of the publisher's time, so they wait for the next round without asking.
    assert asked == [0.0]
    clock.advance(ASK_EVERY_SECONDS)
    # Bounded: a publisher that left some of them for a later round waits for a time that never comes.
    await asyncio.wait_for(writer.close(), 30)
    assert asked == [0.0, ASK_EVERY_SECONDS]  # one question for the 39: the round they share
    copies = await scratch_db[FEED_COLLECTION].find({}).to_list(None)
    copies.sort(key=lambda doc: int(doc["_id"].rsplit(":", 1)[1]))
    # One feed document per round, since the other process listens; each event once, in order.
    assert [[event["message"] for event in doc["events"]] for doc in copies] == [
        ["0"], [str(i) for i in range(1, writes)]]


async def test_a_feed_reader_that_keeps_failing_says_so_once_then_each_minute(state: AppState,
                                                                              monkeypatch: pytest.MonkeyPatch,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """With the database away, the reader logged a traceback at every attempt (each waits out the
    time limit, then a second): an hour's outage wrote hundreds. Once now, and again each minute
    (STILL_FAILING_EVERY, shortened here once the first is checked: no test waits a minute)."""
    monkeypatch.setattr(feed_module, "RETRY_SECONDS", 0.01)
    assert feed_module.STILL_FAILING_EVERY == 60
    loop = asyncio.get_running_loop()
    said_at: list[tuple[float, logging.LogRecord]] = []  # each record, with the loop's time (the reader's clock) then

    class Timed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said_at.append((loop.time(), record))

    timed = Timed()
    client: AsyncMongoClient = AsyncMongoClient(f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=20,
                                                connectTimeoutMS=20)
    tail = FeedTail(client["unreachable"], Broadcast(10))
    feed_module.log.addHandler(timed)
    with caplog.at_level(logging.INFO, logger=feed_module.log.name):
        started = loop.time()
        reading = asyncio.create_task(tail.run())
        try:
            await wait_for(lambda: tail.failures >= 5, what="the reader to fail again and again")
            said = [record for record in caplog.records if record.name == feed_module.log.name]
            assert len(said) == 1 and said[0].exc_info, [record.getMessage() for record in said]
            # Then again once per interval, however many attempts fail within it: an interval of about
            # four attempts (each waits for the driver's next look at the server, half a second or more).
            # Only the spacing is asserted, on the loop's clock the reader goes by (each line is timed
            # as it is said, before the reader notes when it said it): how many attempts fit in an
            # interval depends on the machine's speed, and timings belong in bench/.
            every = 4 * (loop.time() - started) / tail.failures
            monkeypatch.setattr(feed_module, "STILL_FAILING_EVERY", every)
            await wait_for(lambda: len(said_at) >= 3, timeout=max(10, 3 * every),
                           what="the reader to say twice more that it still fails")
            times, records = [t for t, _ in said_at], [record for _, record in said_at]
            assert all(later - earlier >= every for earlier, later in itertools.pairwise(times)), (times, every)
            assert all("still failing" in record.getMessage() for record in records[1:]), records
            attempts = [1] + [record.args[0] for record in records[1:]]  # "still failing after %d attempts"
            assert attempts == sorted(set(attempts)) and attempts[-1] <= tail.failures, attempts
            tail.db = state.db  # the database is back
            await wait_for(lambda: tail.failures == 0, what="the reader to work again")
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            await client.close()
            feed_module.log.removeHandler(timed)
    assert "works again after" in caplog.text


async def test_the_feed_reader_stops_when_its_cancellation_was_lost_in_a_read(state: AppState,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stopping cancels the feed reader; on Python 3.11 a cancel landing as a database read
    ends can be lost (services/cancellation.py), and the reader read on, holding the stop for its
    whole wait (10 s) and then left running. It stops at its next round now."""
    tail = FeedTail(state.db, Broadcast(10))
    reading, rounds = asyncio.Event(), []
    refresh = tail._refresh_writers

    async def read_losing_its_cancel() -> None:
        rounds.append(1)
        reading.set()
        try:
            await asyncio.sleep(3600)  # a read, cancelled as it ends: the answer comes, the cancel is lost
        except asyncio.CancelledError:
            if len(rounds) > 1:  # read on after its cancel (the test fails): this round's ends it
                raise
            await refresh()

    monkeypatch.setattr(tail, "_refresh_writers", read_losing_its_cancel)
    monkeypatch.setattr(feed_module, "WRITERS_REFRESH_SECONDS", 0)  # a read every round
    running = asyncio.ensure_future(tail.run())
    await asyncio.wait_for(reading.wait(), 10)
    running.cancel()
    await asyncio.wait({running}, timeout=10)  # not wait_for: it would cancel again, and again be lost
    assert running.cancelled() and len(rounds) == 1, rounds
