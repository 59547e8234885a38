"""What points at an asset: the datums using it and the assets derived from it, as connections read
through DataLoaders (a page of assets costs the same round trips with 3 and with 12 of them)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from bson import ObjectId

from documents.clock import utcnow
from graphlake.app import _maintenance_round
from migrations.liveness import this_process
from resolvers import loaders as loaders_module
from resolvers import pagination
from resolvers.context import AppState
from services import asset_users, lineage
from services.batches import LEASE
from services.schedules import SCHEDULES
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id


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
    rest = (await api.data("AssetReferrers", {"id": source["id"], "first": 2, "derivedAfter": after}, token=viewer))["asset"]
    assert [e["node"]["id"] for e in rest["derivedAssets"]["edges"]] == [derived[2]["id"]]
    assert not rest["derivedAssets"]["pageInfo"]["hasNextPage"]

    lonely = (await api.data("AssetReferrers", {"id": derived[0]["id"]}, token=viewer))["asset"]
    assert lonely["datums"] == {"totalCount": 0, "pageInfo": {"hasNextPage": False, "endCursor": None}, "edges": []}
    assert lonely["derivedAssets"]["totalCount"] == 0


async def referrer_commands(api: Api, served: Served, token: str, label: str) -> tuple[Counter[str], list[dict]]:
    served.commands.clear()
    data = await api.data("AssetsWithReferrers", {"filter": {"labelsAll": [label]}, "first": 50, "inner": 5}, token=token)
    return served.commands.tally(), [e["node"] for e in data["assets"]["edges"]]


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
    assert large_commands == small_commands, (small_commands, large_commands)
    # assets; the datums' uses of them, the datums and their count; the links to them, the derived assets and
    # their count; records and their count
    assert large_commands.total() <= 9, large_commands


async def test_referrer_pages_are_complete_when_the_batch_is_cut_short(
        api: Api, served: Served, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One query of the links, sorted by source, reads at most the budget; a parent it found too few for reads
    its own page."""
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
    # A batch of 9 links (3 parents x a page of 3) in source order reads a's 6, b's 1 and 2 of c's: only c,
    # where it stopped, reads its own page.
    sent = served.commands.tally()
    # Their totalCount reads the first LINKS_COUNTED links of every source at once, to count what is listed.
    assert sent["find asset_lineage"] == 1 + 1 + 1, sent  # the batch, c, and the count's
    assert sent["find assets"] == 1 + 1 + 1, sent  # the page of sources, every derived asset at once, the count's


async def test_a_datums_uses_come_and_go_with_it(api: Api, state: AppState, contributor: str) -> None:
    """Each datum stores its uses of its assets beside it (documents/dataset.DatumAsset): made with it,
    deleted after it. A use a crash left behind (its datum gone) is listed nowhere and holds nothing."""
    image = await factories.value_asset(api, contributor, "image")
    datum = await make_datum(api, contributor, {"image": image["id"], "preview": image["id"]})
    assert await state.db.datum_assets.count_documents({"asset_id": object_id(image["id"])}) == 1  # once per asset
    refused = await api.error("DeleteAsset", {"id": image["id"]}, token=contributor)
    assert refused["extensions"]["code"] == "CONFLICT" and datum["id"] in refused["message"], refused

    await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor)
    assert await state.db.datum_assets.count_documents({}) == 0
    # What a delete that died between the datum and its uses leaves: a use of a datum that is gone.
    await state.db.datum_assets.insert_one({"asset_id": object_id(image["id"]), "datum_id": object_id(datum["id"])})
    kept = await make_datum(api, contributor, {"image": image["id"]})
    page = (await api.data("AssetReferrers", {"id": image["id"], "first": 5}, token=contributor))["asset"]["datums"]
    assert [e["node"]["id"] for e in page["edges"]] == [kept["id"]]
    # A use whose batch is still being written is not taken for one left behind: its datum may yet come.
    writing = ObjectId()
    await state.db.write_batches.insert_one({"_id": writing, "collection": "datums", "collections": ["datum_assets", "datums"],
                                             **this_process(), "expires_at": utcnow() + LEASE})
    await state.db.datum_assets.insert_one({"asset_id": object_id(image["id"]), "datum_id": ObjectId(), "batch": writing})
    await api.data("DeleteDatum", {"id": kept["id"]}, token=contributor)
    deleted = await api.data("DeleteAsset", {"id": image["id"]}, token=contributor)
    assert deleted["deleteAsset"]["deleted"] and deleted["deleteAsset"]["broken"] == [], deleted
    # The delete cleared the use left behind, and kept the one being written.
    assert [u.get("batch") async for u in state.db.datum_assets.find()] == [writing]
    await state.db.write_batches.delete_one({"_id": writing})  # the journal is not among the collections emptied between tests


