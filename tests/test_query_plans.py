"""Hot reads on the embedded default are planned as index reads, never as full scans.

Each list read below goes through GraphQL; every `find` it sends to the list's collection is then
asked for its plan (`explain`), which our FerretDB build answers with SQLite's query plan. A step
that scans a table without an index, or sorts in a temporary B-tree (reading every match before the
first row comes out), fails the test, and so does a sort the server did not take over. On MongoDB
the same reads are served by its own indexes (documents/indexes.py); this test is about the embedded
default, where they used to be full scans.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from documents.clock import utcnow
from resolvers.context import AppState
from services import bulk_deletes, collections, snapshots
from services.events import log as events_log
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id
from tests.ws_client import Subscriber

SCAN = re.compile(r"detail=SCAN (\S+)$")  # a table scan names no index after the table


def plan_problems(plan: dict) -> list[str]:
    problems = []
    for step in plan["queryPlanner"]["Plan"]:
        scan = SCAN.search(step)
        if scan and scan.group(1) != "json_each":
            problems.append(f"full scan: {step}")
        if "TEMP B-TREE" in step:
            problems.append(f"sort of every match: {step}")
    return problems


async def assert_paged_through_indexes(state: AppState, reads: list[dict]) -> None:
    """Each read (a find the server sent) planned through an index, its sort too: no scan, no sort of every match."""
    problems = {}
    for find in reads:
        plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"], "sort": find.get("sort", {})})
        steps = plan["queryPlanner"]["Plan"]
        if (plan_problems(plan) or (find.get("sort") and not plan["sortPushdown"])
                or not any("USING INDEX" in step for step in steps)):
            problems[f"{find['find']} {find['filter']}"] = (find.get("sort"), steps)
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


@pytest.fixture
async def lake(api: Api, contributor: str) -> dict[str, Any]:
    """A little of everything the hot reads read."""
    assets = [await factories.value_asset(api, contributor, f"v{i}", value={"reading": i % 3},
                                          labels=[f"l{i % 3}"], metadata={"camera": i % 3}, owner={"userId": f"u{i % 3}"})
              for i in range(6)]
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": a["id"], "path": f"{i:02}"} for i, a in enumerate(assets)]}}, token=contributor)
    datums = await factories.datums(api, contributor, 3)
    await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "reading", "assetId": assets[0]["id"]}]}] * 2},
                   token=contributor)
    for i in range(2):
        await factories.value_asset(api, contributor, f"derived{i}", derivedFrom=[assets[0]["id"]])
    ds = await factories.dataset(api, contributor)
    await factories.dataset(api, contributor, "widgets-2")  # a second page of a dataset search
    version = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d["id"] for d in datums])
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    more_labels = await factories.annotation_set(api, contributor, schema["id"], name="more")
    for labelled in (labels, more_labels):
        await api.data("AddAnnotations", {"setId": labelled["id"], "records": [
            {"assetId": assets[0]["id"], "kind": "CLASSIFICATION", "label": "dent"}]}, token=contributor)
    logged = await api.data("LogEvents", {"inputs": [{"eventType": f"T{i % 3}", "level": "ERROR" if i % 3 else "INFO"}
                                                     for i in range(6)]}, token=contributor)
    return {"collection": coll["id"], "version": version["id"], "event": logged["logEvents"]["ids"][1],
            "asset": assets[0]["id"], "dataset": ds["name"], "dataset_id": ds["id"], "datum": datums[0]["id"],
            "sets": [labels["id"], more_labels["id"]]}


def hot_reads(lake: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(collection read, operation, variables) of each hot read."""
    def predicate(path: str) -> list[dict]:
        return [{"path": path, "op": "EQ", "value": 1}]
    return [
        ("assets", "Assets", {"first": 2}),
        ("assets", "Assets", {"first": 2, "filter": {"labelsAll": ["l1"]}}),
        ("assets", "Assets", {"first": 2, "filter": {"owner": {"userId": "u1"}}}),
        ("assets", "Assets", {"first": 2, "filter": {"metadata": predicate("camera")}}),
        ("assets", "Assets", {"first": 2, "filter": {"value": predicate("reading")}}),
        ("assets", "Assets", {"first": 2, "filter": {"kinds": ["VALUE"]}}),
        *[("assets", "Assets", {"first": 2, "orderBy": {"field": field, "direction": direction}})
          for field in ("CREATED_AT", "NAME", "SIZE", "DATA_TIMESTAMP") for direction in ("ASC", "DESC")],
        ("collection_items", "Collection", {"id": lake["collection"], "first": 2}),
        ("version_members", "DatasetVersion", {"id": lake["version"], "first": 2}),
        ("datums", "Datums", {"first": 2}),
        ("annotation_records", "Annotations", {"first": 2}),
        # Two sets' records in `_id` order: the walk of that order tests the set in the index and stops
        # after its page, where a search of each set would sort every record found.
        ("annotation_records", "Annotations", {"first": 1, "filter": {"setIds": lake["sets"]}}),
        ("events", "Events", {"first": 2}),
        ("events", "Events", {"first": 2, "filter": {"eventTypes": ["T1"]}}),
        # Several types: a run of each type's index, merged (one `$in` walked the whole timeline); in
        # RECEIVED order (no index holds the types) one walk of the arrivals.
        ("events", "Events", {"first": 2, "filter": {"eventTypes": ["T1", "T2"]}}),
        ("events", "Events", {"first": 2, "orderBy": "RECEIVED", "filter": {"eventTypes": ["T1", "T2"]}}),
        # Archived events too: a run of the archived and one of the others (every index leads with `archived`).
        ("events", "Events", {"first": 2, "filter": {"includeArchived": True}}),
        ("events", "Events", {"first": 2, "orderBy": "RECEIVED", "filter": {"includeArchived": True}}),
        ("events", "Events", {"first": 2, "filter": {"includeArchived": True, "eventTypes": ["T1"]}}),
        ("events", "Events", {"first": 2, "filter": {"minLevel": "ERROR"}}),
        ("events", "Events", {"first": 2, "orderBy": "RECEIVED"}),
        # What clients logged, without the lake's own events (an AUDIT per mutation), and those alone.
        *[("events", "Events", {"first": 2, "orderBy": order, "filter": {"origin": origin}})
          for order in ("TIMESTAMP", "RECEIVED") for origin in ("CLIENT", "LAKE")],
        # Oldest first, and newer than a position (what a client that reconnects reads forward).
        ("events", "Events", {"first": 2, "direction": "ASC"}),
        ("events", "Events", {"first": 2, "orderBy": "RECEIVED", "direction": "ASC"}),
        ("events", "Events", {"first": 2, "orderBy": "RECEIVED", "direction": "ASC", "newerThan": lake["event"]}),
        ("events", "Events", {"first": 2, "direction": "ASC", "newerThan": lake["event"]}),
        # Backward pages (`last` / `before`) walk the same indexes the other way.
        ("assets", "Assets", {"last": 2}),
        ("assets", "Assets", {"last": 2, "filter": {"owner": {"userId": "u1"}}}),
        ("assets", "Assets", {"last": 2, "orderBy": {"field": "DATA_TIMESTAMP", "direction": "ASC"}}),
        ("collection_items", "Collection", {"id": lake["collection"], "last": 2}),
        # Lookups by a field other than `_id`: an asset's pins (one per collection or version holding
        # it, so as many as the lake has memberships), a dataset by name, a version by names.
        ("retentions", "Asset", {"id": lake["asset"]}),
        ("retentions", "AssetPins", {"id": lake["asset"], "first": 1}),
        ("datasets", "Dataset", {"name": lake["dataset"], "version": "v1"}),
        # The datasets newest first, and a search of their names (tested on each as the index is walked).
        ("datasets", "Datasets", {"first": 1}),
        ("datasets", "Datasets", {"first": 1, "nameContains": "WIDG"}),
        ("dataset_versions", "DatasetVersion", {"dataset": lake["dataset"], "version": "v1", "first": 2}),
        # A dataset's versions in the order they became READY, and several datasets' first pages of them.
        ("dataset_versions", "DatasetVersions", {"id": lake["dataset_id"], "first": 1}),
        ("dataset_versions", "DatasetVersions", {"id": lake["dataset_id"], "last": 1}),
        ("dataset_versions", "DatasetsVersionsDatums", {"first": 2}),
        # The datums using an asset (through their uses of it: `roles.asset_id` is an array, which the
        # embedded default does not index). The page's datums (and derived assets) are then read by id.
        ("datum_assets", "AssetReferrers", {"id": lake["asset"], "first": 1}),
        # The assets derived from one (through the links to it: `derived_from` is an array too).
        ("asset_lineage", "AssetReferrers", {"id": lake["asset"], "first": 1}),
        # A token's first request looks it up by its secret's hash (later ones find it in memory).
        ("api_tokens", "Assets", {"first": 1}),
    ]


