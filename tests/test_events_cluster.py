"""Two server processes sharing one database: every subscriber, on either process, receives each
event of a burst exactly once, in order per source, whichever process it was logged on; an asset
completed on one process is announced to `assetStatusChanged` subscribers on the other; and a
stream of single writes shares its questions to the other processes without losing a copy."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from documents.event import FEED_COLLECTION, Event
from graphlake.settings import Settings
from resolvers.context import AppState
from services.events.feed import ASK_EVERY_SECONDS, WRITERS_COLLECTION, FeedWriter, ensure_feed
from tests.conftest import Served
from tests.operations import Api, document
from tests.processes import start_server_process
from tests.waiting import live_subscribers, wait_for
from tests.ws_client import Subscriber

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


async def collect(ws: Subscriber, count: int) -> list[dict]:
    events = []
    while len(events) < count:
        message = await asyncio.wait_for(ws.receive(), 60)
        assert message["type"] in ("next", "data") and not message["payload"].get("errors"), message
        events.append(message["payload"]["data"]["events"])
    return events


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
                                  for i in range(start, start + BATCH)]
                        response = await http.post("/graphql", json={"query": document("LogEvents"),
                                                                     "operationName": "LogEvents",
                                                                     "variables": {"inputs": inputs}})
                        assert not response.json().get("errors"), response.text[:300]

            # Half logged through each process, at the same time.
            await asyncio.gather(log_via(served.base_url, "node-a", BURST // 2), log_via(other_url, "node-b", BURST // 2))
            got_a, got_b = await asyncio.gather(collect(on_a, BURST), collect(on_b, BURST))
            for got in (got_a, got_b):
                assert len({e["id"] for e in got}) == BURST  # none twice
                for source in ("node-a", "node-b"):  # none lost, in order per source
                    messages = [e["message"] for e in got if e["source"]["nodeId"] == source]
                    assert messages == [f"{source}-{i}" for i in range(BURST // 2)]
            for ws in (on_a, on_b):  # and nothing more arrives
                try:
                    extra = await asyncio.wait_for(ws.receive(), 1.5)
                except TimeoutError:
                    extra = None
                assert extra is None, extra
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


async def test_a_stream_of_writes_shares_each_question_and_the_feed_loses_nothing(scratch_db: AsyncDatabase) -> None:
    """One write at a time, as a client storing values one by one makes them: the writer asks whether
    another process listens at most once per ASK_EVERY_SECONDS (the first at once), not once per
    write, and every event still reaches the feed once, in order."""
    await ensure_feed(scratch_db, 1 << 20)
    now = utcnow()
    await scratch_db[WRITERS_COLLECTION].insert_one(
        {"_id": "another process", "alive_at": now, "started_at": now, "seq": 0, "listening": True})
    writer = FeedWriter(scratch_db)
    asked = 0
    ask = writer._others_listening

    async def counted() -> bool:
        nonlocal asked
        asked += 1
        return await ask()

    writer._others_listening = counted  # type: ignore[method-assign]  # counts the real question
    writes = 40
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(writes):
        await writer.write([Event(id=ObjectId(), event_type="STREAM", level=20, message=str(i))])
        await asyncio.sleep(0.001)  # the client's next request
    await writer.close()
    rounds_possible = (loop.time() - started) / ASK_EVERY_SECONDS + 1
    assert 1 <= asked <= rounds_possible and asked < writes / 2
    copies = await scratch_db[FEED_COLLECTION].find({}).to_list(None)
    copies.sort(key=lambda doc: int(doc["_id"].rsplit(":", 1)[1]))
    assert len(copies) == asked  # one feed document per round, since the other process listens
    assert [event["message"] for doc in copies for event in doc["events"]] == [str(i) for i in range(writes)]
