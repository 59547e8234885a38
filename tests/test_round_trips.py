"""No N+1: a nested read costs the same number of database commands at 10 and at 200 datums."""

from __future__ import annotations

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
