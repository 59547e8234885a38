"""Nested read: GraphQL over HTTP against raw PyMongo + orjson, measured in the same run.

    .venv/bin/python bench/nested_read.py [--datums 1000] [--runs 7]

Seeds a dataset version of N datums x (2 role assets + 3 annotations), then times, interleaved
(one of each per run, alternating which goes first),
  graphql:  the VersionGraph operation (version -> datums -> roles -> asset, annotations -> set)
            POSTed to `graphlake serve`, a process of its own as in production (its event loop,
            its garbage-collector tuning, no bench client sharing its CPU);
  baseline: the same documents fetched with raw PyMongo `$in` queries, one per level, nested by
            hand and encoded with orjson (what a hand-written endpoint would do), in this process.
Prints the median of each and their ratio. Uses FerretDB from the build cache, or
GRAPHLAKE_BENCH_MONGODB_URL.

    .venv/bin/python bench/nested_read.py --metrics-overhead [--datums 300] [--rounds 4] [--runs 3]

instead times the same operation with GRAPHLAKE_METRICS=off against the default (loopback: every
metric recorded), a fresh server for each mode in each round, the modes' order alternating from
round to round, and prints the medians and what recording costs.
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
import orjson
from pymongo import AsyncMongoClient

from documents.json_value import loads_json
from documents.roles import Role
from graphlake.app import create_app
from graphlake.database import connect
from graphlake.settings import Settings
from services.auth import create_token
from services.node_ids import NodeType, encode_id
from tests.operations import document
from tests.processes import bench_database, serving, start_server_process
from tests.seed import seed_version


async def baseline(db, version_id) -> bytes:
    """The same graph by hand: one `$in` query per level, then orjson."""
    version = await db.dataset_versions.find_one({"_id": version_id})
    members = await db.version_members.find({"version_id": version_id}, sort=[("_id", 1)]).to_list()
    datum_ids = [m["datum_id"] for m in members]
    datums = {d["_id"]: d for d in await db.datums.find({"_id": {"$in": datum_ids}}).to_list()}
    asset_ids = [r["asset_id"] for d in datums.values() for r in d["roles"]]
    assets = {a["_id"]: a for a in await db.assets.find({"_id": {"$in": asset_ids}}).to_list()}
    records: dict = {}
    for r in await db.annotation_records.find({"datum_id": {"$in": datum_ids}}, sort=[("datum_id", 1), ("_id", 1)]).to_list():
        records.setdefault(r["datum_id"], []).append(r)
    set_ids = list({r["set_id"] for rs in records.values() for r in rs})
    sets = {s["_id"]: s for s in await db.annotation_sets.find({"_id": {"$in": set_ids}}).to_list()}
    out = {"id": str(version["_id"]), "version": version["version"], "datums": [
        {"id": str(d_id), "split": datums[d_id]["split"],
         "roles": [{"role": r["role"], "asset": {"id": str(a["_id"]), "name": a["name"], "kind": a["kind"],
                                                 "sizeBytes": a["size_bytes"], "metadata": loads_json(a["metadata"]["json"])}}
                   for r in datums[d_id]["roles"] for a in [assets[r["asset_id"]]]],
         "annotations": [{"id": str(r["_id"]), "kind": r["kind"], "label": r["label"], "score": r["score"],
                          "verified": r["verified"], "set": {"id": str(r["set_id"]), "name": sets[r["set_id"]]["name"],
                                                             "purpose": sets[r["set_id"]]["purpose"]}}
                         for r in records.get(d_id, [])[:20]]}
        for d_id in datum_ids]}
    return orjson.dumps(out)


async def interleaved(first, second, runs: int) -> tuple[list[float], list[float]]:
    """Each function's times over `runs` runs, one of each per run, alternating which goes first
    (after two warm-up runs of each: caches and connections)."""
    for _ in range(2):
        await first()
        await second()
    times: tuple[list[float], list[float]] = ([], [])
    for run in range(runs):
        for which in (0, 1) if run % 2 == 0 else (1, 0):
            start = time.perf_counter()
            await (first, second)[which]()
            times[which].append(time.perf_counter() - start)
    return times


def request_body(version_id, datums: int) -> dict:
    return {"query": document("VersionGraph"), "operationName": "VersionGraph",
            "variables": {"id": encode_id(NodeType.DATASET_VERSION, version_id), "first": datums}}


def observations(exposition: str) -> float:
    """Observations recorded so far: every counter's value and every histogram's count (the
    process_* and python_* metrics are read at scrape time, not recorded)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(exposition)
               if family.name.startswith("graphlake_") and family.type in ("counter", "histogram")
               for sample in family.samples if sample.name.endswith(("_total", "_count")))


def recording_cost() -> float:
    """Seconds one histogram observation takes (labels looked up each time, as most sites do)."""
    from services.metrics import Metrics

    histogram = Metrics(process=False).database_seconds
    start = time.process_time()
    for _ in range(100_000):
        histogram.labels("find", "ok").observe(0.001)
    return (time.process_time() - start) / 100_000


