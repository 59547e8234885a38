"""Reads as the lake grows: the latency of each hot list read at 1,000, 10,000 and 100,000 assets.

    .venv/bin/python bench/scale.py [--sizes 1000,10000,100000] [--events-per-asset 10] [--runs 7]

Grows one lake step by step to each size (assets, and ten events per asset: 1,000,000 events at
100,000), loading with raw `insert_many` (the load rate is printed), then times each read below
through GraphQL over HTTP to `graphlake serve` (a process of its own, as deployed), in interleaved
rounds, and prints its median:

  assets newest          the first page of `assets` (20, newest first)
  assets label 1%        a `labelsAll` filter one asset in a hundred matches
  assets owner 1%        an owner filter, 1%
  assets metadata 1%     a metadata EQ predicate, 1%
  assets value 1%        a value EQ predicate, 1%
  assets totalCount      the count of every asset (what a client asking `totalCount` waits for)
  collection items       a collection's first page of items (it holds a tenth of the assets)
  collection assets      `assets(filter: {collectionId})` of that collection, newest first
  collection old assets  the same of a collection of the lake's first 1,000 assets (the oldest: the
                         list's walk, newest first, meets them last)
  version datums         a dataset version's first page of datums (a tenth of the assets)
  asset datums           the datums using one asset (of the newest datum: its uses, then the datums)
  asset derived          the assets derived from that asset (three, made through the service)
  events newest          the first page of `events`
  events type 1%         an `eventTypes` filter, 1%
  events 2 types 1%      two types, 1% each (read a run of each type's index, merged)
  events 2 types none    two types no event has (a filter of several types walked the whole log)
  events errors 1%       a `minLevel: ERROR` filter, 1%
  events clients 1%      `origin: CLIENT`: what clients logged, 1% (the rest the lake's own, as an
                         AUDIT event per mutation makes them)
  version of 100         building a dataset version of 100 datums with their annotations (10 each),
                         from a set holding ten records for each datum of the version above
  version among sets     the same build once its datums also carry the records of other sets (one
                         set per 1,000 assets, ten records each per datum: a lab's prediction sets
                         on the same images), which the build has no reason to read

No other read asks for `totalCount` (it counts, and is computed only when asked). The last column is the
time at the largest size over the time at the smallest: a read that stays flat as the lake grows
is near 1x. Uses FerretDB from the build cache (the embedded default), or GRAPHLAKE_BENCH_MONGODB_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from bson import ObjectId

from documents.annotation import AnnotationKind, AnnotationPurpose, AnnotationSource, SourceKind
from documents.asset import Asset
from documents.clock import utcnow
from documents.collection import Collection, CollectionItem
from documents.common import AssetKind, AssetStatus, Ownership
from documents.event import Event
from documents.json_value import StoredJson
from documents.roles import Role
from graphlake.database import connect
from services import annotations
from services.assets import create_asset
from services.auth import create_token
from services.datasets import create_dataset
from services.node_ids import NodeType, encode_id
from tests.processes import bench_database, start_server_process
from tests.seed import seed_version

PAGE = 20
BATCH = 2000
SPREAD = 100  # every filtered read matches one document in SPREAD
OLD = 1000  # assets in the collection of the oldest

ASSETS = """query ($filter: AssetFilter, $first: Int) {
  assets(filter: $filter, first: $first) { pageInfo { hasNextPage endCursor } edges { node { id name kind status labels } } }
}"""
COUNT = """query ($filter: AssetFilter, $first: Int) { assets(filter: $filter, first: $first) { totalCount } }"""
ITEMS = """query ($id: ID!, $first: Int) {
  collection(id: $id) { items(first: $first) { pageInfo { hasNextPage } edges { node { id path asset { id name } } } } }
}"""
DATUMS = """query ($id: ID!, $first: Int) {
  datasetVersion(id: $id) { datums(first: $first) { pageInfo { hasNextPage } edges { node { id split } } } }
}"""
ASSET_DATUMS = """query ($id: ID!, $first: Int) {
  asset(id: $id) { datums(first: $first) { pageInfo { hasNextPage } edges { node { id split } } } }
}"""
ASSET_DERIVED = """query ($id: ID!, $first: Int) {
  asset(id: $id) { derivedAssets(first: $first) { pageInfo { hasNextPage } edges { node { id name } } } }
}"""
BUILD = """mutation ($input: CreateDatasetVersionInput!) { createDatasetVersion(input: $input) { id datumCount } }"""
BUILT_DATUMS = 100
EVENTS = """query ($filter: EventFilter, $first: Int) {
  events(filter: $filter, first: $first) { pageInfo { hasNextPage } edges { node { id eventType level timestamp } } }
}"""


class Lake:
    """The lake being grown: documents are made from a few templates (building a model per document
    would make loading the bench's own bottleneck) and inserted raw."""

    def __init__(self) -> None:
        self.assets = 0
        self.events = 0
        self.start = utcnow() - timedelta(days=365)
        self.collection_id = ObjectId()
        self.old_collection_id = ObjectId()  # the lake's first OLD assets: at the end of its newest-first walk
        self.metadata = [StoredJson.encode({"camera": k, "site": f"s{k % 7}"}).model_dump() for k in range(SPREAD)]
        self.values = [StoredJson.encode({"reading": k, "unit": "C"}).model_dump() for k in range(SPREAD)]
        self.asset = Asset(kind=AssetKind.VALUE, status=AssetStatus.ACTIVE, name="x", media_type="application/json",
                           size_bytes=40).model_dump(by_alias=True)
        self.asset.pop("_id", None)
        self.event = Event(event_type="T", level=20).model_dump(by_alias=True)
        self.event.pop("_id", None)
        self.event.pop("key", None)  # as the lake stores an event without one: keys are unique where present
        self.item = CollectionItem(collection_id=self.collection_id, asset_id=ObjectId()).model_dump(by_alias=True)
        self.item.pop("_id", None)

    def asset_doc(self, i: int) -> dict:
        k = i % SPREAD
        return {**self.asset, "_id": ObjectId(), "name": f"reading-{i:07}", "labels": [f"l{k}", "all"],
                "owner": Ownership(user_id=f"u{k}").model_dump(), "metadata": self.metadata[k], "value": self.values[k],
                "created_at": self.start + timedelta(seconds=i), "updated_at": self.start + timedelta(seconds=i)}

    def event_doc(self, i: int) -> dict:
        k = i % SPREAD
        return {**self.event, "_id": ObjectId(), "event_type": f"T{k}", "level": 40 if k == 7 else 20,
                "timestamp": self.start + timedelta(milliseconds=3100 * i), **({} if k == 3 else {"by_lake": True})}

    async def grow(self, db, assets: int, events: int) -> float:
        """Inserts documents up to `assets` assets and `events` events; returns the seconds it took."""
        began = time.perf_counter()
        while self.assets < assets:
            n = min(BATCH, assets - self.assets)
            docs = [self.asset_doc(i) for i in range(self.assets, self.assets + n)]
            # a tenth of the assets go into the collection, in order
            for d in docs[::10]:
                d["collection_ids"] = [self.collection_id]
            old = docs[:max(0, OLD - self.assets)]
            for d in old:
                d["collection_ids"] = [*d["collection_ids"], self.old_collection_id]
            await db.assets.insert_many(docs, ordered=False)
            items = [{**self.item, "_id": ObjectId(), "collection_id": held, "asset_id": d["_id"], "path": d["name"],
                      "asset_created_at": d["created_at"]}
                     for held, some in ((self.collection_id, docs[::10]), (self.old_collection_id, old)) for d in some]
            await db.collection_items.insert_many(items, ordered=False)
            self.assets += n
        while self.events < events:
            n = min(BATCH * 5, events - self.events)
            await db.events.insert_many([self.event_doc(i) for i in range(self.events, self.events + n)], ordered=False)
            self.events += n
        return time.perf_counter() - began


def reads(collection_id: str, old_collection_id: str, version_id: str, asset_id: str) -> dict[str, tuple[str, dict]]:
    def predicate(path: str, value: int) -> list[dict]:
        return [{"path": path, "op": "EQ", "value": value}]
    return {
        "assets newest": (ASSETS, {}),
        "assets label 1%": (ASSETS, {"filter": {"labelsAll": ["l7"]}}),
        "assets owner 1%": (ASSETS, {"filter": {"owner": {"userId": "u7"}}}),
        "assets metadata 1%": (ASSETS, {"filter": {"metadata": predicate("camera", 7)}}),
        "assets value 1%": (ASSETS, {"filter": {"value": predicate("reading", 7)}}),
        "assets totalCount": (COUNT, {}),
        "collection items": (ITEMS, {"id": collection_id}),
        "collection assets": (ASSETS, {"filter": {"collectionId": collection_id}}),
        "collection old assets": (ASSETS, {"filter": {"collectionId": old_collection_id}}),
        "version datums": (DATUMS, {"id": version_id}),
        "asset datums": (ASSET_DATUMS, {"id": asset_id}),
        "asset derived": (ASSET_DERIVED, {"id": asset_id}),
        "events newest": (EVENTS, {}),
        "events type 1%": (EVENTS, {"filter": {"eventTypes": ["T7"]}}),
        "events 2 types 1%": (EVENTS, {"filter": {"eventTypes": ["T7", "T8"]}}),
        "events 2 types none": (EVENTS, {"filter": {"eventTypes": ["X1", "X2"]}}),
        "events errors 1%": (EVENTS, {"filter": {"minLevel": "ERROR"}}),
        "events clients 1%": (EVENTS, {"filter": {"origin": "CLIENT"}}),
    }


async def time_reads(http: httpx.AsyncClient, named: dict[str, tuple[str, dict]], runs: int) -> dict[str, float]:
    """The median seconds of each read, rounds interleaved so a noisy moment hits all of them alike."""
    async def once(query: str, variables: dict) -> float:
        start = time.perf_counter()
        response = await http.post("/graphql", json={"query": query, "variables": {**variables, "first": PAGE}})
        elapsed = time.perf_counter() - start
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, response.text[:500]
        return elapsed

    for query, variables in named.values():  # warm caches and connections
        await once(query, variables)
    times: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(runs):
        for name, (query, variables) in named.items():
            times[name].append(await once(query, variables))
    return {name: statistics.median(t) for name, t in times.items()}


async def time_builds(http: httpx.AsyncClient, token: str, dataset_id: str, datum_ids: list[str], set_id: str,
                      runs: int) -> float:
    """The median seconds of building a version of these datums with the set's records on them."""
    times = []
    for run in range(runs + 1):  # the first warms up
        start = time.perf_counter()
        response = await http.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={"query": BUILD, "variables": {
            "input": {"datasetId": dataset_id, "version": f"v{run}", "addDatums": datum_ids, "addAnnotationSets": [set_id]}}})
        elapsed = time.perf_counter() - start
        body = response.json()
        assert "errors" not in body and body["data"]["createDatasetVersion"]["datumCount"] == len(datum_ids), response.text[:500]
        if run:
            times.append(elapsed)
    return statistics.median(times)


