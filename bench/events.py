"""Events: ingest throughput against raw PyMongo, and live delivery latency to many subscribers.

    .venv/bin/python bench/events.py [--events 100000] [--batch 1000] [--subscribers 200] [--live 1000]

1. Ingest: `--events` events through `logEvents` in batches of `--batch` (HTTP to a real server),
   and, in the same run, the same documents with raw PyMongo `insert_many` in the same batches, into
   a collection with the same indexes as Graphlake's `events`.
   Prints events/s of each and their ratio (target >= 0.5x).
2. Live: `--subscribers` WebSocket subscribers, then `--live` events logged one `logEvent` at a
   time; latency = logEvent acknowledged -> message received, p50/p99 over every delivery (and from
   the logEvent request's start, since a message may beat its acknowledgement). Once
   with everything on one process, once with the subscribers on a second process (targets: p99
   under 100 ms on one process, under 300 ms across two).
Servers run as `graphlake serve` subprocesses on FerretDB from the build cache (or
GRAPHLAKE_BENCH_MONGODB_URL), so the clients here do not share their event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from bson import ObjectId

from documents.event import Event
from documents.json_value import StoredJson
from documents.roles import Role
from documents.sparse import stored
from graphlake.database import connect
from services.auth import create_token
from tests.operations import document
from tests.processes import bench_database, start_server_process
from tests.ws_client import Subscriber


async def start_server(url: str, database: str, data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    return await start_server_process(url, database, data_dir, MAX_SUBSCRIPTIONS_PER_CONNECTION="20")


def event_inputs(n: int, start: int = 0) -> list[dict]:
    return [{"eventType": "BENCH", "level": "INFO", "message": f"event {i}", "data": {"i": i, "temperature": 20 + i % 10},
             "source": {"nodeId": f"node-{i % 8}", "workflowId": "bench"}} for i in range(start, start + n)]


async def ingest(base: str, token: str, db, total: int, batch: int) -> tuple[float, float]:
    query = document("LogEvents")
    async with httpx.AsyncClient(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
        start = time.perf_counter()
        for offset in range(0, total, batch):
            response = await http.post("/graphql", json={"query": query, "operationName": "LogEvents",
                                                         "variables": {"inputs": event_inputs(batch, offset)}})
            assert not response.json().get("errors"), response.text[:300]
        graphql = total / (time.perf_counter() - start)
    raw = db["events_raw_baseline"]
    # The same job: the baseline collection carries the indexes Graphlake's `events` has here
    # (all of them on MongoDB; on FerretDB's SQLite backend only `_id`, see graphlake/database.py).
    async for index in await db["events"].list_indexes():
        if index["name"] != "_id_":
            await raw.create_index(list(index["key"].items()), name=index["name"], unique=index.get("unique", False))
    start = time.perf_counter()
    for offset in range(0, total, batch):
        # As Graphlake stores them (documents/sparse.py): without their empty fields. A `key: null`
        # in each broke the baseline once events carried keys (the unique `key` index refused the second).
        docs = [stored(Event(id=ObjectId(), event_type=e["eventType"], level=20, message=e["message"],
                             data=StoredJson.encode(e["data"]), source=e["source"]))
                for e in event_inputs(batch, offset)]
        await raw.insert_many(docs)
    baseline = total / (time.perf_counter() - start)
    await raw.drop()
    return graphql, baseline


async def live(log_base: str, sub_base: str, token: str, subscribers: int, count: int) -> tuple[list[float], list[float]]:
    ws_url = sub_base.replace("http", "ws", 1) + "/graphql"
    received: dict[str, list[float]] = {}
    clients = []
    per_connection = 10  # several subscriptions share a connection, as browser tabs would not, but 200 sockets
    for c in range(0, subscribers, per_connection):
        ws = Subscriber(ws_url)
        await ws.connect({"Authorization": f"Bearer {token}"})
        for _ in range(min(per_connection, subscribers - c)):
            await ws.subscribe("EventStream", {"filter": {"eventTypes": ["LIVE"]}})
        clients.append(ws)
    await asyncio.sleep(1.0)

    async def read(ws: Subscriber) -> None:
        while True:
            message = await ws.receive()
            event = message["payload"]["data"]["events"]
            received.setdefault(event["id"], []).append(time.perf_counter())

    readers = [asyncio.create_task(read(ws)) for ws in clients]
    acked: dict[str, float] = {}
    sent: dict[str, float] = {}
    query = document("LogEvent")
    async with httpx.AsyncClient(base_url=log_base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(count):
            started = time.perf_counter()
            response = await http.post("/graphql", json={"query": query, "operationName": "LogEvent",
                                                         "variables": {"input": {"eventType": "LIVE", "message": str(i)}}})
            event_id = response.json()["data"]["logEvent"]["id"]
            acked[event_id], sent[event_id] = time.perf_counter(), started
            await asyncio.sleep(0.005)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and sum(len(v) for k, v in received.items() if k in acked) < count * subscribers:  # noqa: ASYNC110 (many readers count; a deadline poll is clearest)
        await asyncio.sleep(0.1)
    for task in readers:
        task.cancel()
    for ws in clients:
        await ws.close()
    # Count only this phase's events: a lagging feed may still be streaming earlier ones.
    delivered = sum(len(times) for event_id, times in received.items() if event_id in acked)
    if delivered != count * subscribers:
        print(f"  !! delivered {delivered} of {count * subscribers}")
    # A message can arrive before its acknowledgement is read here: count that as no delay. And
    # from the request's start, which also shows how long delivery takes when it beats the ack.
    return ([max(0.0, t - acked[event_id]) for event_id, times in received.items() if event_id in acked for t in times],
            [t - sent[event_id] for event_id, times in received.items() if event_id in acked for t in times])


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--live", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, bench_database(Path(tmp)) as url:
        database = "graphlake_bench_events"
        client = await connect(url, database)
        await client.drop_database(database)
        client = await connect(url, database)
        _, token = await create_token("bench", Role.CONTRIBUTOR)
        servers = []
        try:
            (a, base_a), (b, base_b) = await asyncio.gather(start_server(url, database, Path(tmp)),
                                                            start_server(url, database, Path(tmp)))
            servers = [a, b]
            print(f"ingesting {args.events} events in batches of {args.batch} ...", flush=True)
            graphql, baseline = await ingest(base_a, token, client[database], args.events, args.batch)
            print(f"ingest   graphql {graphql:9.0f} events/s   raw insert_many {baseline:9.0f} events/s   "
                  f"ratio {graphql / baseline:.2f}x  (target >= 0.5x)")
            live_steps = (("one process", base_a), ("two processes", base_b)) if args.subscribers and args.live else ()
            for label, sub_base in live_steps:  # `--subscribers 0` or `--live 0`: ingest only
                latencies, from_request = await live(base_a, sub_base, token, args.subscribers, args.live)
                print(f"live ({label}, {args.subscribers} subscribers, {args.live} events): ack -> received "
                      f"p50 {pct(latencies, 50) * 1000:.1f} ms  p99 {pct(latencies, 99) * 1000:.1f} ms  "
                      f"(target p99 < {100 if label == 'one process' else 300} ms); request sent -> received "
                      f"p50 {pct(from_request, 50) * 1000:.1f} ms  p99 {pct(from_request, 99) * 1000:.1f} ms", flush=True)
        finally:
            for process in servers:
                process.terminate()
                await process.wait()
            await client.close()


if __name__ == "__main__":
    asyncio.run(main())
