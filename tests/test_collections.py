"""Collections: items with paths and splits, retention pins, deletion that never loses a pinned asset."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from documents.asset import Asset
from documents.clock import utcnow
from documents.collection import Collection, CollectionItem
from documents.common import RetentionOwnerType
from documents.retention import AssetRetention
from graphlake import app as app_module
from resolvers.context import AppState
from services import bulk_deletes, collections, retention
from services.assets import collect_unpinned
from services.errors import GraphlakeError
from services.schedules import SCHEDULES
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id


async def add(api: Api, token: str, collection_id: str, items: list[dict]) -> dict:
    return (await api.data("AddToCollection", {"input": {"collectionId": collection_id, "items": items}}, token=token))


async def test_items_with_paths_and_splits(api: Api, contributor: str) -> None:
    coll = await factories.collection(api, contributor, "scans")
    assets = [await factories.value_asset(api, contributor, name=f"a{i}") for i in range(4)]
    await add(api, contributor, coll["id"], [
        {"assetId": assets[0]["id"], "path": "cam1/0001.png", "split": "TRAIN"},
        {"assetId": assets[1]["id"], "path": "cam1/0002.png", "split": "TEST"},
        {"assetId": assets[2]["id"], "path": "cam2/0001.png"},
    ])
    data = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]
    assert data["itemCount"] == 3 and data["items"]["totalCount"] == 3
    assert data["items"]["edges"][0]["node"]["collection"]["id"] == coll["id"]
    cam1 = (await api.data("Collection", {"id": coll["id"], "pathPrefix": "cam1/"}, token=contributor))["collection"]
    assert [e["node"]["path"] for e in cam1["items"]["edges"]] == ["cam1/0001.png", "cam1/0002.png"]
    test = (await api.data("Collection", {"id": coll["id"], "split": "TEST"}, token=contributor))["collection"]
    assert [e["node"]["asset"]["id"] for e in test["items"]["edges"]] == [assets[1]["id"]]
    # adding again updates path and split instead of duplicating
    await add(api, contributor, coll["id"], [{"assetId": assets[0]["id"], "path": "cam1/renamed.png", "split": "VALIDATION"}])
    again = (await api.data("Collection", {"id": coll["id"], "pathPrefix": "cam1/renamed"}, token=contributor))["collection"]
    assert again["itemCount"] == 3 and again["items"]["edges"][0]["node"]["split"] == "VALIDATION"
    asset = (await api.data("Asset", {"id": assets[0]["id"]}, token=contributor))["asset"]
    assert [e["node"]["name"] for e in asset["collections"]["edges"]] == ["scans"]
    assert [r["ownerType"] for r in asset["retentions"]] == ["COLLECTION"] and asset["retentions"][0]["ownerId"] == coll["id"]
    # item pages walk with cursors
    page = (await api.data("Collection", {"id": coll["id"], "first": 2}, token=contributor))["collection"]["items"]
    rest = (await api.data("Collection", {"id": coll["id"], "first": 2, "after": page["pageInfo"]["endCursor"]},
                           token=contributor))["collection"]["items"]
    assert page["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"] and len(rest["edges"]) == 1


async def test_new_items_go_in_one_insert_and_present_ones_move(api: Api, contributor: str, served: Served) -> None:
    """Items new to the collection are inserted together (no statement per item: FerretDB runs each
    as a transaction); those it holds already keep when and by whom they were added, and move."""
    coll = await factories.collection(api, contributor, "mixed")
    assets = [await factories.value_asset(api, contributor, name=f"m{i}") for i in range(30)]
    await add(api, contributor, coll["id"], [{"assetId": a["id"], "path": f"first/{i}"} for i, a in enumerate(assets[:2])])
    before = {d.asset_id: d.added_at for d in await CollectionItem.find_all().to_list()}
    served.commands.clear()
    await add(api, contributor, coll["id"], [{"assetId": a["id"], "path": f"new/{i:02}", "split": "TRAIN"}
                                             for i, a in enumerate(assets)])
    item_writes = [c for c, name in zip(served.commands.commands, served.commands.collections, strict=True)
                   if name == "collection_items" and c in ("insert", "update")]
    assert item_writes == ["insert", "update"], item_writes  # one insert for all; the two present ones updated
    assert [q for c, q in served.commands.updates if c == "collection_items"] == [
        {"collection_id": object_id(coll["id"]), "asset_id": object_id(a["id"])} for a in assets[:2]]
    items = {d.asset_id: d for d in await CollectionItem.find_all().to_list()}
    assert len(items) == 30 and {d.path for d in items.values()} == {f"new/{i:02}" for i in range(30)}
    assert {d.split.value for d in items.values()} == {"TRAIN"}
    assert all(items[a].added_at == at for a, at in before.items())  # moved, not added again
    data = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]
    assert data["itemCount"] == 30
    served.commands.clear()
    await add(api, contributor, coll["id"], [{"assetId": a["id"]} for a in assets[:3]])  # all present: moved to no path
    assert [c for c, name in zip(served.commands.commands, served.commands.collections, strict=True)
            if name == "collection_items" and c in ("insert", "update")] == ["insert", "update"]
    assert [d.path for d in await CollectionItem.find({"asset_id": {"$in": [object_id(a["id"]) for a in assets[:3]]}}).to_list()] == [None] * 3


async def test_bad_items_write_nothing(api: Api, contributor: str) -> None:
    coll = await factories.collection(api, contributor)
    asset = await factories.value_asset(api, contributor)
    gone = await factories.value_asset(api, contributor, "gone")
    await api.data("DeleteAsset", {"id": gone["id"]}, token=contributor)
    cases = [
        ([{"assetId": asset["id"], "path": "../etc/passwd"}], "BAD_USER_INPUT", "items[0].path"),
        ([{"assetId": asset["id"], "path": "/abs"}], "BAD_USER_INPUT", "items[0].path"),
        ([{"assetId": asset["id"], "path": "a//b"}], "BAD_USER_INPUT", "items[0].path"),
        ([{"assetId": asset["id"]}, {"assetId": asset["id"]}], "BAD_USER_INPUT", "items[1].assetId"),
        ([{"assetId": asset["id"]}, {"assetId": "QXNzZXQ6NjRiMDAwMDAwMDAwMDAwMDAwMDAwMDAw"}], "NOT_FOUND", "items[1].assetId"),
        ([{"assetId": asset["id"]}, {"assetId": gone["id"]}], "CONFLICT", "items[1].assetId"),  # DELETED, said so
        ([], "BAD_USER_INPUT", "items"),
    ]
    for items, code, field in cases:
        error = await api.error("AddToCollection", {"input": {"collectionId": coll["id"], "items": items}}, token=contributor)
        assert error["extensions"]["code"] == code and error["extensions"]["field"] == field, (items, error)
    assert await CollectionItem.count() == 0 and await AssetRetention.count() == 0


async def test_names_are_unique_and_updatable(api: Api, contributor: str) -> None:
    first = await factories.collection(api, contributor, "a")
    await factories.collection(api, contributor, "b")
    error = await api.error("CreateCollection", {"input": {"name": "a"}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "name"} and "exists already" in error["message"]
    # A collection being deleted holds its name until the delete ends: the error says so.
    second = await Collection.get_pymongo_collection().find_one({"name": "b"})
    await Collection.get_pymongo_collection().update_one({"_id": second["_id"]}, {"$set": {"deleting_at": utcnow()}})
    error = await api.error("CreateCollection", {"input": {"name": "b"}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "name"} and "being deleted" in error["message"]
    await Collection.get_pymongo_collection().update_one({"_id": second["_id"]}, {"$set": {"deleting_at": None}})
    error = await api.error("UpdateCollection", {"input": {"id": first["id"], "name": "b"}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT"
    renamed = (await api.data("UpdateCollection", {"input": {"id": first["id"], "name": "c", "metadata": {"x": [1]}}},
                              token=contributor))["updateCollection"]
    assert renamed["name"] == "c" and renamed["metadata"] == {"x": [1]}
    listed = (await api.data("Collections", {"nameContains": "C"}, token=contributor))["collections"]
    assert [e["node"]["name"] for e in listed["edges"]] == ["c"]
    # By exact name (case counts), alone or with nameContains; an operator-shaped name is a plain string.
    for variables, names in [({"name": "b"}, ["b"]), ({"name": "B"}, []), ({"name": "b", "nameContains": "c"}, []),
                             ({"name": "c", "nameContains": "c"}, ["c"]), ({"name": '{"$ne": null}'}, [])]:
        listed = (await api.data("Collections", variables, token=contributor))["collections"]
        assert [e["node"]["name"] for e in listed["edges"]] == names, variables


async def test_collections_by_name_under_aliases_are_one_read(api: Api, contributor: str, served: Served) -> None:
    """`collections(name:)` under three aliases (a client looking up several collections at once) sent
    one find per alias; like `dataset(name:)` and `assetByAlias`, the names go to a loader: one read.
    The pages are the list's all the same: its cursors, its totalCount, paging on from them."""
    for name in ("x1", "x2", "x3"):
        await factories.collection(api, contributor, name)
    page = "totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id name } }"
    query = (f'query Named {{ a: collections(name: "x1") {{ {page} }} b: collections(name: "x3", first: 1) {{ {page} }} '
             f'c: collections(name: "none", last: 2) {{ {page} }} }}')
    await api.data("Collections", {"first": 1}, token=contributor)  # the token's lookup, remembered, is not the query's
    served.commands.clear()
    body = await api.run("Named", token=contributor, query=query)
    assert not body.get("errors"), body
    assert served.commands.tally("collections") == {"find": 1}, served.commands.tally()
    named = body["data"]
    assert [[e["node"]["name"] for e in named[alias]["edges"]] for alias in "abc"] == [["x1"], ["x3"], []]
    assert [named[alias]["totalCount"] for alias in "abc"] == [1, 1, 0]
    assert named["c"]["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None}
    listed = {e["node"]["name"]: e["cursor"] for e in
              (await api.run("Listed", token=contributor, query=f"query Listed {{ collections {{ {page} }} }}"))
              ["data"]["collections"]["edges"]}
    for alias, name in (("a", "x1"), ("b", "x3")):
        info = named[alias]["pageInfo"]
        assert named[alias]["edges"][0]["cursor"] == info["startCursor"] == info["endCursor"] == listed[name], alias
        assert not info["hasNextPage"] and not info["hasPreviousPage"], alias
    # From a cursor of the loaded page, the list's own read goes on: nothing after, nothing before.
    for paged in (f'first: 1, after: "{listed["x1"]}"', f'last: 1, before: "{listed["x1"]}"'):
        on = (await api.run("On", token=contributor, query=f'query On {{ collections(name: "x1", {paged}) {{ {page} }} }}'))
        assert on["data"]["collections"]["edges"] == [], (paged, on)


async def test_remove_releases_only_this_collections_pin(api: Api, contributor: str) -> None:
    asset = await factories.value_asset(api, contributor)
    one, two = await factories.collection(api, contributor, "one"), await factories.collection(api, contributor, "two")
    for coll in (one, two):
        await add(api, contributor, coll["id"], [{"assetId": asset["id"]}])
    await api.data("RemoveFromCollection", {"collectionId": one["id"], "assetIds": [asset["id"]]}, token=contributor)
    stored = await Asset.get(object_id(asset["id"]))
    assert stored.collection_ids == [object_id(two["id"])] and stored.unpinned_at is None
    await api.data("RemoveFromCollection", {"collectionId": two["id"], "assetIds": [asset["id"]]}, token=contributor)
    assert (await Asset.get(object_id(asset["id"]))).unpinned_at is not None


async def test_delete_collection_keeps_assets_others_pin(api: Api, contributor: str, admin: str) -> None:
    shared = await factories.value_asset(api, contributor, name="shared")
    only_here = await factories.value_asset(api, contributor, name="only-here")
    doomed, other = await factories.collection(api, contributor, "doomed"), await factories.collection(api, contributor, "other")
    await add(api, contributor, doomed["id"], [{"assetId": shared["id"]}, {"assetId": only_here["id"]}])
    await add(api, contributor, other["id"], [{"assetId": shared["id"]}])
    assert (await api.data("DeleteCollection", {"id": doomed["id"]}, token=contributor))["deleteCollection"]["deleted"]
    assert (await api.data("Collection", {"id": doomed["id"]}, token=contributor))["collection"] is None
    shared_doc, only_doc = await Asset.get(object_id(shared["id"])), await Asset.get(object_id(only_here["id"]))
    assert shared_doc.status.value == "ACTIVE" and shared_doc.unpinned_at is None
    assert only_doc.status.value == "ACTIVE" and only_doc.unpinned_at is not None  # marked for GC, not dropped
    assert await AssetRetention.find({"owner_id": object_id(doomed["id"])}).count() == 0
    assert await CollectionItem.find({"collection_id": object_id(doomed["id"])}).count() == 0
    # a forced asset delete takes it out of its collections
    await api.data("DeleteAsset", {"id": shared["id"], "force": True}, token=admin)
    assert (await api.data("Collection", {"id": other["id"]}, token=contributor))["collection"]["itemCount"] == 0


async def test_assets_many_others_pin_are_told_apart_without_reading_every_pin(
        api: Api, contributor: str, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether another pin holds an asset is read for a few pins an asset (retention._held): an image
    versioned every night holds hundreds. Past what that read holds, each asset left is asked alone,
    for two pins at most; the answer is the same as reading them all."""
    monkeypatch.setattr(retention, "PINS_READ_PER_ASSET", 1)
    crowded = [await factories.value_asset(api, contributor, name=f"crowded-{i}") for i in range(3)]
    alone = [await factories.value_asset(api, contributor, name=f"alone-{i}") for i in range(3)]
    doomed = await factories.collection(api, contributor, "doomed")
    await add(api, contributor, doomed["id"], [{"assetId": a["id"]} for a in crowded + alone])
    for k in range(3):  # three other holders of each crowded asset
        other = await factories.collection(api, contributor, f"other-{k}")
        await add(api, contributor, other["id"], [{"assetId": a["id"]} for a in crowded])
    served.commands.clear()
    assert (await api.data("DeleteCollection", {"id": doomed["id"]}, token=contributor))["deleteCollection"]["deleted"]
    pin_reads = [f for f in served.commands.finds if f["find"] == "retentions" and "asset_id" in f["filter"]
                 and "owner_id" not in f["filter"]]
    assert all(f.get("limit") for f in pin_reads), pin_reads  # never every pin of the round's assets
    for asset in crowded:
        assert (await Asset.get(object_id(asset["id"]))).unpinned_at is None
    for asset in alone:
        assert (await Asset.get(object_id(asset["id"]))).unpinned_at is not None


async def test_a_collection_deleted_while_items_are_added_keeps_none_of_them(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete runs after the add checked the collection and wrote its items: the add answers
    NOT_FOUND and takes back what it wrote (items, pins, the collection in the assets)."""
    asset = await factories.value_asset(api, contributor)
    doomed = await factories.collection(api, contributor, "doomed")
    write_items = collections._write_items

    async def then_deleted(collection_id: ObjectId, *args: object) -> None:
        await write_items(collection_id, *args)  # type: ignore[arg-type]
        await collections.delete_collection(collection_id)

    monkeypatch.setattr(collections, "_write_items", then_deleted)
    error = await api.error("AddToCollection", {"input": {"collectionId": doomed["id"], "items": [{"assetId": asset["id"]}]}},
                            token=contributor)
    assert error["extensions"]["code"] == "NOT_FOUND" and error["extensions"]["field"] == "collectionId", error
    assert await CollectionItem.find({"collection_id": object_id(doomed["id"])}).count() == 0
    assert await AssetRetention.find({"owner_id": object_id(doomed["id"])}).count() == 0
    stored = await Asset.get(object_id(asset["id"]))
    assert stored.collection_ids == [] and stored.unpinned_at is not None  # pinned by nothing: flagged for GC


async def many_items(api: Api, token: str, count: int) -> tuple[dict, list[ObjectId], set[ObjectId]]:
    """A collection of `count` items, for deletes of several rounds: the first five of its assets are
    in another collection too, and the next three pinned by hand. Returns the collection, its assets'
    ids and those that something else holds."""
    assets = [await factories.value_asset(api, token, name=f"a{i}") for i in range(count)]
    doomed, other = await factories.collection(api, token, "doomed"), await factories.collection(api, token, "other")
    await add(api, token, doomed["id"], [{"assetId": a["id"], "path": f"p/{i}"} for i, a in enumerate(assets)])
    await add(api, token, other["id"], [{"assetId": a["id"]} for a in assets[:5]])
    for asset in assets[5:8]:
        await api.data("PinAsset", {"assetId": asset["id"]}, token=token)
    ids = [object_id(a["id"]) for a in assets]
    return doomed, ids, set(ids[:8])


async def assert_deleted_whole(collection_id: ObjectId, ids: list[ObjectId], held: set[ObjectId]) -> None:
    """The collection, its items and its pins are gone; no asset lists it; those nothing else holds are
    flagged for the garbage collector, and the others keep their own pins, unflagged."""
    assert await Collection.get(collection_id) is None
    assert await CollectionItem.find({"collection_id": collection_id}).count() == 0
    assert await AssetRetention.find({"owner_id": collection_id}).count() == 0
    stored = await Asset.find({"_id": {"$in": ids}}).to_list()
    assert len(stored) == len(ids) and not [a.id for a in stored if collection_id in a.collection_ids]
    assert {a.id for a in stored if a.unpinned_at is not None} == set(ids) - held
    assert {p.asset_id for p in await AssetRetention.find_all().to_list()} == held


async def test_a_collection_of_many_items_is_deleted_a_round_at_a_time(
        api: Api, contributor: str, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its items and pins go a few at a time (services/bulk_deletes.py), never in one command: each
    delete names at most a round's documents, by id."""
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 7)
    doomed, ids, held = await many_items(api, contributor, 45)  # six full rounds and a part
    served.commands.clear()
    assert (await api.data("DeleteCollection", {"id": doomed["id"]}, token=contributor))["deleteCollection"]["deleted"]
    sent = served.commands.tally()
    assert sent["delete collection_items"] == 7 and sent["delete retentions"] == 7, sent
    await assert_deleted_whole(object_id(doomed["id"]), ids, held)


@pytest.mark.parametrize(("cut_at", "done"), [("release", False), ("_write_released", True)])
async def test_a_collection_delete_cut_short_is_finished_by_a_retry(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch, cut_at: str, done: bool) -> None:
    """The delete dies in its third round: after the round's items went but before its assets were
    written and their pins released, or after the assets were written (those only the collection held
    flagged) but before the pins went. What it left holds together: every asset the collection still
    holds or that still lists it keeps its pin, and the garbage collector would take no asset a pin
    still holds; deleting the collection again finishes the job."""
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 7)
    doomed, ids, held = await many_items(api, contributor, 45)
    collection_id = object_id(doomed["id"])
    step, calls = getattr(retention, cut_at), 0

    async def dies_at_the_third(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls < 3 or done:  # the step itself, then death; or death on the way in
            await step(*args, **kwargs)
        if calls == 3:
            raise ConnectionError("the server died here")

    monkeypatch.setattr(retention, cut_at, dies_at_the_third)
    failed = await api.run("DeleteCollection", {"id": doomed["id"]}, token=contributor)
    assert failed.get("errors") and calls == 3, failed
    monkeypatch.setattr(retention, cut_at, step)

    assert await Collection.get(collection_id) is not None  # the record goes last
    items = {i.asset_id for i in await CollectionItem.find({"collection_id": collection_id}).to_list()}
    assert len(items) == 45 - 3 * 7
    pins = {p.asset_id for p in await AssetRetention.find({"owner_id": collection_id}).to_list()}
    stored = await Asset.find({"_id": {"$in": ids}}).to_list()
    listing = {a.id for a in stored if collection_id in a.collection_ids}
    flagged = {a.id for a in stored if a.unpinned_at is not None}
    assert items | listing <= pins and len(pins) == len(items) + 7  # the third round's pins are left
    if cut_at == "release":
        assert listing - items  # out of the collection's items, not yet out of the assets: found by their pins
    else:
        assert flagged & pins and listing == items  # flagged, its pin not yet gone: what the collector must see through
    collectable = await collect_unpinned(timedelta(microseconds=1), state.stores, dry_run=True)
    assert collectable and not {a.id for a in collectable} & {p.asset_id for p in await AssetRetention.find_all().to_list()}

    assert (await api.data("DeleteCollection", {"id": doomed["id"]}, token=contributor))["deleteCollection"]["deleted"]
    await assert_deleted_whole(collection_id, ids, held)


async def test_a_release_flags_its_orphans_beside_the_update_it_carries(api: Api, contributor: str,
                                                                        state: AppState) -> None:
    """`also` may set fields of its own: the flag for the garbage collector is set beside them (a `$set`
    in `also` had replaced the flag's)."""
    asset = await factories.value_asset(api, contributor, name="carried")
    owner = ObjectId()
    await retention.pin([object_id(asset["id"])], RetentionOwnerType.MANUAL_PIN, owner, "tests")
    await retention.release(RetentionOwnerType.MANUAL_PIN, owner, also={"$set": {"description": "released"}})
    stored = await state.db.assets.find_one({"_id": object_id(asset["id"])})
    assert stored["description"] == "released" and stored["unpinned_at"] is not None


async def _pages(api: Api, token: str, variables: dict[str, Any]) -> list[str]:
    """The names of every asset the list gives, one page of two at a time, forward or (with `last`) backward."""
    seen: list[str] = []
    backward = "last" in variables
    while True:
        page = (await api.data("Assets", variables, token=token))["assets"]
        names = [e["node"]["name"] for e in page["edges"]]
        seen = names + seen if backward else seen + names
        more, key, cursor = (("hasPreviousPage", "before", "startCursor") if backward
                             else ("hasNextPage", "after", "endCursor"))
        if not page["pageInfo"][more]:
            return seen
        variables = {**variables, key: page["pageInfo"][cursor]}


@pytest.mark.parametrize(("bounds", "held_read"), [
    # In the orders the items keep no key of: items cheap to read, and a look at the walk too short
    # to find a page there: the items are read ...
    ({"WALK_PROBE": 1, "ITEM_COST": 0}, True),
    ({"WALK_PROBE": 1, "ITEM_COST": 0, "MAX_HELD_READ": 2}, False),  # ... unless there are more than that
    ({}, False),  # the look at the walk (here the whole little lake) finds a page of them
], ids=["through-items", "big-collection", "walk-meets-them"])
async def test_a_collections_assets_filter_order_and_page_as_the_list_does(
        api: Api, contributor: str, admin: str, served: Served, monkeypatch: pytest.MonkeyPatch,
        bounds: dict[str, int], held_read: bool) -> None:
    """`assets(filter: {collectionId})` by creation time pages through the collection's items in
    that order, whatever the bounds; in another order it is read through all the items when the
    list's walk would not meet them soon (services/collections.assets_to_read), else by walking the
    list (the bounds decide): every way the same assets as every other filter of the list gives, in
    its order, across pages in both directions, DELETED ones left out."""
    for name, value in bounds.items():
        monkeypatch.setattr(collections, name, value)
    coll = await factories.collection(api, contributor, "plates")
    inside = [await factories.value_asset(api, contributor, name=f"in{i}", labels=["even" if i % 2 == 0 else "odd"],
                                          dataTimestamp=f"2026-01-0{i % 3 + 1}T00:00:00Z") for i in range(7)]
    for i in range(3):
        await factories.value_asset(api, contributor, name=f"out{i}", labels=["even"])
    text = (await api.data("StoreText", {"input": {"name": "in-text", "text": "t"}}, token=contributor))["storeText"]
    await add(api, contributor, coll["id"], [{"assetId": a["id"]} for a in [*inside, text]])
    await api.data("DeleteAsset", {"id": inside[3]["id"], "force": True}, token=admin)  # pinned by the collection
    names = [f"in{i}" for i in range(7) if i != 3]
    newest_first = ["in-text", *reversed(names)]
    expectations = [
        ({}, None, newest_first),
        ({}, {"field": "CREATED_AT", "direction": "ASC"}, list(reversed(newest_first))),
        ({}, {"field": "NAME", "direction": "DESC"}, sorted(newest_first, reverse=True)),
        ({"kinds": ["VALUE"]}, None, list(reversed(names))),
        ({"labelsAny": ["even"]}, None, ["in6", "in4", "in2", "in0"]),
        ({"labelsAll": ["odd"], "nameContains": "IN"}, {"field": "NAME", "direction": "ASC"}, ["in1", "in5"]),
        ({"dataTimestampAfter": "2026-01-01T12:00:00Z"}, {"field": "DATA_TIMESTAMP", "direction": "ASC"},
         ["in1", "in4", "in2", "in5"]),
        ({"createdAfter": "2000-01-01T00:00:00Z", "kinds": ["TEXT"]}, None, ["in-text"]),
        ({"statuses": ["DELETED"]}, None, []),  # a deleted asset leaves its collections
    ]
    held_reads = []
    for filter, order, expected in expectations:
        served.commands.clear()
        variables = {"filter": {**filter, "collectionId": coll["id"]}, "orderBy": order}
        assert await _pages(api, contributor, {**variables, "first": 2}) == expected, (filter, order)
        assert await _pages(api, contributor, {**variables, "last": 2}) == expected, (filter, order)
        read_items = [f for f in served.commands.finds if f["find"] == "collection_items"]
        if order is None or order["field"] == "CREATED_AT":  # through the items, in their order, whatever the bounds
            assert any("asset_created_at" in f.get("sort", {}) for f in read_items), (filter, order)
            assert all("_id" in f["filter"] for f in served.commands.finds if f["find"] == "assets"), (filter, order)
        else:
            held_reads += read_items
        counted = await api.data("Assets", {**variables, "first": 1}, token=contributor)
        assert counted["assets"]["totalCount"] == len(expected), (filter, order)
    assert bool(held_reads) == held_read, held_reads
    empty = await factories.collection(api, contributor, "empty")
    assert await _pages(api, contributor, {"filter": {"collectionId": empty["id"]}, "first": 2}) == []


@pytest.mark.parametrize("bounds", [{}, {"MAX_HELD_READ": 2}, {"ITEM_BUDGET": 4}],
                         ids=["small", "bigger-than-held-read", "walked-past-the-budget"])
async def test_a_collections_assets_by_creation_time_are_the_lists_through_its_items(
        api: Api, contributor: str, admin: str, served: Served, monkeypatch: pytest.MonkeyPatch,
        bounds: dict[str, int]) -> None:
    """`assets(filter: {collectionId})` newest (or oldest) first pages through the collection's
    items in their asset's creation order: the same assets, in the same order, as the whole list
    gives of those the collection holds (what the walk of the list read before), whatever the
    collection's size, its assets' statuses, a filter most of them fail, or an asset deleted; pages
    forward and backward meet, and a cursor of the whole list goes on in the collection's. Its items
    are read a round at a time (three here), never an asset outside the collection, unless a page
    has read its budget of items (four here): it walks the list for the rest, from where it is."""
    for name, value in {"ITEM_ROUND": 3, **bounds}.items():
        monkeypatch.setattr(collections, name, value)
    coll = await factories.collection(api, contributor, "plates")
    inside: list[dict] = []
    for i in range(9):
        inside.append(await factories.value_asset(api, contributor, name=f"in{i}", labels=["rare"] if i in (1, 7) else []))
        await factories.value_asset(api, contributor, name=f"out{i}", labels=["rare"])  # between them, never listed
    for name in ("pending", "failed"):
        session = (await api.data("CreateUpload", {"input": {"name": name, "sizeBytes": 3}}, token=contributor))["createUpload"]
        if name == "failed":
            await api.data("AbortUpload", {"id": session["id"]}, token=contributor)
        inside.append(session["asset"])
    await add(api, contributor, coll["id"], [{"assetId": a["id"]} for a in reversed(inside)])
    await api.data("DeleteAsset", {"id": inside[4]["id"], "force": True}, token=admin)
    held = {a["name"] for a in inside} - {"in4"}

    async def whole_list(filter: dict[str, Any], direction: str) -> list[str]:
        """The list without the collection's condition, of the assets the collection holds."""
        return [n for n in await _pages(api, contributor, {"filter": filter, "first": 50, "orderBy": {
            "field": "CREATED_AT", "direction": direction}}) if n in held]

    for filter in ({}, {"statuses": ["PENDING", "FAILED"]}, {"statuses": ["FAILED"]}, {"kinds": ["VALUE"]},
                   {"labelsAll": ["rare"]}, {"statuses": ["DELETED"]}):
        for direction in ("DESC", "ASC"):
            expected = await whole_list(filter, direction)
            variables = {"filter": {**filter, "collectionId": coll["id"]}, "orderBy": {"field": "CREATED_AT", "direction": direction}}
            served.commands.clear()
            assert await _pages(api, contributor, {**variables, "first": 2}) == expected, (filter, direction)
            assert await _pages(api, contributor, {**variables, "last": 2}) == expected, (filter, direction)
            page_reads = [f for f in served.commands.finds if f["find"] == "collection_items" and "asset_created_at" in f["sort"]]
            assert page_reads and all(f["limit"] <= 3 for f in page_reads), (filter, direction)
            walks = [f for f in served.commands.finds if f["find"] == "assets" and "_id" not in f["filter"]]
            if "ITEM_BUDGET" in bounds:  # a filter few pass: a page of two read four items without filling
                assert walks or filter not in ({"statuses": ["FAILED"]}, {"labelsAll": ["rare"]}), (filter, direction)
            else:
                assert not walks, (filter, direction)
            counted = await api.data("Assets", {**variables, "first": 1}, token=contributor)
            assert counted["assets"]["totalCount"] == len(expected), (filter, direction)
    assert await whole_list({}, "DESC") == ["failed", "pending", *(f"in{i}" for i in (8, 7, 6, 5, 3, 2, 1, 0))]
    # A cursor of the whole list (at in6) goes on in the collection's list, both ways.
    whole = (await api.data("Assets", {"first": 50}, token=contributor))["assets"]["edges"]
    at = next(e["cursor"] for e in whole if e["node"]["name"] == "in6")
    variables = {"filter": {"collectionId": coll["id"]}}
    after = (await api.data("Assets", {**variables, "first": 3, "after": at}, token=contributor))["assets"]
    assert [e["node"]["name"] for e in after["edges"]] == ["in5", "in3", "in2"] and after["pageInfo"]["hasNextPage"]
    before = (await api.data("Assets", {**variables, "last": 5, "before": at}, token=contributor))["assets"]
    assert [e["node"]["name"] for e in before["edges"]] == ["failed", "pending", "in8", "in7"]
    assert not before["pageInfo"]["hasPreviousPage"]


async def test_an_add_and_a_removal_of_one_asset_at_once_leave_its_item_pin_and_membership_agreeing(
        api: Api, contributor: str, state: AppState) -> None:
    """addToCollection and removeFromCollection of the same asset into the same collection, run at
    once, each started a few database round trips after the other (either first), the asset in the
    collection before or not: afterwards the collection holds an item of the asset if and only if a
    COLLECTION pin of it holds the asset and the asset lists the collection, and an asset with an item
    is not flagged unpinned. The removal released the pin of an item the add wrote meanwhile (about a
    third of these rounds): an item without a pin, its asset flagged, until the garbage collector
    pinned it again."""
    collection = await factories.collection(api, contributor, "raced")
    collection_id = object_id(collection["id"])
    asset_ids = [object_id((await factories.value_asset(api, contributor, f"a{i}"))["id"]) for i in range(4)]
    items, pins, assets = (CollectionItem.get_pymongo_collection(), AssetRetention.get_pymongo_collection(),
                           Asset.get_pymongo_collection())

    async def after(round_trips: int, step: Any) -> None:
        for _ in range(round_trips):
            await state.db.command("ping")
        await step

    disagreements = []
    for round_ in range(96):
        asset_id = asset_ids[round_ % len(asset_ids)]
        if round_ % 2:
            await collections.add_items(collection_id, [collections.NewItem(asset_id, None, None)], None, 10)
        else:
            await collections.remove_items(collection_id, [asset_id])
        # In or out before (odd or even rounds); then 0 to 11 round trips' head start to one or the other.
        lead, wait = divmod(round_ // 2, 2)
        add_wait, remove_wait = (0, lead % 12) if wait else (lead % 12, 0)
        await asyncio.gather(
            after(add_wait, collections.add_items(collection_id, [collections.NewItem(asset_id, None, None)], None, 10)),
            after(remove_wait, collections.remove_items(collection_id, [asset_id])))
        item = await items.count_documents({"collection_id": collection_id, "asset_id": asset_id})
        pin = await pins.count_documents({"owner_type": RetentionOwnerType.COLLECTION.value, "owner_id": collection_id,
                                          "asset_id": asset_id})
        member = await assets.count_documents({"_id": asset_id, "collection_ids": collection_id})
        flagged = await assets.count_documents({"_id": asset_id, "unpinned_at": {"$ne": None}})
        if not item == pin == member == 1 - flagged:
            disagreements.append((round_, add_wait, remove_wait, {"item": item, "pin": pin, "member": member,
                                                                  "flagged": flagged}))
    assert disagreements == [], "\n".join(map(str, disagreements))


@pytest.mark.parametrize("when", ["before its pin", "before the re-pin", "after the re-pin"])
async def test_a_re_pin_racing_the_collections_delete_leaves_no_pin(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """An add finds its pin released (a removal of the same asset raced it) and settles it: it pins
    the asset again. The collection's delete runs whole just before (or just after) that re-pin, or
    before the add's own pin (the add had checked the collection): its release of every pin of the
    collection came first. What stays is no pin, no item, no membership."""
    asset = await factories.value_asset(api, contributor)
    doomed = await factories.collection(api, contributor, "doomed")
    collection_id, asset_id = object_id(doomed["id"]), object_id(asset["id"])
    pinned_by, pin = retention.pinned_by, retention.pin
    state = {"released": False, "deleted": False}

    async def released_first(*args: Any) -> set[ObjectId]:  # the removal's release, landing before the add's look
        if not state["released"]:
            state["released"] = True
            await AssetRetention.get_pymongo_collection().delete_many({"owner_id": collection_id})
        return await pinned_by(*args)

    async def delete_around(*args: Any, **kwargs: Any) -> list[ObjectId]:
        due = state["released"] != (when == "before its pin")  # the add's own pin comes before its look
        if args[2] != collection_id or state["deleted"] or not due:
            return await pin(*args, **kwargs)
        state["deleted"] = True
        if when != "after the re-pin":
            await collections.delete_collection(collection_id)
        made = await pin(*args, **kwargs)
        if when == "after the re-pin":
            await collections.delete_collection(collection_id)
        return made

    monkeypatch.setattr(retention, "pinned_by", released_first)
    monkeypatch.setattr(retention, "pin", delete_around)
    try:
        await collections.add_items(collection_id, [collections.NewItem(asset_id, None, None)], None, 10)
    except GraphlakeError as error:  # the add saw the delete: NOT_FOUND, its writes taken back
        assert when == "before its pin" and error.extensions["code"] == "NOT_FOUND", error
    assert state["deleted"]
    assert await Collection.get(collection_id) is None
    assert await CollectionItem.find({"collection_id": collection_id}).count() == 0
    assert await AssetRetention.find({"owner_id": collection_id}).count() == 0
    stored = await Asset.get(asset_id)
    assert stored.collection_ids == [] and stored.unpinned_at is not None


@pytest.mark.parametrize("dies", ["before the items", "after the items"])
async def test_an_add_cut_short_before_its_items_is_settled_by_the_maintenance(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch, dies: str) -> None:
    """An add that dies after its pins (and the collection's place in the assets) and before its items
    left the asset pinned for good and listed by `collection_ids`, with no item: the collector reads only
    unpinned assets, and nothing else met it. Its pins carry a mark until the items are written; the
    maintenance settles an old one: taken out where no item came, left whole where one did."""
    kept = await factories.value_asset(api, contributor, "kept")
    asset = await factories.value_asset(api, contributor, "cut")
    collection = await factories.collection(api, contributor, "cut")
    collection_id, asset_id = object_id(collection["id"]), object_id(asset["id"])
    await add(api, contributor, collection["id"], [{"assetId": kept["id"]}])  # an add that ended: no mark left
    assert await AssetRetention.find({"adding_at": {"$ne": None}}).count() == 0
    write_items = collections._write_items

    async def crash(*args: Any) -> None:
        if dies == "after the items":
            await write_items(*args)
        raise ConnectionError("the server died here")

    monkeypatch.setattr(collections, "_write_items", crash)
    with pytest.raises(ConnectionError, match="the server died here"):  # ours, not a real connection's
        await collections.add_items(collection_id, [collections.NewItem(asset_id, None, None)], None, 10)
    monkeypatch.setattr(collections, "_write_items", write_items)
    stored = await Asset.get(asset_id)
    assert collection_id in stored.collection_ids and stored.unpinned_at is None
    assert await AssetRetention.find({"owner_id": collection_id, "asset_id": asset_id}).count() == 1
    held = await CollectionItem.find({"collection_id": collection_id, "asset_id": asset_id}).count()
    assert held == (dies == "after the items")

    await collect_unpinned(timedelta(seconds=1), state.stores)  # the collector never meets a pinned asset
    assert await AssetRetention.find({"owner_id": collection_id, "asset_id": asset_id}).count() == 1
    young = await collections.settle_cut_short_adds()  # an add may still be writing: left alone
    assert young == 0 and await AssetRetention.find({"owner_id": collection_id, "asset_id": asset_id}).count() == 1

    await AssetRetention.get_pymongo_collection().update_many(  # as if the add died an hour ago
        {"adding_at": {"$ne": None}}, {"$set": {"adding_at": utcnow() - timedelta(hours=1)}})
    await state.db[SCHEDULES].delete_one({"_id": "cut-short-adds"})  # due now, whenever the server last ran it
    await app_module._maintenance_round(state, time.monotonic())
    stored = await Asset.get(asset_id)
    pins = await AssetRetention.find({"owner_id": collection_id, "asset_id": asset_id}).count()
    assert await CollectionItem.find({"collection_id": collection_id, "asset_id": asset_id}).count() == held
    assert (pins, collection_id in stored.collection_ids, stored.unpinned_at is None) == (held, bool(held), bool(held))
    assert await AssetRetention.find({"adding_at": {"$ne": None}}).count() == 0
    assert await collections.settle_cut_short_adds() == 0
