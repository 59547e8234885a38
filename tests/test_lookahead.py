"""Look-ahead (resolvers/lookahead.py): a nested page's items get what they select without an
awaitable each, and give the same answer as resolving each item on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from strawberry.dataloader import DataLoader

from resolvers.lookahead import now_or_later
from resolvers.loop_slices import SlicedExecutor
from services.node_ids import NodeType, encode_id
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
