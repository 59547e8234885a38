"""No N+1: a nested read costs the same number of database commands at 10 and at 200 datums."""

from __future__ import annotations

from tests import factories
from tests.conftest import Served
from tests.operations import Api
from tests.seed import seed_version
from resolvers.relay import encode_id


async def commands_for(api: Api, served: Served, token: str, version_id: object, first: int) -> tuple[list[str], dict]:
    served.commands.clear()
    data = await api.data("VersionGraph", {"id": encode_id("DatasetVersion", version_id), "first": first}, token=token)
    return list(served.commands.commands), data


async def test_nested_query_costs_constant_round_trips(api: Api, served: Served, viewer: str) -> None:
    await api.data("Me", token=viewer)  # the token's lookup, remembered from here on, is not the query's
    small = await seed_version(10, name="small")
    large = await seed_version(200, name="large")
    small_commands, small_data = await commands_for(api, served, viewer, small, 200)
    large_commands, large_data = await commands_for(api, served, viewer, large, 200)

    small_edges = small_data["datasetVersion"]["datums"]["edges"]
    large_edges = large_data["datasetVersion"]["datums"]["edges"]
    assert len(small_edges) == 10 and len(large_edges) == 200
    assert all(len(e["node"]["roles"]) == 2 and len(e["node"]["annotations"]["edges"]) == 3 for e in large_edges)
    assert large_edges[0]["node"]["annotations"]["edges"][0]["node"]["set"]["purpose"] == "GROUND_TRUTH"
    assert len(large_commands) == len(small_commands), (small_commands, large_commands)
    # version, members, datums, assets, annotations, sets: one command per level
    assert len(large_commands) <= 7, large_commands


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