async def other_sets(db, size: int, datum_ids: list[ObjectId]) -> None:
    """One prediction set per 1,000 assets (at least one), each with ten records on every one of these datums."""
    schema = await db.annotation_schemas.find_one({"name": f"scale-{size}-schema"})
    datums = await db.datums.find({"_id": {"$in": datum_ids}}, {"roles": 1}).to_list()
    records = [annotations.NewRecord(asset_id=d["roles"][0]["asset_id"], datum_id=d["_id"], kind=AnnotationKind.CLASSIFICATION,
                                     label="ok" if k % 2 else "defect", score=0.5) for d in datums for k in range(10)]
    for n in range(max(1, size // 1000)):
        predictions = await annotations.create_set(f"scale-{size}-predictions-{n}", AnnotationPurpose.PREDICTION,
                                                   schema["_id"], AnnotationSource(kind=SourceKind.MODEL, name=f"model-{n}"),
                                                   "bench")
        await annotations.add_records(predictions.id, records, "bench", len(records))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="asset counts, comma separated, ascending")
    parser.add_argument("--events-per-asset", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as tmp, bench_database(Path(tmp)) as url:
        database, data_dir = "graphlake_bench_scale", Path(tmp) / "data"
        data_dir.mkdir()
        client = await connect(url, database)
        await client.drop_database(database)
        await client.close()
        # This process loads and seeds through the same models (and makes the token); the server
        # that answers the reads is a process of its own.
        client = await connect(url, database)
        db = client[database]
        results: dict[int, dict[str, float]] = {}
        lake = Lake()
        for name, held in (("scale", lake.collection_id), ("scale-old", lake.old_collection_id)):
            await db.collections.insert_one({**Collection(name=name).model_dump(by_alias=True), "_id": held})
        _, secret = await create_token("bench", Role.VIEWER)
        _, builder = await create_token("bench-builder", Role.CONTRIBUTOR)
        server, base = await start_server_process(url, database, data_dir)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=600, headers={"Authorization": f"Bearer {secret}"}) as http:
                for size in sizes:
                    assets_before, events_before = lake.assets, lake.events
                    events = size * args.events_per_asset
                    seconds = await lake.grow(db, size, events)
                    # a dataset version of a tenth of the lake; its datums' role assets come on top, dated
                    # before the lake, so that the filtered reads meet their 1% evenly from the newest on.
                    # Seeded through this process's own client, which has no per-operation time limit
                    # (at 100,000 one insert of the version's role assets outlasts the server's).
                    version_id = await seed_version(max(1, size // 10), annotations_per_datum=10, name=f"scale-{size}",
                                                    assets_created_at=lake.start - timedelta(days=1))
                    rate = (lake.assets - assets_before + lake.events - events_before) / seconds
                    print(f"{size:>7} assets, {events:>8} events: loaded at {rate:,.0f} documents/s", flush=True)
                    newest = await db.datums.find_one({}, sort=[("_id", -1)])
                    for i in range(3):
                        await create_asset(kind=AssetKind.VALUE, name=f"derived-{size}-{i}", actor="bench",
                                           value=StoredJson.encode({"i": i}), derived_from=[newest["roles"][0]["asset_id"]])
                    named = reads(encode_id(NodeType.COLLECTION, lake.collection_id),
                                  encode_id(NodeType.COLLECTION, lake.old_collection_id), encode_id(NodeType.DATASET_VERSION, version_id),
                                  encode_id(NodeType.ASSET, newest["roles"][0]["asset_id"]))
                    results[size] = await time_reads(http, named, args.runs)
                    seeded = await db.version_members.find({"version_id": version_id}, {"datum_id": 1},
                                                           sort=[("datum_id", 1)], limit=BUILT_DATUMS).to_list()
                    labels = await db.annotation_sets.find_one({"name": f"scale-{size}-labels"})
                    dataset = await create_dataset(f"scale-{size}-built", None, "bench")
                    building = await db.events.find_one({}, sort=[("_id", -1)])
                    results[size][f"version of {BUILT_DATUMS}"] = await time_builds(
                        http, builder, encode_id(NodeType.DATASET, dataset.id),
                        [encode_id(NodeType.DATUM, m["datum_id"]) for m in seeded],
                        encode_id(NodeType.ANNOTATION_SET, labels["_id"]), args.runs)
                    await other_sets(db, size, [m["datum_id"] for m in seeded])
                    results[size]["version among sets"] = await time_builds(
                        http, builder, encode_id(NodeType.DATASET, (await create_dataset(f"scale-{size}-among", None, "bench")).id),
                        [encode_id(NodeType.DATUM, m["datum_id"]) for m in seeded],
                        encode_id(NodeType.ANNOTATION_SET, labels["_id"]), args.runs)
                    # The builds' AUDIT events (each names its hundred datums) would be the newest events
                    # the next size's `events` reads page through, where those reads are about the lake's.
                    # (An `events` read first: it answers once the server's journaled AUDIT events are stored.)
                    await http.post("/graphql", json={"query": "{ events(first: 1) { edges { node { id } } } }"})
                    await db.events.delete_many({"_id": {"$gt": building["_id"]}})
        finally:
            server.terminate()
            await server.wait()
            await client.close()

    names = list(next(iter(results.values())))
    print()
    print(f"{'read (first page of ' + str(PAGE) + ')':<24}" + "".join(f"{s:>10,}" for s in sizes) + f"{'largest/smallest':>18}")
    for name in names:
        row = [results[s][name] for s in sizes]
        print(f"{name:<24}" + "".join(f"{t * 1000:>8.1f}ms" for t in row) + f"{row[-1] / row[0]:>17.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
