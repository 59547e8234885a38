"""No N+1: a nested read costs the same number of database commands at 10 and at 200 datums."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from bson import ObjectId

from documents.collection import CollectionItem
from graphlake.app import in_background
from resolvers import loaders as loaders_module
from resolvers.context import AppState
from resolvers.loaders import Loaders
from services.field_pages import pair_pages
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id
from tests.seed import seed_version


async def commands_for(api: Api, served: Served, token: str, version_id: object, first: int) -> tuple[Counter[str], dict]:
    # The token's lookup, remembered for GRAPHLAKE_TOKEN_CACHE_SECONDS, is not the query's: refreshed
    # here, since seeding a version can take longer than that on a slow machine.
    await api.data("Me", token=token)
    served.commands.clear()
    data = await api.data("VersionGraph", {"id": encode_id(NodeType.DATASET_VERSION, version_id), "first": first}, token=token)
    return served.commands.tally(), data


async def test_nested_query_costs_constant_round_trips(api: Api, served: Served, viewer: str) -> None:
    small = await seed_version(10, name="small")
    large = await seed_version(200, name="large")
    small_commands, small_data = await commands_for(api, served, viewer, small, 200)
    large_commands, large_data = await commands_for(api, served, viewer, large, 200)

    small_edges = small_data["datasetVersion"]["datums"]["edges"]
    large_edges = large_data["datasetVersion"]["datums"]["edges"]
    assert len(small_edges) == 10 and len(large_edges) == 200
    assert all(len(e["node"]["roles"]) == 2 and len(e["node"]["annotations"]["edges"]) == 3 for e in large_edges)
    assert large_edges[0]["node"]["annotations"]["edges"][0]["node"]["set"]["purpose"] == "GROUND_TRUTH"
    assert large_commands == small_commands, (small_commands, large_commands)
    # version, members, datums, assets, annotations, sets: one command per level
    assert large_commands.total() <= 7, large_commands


async def seed_datasets(api: Api, token: str, set_id: str, count: int, prefix: str) -> dict[str, dict]:
    """`count` datasets, each with v1 (two datums, their records in the set) and v2 built on it with a
    third datum; by name, what each version holds (datum ids in order, each one's record ids)."""
    seeded = {}
    for i in range(count):
        datums = await factories.datums(api, token, 3, roles=("image",))
        records = (await api.data("AddAnnotations", {"setId": set_id, "records": [
            {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": label}
            for d in datums for label in ("dent", "scratch", "dent")]}, token=token))["addAnnotations"]["records"]
        ds = await factories.dataset(api, token, f"{prefix}{i:02}")
        v1 = await factories.version(api, token, ds["id"], "v1", addDatums=[d["id"] for d in datums[:2]], addAnnotationSets=[set_id])
        await factories.version(api, token, ds["id"], "v2", parentId=v1["id"], addDatums=[datums[2]["id"]])
        ids = [d["id"] for d in datums]
        seeded[ds["name"]] = {"v1": v1["id"], "datums": ids,
                              "records": {d: [r["id"] for r in records[3 * n:3 * n + 3]] for n, d in enumerate(ids)}}
    return seeded


async def commands_of(api: Api, served: Served, token: str, operation: str, variables: dict) -> tuple[Counter[str], dict]:
    await api.data("Me", token=token)  # the token's lookup, as in commands_for
    served.commands.clear()
    data = await api.data(operation, variables, token=token)
    return served.commands.tally(), data


def check_answers(operation: str, data: dict, seeded: dict[str, dict], base: dict) -> None:
    """What each operation answers of the seeded datasets (the base dataset aside)."""
    nodes = {e["node"]["name"]: e["node"] for e in data["datasets"]["edges"] if e["node"]["name"] in seeded}
    assert sorted(nodes) == sorted(seeded)
    for name, node in nodes.items():
        held = seeded[name]
        datums, records = held["datums"], held["records"]
        if operation == "DatasetsVersionNamed":
            assert node["version"] == {"id": held["v1"], "version": "v1", "datumCount": 2}
        elif operation == "DatasetsLatestDatums":
            page = node["latest"]["datums"]
            assert node["latest"]["version"] == "v2" and page["totalCount"] == 3
            assert [e["node"]["id"] for e in page["edges"]] == datums[:2]
            for edge in page["edges"]:
                shown = [e["node"] for e in edge["node"]["annotations"]["edges"]]
                assert [r["id"] for r in shown] == records[edge["node"]["id"]][:2]
                assert [r["label"] for r in shown] == ["dent", "scratch"]
                assert all(r["datum"] == {"id": edge["node"]["id"], "split": "UNASSIGNED"} for r in shown)
        elif operation == "DatasetsVersionsDatums":
            versions = [e["node"] for e in node["versions"]["edges"]]
            assert [(v["version"], v["datums"]["totalCount"]) for v in versions] == [("v1", 2), ("v2", 3)]
            for version in versions:
                for edge in version["datums"]["edges"]:
                    assert [e["node"]["id"] for e in edge["node"]["annotations"]["edges"]] == records[edge["node"]["id"]][:2]
        else:
            diff = node["latest"]["diff"]
            added = [e["node"] for e in diff["added"]["edges"]]
            assert sorted(datums, key=object_id)[:2] == [d["id"] for d in added]  # in datum order
            assert all([e["node"]["id"] for e in d["annotations"]["edges"]] == records[d["id"]][:2] for d in added)
            assert [e["node"] for e in diff["removed"]["edges"]] == [{"id": base["datum"], "split": "UNASSIGNED"}]


async def test_a_version_by_name_under_a_list_of_datasets_costs_constant_round_trips(
        api: Api, served: Served, contributor: str, viewer: str) -> None:
    """`datasets { version(version:) }` asks each dataset for its version of that name: one query for the page."""
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    seeded = await seed_datasets(api, contributor, labels["id"], 3, "a")
    small, data = await commands_of(api, served, viewer, "DatasetsVersionNamed", {"version": "v1", "first": 50})
    check_answers("DatasetsVersionNamed", data, seeded, {})
    seeded.update(await seed_datasets(api, contributor, labels["id"], 9, "b"))
    large, data = await commands_of(api, served, viewer, "DatasetsVersionNamed", {"version": "v1", "first": 50})
    check_answers("DatasetsVersionNamed", data, seeded, {})
    assert small == large, (small, large)
    assert large == Counter({"find datasets": 1, "find dataset_versions": 1}), large


async def test_pages_of_several_versions_cost_constant_round_trips(api: Api, served: Served, contributor: str,
                                                                   viewer: str) -> None:
    """Datums, their frozen records, the datums those name and the counts of many versions' pages (a list
    of datasets' latest versions, of each dataset's versions, of their diffs' pages) are read for all
    of the versions at once: as many commands at 12 datasets as at 3."""
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    [only] = await factories.datums(api, contributor, 1, roles=("image",))
    base_set = await factories.dataset(api, contributor, "base")
    against = await factories.version(api, contributor, base_set["id"], "v0", addDatums=[only["id"]])
    base = {"datum": only["id"]}
    operations = {"DatasetsLatestDatums": {}, "DatasetsVersionsDatums": {}, "DatasetsLatestDiff": {"against": against["id"]}}
    seeded = await seed_datasets(api, contributor, labels["id"], 3, "a")
    small = {}
    for operation, variables in operations.items():
        small[operation], data = await commands_of(api, served, viewer, operation, {"first": 50, **variables})
        check_answers(operation, data, seeded, base)
    seeded.update(await seed_datasets(api, contributor, labels["id"], 9, "b"))
    large = {}
    for operation, variables in operations.items():
        large[operation], data = await commands_of(api, served, viewer, operation, {"first": 50, **variables})
        check_answers(operation, data, seeded, base)
    assert small == large, "\n".join(f"{op}: {small[op]} -> {large[op]}" for op in operations if small[op] != large[op])


async def test_a_page_of_one_parents_children_reads_only_that_page(api: Api, served: Served, contributor: str) -> None:
    """A big collection's first page must not read the whole collection (the batch of one parent)."""
    coll = await factories.collection(api, contributor, "big")
    assets = [await factories.value_asset(api, contributor, f"v{i}", value=i) for i in range(30)]
    items = [{"assetId": a["id"], "path": f"{i:02}"} for i, a in enumerate(assets)]
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": items}}, token=contributor)
    served.commands.clear()
    first = (await api.data("Collection", {"id": coll["id"], "first": 5}, token=contributor))["collection"]["items"]
    assert [e["node"]["path"] for e in first["edges"]] == ["00", "01", "02", "03", "04"]
    assert first["pageInfo"]["hasNextPage"] and first["totalCount"] == 30
    assert served.commands.returned["collection_items"] == 6, served.commands.returned  # the page and one to see past it
    last = (await api.data("Collection", {"id": coll["id"], "first": 30}, token=contributor))["collection"]["items"]
    assert len(last["edges"]) == 30 and not last["pageInfo"]["hasNextPage"]


async def test_pages_under_several_parents_read_a_bounded_number_of_children(
        api: Api, served: Served, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of big collections, each with a page of its items, must not read every item of them:
    past the batch's budget, a parent gets its own query limited to its page."""
    monkeypatch.setattr(loaders_module, "CHILD_BUDGET", 4)
    assets = [await factories.value_asset(api, contributor, f"v{i}", value=i) for i in range(12)]
    sizes = {"a": 12, "b": 2, "c": 12}  # created in this order: the batch reads a first
    for name, size in sizes.items():
        coll = await factories.collection(api, contributor, name)
        items = [{"assetId": a["id"], "path": f"{name}{i:02}"} for i, a in enumerate(assets[:size])]
        await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": items}}, token=contributor)
    served.commands.clear()
    data = await api.data("CollectionsWithItems", {"first": 3, "itemsFirst": 2}, token=contributor)
    pages = {e["node"]["name"]: e["node"]["items"] for e in data["collections"]["edges"]}
    assert {name: [e["node"]["path"] for e in page["edges"]] for name, page in pages.items()} == {
        "a": ["a00", "a01"], "b": ["b00", "b01"], "c": ["c00", "c01"]}
    assert {name: page["pageInfo"]["hasNextPage"] for name, page in pages.items()} == {"a": True, "b": False, "c": True}
    # One batch of 9 (a's first 9: budget = 3 parents x 3), then b and c on their own: 2 + 3.
    assert served.commands.returned["collection_items"] == 14, served.commands.returned
    assert served.commands.tally("collection_items")["find"] == 3, served.commands.commands
    after = pages["a"]["pageInfo"]["endCursor"]
    rest = await api.data("Collection", {"id": data["collections"]["edges"][2]["node"]["id"], "first": 20, "after": after},
                          token=contributor)
    assert [e["node"]["path"] for e in rest["collection"]["items"]["edges"]] == [f"a{i:02}" for i in range(2, 12)]


@pytest.mark.parametrize(("sizes", "finds"), [
    ([2, 0, 12], 1),  # budget 9 ends inside the last parent with a full page: all known from one query
    ([5, 12], 2),     # budget 6 ends one item into the second parent: it gets its own query
    ([0, 0, 0], 1),
    ([3, 3, 3], 1),   # exactly the budget, every page complete
])
async def test_child_pages_are_complete_wherever_the_budget_ends(
        served: Served, monkeypatch: pytest.MonkeyPatch, sizes: list[int], finds: int) -> None:
    monkeypatch.setattr(loaders_module, "CHILD_BUDGET", 4)
    parents = [ObjectId() for _ in sizes]  # ascending, as the batch reads them
    docs = [CollectionItem(id=ObjectId(), collection_id=p, asset_id=ObjectId(), path=f"{i}-{j}")
            for i, (p, size) in enumerate(zip(parents, sizes, strict=True)) for j in range(size)]
    if docs:
        await CollectionItem.get_pymongo_collection().insert_many([d.model_dump(by_alias=True) for d in docs])
    served.commands.clear()
    pages = await Loaders().children(CollectionItem, "collection_id", {}, 2).load_many(list(reversed(parents)))
    got = [[d.path for d in page.docs] for page in reversed(pages)]
    assert got == [[f"{i}-{j}" for j in range(min(size, 2))] for i, size in enumerate(sizes)]
    assert [page.has_next for page in reversed(pages)] == [size > 2 for size in sizes]
    assert served.commands.commands.count("find") == finds, served.commands.commands


@pytest.mark.parametrize(("counts", "asked", "reads"), [
    # (first, second) -> documents held; pairs asked; finds, at 2 documents a read (a full read asks again).
    ({(0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 1}, [(0, 0), (1, 1)], 2),  # (0, 1), (1, 0): found, left out
    ({(0, 0): 5, (1, 1): 1}, [(0, 0), (1, 1)], 4),  # the first read stops inside (0, 0): its rest, then the next first
    ({(0, 0): 7, (0, 2): 3, (1, 0): 1}, [(0, 2), (1, 0)], 4),  # pairs not asked fill the first read: (0, 2) apart
    ({(0, 0): 2, (0, 1): 2, (0, 2): 2, (1, 0): 2}, [(0, 1), (1, 0)], 5),
    ({(0, 0): 1}, [(2, 2), (3, 3)], 1),
    ({}, [], 0),
])
async def test_pair_pages_give_each_pair_asked_in_order(served: Served, state: AppState, counts: dict, asked: list,
                                                        reads: int) -> None:
    """services/field_pages.pair_pages: every document of the pairs asked, none of the others its reads
    meet (every first asked with every second asked), in (first, second, `_id`) order, wherever a read stops."""
    firsts, seconds = [ObjectId() for _ in range(4)], [ObjectId() for _ in range(4)]
    docs = [{"_id": ObjectId(), "a": firsts[f], "b": seconds[s]} for (f, s), n in counts.items() for _ in range(n)]
    if docs:
        await state.db["pairs"].insert_many(docs)
    pairs = [(firsts[f], seconds[s]) for f, s in asked]
    served.commands.clear()
    got = [doc["_id"] for page in [page async for page in pair_pages(state.db["pairs"], ("a", "b"), pairs, 2)]
           for doc in page]
    assert got == [d["_id"] for d in sorted(docs, key=lambda d: (d["a"], d["b"], d["_id"])) if (d["a"], d["b"]) in pairs]
    assert served.commands.commands.count("find") == reads, served.commands.commands


async def test_the_count_leaves_out_the_servers_background_work(served: Served, state: AppState) -> None:
    """The maintenance task's commands (every reconcile interval) are not a request's: a count that met
    one failed at random on a slow machine."""

    async def background_find() -> None:
        in_background.set(True)  # as the maintenance task does
        await state.db["assets"].find_one({})

    served.commands.clear()
    await asyncio.create_task(background_find())
    assert served.commands.commands == []
    await state.db["assets"].find_one({})
    assert served.commands.commands == ["find"]
