"""Look-ahead (resolvers/lookahead.py): a nested page's items get what they select without an
awaitable each, and give the same answer as resolving each item on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from strawberry.dataloader import DataLoader

from resolvers.loaders import ByIdLoader
from resolvers.lookahead import node_now_or_later, now_or_later
from resolvers.loop_slices import SlicedExecutor
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import Served
from tests.operations import Api
from tests.seed import seed_version

# VersionGraph's nested part three ways: as the look-ahead covers it (fragments, an alias, `first`
# as a literal and as a variable, a null cursor as an exporter sends for its first page), and with a
# filter, which it leaves to each item's own resolver.
QUERY = """
query Nested($id: ID!, $first: Int, $records: Int, $recordsAfter: String) {
  datasetVersion(id: $id) {
    datums(first: $first) { edges { node { id ...Roles ...Records ...Filtered } } }
  }
}
fragment Roles on Datum { roles { role asset { id name } } image: asset(role: "image") { id kind } }
fragment Records on Datum {
  annotations(first: 2) { edges { node { id label set { id name } asset { id } } } pageInfo { hasNextPage } }
  all: annotations(first: $records, after: $recordsAfter) { edges { node { id label set { purpose } } } }
}
fragment Filtered on Datum {
  filtered: annotations(first: 2, filter: {labels: ["defect", "ok"]}) { edges { node { id label set { id name } asset { id } } }
                                               pageInfo { hasNextPage } }
}
"""


async def nested(api: Api, token: str, version_id: object, first: int) -> dict[str, Any]:
    body = await api.run("Nested", {"id": encode_id(NodeType.DATASET_VERSION, version_id), "first": first,
                                    "records": 20, "recordsAfter": None}, token=token, query=QUERY)
    assert not body.get("errors"), body["errors"]
    return body["data"]["datasetVersion"]["datums"]


def count_awaited(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A counter of the resolver results the executor awaits (each one an awaitable it had to wait on)."""
    awaited = [0]
    original = SlicedExecutor.with_abort_signal

    async def counting(self: SlicedExecutor, awaitable: Any) -> Any:
        awaited[0] += 1
        return await original(self, awaitable)

    monkeypatch.setattr(SlicedExecutor, "with_abort_signal", counting)
    return awaited