async def test_lineage_follows_updates_and_deletes(api: Api, state: AppState, contributor: str) -> None:
    """The links behind `derivedAssets` (services/lineage.py) follow `derivedFrom` as updateAsset changes
    it, and an asset's go when it is deleted."""
    first = await factories.value_asset(api, contributor, "first")
    second = await factories.value_asset(api, contributor, "second")
    child = await factories.value_asset(api, contributor, "child", derivedFrom=[first["id"]])

    async def derived(source: dict) -> list[str]:
        page = (await api.data("AssetReferrers", {"id": source["id"]}, token=contributor))["asset"]["derivedAssets"]
        assert page["totalCount"] == len(page["edges"])  # counts what is listed, not the links
        return [e["node"]["name"] for e in page["edges"]]

    assert (await derived(first), await derived(second)) == (["child"], [])
    await api.data("UpdateAsset", {"input": {"id": child["id"], "derivedFrom": [second["id"]]}}, token=contributor)
    assert (await derived(first), await derived(second)) == ([], ["child"])
    await api.data("UpdateAsset", {"input": {"id": child["id"], "derivedFrom": [first["id"], second["id"]]}}, token=contributor)
    assert (await derived(first), await derived(second)) == (["child"], ["child"])
    # A link the asset no longer backs (two updates racing, a relink lost to a crash) lists nothing, and the
    # asset's next write settles its links.
    await state.db.asset_lineage.insert_many([{"source_id": object_id(second["id"]), "asset_id": object_id(first["id"])},
                                              {"source_id": object_id(first["id"]), "asset_id": object_id(child["id"])}])
    assert await derived(second) == ["child"]
    assert await derived(first) == ["child"]  # its link doubled: listed, and counted, once
    await api.data("UpdateAsset", {"input": {"id": first["id"], "derivedFrom": []}}, token=contributor)
    await api.data("UpdateAsset", {"input": {"id": child["id"], "derivedFrom": [first["id"], second["id"]]}}, token=contributor)
    assert await state.db.asset_lineage.count_documents({}) == 2
    await api.data("DeleteAsset", {"id": child["id"]}, token=contributor)
    assert (await derived(first), await derived(second)) == ([], [])
    assert await state.db.asset_lineage.count_documents({}) == 0


