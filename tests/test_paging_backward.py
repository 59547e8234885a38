"""Connections page backward too (`last` / `before`), as Relay clients expect: walking back from the
end gives the same items, in the same order and with the same cursors, as walking forward, whatever
the list's order (ties, nulls) and however it is served (a keyset query, a parent's child page)."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers import loaders as loaders_module
from tests import factories
from tests.operations import Api


async def forward(api: Api, token: str, operation: str, root: Any, variables: dict, first: int) -> list[tuple[str, str]]:
    """(cursor, id) of every item, page by page from the start."""
    items, after = [], None
    while True:
        page = root(await api.data(operation, {**variables, "first": first, "after": after}, token=token))
        items += [(edge["cursor"], edge["node"]["id"]) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return items
        after = page["pageInfo"]["endCursor"]


async def backward(api: Api, token: str, operation: str, root: Any, variables: dict, last: int) -> list[tuple[str, str]]:
    """(cursor, id) of every item, page by page from the end, each page put before the ones read."""
    items: list[tuple[str, str]] = []
    before = None
    while True:
        page = root(await api.data(operation, {**variables, "last": last, "before": before}, token=token))
        edges = [(edge["cursor"], edge["node"]["id"]) for edge in page["edges"]]
        assert len(edges) <= last
        assert page["pageInfo"]["hasNextPage"] is (before is not None)
        if edges:
            assert (page["pageInfo"]["startCursor"], page["pageInfo"]["endCursor"]) == (edges[0][0], edges[-1][0])
        items = edges + items
        if not page["pageInfo"]["hasPreviousPage"]:
            return items
        before = page["pageInfo"]["startCursor"]


def assets_root(data: dict) -> dict:
    return data["assets"]


async def test_assets_walk_back_to_the_same_list_in_every_order(api: Api, contributor: str) -> None:
    # Names tie; about half have a data timestamp (some equal), the rest none: nulls sort first
    # ascending, last descending.
    for i in range(11):
        when = {"dataTimestamp": f"2026-01-0{1 + i % 3}T00:00:00Z"} if i % 2 else {}
        await factories.value_asset(api, contributor, name=f"v{i % 3}", **when)
    for order in (None, {"field": "NAME", "direction": "ASC"}, {"field": "NAME", "direction": "DESC"},
                  {"field": "DATA_TIMESTAMP", "direction": "ASC"}, {"field": "DATA_TIMESTAMP", "direction": "DESC"}):
        variables = {"orderBy": order}
        ahead = await forward(api, contributor, "Assets", assets_root, variables, first=4)
        assert len(ahead) == 11 and len({i for _, i in ahead}) == 11, order
        for last in (1, 3, 11, 50):
            assert await backward(api, contributor, "Assets", assets_root, variables, last=last) == ahead, (order, last)
        # `before` an item in the middle: the `last` items just ahead of it.
        middle = (await api.data("Assets", {**variables, "last": 3, "before": ahead[7][0]}, token=contributor))["assets"]
        assert [e["node"]["id"] for e in middle["edges"]] == [i for _, i in ahead[4:7]]
        assert middle["pageInfo"]["hasPreviousPage"] is True and middle["pageInfo"]["hasNextPage"] is True


async def test_a_collections_items_page_back_as_a_parents_child_list(api: Api, contributor: str) -> None:
    coll = await factories.collection(api, contributor, "scans")
    assets = [await factories.value_asset(api, contributor, name=f"a{i}") for i in range(7)]
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": a["id"], "path": f"p/{n}"} for n, a in enumerate(assets)]}}, token=contributor)

    def items(data: dict) -> dict:
        return data["collection"]["items"]

    ahead = await forward(api, contributor, "Collection", items, {"id": coll["id"]}, first=3)
    assert len(ahead) == 7
    assert await backward(api, contributor, "Collection", items, {"id": coll["id"]}, last=2) == ahead
    # Without `before`: the list's last items.
    tail = items(await api.data("Collection", {"id": coll["id"], "last": 2}, token=contributor))
    assert [e["node"]["id"] for e in tail["edges"]] == [i for _, i in ahead[-2:]] and tail["totalCount"] == 7


async def test_backward_arguments_that_do_not_fit_are_refused_by_name(api: Api, admin: str) -> None:
    page = (await api.data("ApiTokens", {"first": 1}, token=admin))["apiTokens"]
    cursor = page["pageInfo"]["endCursor"]
    cases = [({"first": 2, "last": 2}, "last"), ({"last": 2, "after": cursor}, "after"),
             ({"before": cursor, "after": cursor}, "after"), ({"last": 0}, "last"), ({"last": 10_000}, "last"),
             ({"last": 2, "before": "garbage!"}, "before")]
    for variables, field in cases:
        error = await api.error("ApiTokens", variables, token=admin)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, variables


async def test_an_empty_cursor_is_none_either_way(api: Api, contributor: str) -> None:
    """`after: ""` read as no cursor; `before: ""` gave the list's last page but said more followed it."""
    for i in range(3):
        await factories.value_asset(api, contributor, name=f"v{i}")
    for variables in ({"last": 2, "before": ""}, {"first": 2, "after": ""}):
        empty = (await api.data("Assets", variables, token=contributor))["assets"]
        none = (await api.data("Assets", {**variables, "before": None, "after": None}, token=contributor))["assets"]
        assert empty == none, variables
    assert none["pageInfo"]["hasNextPage"] is True
    end = (await api.data("Assets", {"last": 2, "before": ""}, token=contributor))["assets"]
    assert end["pageInfo"]["hasNextPage"] is False and end["pageInfo"]["hasPreviousPage"] is True


LAST_ITEMS = """
query LastItems($last: Int) {
  collections(first: 10) { edges { node { name items(last: $last) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id path } } } } } }
}
"""


@pytest.mark.parametrize("budget", [1000, 4])
async def test_the_last_items_of_a_page_of_parents_are_each_ones_own(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """`last` without a cursor under a list of parents is read for all of them at once (as `first`
    is: resolvers/loaders.py), and gives each parent what it gives that parent alone, wherever the
    batch's budget ends (a parent past it gets its own query)."""
    monkeypatch.setattr(loaders_module, "CHILD_BUDGET", budget)
    assets = [await factories.value_asset(api, contributor, name=f"a{i}") for i in range(6)]
    alone = {}
    for name, size in {"a": 6, "b": 1, "c": 0, "d": 4}.items():
        coll = await factories.collection(api, contributor, name)
        if size:
            await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
                {"assetId": a["id"], "path": f"{name}/{n}"} for n, a in enumerate(assets[:size])]}}, token=contributor)
        for last in (1, 2, 5):
            page = (await api.data("Collection", {"id": coll["id"], "last": last}, token=contributor))["collection"]["items"]
            alone[name, last] = ([(e["cursor"], e["node"]["path"]) for e in page["edges"]],
                                 page["pageInfo"]["hasPreviousPage"], page["pageInfo"]["hasNextPage"])
            assert [p for _, p in alone[name, last][0]] == [f"{name}/{n}" for n in range(size)][-last:]
    for last in (1, 2, 5):
        body = await api.run("LastItems", {"last": last}, token=contributor, query=LAST_ITEMS)
        assert not body.get("errors"), body["errors"]
        together = {e["node"]["name"]: e["node"]["items"] for e in body["data"]["collections"]["edges"]}
        assert {name: ([(e["cursor"], e["node"]["path"]) for e in page["edges"]], page["pageInfo"]["hasPreviousPage"],
                       page["pageInfo"]["hasNextPage"]) for name, page in together.items()} == {
            name: alone[name, last] for name in "abcd"}, last
