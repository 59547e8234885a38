"""A request's whole size is weighed before it runs (resolvers/request_cost.py): over
GRAPHLAKE_MAX_REQUEST_NODES it is refused with BAD_USER_INPUT naming its costliest connection, over
HTTP and WebSockets, for queries, mutations and subscriptions, and nothing of it runs."""

from __future__ import annotations

from graphlake.settings import Settings
from tests.conftest import Served
from tests.operations import Api
from tests.ws_client import Subscriber

NESTED = "datums(first: $outer) { edges { node { annotations(first: $inner) { edges { node { id } } } } } }"


def _refused(error: dict, settings: Settings, path: str, total: int) -> None:
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "connection": path}, error
    assert f"{total:,} items" in error["message"] and "GRAPHLAKE_MAX_REQUEST_NODES" in error["message"]
    assert f"({settings.max_request_nodes:,})" in error["message"]


async def test_nested_pages_past_the_budget_are_refused_and_smaller_ones_run(api: Api, viewer: str,
                                                                           settings: Settings) -> None:
    query = ("query Nested($outer: Int, $inner: Int) { assets(first: $outer) { edges { node { id "
             f"{NESTED} }} }} }} }}")
    error = await api.error("Nested", {"outer": 500, "inner": 500}, query=query, token=viewer)
    # assets 500, each asset's datums 500 x 500, each datum's annotations 500 x 500 x 500
    _refused(error, settings, "assets.edges.node.datums.edges.node.annotations", 500 + 500 * 500 + 500 ** 3)
    body = await api.run("Nested", {"outer": 20, "inner": 20}, query=query, token=viewer)
    assert not body.get("errors") and body["data"]["assets"]["edges"] == []


async def test_defaults_aliases_and_ids_are_weighed(api: Api, viewer: str, settings: Settings) -> None:
    # Unset: the default page size (50); a variable's declared default stands when the request leaves it out.
    defaulted = ("query Defaulted($inner: Int = 500) { assets { edges { node { datums(first: $inner) { edges { node { "
                 "annotations(first: $inner) { edges { node { id } } } } } } } } } }")
    error = await api.error("Defaulted", {}, query=defaulted, token=viewer)
    _refused(error, settings, "assets.edges.node.datums.edges.node.annotations", 50 + 50 * 500 + 50 * 500 * 500)
    assert not (await api.run("Defaulted", {"inner": 10}, query=defaulted, token=viewer)).get("errors")
    # Aliases add up: each of three 40,100 is within the budget, their sum is not.
    aliased = "query Aliased { " + " ".join(
        f"a{i}: assets(first: 100) {{ edges {{ node {{ datums(first: 400) {{ edges {{ node {{ id }} }} }} }} }} }}"
        for i in range(3)) + " }"
    _refused(await api.error("Aliased", {}, query=aliased, token=viewer), settings, "a0.edges.node.datums", 3 * 40_100)
    # nodes(ids:) counts one item an id.
    ids = ["QXNzZXQ6MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw"] * 400
    by_ids = ("query ByIds($ids: [ID!]!) { nodes(ids: $ids) { ... on Asset { id datums(first: 500) { edges { node { "
              "id } } } } } }")
    _refused(await api.error("ByIds", {"ids": ids}, query=by_ids, token=viewer), settings,
             "nodes.datums", 400 + 400 * 500)


async def test_a_mutation_past_the_budget_stores_nothing(api: Api, contributor: str, settings: Settings) -> None:
    query = ("mutation Heavy($input: StoreValueInput!, $outer: Int, $inner: Int) { storeValue(input: $input) { id "
             f"{NESTED} }} }}")
    variables = {"input": {"name": "heavy", "value": {"a": 1}}, "outer": 500, "inner": 500}
    error = await api.error("Heavy", variables, query=query, token=contributor)
    _refused(error, settings, "storeValue.datums.edges.node.annotations", 500 + 500 * 500)
    listed = await api.run("Heavy", {**variables, "outer": 1, "inner": 1}, query=query, token=contributor)
    assert not listed.get("errors"), listed
    found = await api.run("Named", {}, query='query Named { assets(filter: {nameContains: "heavy"}) { totalCount } }',
                          token=contributor)
    assert found["data"]["assets"]["totalCount"] == 1  # the refused one stored nothing; the smaller one ran


async def test_a_subscription_past_the_budget_is_refused_at_its_start(served: Served, viewer: str,
                                                                      settings: Settings) -> None:
    query = ("subscription Heavy($outer: Int, $inner: Int) { assetStatusChanged { id "
             f"{NESTED} }} }}")
    async with Subscriber(served.ws_url) as subscriber:
        assert (await subscriber.connect({"Authorization": f"Bearer {viewer}"}))["type"] == "connection_ack"
        op_id = await subscriber.subscribe("Heavy", {"outer": 500, "inner": 500}, query=query)
        answer = await subscriber.receive()
        assert answer["id"] == op_id and answer["type"] in ("error", "next"), answer
        errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
        _refused(errors[0], settings, "assetStatusChanged.datums.edges.node.annotations", 500 + 500 * 500)