# A cursor goes on only in the list it came from: where an operation pages two lists, which one a
# read's next page is of (its connection, its cursor's variable).
OWN_CURSOR = {("datum_assets", "AssetReferrers"): ("datums", "datumsAfter"),
              ("asset_lineage", "AssetReferrers"): ("derivedAssets", "derivedAfter")}


async def test_hot_reads_use_indexes_on_the_embedded_default(api: Api, served: Served, state: AppState,
                                                             contributor: str, lake: dict[str, str]) -> None:
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's (MongoDB serves these reads from its own indexes)")
    problems = {}
    for collection, operation, variables in hot_reads(lake):
        for page in range(2):  # the first page, then the next one (a keyset filter on the sort keys)
            served.commands.clear()
            state.tokens.clear()
            data = await api.data(operation, variables, token=contributor)
            finds = [f for f in served.commands.finds if f["find"] == collection]
            assert finds, (operation, variables, served.commands.finds)
            for find in finds:
                plan = await state.db.command("explain", {"find": collection, "filter": find.get("filter", {}),
                                                          "sort": find.get("sort", {})})
                found = plan_problems(plan)
                if find.get("sort") and not plan["sortPushdown"]:
                    found.append("the handler sorts in memory")
                if found:
                    problems[f"{operation} {variables} page {page + 1}"] = (find.get("filter"), find.get("sort"), found)
            # The next page, forward after the page's end or backward before its start.
            key, cursor_key = ("before", "startCursor") if "last" in variables else ("after", "endCursor")
            connections = _connections(data)
            if (collection, operation) in OWN_CURSOR:  # an operation paging two lists: the one checked
                field, key = OWN_CURSOR[(collection, operation)]
                connections = [data["asset"][field]]
            cursor = next((v["pageInfo"][cursor_key] for v in connections if v["pageInfo"].get(cursor_key)), None)
            if cursor is None or key in variables:
                break
            variables = {**variables, key: cursor}
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


