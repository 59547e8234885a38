"""What points at an asset: the datums using it and the assets derived from it, as connections read
through DataLoaders (a page of assets costs the same round trips with 3 and with 12 of them)."""

from __future__ import annotations

import pytest

from resolvers import loaders as loaders_module
from tests import factories
from tests.conftest import Served
from tests.operations import Api


async def make_datum(api: Api, token: str, roles: dict[str, str]) -> dict:
    inputs = [{"roles": [{"role": role, "assetId": asset_id} for role, asset_id in roles.items()]}]
    return (await api.data("CreateDatums", {"inputs": inputs}, token=token))["createDatums"][0]


async def test_datums_and_derived_assets_of_an_asset(api: Api, contributor: str, viewer: str) -> None:
    source = await factories.value_asset(api, contributor, "source")
    other = await factories.value_asset(api, contributor, "other")
    derived = [await factories.value_asset(api, contributor, f"d{i}", derivedFrom=[source["id"], other["id"]])
               for i in range(3)]
    await factories.value_asset(api, contributor, "unrelated", derivedFrom=[other["id"]])
    gone = await factories.value_asset(api, contributor, "gone", derivedFrom=[source["id"]])
    await api.data("DeleteAsset", {"id": gone["id"]}, token=contributor)
    # The same asset in two roles of one datum: that datum is listed, and counted, once.
    twice = await make_datum(api, contributor, {"image": source["id"], "preview": source["id"]})
    once = await make_datum(api, contributor, {"image": other["id"], "mask": source["id"]})
    await make_datum(api, contributor, {"image": other["id"]})

    page = (await api.data("AssetReferrers", {"id": source["id"], "first": 2}, token=viewer))["asset"]
    assert [e["node"]["id"] for e in page["datums"]["edges"]] == [twice["id"], once["id"]]
    assert page["datums"]["totalCount"] == 2 and not page["datums"]["pageInfo"]["hasNextPage"]
    assert [e["node"]["name"] for e in page["derivedAssets"]["edges"]] == ["d0", "d1"]
    assert page["derivedAssets"]["totalCount"] == 3 and page["derivedAssets"]["pageInfo"]["hasNextPage"]
    after = page["derivedAssets"]["pageInfo"]["endCursor"]
    rest = (await api.data("AssetReferrers", {"id": source["id"], "first": 2, "after": after}, token=viewer))["asset"]
    assert [e["node"]["id"] for e in rest["derivedAssets"]["edges"]] == [derived[2]["id"]]
    assert not rest["derivedAssets"]["pageInfo"]["hasNextPage"]

    lonely = (await api.data("AssetReferrers", {"id": derived[0]["id"]}, token=viewer))["asset"]
    assert lonely["datums"] == {"totalCount": 0, "pageInfo": {"hasNextPage": False, "endCursor": None}, "edges": []}
    assert lonely["derivedAssets"]["totalCount"] == 0


async def referrer_commands(api: Api, served: Served, token: str, label: str) -> tuple[list[str], list[dict]]:
    served.commands.clear()
    data = await api.data("AssetsWithReferrers", {"filter": {"labelsAll": [label]}, "first": 50, "inner": 5}, token=token)
    return list(served.commands.commands), [e["node"] for e in data["assets"]["edges"]]


async def test_referrers_of_a_page_of_assets_cost_constant_round_trips(
        api: Api, served: Served, contributor: str, viewer: str) -> None:
    await api.data("Me", token=viewer)  # the token's lookup, remembered from here on, is not the query's
    for label, count in (("small", 3), ("large", 12)):
        for i in range(count):
            source = await factories.value_asset(api, contributor, f"{label}{i}", labels=[label])
            for j in range(2):
                await factories.value_asset(api, contributor, f"{label}{i}-d{j}", derivedFrom=[source["id"]])
            await make_datum(api, contributor, {"image": source["id"]})
    small_commands, small = await referrer_commands(api, served, viewer, "small")
    large_commands, large = await referrer_commands(api, served, viewer, "large")
    assert len(small) == 3 and len(large) == 12
    for node in large:
        assert node["datums"]["totalCount"] == 1 and len(node["datums"]["edges"]) == 1
        assert sorted(e["node"]["name"] for e in node["derivedAssets"]["edges"]) == [f"{node['name']}-d0", f"{node['name']}-d1"]
        assert node["derivedAssets"]["totalCount"] == 2 and not node["derivedAssets"]["pageInfo"]["hasNextPage"]
    assert len(large_commands) == len(small_commands), (small_commands, large_commands)
    # assets; datums and their count; derived assets and their count; records and their count
    assert len(large_commands) <= 7, large_commands


async def test_referrer_pages_are_complete_when_the_batch_is_cut_short(
        api: Api, served: Served, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One query sorted by `_id` reads at most the budget; a parent it found too few for reads its own page."""
    monkeypatch.setattr(loaders_module, "CHILD_BUDGET", 4)
    sources = {name: await factories.value_asset(api, contributor, name, labels=["cut"]) for name in ("a", "b", "c")}
    for name, count in (("a", 6), ("b", 1), ("c", 6)):  # made in this order: the batch reads a's first
        for i in range(count):
            await factories.value_asset(api, contributor, f"{name}-{i}", derivedFrom=[sources[name]["id"]])
    served.commands.clear()
    data = await api.data("AssetsWithReferrers", {"filter": {"labelsAll": ["cut"]}, "first": 3, "inner": 2}, token=contributor)
    pages = {e["node"]["name"]: e["node"]["derivedAssets"] for e in data["assets"]["edges"]}
    assert {name: [e["node"]["name"] for e in page["edges"]] for name, page in pages.items()} == {
        "a": ["a-0", "a-1"], "b": ["b-0"], "c": ["c-0", "c-1"]}
    assert {name: page["pageInfo"]["hasNextPage"] for name, page in pages.items()} == {"a": True, "b": False, "c": True}
    assert {name: page["totalCount"] for name, page in pages.items()} == {"a": 6, "b": 1, "c": 6}
    # A batch of 9 (3 parents x a page of 3) ends inside c: b and c, found short, read their own pages.
    asset_finds = [c for c, coll in zip(served.commands.commands, served.commands.collections, strict=True)
                   if coll == "assets" and c == "find"]
    assert len(asset_finds) == 1 + 1 + 2, served.commands.commands  # the page of sources, the batch, b and c