async def test_a_batch_ending_while_a_delete_reads_its_use_keeps_the_asset(
        api: Api, state: AppState, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete reads a use, finds no datum yet (createDatums writes its uses first), and then its
    batch's journal entry is gone: the batch wrote its datum and ended in between. The use is no
    orphan: the delete looks for the datum again, finds it, and refuses (it once removed the use and
    went on, leaving a datum on a DELETED asset)."""
    image = await factories.value_asset(api, contributor, "image")
    datum = await make_datum(api, contributor, {"image": image["id"]})
    stored = await state.db.datums.find_one_and_delete({"_id": object_id(datum["id"])})  # not written yet...
    batch = ObjectId()  # ...by a batch still open
    await state.db.write_batches.insert_one({"_id": batch, "collection": "datums", "collections": ["datum_assets", "datums"],
                                             **this_process(), "expires_at": utcnow() + LEASE})
    await state.db.datum_assets.update_one({"datum_id": stored["_id"]}, {"$set": {"batch": batch}})
    datums = asset_users.Datum.get_pymongo_collection()

    class BatchEndsAfterFirstLook:
        """The datums, as the delete reads them: right after its first look, the batch writes its datum and ends."""
        looked = False

        async def distinct(self, key: str, query: dict) -> list:
            found = await datums.distinct(key, query)
            if not BatchEndsAfterFirstLook.looked:
                BatchEndsAfterFirstLook.looked = True
                await datums.insert_one(stored)
                await state.db.write_batches.delete_one({"_id": batch})
            return found

    monkeypatch.setattr(asset_users, "Datum", type("Datum", (), {"get_pymongo_collection": staticmethod(BatchEndsAfterFirstLook)}))
    refused = await api.error("DeleteAsset", {"id": image["id"]}, token=contributor)
    assert BatchEndsAfterFirstLook.looked
    assert refused["extensions"]["code"] == "CONFLICT" and datum["id"] in refused["message"], refused
    assert await state.db.datum_assets.count_documents({"datum_id": stored["_id"]}) == 1


@pytest.mark.parametrize("page", [None, 2])
async def test_the_daily_sweep_removes_the_uses_and_links_a_crash_left_behind(api: Api, state: AppState,
                                                                             contributor: str, page: int | None,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An asset's `datums` and `derivedAssets` skip uses and links nothing backs, and so does their
    `totalCount` (it counted them, while the pages left them out). The daily maintenance removes those a crash left behind, and keeps
    what may be in the middle of a write: a use whose batch is being written, a link younger than an
    hour (a create writes it before the asset names its source), the links of an asset deleted in the
    last hour (its delete may yet be undone). With pages of 2, an asset's uses and a pair's doubled
    links lie on several pages of the sweep."""
    if page:
        monkeypatch.setattr(asset_users, "USES_SWEPT", page)
        monkeypatch.setattr(lineage, "CHUNK", page)
    image = await factories.value_asset(api, contributor, "image")
    datum = await make_datum(api, contributor, {"image": image["id"]})
    writing = ObjectId()
    await state.db.write_batches.insert_one({"_id": writing, "collection": "datums", "collections": ["datum_assets", "datums"],
                                             **this_process(), "expires_at": utcnow() + LEASE})
    await state.db.datum_assets.insert_many([
        {"asset_id": object_id(image["id"]), "datum_id": ObjectId()},  # its datum's delete died before it
        {"asset_id": object_id(image["id"]), "datum_id": ObjectId(), "batch": writing},
        {"asset_id": object_id(image["id"]), "datum_id": ObjectId()}])

    source = await factories.value_asset(api, contributor, "source")
    child = await factories.value_asset(api, contributor, "child", derivedFrom=[source["id"]])
    gone_long = await factories.value_asset(api, contributor, "gone-long", derivedFrom=[source["id"]])
    gone_now = await factories.value_asset(api, contributor, "gone-now", derivedFrom=[source["id"]])
    for asset, when in ((gone_long, utcnow() - timedelta(hours=2)), (gone_now, utcnow())):  # deletes that died before unlink
        await state.db.assets.update_one({"_id": object_id(asset["id"])},
                                         {"$set": {"status": "DELETED", "deleted_at": when}})

    def old() -> ObjectId:  # an id made two hours ago (the rest of its bytes fresh)
        return ObjectId(ObjectId.from_datetime(utcnow() - timedelta(hours=2)).binary[:4] + ObjectId().binary[4:])

    async for link in state.db.asset_lineage.find():  # the links the creates wrote, as if long ago
        await state.db.asset_lineage.delete_one({"_id": link["_id"]})
        await state.db.asset_lineage.insert_one({**link, "_id": old()})
    await state.db.asset_lineage.insert_many([
        {"_id": old(), "source_id": object_id(source["id"]), "asset_id": object_id(child["id"])},  # doubled
        {"_id": old(), "source_id": object_id(source["id"]), "asset_id": object_id(image["id"])},  # not named
        {"_id": old(), "source_id": object_id(source["id"]), "asset_id": ObjectId()},  # a create that died
        {"source_id": object_id(source["id"]), "asset_id": object_id(image["id"])},  # young: a create's, maybe
    ])

    async def counts() -> tuple[int, int]:
        datums = (await api.data("AssetReferrers", {"id": image["id"], "first": 1}, token=contributor))["asset"]["datums"]
        derived = (await api.data("AssetReferrers", {"id": source["id"], "first": 1}, token=contributor))["asset"]
        return datums["totalCount"], derived["derivedAssets"]["totalCount"]

    # What the pages list: the datum; the child (not the links of the DELETED assets, nor the others).
    assert await counts() == (1, 1)
    stored = ({"asset_id": object_id(image["id"])}, {"source_id": object_id(source["id"])})
    assert (await state.db.datum_assets.count_documents(stored[0]), await state.db.asset_lineage.count_documents(stored[1])) == (4, 7)
    await state.db[SCHEDULES].delete_one({"_id": "stale-links"})  # due now, whenever the server last ran it
    await _maintenance_round(state, time.monotonic())
    # The datum, and the use being written; the child, the young link, the links of the asset deleted just now.
    assert (await state.db.datum_assets.count_documents(stored[0]), await state.db.asset_lineage.count_documents(stored[1])) == (2, 3)
    assert await counts() == (1, 1)
    page = (await api.data("AssetReferrers", {"id": source["id"], "first": 10}, token=contributor))["asset"]["derivedAssets"]
    assert [e["node"]["name"] for e in page["edges"]] == ["child"]
    assert await state.db.datum_assets.count_documents({"datum_id": object_id(datum["id"])}) == 1
    await state.db.write_batches.delete_one({"_id": writing})  # the journal is not among the collections emptied between tests


async def test_a_count_checks_the_first_links_and_counts_the_rest(api: Api, state: AppState, contributor: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`totalCount` of `datums` checks the datums of the first LINKS_COUNTED uses, as a page does, so
    a use a crash left behind there is not counted; past them, the uses are counted from their index
    (a count reads a bounded number of uses, whatever the asset holds), the crash's among them."""
    monkeypatch.setattr(pagination, "LINKS_COUNTED", 3)
    image = await factories.value_asset(api, contributor, "image")
    for _ in range(2):
        await make_datum(api, contributor, {"image": image["id"]})
    await state.db.datum_assets.insert_one({"asset_id": object_id(image["id"]), "datum_id": ObjectId()})  # third: checked

    async def count() -> int:
        return (await api.data("AssetReferrers", {"id": image["id"], "first": 1}, token=contributor))["asset"]["datums"]["totalCount"]

    assert await count() == 2
    await make_datum(api, contributor, {"image": image["id"]})
    await state.db.datum_assets.insert_one({"asset_id": object_id(image["id"]), "datum_id": ObjectId()})  # fifth: past them
    assert await count() == 4