async def test_a_collection_by_name_is_searched_not_walked(api: Api, served: Served, state: AppState,
                                                           contributor: str) -> None:
    """`collections(name:)` (the web app's upload picker): a search of the name. With only the unique
    index, which serves no query here, it walked every collection newest first, and a walk of an index
    is no SCAN the hot reads' check flags. Its first page is a loader's read of the names asked (no
    order: one collection at most); a page from a cursor is the list's, searched in the list's order."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    for name in ("raw", "other", "third"):
        await factories.collection(api, contributor, name)
    query = 'query Named($after: String) { collections(name: "other", first: 2, after: $after) { edges { cursor node { name } } } }'
    after = None
    for sorted_read in (False, True):
        served.commands.clear()
        found = await api.run("Named", {"after": after}, token=contributor, query=query)
        assert [e["node"]["name"] for e in found["data"]["collections"]["edges"]] == ([] if after else ["other"]), found
        after = after or found["data"]["collections"]["edges"][0]["cursor"]
        [read] = [f for f in served.commands.finds if f["find"] == "collections"]
        plan = await state.db.command("explain", {"find": "collections", "filter": read["filter"], "sort": read.get("sort", {})})
        steps = plan["queryPlanner"]["Plan"]
        assert any("detail=SEARCH" in step and step.endswith("_name (<expr>=?)") for step in steps), steps
        assert bool(read.get("sort")) is sorted_read and plan["sortPushdown"] is sorted_read, (read, steps)
        assert plan_problems(plan) == [], steps


async def test_events_by_origin_pin_it_in_the_index(api: Api, served: Served, state: AppState, contributor: str,
                                                    lake: dict[str, str]) -> None:
    """The lake's own events outnumber what clients log (an AUDIT per mutation): a list of the
    clients' events walking the timeline and skipping the rest would read the whole audit trail to
    fill a page. So its index search pins `by_lake` beside `archived`, in either order."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    for order in ("TIMESTAMP", "RECEIVED"):
        for origin in ("CLIENT", "LAKE"):
            served.commands.clear()
            await api.data("Events", {"first": 2, "orderBy": order, "filter": {"origin": origin}}, token=contributor)
            [find] = [f for f in served.commands.finds if f["find"] == "events"]
            plan = await state.db.command("explain", {"find": "events", "filter": find["filter"], "sort": find["sort"]})
            [search] = plan["queryPlanner"]["Plan"]
            assert "origin_" in search and search.count("=?") == 2, (order, origin, search)


async def test_the_write_paths_read_by_id_through_the_id_index(api: Api, served: Served, state: AppState,
                                                              contributor: str, lake: dict[str, str]) -> None:
    """Writes read what they name by id, often with a condition beside the ids (is any of these assets
    DELETED by now?). Every such read must find its documents through the `_id_` index: a scan there
    reads the whole collection for each batch of datums or records written, so imports slowed down
    as the lake grew."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    served.commands.clear()
    datums = await factories.datums(api, contributor, 2)
    await factories.version(api, contributor, (await factories.dataset(api, contributor, "more"))["id"], "v1",
                            addDatums=[d["id"] for d in datums])
    schema = await factories.schema(api, contributor, "more-labels")
    labels = await factories.annotation_set(api, contributor, schema["id"])
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": datums[0]["roles"][0]["asset"]["id"], "datumId": datums[0]["id"], "kind": "CLASSIFICATION",
         "label": "dent"}]}, token=contributor)
    by_id = [f for f in served.commands.finds if "_id" in f.get("filter", {})]
    assert {f["find"] for f in by_id} >= {"assets", "datums"}, by_id  # the test sees the reads it is about
    assert any(len(f["filter"]) > 1 for f in by_id), by_id  # ... including ids beside another condition
    problems = {}
    existing = set(await state.db.list_collection_names())
    for find in by_id:
        if find["find"] not in existing:  # nothing there yet to scan (a batch's look for a reaper's claim)
            continue
        plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"]})
        if not any("_id_" in step for step in plan["queryPlanner"]["Plan"]) or plan_problems(plan):
            problems[find["find"]] = (find["filter"], plan["queryPlanner"]["Plan"])
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


async def test_events_sent_again_are_found_by_key_through_an_index(api: Api, served: Served, state: AppState,
                                                                   contributor: str, lake: dict[str, str]) -> None:
    """A batch of keyed events looks its keys up before it is stored (services/events/keys.py), in a
    collection as large as the event log; the unique index serves no query on the embedded default,
    so the plain `key` index beside it must. `events(filter: {key:})` reads through it too, and sorts
    what it finds: at most the one event holding the key."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    events = [{"eventType": "KEYED", "key": f"k{i}"} for i in range(3)]
    await api.data("LogEvents", {"inputs": events}, token=contributor)
    served.commands.clear()
    again = await api.data("LogEvents", {"inputs": events}, token=contributor)
    assert again["logEvents"]["stored"] == 0
    await api.data("Events", {"first": 2, "filter": {"key": "k1"}}, token=contributor)
    lookups = [f for f in served.commands.finds if f["find"] == "events" and "key" in str(f.get("filter"))]
    assert len(lookups) == 2, served.commands.finds
    problems = {}
    for find in lookups:
        plan = await state.db.command("explain", {"find": "events", "filter": find["filter"],
                                                  "sort": find.get("sort", {})})
        steps = plan["queryPlanner"]["Plan"]
        scans = [p for p in plan_problems(plan) if p.startswith("full scan")]
        if scans or not any(re.search(r"USING INDEX \S+_key \(", step) for step in steps):
            problems[str(find["filter"])] = steps
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