async def metrics_overhead(args: argparse.Namespace) -> None:
    """Metrics off against on (the default), interleaved: one server at a time in this process."""
    with tempfile.TemporaryDirectory() as tmp, bench_database(Path(tmp)) as url:
        settings = Settings(_env_file=None, mongodb_url=url, database="graphlake_bench", data_dir=Path(tmp) / "data",
                            bootstrap_admin_token=False, max_page_size=max(1000, args.datums), log_level="WARNING")
        raw = AsyncMongoClient(url, tz_aware=True)
        await raw.drop_database(settings.database)
        await raw.close()
        async with serving(create_app(settings)):
            print(f"seeding {args.datums} datums x (2 roles + 3 annotations) ...", flush=True)
            version_id = await seed_version(args.datums)
            _, secret = await create_token("bench", Role.VIEWER)
        body = request_body(version_id, args.datums)
        times: dict[str, list[float]] = {"off": [], "loopback": []}
        # CPU time of this process (server and client: the client's share is the same in both modes),
        # which other work on a shared machine disturbs far less than the wall clock.
        cpu: dict[str, list[float]] = {"off": [], "loopback": []}
        recorded = 0.0
        for round_number in range(args.rounds):
            for mode in ("off", "loopback") if round_number % 2 == 0 else ("loopback", "off"):
                async with serving(create_app(settings.model_copy(update={"metrics": mode}))) as port, \
                        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                          headers={"Authorization": f"Bearer {secret}"}) as http:
                    async def graphql(http: httpx.AsyncClient = http) -> None:
                        response = await http.post("/graphql", json=body)
                        response.raise_for_status()
                        assert "errors" not in response.json(), response.text[:500]

                    await graphql()  # a new server: warm its caches and connections
                    for _ in range(args.runs):
                        start, start_cpu = time.perf_counter(), time.process_time()
                        await graphql()
                        times[mode].append(time.perf_counter() - start)
                        cpu[mode].append(time.process_time() - start_cpu)
                    if mode == "loopback":  # recorded indeed: count what one request records
                        before = observations((await http.get("/metrics")).text)
                        await graphql()
                        recorded = observations((await http.get("/metrics")).text) - before

    for mode, label in (("off", "metrics off"), ("loopback", "metrics on ")):
        print(f"{label} median {statistics.median(times[mode]) * 1000:8.1f} ms wall, "
              f"{statistics.median(cpu[mode]) * 1000:8.1f} ms CPU  "
              f"(wall runs: {', '.join(f'{t * 1000:.0f}' for t in times[mode])})")
    cost = recording_cost()
    median_cpu = statistics.median(cpu["loopback"])
    print(f"one request records {recorded:.0f} observations (counters, gauges and histograms); at "
          f"{cost * 1e6:.2f} us each (timed here) that is {recorded * cost * 1000:.3f} ms, "
          f"{recorded * cost / median_cpu * 100:.4f}% of its CPU time")
    for what, measured in (("wall", times), ("CPU", cpu)):
        off, on = statistics.median(measured["off"]), statistics.median(measured["loopback"])
        print(f"metrics cost ({what}): {(on / off - 1) * 100:+.1f}% (target under 5%)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datums", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--metrics-overhead", action="store_true", help="time metrics off against on instead")
    parser.add_argument("--rounds", type=int, default=4, help="with --metrics-overhead: rounds of off and on")
    args = parser.parse_args()
    if args.metrics_overhead:
        await metrics_overhead(args)
        return

    database = "graphlake_bench"
    with tempfile.TemporaryDirectory() as tmp, bench_database(Path(tmp)) as url:
        raw = AsyncMongoClient(url, tz_aware=True)
        await raw.drop_database(database)  # start from an empty database (for GRAPHLAKE_BENCH_MONGODB_URL)
        models = await connect(url, database)  # the models and indexes seed_version writes through
        print(f"seeding {args.datums} datums x (2 roles + 3 annotations) ...", flush=True)
        version_id = await seed_version(args.datums)
        _, secret = await create_token("bench", Role.VIEWER)
        await models.close()
        body = request_body(version_id, args.datums)
        process, base = await start_server_process(url, database, Path(tmp), MAX_PAGE_SIZE=str(max(1000, args.datums)))
        try:
            async with httpx.AsyncClient(base_url=base, timeout=120, headers={"Authorization": f"Bearer {secret}"}) as http:
                async def graphql() -> bytes:
                    response = await http.post("/graphql", json=body)
                    response.raise_for_status()
                    assert "errors" not in response.json(), response.text[:500]
                    return response.content

                size = len(await graphql())
                db = raw[database]
                g, b = await interleaved(graphql, lambda: baseline(db, version_id), args.runs)
        finally:
            process.terminate()
            await process.wait()
        await raw.close()

    g_med, b_med = statistics.median(g), statistics.median(b)
    print(f"response: {size / 1e6:.1f} MB for {args.datums} datums")
    print(f"graphql  median {g_med * 1000:8.1f} ms  (runs: {', '.join(f'{t * 1000:.0f}' for t in g)})")
    print(f"baseline median {b_med * 1000:8.1f} ms  (runs: {', '.join(f'{t * 1000:.0f}' for t in b)})")
    print(f"ratio graphql/baseline: {g_med / b_med:.2f}x  (target, #14: at or under 2.3x)")


if __name__ == "__main__":
    asyncio.run(main())