async def test_a_nested_page_awaits_the_same_few_results_at_any_size(
        api: Api, served: Served, viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    small = await seed_version(3, name="small")
    large = await seed_version(40, name="large")
    awaited = count_awaited(monkeypatch)
    await nested(api, viewer, small, 50)
    small_awaits, awaited[0] = awaited[0], 0
    page = await nested(api, viewer, large, 50)
    assert len(page["edges"]) == 40
    # Without the look-ahead, each datum's roles' assets, its annotation pages and their records' sets
    # and assets were awaited one by one (about 12 a datum here). With it, only the page it leaves
    # to each datum's own resolver (the filtered one) is: its records' sets and assets were loaded
    # ahead for the other pages, so they are ready.
    assert awaited[0] - small_awaits == 40 - 3, (small_awaits, awaited[0])


async def test_looked_ahead_pages_are_what_each_item_reads_on_its_own(api: Api, served: Served, viewer: str) -> None:
    version = await seed_version(5)
    for edge in (await nested(api, viewer, version, 5))["edges"]:
        datum = edge["node"]
        assert [r["role"] for r in datum["roles"]] == ["image", "mask"]
        assert datum["image"] == {"id": datum["roles"][0]["asset"]["id"], "kind": "TEXT"}
        # The looked-ahead page and the one its resolver read alone (the filter): the same records,
        # sets, assets and next-page flag.
        assert datum["annotations"] == datum["filtered"]
        assert len(datum["annotations"]["edges"]) == 2 and datum["annotations"]["pageInfo"]["hasNextPage"]
        assert [e["node"]["id"] for e in datum["all"]["edges"]][:2] == [e["node"]["id"] for e in datum["annotations"]["edges"]]
        assert len(datum["all"]["edges"]) == 3
        assert {e["node"]["set"]["purpose"] for e in datum["all"]["edges"]} == {"GROUND_TRUTH"}


async def test_an_out_of_range_page_below_a_looked_ahead_list_is_reported_on_its_own_field(
        api: Api, served: Served, viewer: str) -> None:
    version = await seed_version(2)
    body = await api.run("Nested", {"id": encode_id(NodeType.DATASET_VERSION, version), "first": 2, "records": 0},
                         token=viewer, query=QUERY)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert {tuple(e["path"][-2:]) for e in body["errors"]} == {("node", "all")}


async def test_now_or_later_gives_a_loaded_answer_at_once_and_asks_for_others_only_when_awaited() -> None:
    asked: list[list[int]] = []

    async def load(keys: list[int]) -> list[int]:
        asked.append(list(keys))
        return [key * 10 for key in keys]

    loader = DataLoader(load_fn=load)
    later = now_or_later(loader, 1, lambda n: n + 1)
    assert asyncio.iscoroutine(later) and asked == []  # not asked before the executor runs it
    assert await later == 11 and asked == [[1]]
    assert now_or_later(loader, 1, lambda n: n + 1) == 11  # loaded: a plain value
    assert asked == [[1]]


async def test_a_node_is_converted_once_per_request_however_many_items_name_it() -> None:
    """A page of 1,000 records names its one set 1,000 times: one object serves them all."""
    async def load(keys: list[int]) -> list[int]:
        return [key * 10 for key in keys]

    made: list[int] = []

    def convert(n: int) -> dict[str, int]:
        made.append(n)
        return {"n": n}

    loader = ByIdLoader(load_fn=load)
    later = node_now_or_later(loader, 1, convert)
    assert asyncio.iscoroutine(later) and await later == {"n": 10}
    first = node_now_or_later(loader, 1, convert)
    assert first == {"n": 10} and all(node_now_or_later(loader, 1, convert) is first for _ in range(3))
    assert made == [10, 10]  # the awaited one, then one for every item that found it loaded
    loader.prime(1, 7, force=True)  # a document written since: its new state, converted anew
    assert node_now_or_later(loader, 1, convert) == {"n": 7} and made == [10, 10, 7]
    loader.clear(1)  # forgotten: asked for again, not answered from the object made before
    again = node_now_or_later(loader, 1, convert)
    assert asyncio.iscoroutine(again) and await again == {"n": 10} and made == [10, 10, 7, 10]


MASKS = """
query Masks($id: ID!) {
  datasetVersion(id: $id) {
    datums(first: 50) { edges { node { id
      annotations(first: 5) { edges { node { kind geometry { __typename ... on Mask { asset { id } } } } } } } } }
  }
}
"""


async def masked_version(api: Api, token: str, name: str, count: int) -> tuple[str, dict[str, str]]:
    """A version of `count` datums, each with a MASK record naming its mask role's asset; and which
    mask each datum's record must show."""
    schema = await factories.schema(api, token, name=f"{name}-schema")
    labels = await factories.annotation_set(api, token, schema["id"], name=f"{name}-labels")
    datums = await factories.datums(api, token, count)
    masks = {d["id"]: next(r["asset"]["id"] for r in d["roles"] if r["role"] == "mask") for d in datums}
    records = [{"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "MASK", "label": "dent",
                "geometry": {"mask": {"assetId": masks[d["id"]]}}} for d in datums]
    await api.data("AddAnnotations", {"setId": labels["id"], "records": records}, token=token)
    dataset = await factories.dataset(api, token, name=name)
    version = await factories.version(api, token, dataset["id"], "v1", addDatums=list(masks),
                                      addAnnotationSets=[labels["id"]])
    return version["id"], masks


async def test_records_mask_assets_are_looked_ahead_too(
        api: Api, served: Served, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    small, _ = await masked_version(api, contributor, "small", 2)
    large, masks = await masked_version(api, contributor, "large", 12)
    awaited = count_awaited(monkeypatch)
    await api.run("Masks", {"id": small}, token=contributor, query=MASKS)
    small_awaits, awaited[0] = awaited[0], 0
    body = await api.run("Masks", {"id": large}, token=contributor, query=MASKS)
    assert not body.get("errors"), body["errors"]
    shown = {e["node"]["id"]: [a["node"]["geometry"]["asset"]["id"] for a in e["node"]["annotations"]["edges"]]
             for e in body["data"]["datasetVersion"]["datums"]["edges"]}
    assert shown == {datum: [mask] for datum, mask in masks.items()}
    assert awaited[0] == small_awaits, (small_awaits, awaited[0])  # no await per datum, record or mask