async def test_lookups_that_grow_with_the_lake_use_an_index(api: Api, served: Served, state: AppState,
                                                             contributor: str, lake: dict[str, str]) -> None:
    """Writes that look something up by a field other than `_id`, in collections as large as the lake:
    registering an object again finds its first registration by URI, deleting a datum names the
    versions holding it, and deleting an asset the datums using it. Each used to read the whole
    collection per call on the embedded default."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    served.commands.clear()
    first = await api.data("RegisterExternal", {"input": {"url": "https://example.org/run1/a.csv"}}, token=contributor)
    again = await api.data("RegisterExternal", {"input": {"url": "https://example.org/run1/a.csv"}}, token=contributor)
    assert again["registerExternal"]["unchanged"][0]["id"] == first["registerExternal"]["assets"][0]["id"]
    refused = await api.error("DeleteDatum", {"id": lake["datum"]}, token=contributor)
    assert refused["extensions"]["code"] == "CONFLICT", refused
    used = await api.error("DeleteAsset", {"id": lake["asset"]}, token=contributor)  # datums use it
    assert used["extensions"]["code"] == "CONFLICT" and "DATUM" in used["message"], used
    lookups = [f for f in served.commands.finds
               if (f["find"] == "assets" and "storage.uri" in f.get("filter", {}))
               or (f["find"] == "version_members" and "datum_id" in f.get("filter", {}))
               or f["find"] == "datum_assets"]
    assert {f["find"] for f in lookups} == {"assets", "version_members", "datum_assets"}, served.commands.finds
    problems = {}
    for find in lookups:
        plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"]})
        if plan_problems(plan) or not any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]):
            problems[find["find"]] = (find["filter"], plan["queryPlanner"]["Plan"])
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


async def test_a_batch_of_digests_is_looked_up_through_their_index(api: Api, served: Served, state: AppState,
                                                                   contributor: str, lake: dict[str, Any]) -> None:
    """What a lake holds of a bundle's files (`sha256In`, a bundle import's lookup) is read through the
    sha256 index, however large the lake: only the assets found are sorted (their temporary B-tree is
    as large as the answer), never the whole list walked in its order to find them."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    held = (await state.db["assets"].find_one({"_id": object_id(lake["asset"])}))["sha256"]
    served.commands.clear()
    digests = [held, *(f"{n:064x}" for n in range(499))]  # as many as one query takes: a bundle's batch
    found = await api.data("Assets", {"first": 10, "filter": {"sha256In": digests, "statuses": ["ACTIVE"],
                                                              "kinds": ["VALUE"]}}, token=contributor)
    ids = [e["node"]["id"] for e in found["assets"]["edges"]]
    assert lake["asset"] in ids and len(ids) == 2  # the fixture stores each value twice (v0 and v3)
    find = next(f for f in served.commands.finds if f["find"] == "assets")
    plan = await state.db.command("explain", {"find": "assets", "filter": find["filter"], "sort": find.get("sort", {})})
    steps = plan["queryPlanner"]["Plan"]
    assert any("USING INDEX" in step and step.split("USING INDEX ")[1].split()[0].endswith("_sha256") for step in steps), steps
    assert not [problem for problem in plan_problems(plan) if problem.startswith("full scan")], steps


