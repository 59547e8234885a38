"""Health under load: how long /healthz waits while many clients keep the server busy.

    .venv/bin/python bench/health.py [--clients 50] [--seconds 30] [--rounds 3]

A server (`graphlake serve`, its own process) on FerretDB from the build cache (or
GRAPHLAKE_BENCH_MONGODB_URL), seeded with a version of 500 datums. The load runs in another process
(its clients must not share this event loop): `--clients` clients, each looping over a nested read
(VersionGraph, 100 datums with roles and annotations), a filtered list (assets by label), a
storeValue and a logEvents of 20. Here, /healthz is asked every 20 ms: once with the server idle
(the baseline, same run), then under the load. Rounds alternate idle and loaded; the figures are
medians over rounds of each round's p50 and p99. Target: p99 under 100 ms under load.
/healthz makes no database call: its wait is the time the event loop was busy with other work.
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

from documents.roles import Role
from graphlake.database import connect
from services.auth import create_token
from services.node_ids import NodeType, encode_id
from tests.operations import document
from tests.processes import bench_database, start_server_process
from tests.seed import seed_version

PROBE_INTERVAL = 0.02


async def probe(base: str, seconds: float) -> list[float]:
    """/healthz latencies (ms), one every PROBE_INTERVAL for `seconds`."""
    latencies = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            (await http.get("/healthz")).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_INTERVAL)
    return latencies


async def load(base: str, token: str, version_id: str, clients: int, seconds: float) -> tuple[int, int, list[float]]:
    """The mixed load: runs in its own process (see main). Returns how many requests it made, how
    many failed (a database slower than the request time limit answers UNAVAILABLE), and their times."""
    labelled = "query Labelled($filter: AssetFilter) { assets(filter: $filter, first: 50) { edges { node { id name labels } } } }"
    operations = [
        ("VersionGraph", {"id": version_id, "first": 100}),
        ("Labelled", {"filter": {"labelsAny": ["bench"]}}),
        ("StoreValue", {"input": {"name": "reading", "value": {"t": 21.5, "run": "bench"}, "labels": ["bench"]}}),
        ("LogEvents", {"inputs": [{"eventType": "BENCH", "message": f"e{i}", "data": {"i": i}} for i in range(20)]}),
    ]
    done = failed = 0
    times: list[float] = []
    per_op: dict[str, list[float]] = {}

    async def client(n: int) -> None:
        nonlocal done, failed
        async with httpx.AsyncClient(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
            end = time.perf_counter() + seconds
            i = n
            while time.perf_counter() < end:
                name, variables = operations[i % len(operations)]
                query = labelled if name == "Labelled" else document(name)
                started = time.perf_counter()
                response = await http.post("/graphql", json={"query": query, "operationName": name,
                                                             "variables": variables})
                times.append(time.perf_counter() - started)
                per_op.setdefault(name, []).append(time.perf_counter() - started)
                failed += bool(response.json().get("errors"))
                done += 1
                i += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    for name, values in sorted(per_op.items()):  # to the console: which operation the time goes to
        print(f"  {name:13} {len(values):5} requests, median {statistics.median(values) * 1000:7.0f} ms", file=sys.stderr)
    return done, failed, times


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-concurrent-requests", help="the server's GRAPHLAKE_MAX_CONCURRENT_REQUESTS (default: its own)")
    parser.add_argument("--load", nargs=3, metavar=("BASE", "TOKEN", "VERSION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:  # the load process
        made, failed, times = await load(*args.load, clients=args.clients, seconds=args.seconds)
        print(made, failed, percentile(times, 50) * 1000, percentile(times, 99) * 1000)
        return

    database = "bench_health"
    with tempfile.TemporaryDirectory() as tmp, bench_database(Path(tmp)) as url:
        client = await connect(url, database)
        await client.drop_database(database)
        client = await connect(url, database)
        _, token = await create_token("bench", Role.CONTRIBUTOR)
        version_id = encode_id(NodeType.DATASET_VERSION, await seed_version(500))
        settings = {"MAX_CONCURRENT_REQUESTS": args.max_concurrent_requests} if args.max_concurrent_requests else {}
        process, base = await start_server_process(url, database, Path(tmp), **settings)
        idle: list[tuple[float, float]] = []
        loaded: list[tuple[float, float]] = []
        requests_per_second, failures, request_p50, request_p99 = [], [], [], []
        try:
            for _ in range(args.rounds):
                quiet = await probe(base, min(args.seconds, 10))
                idle.append((percentile(quiet, 50), percentile(quiet, 99)))
                loader = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--load", base, token, version_id, "--clients", str(args.clients),
                    "--seconds", str(args.seconds), stdout=asyncio.subprocess.PIPE)
                await asyncio.sleep(1)  # the load's clients connect
                busy = await probe(base, args.seconds - 2)
                out, _ = await loader.communicate()
                made, failed, p50, p99 = out.decode().split()
                requests_per_second.append(int(made) / args.seconds)
                failures.append(int(failed))
                request_p50.append(float(p50))
                request_p99.append(float(p99))
                loaded.append((percentile(busy, 50), percentile(busy, 99)))
        finally:
            process.terminate()
            await process.wait()
            await client.drop_database(database)
            await client.close()

    def median(pairs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(p[i] for p in pairs)

    print(f"/healthz idle:       p50 {median(idle, 0):6.1f} ms   p99 {median(idle, 1):6.1f} ms")
    print(f"/healthz under load: p50 {median(loaded, 0):6.1f} ms   p99 {median(loaded, 1):6.1f} ms "
          f"(target p99 < 100 ms)")
    print(f"the load: {args.clients} clients, {statistics.median(requests_per_second):.0f} requests/s, request p50 "
          f"{statistics.median(request_p50):.0f} ms, p99 {statistics.median(request_p99):.0f} ms, "
          f"{statistics.median(failures):.0f} failed a round")


if __name__ == "__main__":
    asyncio.run(main())