@pytest.mark.parametrize("datum_count", [1, 2])
async def test_a_version_reads_only_the_records_of_its_datums(api: Api, served: Served, state: AppState,
                                                              contributor: str, lake: dict[str, Any], datum_count: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a version of one set reads its datums' records through the index on set and datum
    (and checking it reads their copies through the index on version and datum): each datum searched
    in turn, never a walk through every record of the set (a version of a few datums from a set of
    100,000 records read all of them for each batch). One datum is a query of its own kind (pinned),
    and so are the reads that go on inside a datum. (Which records a version of several sets reads:
    tests/test_datasets.py.)"""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    dataset = await factories.dataset(api, contributor, "planned")
    datums = await factories.datums(api, contributor, datum_count)
    for datum in datums:  # read a record a page: the reads that go on inside a datum are planned too
        await api.data("AddAnnotations", {"setId": lake["sets"][0], "records": [
            {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION",
             "label": "dent"}] * 2}, token=contributor)
    monkeypatch.setattr(snapshots, "RECORDS_PER_READ", 1)
    served.commands.clear()
    # One set and its datums: the set's own index, in `_id` order, was the walk taken.
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums],
                                      addAnnotationSets=lake["sets"][:1])
    await api.data("VerifyVersion", {"id": version["id"]}, token=contributor)
    reads = [f for f in served.commands.finds if f["find"] in ("annotation_records", "version_record_packs")]
    assert {f["find"] for f in reads} == {"annotation_records", "version_record_packs"}, served.commands.finds
    problems = {}
    expected = {"annotation_records": "set_datum", "version_record_packs": "version_datum"}
    for find in reads:
        plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"], "sort": find["sort"]})
        steps = plan["queryPlanner"]["Plan"]
        # An index's SQL name is its table's (the collection's name and a hex hash), "_", its own name.
        used = [step.split("USING INDEX ")[1].split()[0] for step in steps if "USING INDEX" in step]
        if (plan_problems(plan) or not plan["sortPushdown"] or not used
                or not all(name.endswith("_" + expected[find["find"]]) for name in used)):
            problems[find["find"]] = (find["filter"], find["sort"], steps)
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


async def test_the_daily_sweep_reads_uses_and_links_through_their_indexes(api: Api, served: Served, state: AppState,
                                                                          contributor: str, lake: dict[str, Any]) -> None:
    """The daily sweep of uses and lineage links (services/asset_users.remove_orphaned_uses,
    services/lineage.remove_stale_links) pages through both collections in asset order: each page a
    search of an index, never a walk of the whole collection per page."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    from services import asset_users, lineage

    served.commands.clear()
    await asset_users.remove_orphaned_uses()
    await lineage.remove_stale_links(timedelta(0))
    reads = [f for f in served.commands.finds if f["find"] in ("datum_assets", "asset_lineage") and f.get("sort")]
    assert {f["find"] for f in reads} == {"datum_assets", "asset_lineage"}, served.commands.finds
    problems = {}
    for find in reads:
        after = {**find, "filter": {"asset_id": {"$gt": object_id(lake["asset"])}}}  # a later page's
        for asked in (find, after):
            plan = await state.db.command("explain", {"find": asked["find"], "filter": asked.get("filter", {}),
                                                      "sort": asked["sort"]})
            if plan_problems(plan) or not plan["sortPushdown"]:
                problems[asked["find"]] = (asked.get("filter"), asked["sort"], plan["queryPlanner"]["Plan"])
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


async def test_the_sweep_of_adds_cut_short_reads_their_marks_through_an_index(
        api: Api, served: Served, state: AppState, contributor: str, lake: dict[str, Any]) -> None:
    """The hourly settling of adds cut short (services/collections.settle_cut_short_adds) reads the
    pins still marked, oldest first, through the index on their mark: never a walk of every pin."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    from services import collections

    served.commands.clear()
    await collections.settle_cut_short_adds()
    reads = [f for f in served.commands.finds if f["find"] == "retentions" and "adding_at" in f["filter"]]
    assert reads, served.commands.finds
    await assert_paged_through_indexes(state, reads)


async def test_deletes_read_each_round_through_an_index(api: Api, served: Served, state: AppState, contributor: str,
                                                        admin: str, lake: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting a collection, a dataset version and annotation sets reads what it removes a round at a
    time (services/bulk_deletes.py): each round's read searches an index for the owner and stops after
    the round, in the order the index holds (no sort of all that is left, once per round), and the pins
    on a round's assets are found through the index on their asset."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 2)  # several rounds of each
    served.commands.clear()
    await api.data("DeleteCollection", {"id": lake["collection"]}, token=contributor)
    await api.data("DeleteDatasetVersion", {"id": lake["version"]}, token=admin)
    for set_id in lake["sets"]:
        await api.data("DeleteAnnotationSet", {"id": set_id}, token=contributor)
    removed = ("collection_items", "version_members", "version_record_packs", "annotation_records", "retentions")
    reads = [f for f in served.commands.finds if f["find"] in removed]
    assert {f["find"] for f in reads} == set(removed), served.commands.finds
    assert any("asset_id" in f["filter"] for f in reads if f["find"] == "retentions"), reads  # the pins on a round's assets
    await assert_paged_through_indexes(state, reads)


async def test_a_purge_reads_each_round_of_old_events_through_an_index(api: Api, served: Served, state: AppState,
                                                                      contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`graphlake events purge` deletes a round at a time too (a year of events in one delete held the
    lake's writes): each round's read walks the timeline index from the oldest and stops after the round."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    for days in (45, 44, 43, 42, 41):
        at = (utcnow() - timedelta(days=days)).isoformat()
        await api.data("LogEvents", {"inputs": [{"eventType": "OLD", "timestamp": at}]}, token=contributor)
    await state.db.events.update_many({"event_type": "OLD"}, {"$set": {"archived": True}})
    # Kept AUDIT events older than all of them, at the start of the index each round walks (the
    # logEvents' own, journaled: stored first).
    if state.feed.ahead is not None:
        await state.feed.ahead.drained()
    await state.db.events.update_many({"event_type": "AUDIT"}, {"$set": {"archived": True, "timestamp": utcnow() - timedelta(days=50)}})
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 2)
    served.commands.clear()
    assert await events_log.purge(timedelta(days=30), audit_too=False) == 5
    reads = [f for f in served.commands.finds if f["find"] == "events"]
    assert len(reads) == 4 and all(f["limit"] == 2 for f in reads), reads  # 2, 2, 1, then none left
    # After the first, each round reads on from the last one's time, past the kept AUDIT events.
    assert all("$gte" in f["filter"]["timestamp"] for f in reads[1:]), reads
    for find in reads:
        plan = await state.db.command("explain", {"find": "events", "filter": find["filter"], "sort": find["sort"]})
        assert not plan_problems(plan) and plan["sortPushdown"], plan["queryPlanner"]["Plan"]
    assert await state.db.events.count_documents({"event_type": "OLD"}) == 0
    assert await state.db.events.count_documents({"event_type": "AUDIT", "archived": True}) > 0


async def test_archiving_reads_each_round_of_old_events_through_an_index(api: Api, served: Served, state: AppState,
                                                                        contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Archiving old events goes a round at a time too (services/bulk_deletes.update_all): each
    round's read walks the timeline index from the oldest not-archived event and stops after the round."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    for days in (45, 44, 43, 42, 41):
        at = (utcnow() - timedelta(days=days)).isoformat()
        await api.data("LogEvents", {"inputs": [{"eventType": "OLD", "timestamp": at}]}, token=contributor)
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 2)
    served.commands.clear()
    assert await events_log.archive(timedelta(days=30)) == 5
    reads = [f for f in served.commands.finds if f["find"] == "events"]
    assert len(reads) == 4 and all(f["limit"] == 2 for f in reads), reads  # 2, 2, 1, then none left
    for find in reads:
        plan = await state.db.command("explain", {"find": "events", "filter": find["filter"], "sort": find["sort"]})
        assert not plan_problems(plan) and plan["sortPushdown"], plan["queryPlanner"]["Plan"]
        assert any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]), plan["queryPlanner"]["Plan"]
    assert await state.db.events.count_documents({"event_type": "OLD", "archived": False}) == 0


async def test_the_reconciler_reads_on_through_indexes(api: Api, served: Served, state: AppState, contributor: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A reconcile round reads what it can settle, not every upload in flight: the sessions closed and
    the PENDING files created since its last round (each read a page at a time, on from the last
    one's position), the sessions past their time, those left unfiled. Each through an index that
    stops after its page."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    from services.uploads import reconciler

    monkeypatch.setattr(reconciler, "STRANDED_PAGE", 2)
    inputs = [{"name": f"f{i}", "sizeBytes": 3, "mount": "local", "sha256": "ab" * 32} for i in range(5)]
    await api.data("CreateUploads", {"inputs": inputs}, token=contributor)
    long_ago = utcnow() - timedelta(hours=1)
    await state.db.assets.update_many({}, {"$set": {"created_at": long_ago}})
    await state.db.upload_sessions.update_many({}, {"$set": {"status": "ABORTED", "finished_at": long_ago}})
    served.commands.clear()
    await reconciler.reconcile(state.stores, state.feed)
    reads = [f for f in served.commands.finds
             if (f["find"] == "upload_sessions" and ({"finished_at", "to_file"} & set(f["filter"])
                                                     or f["filter"].get("status") == "OPEN"))
             or (f["find"] == "assets" and "created_at" in f["filter"])]
    walked = [f for f in reads if "finished_at" in f["filter"] and "to_file" not in f["filter"]]
    assert len(walked) >= 3 and any("$gt" in f["filter"]["_id"] for f in walked if "_id" in f["filter"]), walked
    assert {f["find"] for f in reads} == {"upload_sessions", "assets"}, served.commands.finds
    await assert_paged_through_indexes(state, reads)


def _connections(data: Any) -> list[dict]:
    """Every connection (a dict with pageInfo) in a GraphQL answer."""
    found = []
    if isinstance(data, dict):
        if "pageInfo" in data:
            found.append(data)
        for value in data.values():
            found += _connections(value)
    elif isinstance(data, list):
        for value in data:
            found += _connections(value)
    return found


@pytest.mark.parametrize("event_filter", [None, {"eventTypes": ["T1"]}, {"minLevel": "ERROR"}])
async def test_a_resuming_subscription_reads_the_log_by_id_range(served: Served, state: AppState, viewer: str,
                                                                lake: dict[str, str], event_filter: dict | None) -> None:
    """`events(after:)` replays what was logged since a position: a read of its `_id` range, not a scan."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's (MongoDB serves these reads from its own indexes)")
    served.commands.clear()
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStreamFrom", {"filter": event_filter, "after": lake["event"]})
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message["type"] == "next" and not message["payload"].get("errors"), message
    finds = [f for f in served.commands.finds if f["find"] == "events"]
    assert finds, served.commands.finds
    for find in finds:
        plan = await state.db.command("explain", {"find": "events", "filter": find["filter"], "sort": find["sort"]})
        assert plan_problems(plan) == [], (find["filter"], plan)
        assert plan["sortPushdown"], (find["filter"], plan)


async def test_verifying_a_version_reads_its_pages_through_an_index(api: Api, served: Served, state: AppState,
                                                                    contributor: str, lake: dict[str, Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A version's verification reads its members and their copies a page at a time: each page's read
    must stop after the page in the order an index holds, not sort every member of the version again
    (it paged in datum order, which no index of the embedded default holds with the version: a sort
    per page of 1,000 datums, quadratic in the version's size)."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    monkeypatch.setattr(snapshots, "BATCH", 1)  # several pages
    served.commands.clear()
    checked = (await api.data("VerifyVersion", {"id": lake["version"]}, token=contributor))["datasetVersion"]
    assert checked["verification"]["ok"], checked
    reads = [f for f in served.commands.finds if f["find"] in ("version_members", "version_record_packs")]
    assert {f["find"] for f in reads} == {"version_members", "version_record_packs"}, served.commands.finds
    await assert_paged_through_indexes(state, reads)
    # A list of versions, verified together (services/snapshots.verify_many): each read names them all.
    datums = await factories.datums(api, contributor, 2)
    other = await factories.version(api, contributor, lake["dataset_id"], "v2", parentId=lake["version"],
                                    addDatums=[d["id"] for d in datums])
    served.commands.clear()
    body = await api.run("Verified", {"id": lake["dataset_id"]}, token=contributor, query="""
        query Verified($id: ID!) { dataset(id: $id) { versions { edges { node { verification { ok } } } } } }""")
    assert [e["node"]["verification"]["ok"] for e in body["data"]["dataset"]["versions"]["edges"]] == [True, True], body
    reads = [f for f in served.commands.finds if f["find"] in ("version_members", "version_record_packs")]
    assert any(len(f["filter"].get("version_id", {}).get("$in", ())) == 2 for f in reads), reads
    assert other["datumCount"] == 5
    await assert_paged_through_indexes(state, reads)


async def test_pages_of_several_versions_read_through_indexes(api: Api, served: Served, state: AppState,
                                                              contributor: str, lake: dict[str, Any]) -> None:
    """A list of versions reads its pages for all of them at once (resolvers/loaders.py): their datums'
    record packs, the members their records and diffs name, their diffs' members, a version by name.
    Each such read searches an index for every version and datum asked (and, paged, walks it in order),
    never a scan of every version's members or packs."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    datums = await factories.datums(api, contributor, 2)
    await api.data("AddAnnotations", {"setId": lake["sets"][0], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": "dent"}
        for d in datums]}, token=contributor)
    dataset = await factories.dataset(api, contributor, "more")
    v1 = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datums[0]["id"]],
                                 addAnnotationSets=lake["sets"][:1])
    await factories.version(api, contributor, dataset["id"], "v2", parentId=v1["id"], addDatums=[datums[1]["id"]])
    served.commands.clear()
    await api.data("DatasetsVersionNamed", {"version": "v1", "first": 10}, token=contributor)
    await api.data("DatasetsLatestDatums", {"first": 10}, token=contributor)
    await api.data("DatasetsVersionsDatums", {"first": 10}, token=contributor)
    await api.data("DatasetsLatestDiff", {"first": 10, "against": lake["version"]}, token=contributor)
    several = [f for f in served.commands.finds if f["find"] in ("version_record_packs", "version_members")
               and isinstance(f["filter"].get("version_id"), dict) and len(f["filter"]["version_id"]["$in"]) > 1]
    # The packs of several versions' datums, and the members several versions' records and diffs name.
    assert {(f["find"], "datum_id" in f["filter"]) for f in several} >= {
        ("version_record_packs", True), ("version_members", True)}, served.commands.finds
    named = [f for f in served.commands.finds if f["find"] == "dataset_versions" and "version" in f["filter"]]
    assert named, served.commands.finds
    await assert_paged_through_indexes(state, several + named)


@pytest.mark.parametrize("variables", [
    {"first": 2}, {"last": 2}, {"first": 2, "orderBy": {"field": "CREATED_AT", "direction": "ASC"}},
    {"first": 2, "filter": {"labelsAny": ["l1", "l2"], "kinds": ["VALUE"]}},
    {"first": 2, "orderBy": {"field": "NAME", "direction": "ASC"}},
], ids=["newest", "backward", "oldest", "with-other-filters", "by-name"])
async def test_a_collections_assets_are_read_through_its_items(api: Api, served: Served, state: AppState, contributor: str,
                                                               lake: dict[str, Any], variables: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`assets(filter: {collectionId})` reads the collection's items through their index, then its
    assets by id (only those are tested). The embedded default indexes no array, so the assets'
    `collection_ids` led to no index: the list walked every asset in its order and tested each one,
    and a first page of a collection of old assets read the whole lake. In the list's own order
    (creation time, either way) the items keep their asset's key, and a page walks them in that order
    from its cursor (the `collection_created` index searched from the cursor's position, no scan, no
    sort), whatever the collection's size; in another order (by name) a look at the start of the
    list's walk comes first (an index walked in order, stopping soon), then all the items are read and
    only their assets sorted."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    # The fixture's lake is small: a look at its walk finds the collection's page there, and the
    # list walks (tests/test_collections.py). A look too short to find one, and items taken to be
    # cheap, read the items. (Not raising: code without these bounds fails on how it reads instead.)
    monkeypatch.setattr(collections, "WALK_PROBE", 1, raising=False)
    monkeypatch.setattr(collections, "ITEM_COST", 0, raising=False)
    by_key = variables.get("orderBy", {}).get("field", "CREATED_AT") == "CREATED_AT"
    variables = {**variables, "filter": {**variables.get("filter", {}), "collectionId": lake["collection"]}}
    problems = {}
    for page in range(2):
        served.commands.clear()
        data = await api.data("Assets", variables, token=contributor)
        assert data["assets"]["edges"], variables
        items = [f for f in served.commands.finds if f["find"] == "collection_items"]
        by_id = [f for f in served.commands.finds if f["find"] == "assets" and "_id" in f["filter"]]
        walked = [f for f in served.commands.finds if f["find"] == "assets" and "_id" not in f["filter"]]
        assert items and by_id and bool(walked) != by_key, served.commands.finds
        if by_key:  # the page's items in their order (the totalCount's read of every item's asset id aside)
            items = [f for f in items if "asset_created_at" in f.get("sort", {})]
            assert items and (page == 0 or all("$or" in f["filter"] for f in items)), items
        for find in items + by_id + walked:
            plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"],
                                                      "sort": find.get("sort", {})})
            steps = plan["queryPlanner"]["Plan"]
            used = [step.split("USING INDEX ")[1].split()[0] for step in steps if "USING INDEX" in step]
            if find in by_id:  # only the assets found are sorted: no walk of the list's order, no scan
                wrong = [p for p in plan_problems(plan) if p.startswith("full scan")] or not used or any(
                    not name.endswith("_id_") for name in used)
            elif by_key:  # searched from the cursor's position: the collection pinned, its creation time bounded
                wrong = (plan_problems(plan) or not plan["sortPushdown"] or len(used) != 1
                         or not used[0].endswith("_collection_created")
                         or not any(re.search(r"\(<expr>=\? AND <expr>[<>]=?\?\)", step) for step in steps))
            else:
                wrong = plan_problems(plan) or not used or not plan["sortPushdown"]
            if wrong:
                problems[f"{find['find']} page {page + 1}"] = (find["filter"], find.get("sort"), steps)
        key, cursor = ("before", "startCursor") if "last" in variables else ("after", "endCursor")
        variables = {**variables, key: data["assets"]["pageInfo"][cursor]}
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


def planned_on(plan: dict, index: str) -> bool:
    """Whether a step of the plan reads through the index named `index` (its table's prefix aside)."""
    return any("USING INDEX" in step and step.split("USING INDEX ")[1].split()[0].endswith(f"_{index}")
               for step in plan["queryPlanner"]["Plan"])


async def test_the_reads_of_partial_indexes_imply_their_field(api: Api, served: Served, state: AppState,
                                                              contributor: str, lake: dict[str, Any]) -> None:
    """The indexes partial on the embedded default (documents/indexes.py: embedded_partial) hold only
    the documents with their first field, and SQLite reads one only for a query that compares that
    field with a value. Each read they serve does: an owner filter, the garbage collector's rounds,
    an external registration's lookup by URI, the lookups of a mask's asset, a batch of event keys,
    the maintenance's reads of deletes and collection adds cut short (a range of their marks)."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    from services import asset_users
    from services.assets import collect_unpinned
    from services.events.keys import lookup

    served.commands.clear()
    await api.data("Assets", {"first": 2, "filter": {"owner": {"userId": "u1"}}}, token=contributor)
    await api.data("RegisterExternal", {"input": {"url": "https://example.org/run2/b.csv"}}, token=contributor)
    await collect_unpinned(timedelta(days=1), {}, dry_run=True)
    reads = {"owner_user_created": [f for f in served.commands.finds if f["find"] == "assets" and "owner.user_id" in str(f["filter"])],
             "unpinned_at": [f for f in served.commands.finds if f["find"] == "assets" and "unpinned_at" in str(f["filter"])],
             "storage_uri": [f for f in served.commands.finds if f["find"] == "assets" and "storage.uri" in str(f["filter"])]}
    asset = object_id(lake["asset"])
    reads["mask_asset"] = [{"find": "annotation_records", "filter": {"geometry.asset_id": {"$in": [asset]}}},  # asset_users.used
                           {"find": "annotation_records", "filter": {"$or": [{f: asset} for f in asset_users.fields_of("annotation_records")]}}]
    reads["key"] = [{"find": "events", "filter": lookup(["k1", "k2"])}]
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    reads["deleting"] = [{"find": "datums", "filter": {"deleting_at": {"$lt": cutoff}}}]  # services/unfinished_deletes.py
    reads["adding_at"] = [{"find": "retentions", "filter": {"adding_at": {"$lt": cutoff}},  # collections.settle_cut_short_adds
                           "sort": {"adding_at": 1, "_id": 1}}]
    assert all(reads.values()), reads
    problems = {}
    for index, finds in reads.items():
        info = (await state.db[finds[0]["find"]].index_information())[index]
        assert info.get("partialFilterExpression") == {next(iter(dict(info["key"]))): {"$exists": True}}, info
        for find in finds:
            plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"], "sort": find.get("sort", {})})
            if not planned_on(plan, index) or [p for p in plan_problems(plan) if p.startswith("full scan")]:
                problems[f"{index}: {find['filter']}"] = (find.get("sort"), plan["queryPlanner"]["Plan"])
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
