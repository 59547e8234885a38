"""Edits of a lake's records that race a delete: an alias moved or added while its asset is deleted,
an asset put into a collection while an ADMIN force-deletes it, an update landing on what a delete
has just taken. Each test puts the delete in the gap a real race would, through the function that
runs there, and checks that no name, item, pin or write is left on what is gone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from documents import clock
from documents.asset import Alias, AssetLink
from documents.clock import to_millis, utcnow
from documents.common import Split
from documents.dataset import Datum
from resolvers.context import AppState
from services import assets as assets_service
from services import collections as collections_service
from services import datums as datums_service
from services import retention
from tests import factories
from tests.fault_injection import once_after, once_before
from tests.operations import Api, object_id


def _delete_first(monkeypatch: pytest.MonkeyPatch, name: str, asset_id: str, state: AppState) -> None:
    """Have services.assets.`name` delete the asset (once) before it runs: the delete lands there."""
    once_before(monkeypatch, assets_service, name,
                lambda: assets_service.delete_asset(object_id(asset_id), False, state.stores))


async def _named(api: Api, token: str, alias: str) -> str | None:
    found = (await api.data("AssetByAlias", {"alias": alias}, token=token))["assetByAlias"]
    return found and found["id"]


@pytest.mark.parametrize("gap", ["_room_for_aliases", "in_use_despite_delete"])
async def test_an_alias_moved_to_an_asset_being_deleted_stays_where_it_was(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch, gap: str) -> None:
    # A save under a name: the alias names the old model; the new one is deleted as the alias moves to it
    # (before the move's write, or after it and before it looks again, the delete then freeing the name).
    old = await factories.value_asset(api, contributor, name="model-v1", aliases=["models/best"])
    new = await factories.value_asset(api, contributor, name="model-v2")
    _delete_first(monkeypatch, gap, new["id"], state)
    error = await api.error("MoveAlias", {"alias": "models/best", "assetId": new["id"], "expectedAssetId": old["id"]},
                            token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "assetId"}, error
    assert await _named(api, contributor, "models/best") == old["id"]  # not the deleted asset, nor nothing
    assert await Alias.find({"asset_id": object_id(new["id"])}).count() == 0


async def test_a_new_alias_moved_to_an_asset_being_deleted_is_not_left_naming_it(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = await factories.value_asset(api, contributor, name="model")
    _delete_first(monkeypatch, "_room_for_aliases", asset["id"], state)
    error = await api.error("MoveAlias", {"alias": "models/fresh", "assetId": asset["id"]}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "assetId"}, error
    assert await Alias.find({"_id": "models/fresh"}).count() == 0  # the name is free for the next save


async def test_aliases_added_to_an_asset_being_deleted_are_taken_back(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = await factories.value_asset(api, contributor, name="model")
    _delete_first(monkeypatch, "_room_for_aliases", asset["id"], state)
    error = await api.error("AddAliases", {"assetId": asset["id"], "aliases": ["runs/7", "runs/latest"]}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "assetId"}, error
    assert await Alias.find({"asset_id": object_id(asset["id"])}).count() == 0
    other = await factories.value_asset(api, contributor, name="other")  # the names are free again
    await api.data("AddAliases", {"assetId": other["id"], "aliases": ["runs/latest"]}, token=contributor)


def _add_after(monkeypatch: pytest.MonkeyPatch, name: str, collection_id: str, asset_id: str) -> None:
    """Have services.assets.`name` put the asset into the collection (once) after it has run: the add lands there."""
    once_after(monkeypatch, assets_service, name, lambda: collections_service.add_items(
        object_id(collection_id), [collections_service.NewItem(object_id(asset_id), "late.json", None)], None, 100))


@pytest.mark.parametrize("gap", ["_holding", "_leave_collections"])
async def test_a_forced_delete_takes_its_asset_out_of_a_collection_it_was_added_to_meanwhile(
        api: Api, contributor: str, admin: str, state: AppState, monkeypatch: pytest.MonkeyPatch, gap: str) -> None:
    # The add lands once the delete has looked at the asset's holders (or has taken it out of its
    # collections), and looks for the delete before the status flips: it sees none and keeps its item.
    kept = await factories.collection(api, contributor, name="kept")
    late = await factories.collection(api, contributor, name="late")
    asset = await factories.value_asset(api, contributor, name="doomed")
    await api.data("AddToCollection", {"input": {"collectionId": kept["id"], "items": [{"assetId": asset["id"]}]}},
                   token=contributor)
    _add_after(monkeypatch, gap, late["id"], asset["id"])
    forced = (await api.data("DeleteAsset", {"id": asset["id"], "force": True}, token=admin))["deleteAsset"]
    assert forced["deleted"] is True and kept["id"] in forced["broken"]
    db = state.db
    assert await db.collection_items.count_documents({"asset_id": object_id(asset["id"])}) == 0
    assert await db.retentions.count_documents({"asset_id": object_id(asset["id"])}) == 0
    raw = await db.assets.find_one({"_id": object_id(asset["id"])})
    assert raw["status"] == "DELETED" and raw.get("collection_ids", []) == []


async def test_an_update_landing_on_an_asset_deleted_meanwhile_is_refused(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    source = await factories.value_asset(api, contributor, name="raw")
    asset = await factories.value_asset(api, contributor, name="clean")
    _delete_first(monkeypatch, "existing_assets", asset["id"], state)  # as the update checks its lineage
    error = await api.error("UpdateAsset", {"input": {"id": asset["id"], "name": "renamed", "derivedFrom": [source["id"]]}},
                            token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "id"}, error
    raw = await state.db.assets.find_one({"_id": object_id(asset["id"])})
    assert raw["status"] == "DELETED" and raw["name"] == "clean" and not raw.get("derived_from")
    assert await AssetLink.get_pymongo_collection().count_documents({"asset_id": object_id(asset["id"])}) == 0


async def test_an_update_of_a_datum_deleted_meanwhile_is_not_found(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (datum,) = await factories.datums(api, contributor, 1)
    once_after(monkeypatch, Datum, "get", lambda: datums_service.delete_datum(object_id(datum["id"])))  # after the look
    error = await api.error("UpdateDatum", {"input": {"id": datum["id"], "split": "TRAIN"}}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "id"}, error  # was INTERNAL


async def test_two_writers_changing_metadata_they_read_never_lose_a_change_unnoticed(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = await factories.value_asset(api, contributor, name="run", metadata={"lr": 0.1})
    read_at = asset["updatedAt"]  # both writers read this, and change one key each of what they read
    first = (await api.data("UpdateAsset", {"input": {"id": asset["id"], "metadata": {"lr": 0.1, "epochs": 5},
                                                      "expectedUpdatedAt": read_at}}, token=contributor))["updateAsset"]
    assert first["updatedAt"] > read_at
    error = await api.error("UpdateAsset", {"input": {"id": asset["id"], "metadata": {"lr": 0.2},
                                                      "expectedUpdatedAt": read_at}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error
    again = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]
    assert again["metadata"] == {"lr": 0.1, "epochs": 5}
    # The other writer's change landing between the check and the write (as the lineage is checked).
    source = await factories.value_asset(api, contributor, name="raw")
    once_before(monkeypatch, assets_service, "existing_assets",
                lambda: assets_service.update_asset(object_id(asset["id"]), {"labels": ["checked"]}))
    error = await api.error("UpdateAsset", {"input": {"id": asset["id"], "metadata": {}, "derivedFrom": [source["id"]],
                                                      "expectedUpdatedAt": again["updatedAt"]}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error
    now = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]
    assert now["metadata"] == {"lr": 0.1, "epochs": 5} and now["labels"] == ["checked"] and now["derivedFrom"] == []
    assert await AssetLink.get_pymongo_collection().count_documents({"asset_id": object_id(asset["id"])}) == 0
    # Without it, as before: the change is made whatever the asset holds.
    await api.data("UpdateAsset", {"input": {"id": asset["id"], "metadata": {"lr": 0.3}}}, token=contributor)


async def test_an_asset_readded_while_another_writer_removes_it_is_never_collected_from_its_collection(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    # One writer moves an item to TRAIN while another takes it out: the removal lands once the add has
    # pinned (its pin there already) and before it writes the item, which it then writes anew. The
    # item stayed without its pin, flagged unpinned, and the garbage collector deleted the asset; then
    # the collector pinned it again (services/assets._in_collections); now the add, looking at its pins
    # after its write, pins it again itself (services/collections._settle), and clears the flag.
    collection = await factories.collection(api, contributor, name="held")
    asset = await factories.value_asset(api, contributor, name="kept")
    item = {"collectionId": collection["id"], "items": [{"assetId": asset["id"]}]}
    await api.data("AddToCollection", {"input": item}, token=contributor)
    removed = once_after(monkeypatch, retention, "pin", lambda: collections_service.remove_items(
        object_id(collection["id"]), [object_id(asset["id"])]))
    await api.data("AddToCollection", {"input": {**item, "items": [{"assetId": asset["id"], "split": "TRAIN"}]}},
                   token=contributor)
    monkeypatch.undo()
    assert removed
    db = state.db
    assert await db.collection_items.count_documents({"asset_id": object_id(asset["id"])}) == 1
    raw = await db.assets.find_one({"_id": object_id(asset["id"])})
    assert "unpinned_at" not in raw and raw["collection_ids"] == [object_id(collection["id"])]
    # The collector still pins again an item's asset a crash left unpinned.
    await db.retentions.delete_many({"asset_id": object_id(asset["id"])})
    await db.assets.update_one({"_id": object_id(asset["id"])}, {"$set": {"unpinned_at": utcnow() - timedelta(days=2)}})
    assert await assets_service.collect_unpinned(timedelta(days=1), state.stores, dry_run=True) == []
    assert await assets_service.collect_unpinned(timedelta(days=1), state.stores) == []
    raw = await db.assets.find_one({"_id": object_id(asset["id"])})
    assert raw["status"] == "ACTIVE" and "unpinned_at" not in raw
    pins = await db.retentions.find({"asset_id": object_id(asset["id"])}).to_list()
    assert [(p["owner_type"], p["owner_id"]) for p in pins] == [("COLLECTION", object_id(collection["id"]))]


async def test_a_write_without_expected_updated_at_in_the_same_millisecond_still_moves_it_on(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = await factories.value_asset(api, contributor, name="run", metadata={"lr": 0.1})
    frozen = to_millis(utcnow() + timedelta(hours=1))  # every write lands in this one millisecond
    monkeypatch.setattr(assets_service, "utcnow", lambda: frozen)
    await api.data("UpdateAsset", {"input": {"id": asset["id"], "metadata": {"lr": 0.2}}}, token=contributor)
    read = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]  # a writer reads this
    # Another writer, not asking, changes it in the same millisecond: the value read must no longer hold.
    await api.data("UpdateAsset", {"input": {"id": asset["id"], "labels": ["checked"]}}, token=contributor)
    error = await api.error("UpdateAsset", {"input": {"id": asset["id"], "metadata": {"lr": 0.3},
                                                      "expectedUpdatedAt": read["updatedAt"]}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error
    now = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]
    assert now["labels"] == ["checked"] and now["metadata"] == {"lr": 0.2}


async def test_a_write_without_expected_updated_at_meeting_another_is_made_on_what_the_asset_holds(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = await factories.value_asset(api, contributor, name="run")
    once_after(monkeypatch, assets_service, "get_asset",  # another write lands after the read
               lambda: assets_service.update_asset(object_id(asset["id"]), {"name": "renamed"}))
    updated = (await api.data("UpdateAsset", {"input": {"id": asset["id"], "labels": ["x"]}}, token=contributor))["updateAsset"]
    assert updated["labels"] == ["x"] and updated["name"] == "renamed"
    assert updated["updatedAt"] > asset["updatedAt"]


async def test_an_item_removed_while_the_collector_pins_it_again_leaves_no_pin_behind(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    # The collector found an item holding an unpinned asset; the item was removed (its pins released)
    # before the collector pinned the asset again for its collection: that pin, on an item no more,
    # kept the asset from every later collection.
    collection = await factories.collection(api, contributor, name="held")
    asset = await factories.value_asset(api, contributor, name="kept")
    await api.data("AddToCollection", {"input": {"collectionId": collection["id"], "items": [{"assetId": asset["id"]}]}},
                   token=contributor)
    db = state.db
    await db.retentions.delete_many({"asset_id": object_id(asset["id"])})  # as a removal racing an add leaves it
    await db.assets.update_one({"_id": object_id(asset["id"])}, {"$set": {"unpinned_at": utcnow() - timedelta(days=2)}})
    removed = once_before(monkeypatch, retention, "pin", lambda: collections_service.remove_items(
        object_id(collection["id"]), [object_id(asset["id"])]))
    assert await assets_service.collect_unpinned(timedelta(days=1), state.stores) == []  # held when read: kept
    monkeypatch.undo()
    assert removed
    assert await db.retentions.count_documents({"asset_id": object_id(asset["id"])}) == 0
    raw = await db.assets.find_one({"_id": object_id(asset["id"])})
    assert raw["status"] == "ACTIVE" and raw.get("unpinned_at") is not None  # flagged, for a later round


async def test_an_asset_stored_without_updated_at_is_still_updated(api: Api, contributor: str, state: AppState) -> None:
    asset = await factories.value_asset(api, contributor, name="old")
    await state.db.assets.update_one({"_id": object_id(asset["id"])}, {"$unset": {"updated_at": ""}})
    updated = (await api.data("UpdateAsset", {"input": {"id": asset["id"], "labels": ["x"]}}, token=contributor))["updateAsset"]
    assert updated["labels"] == ["x"]
    assert (await state.db.assets.find_one({"_id": object_id(asset["id"])}))["updated_at"] is not None


async def test_two_writers_changing_datum_metadata_they_read_never_lose_a_change_unnoticed(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """updateDatum replaces metadata whole, as updateAsset does: with expectedUpdatedAt (the updatedAt
    read), the second of two writers that read the same datum is CONFLICT, not a silent undo of the
    first's change. A datum never updated has its createdAt as updatedAt, and that is what it is
    compared with."""
    [datum] = await factories.datums(api, contributor, 1, roles=("image",))
    read = (await api.data("Datum", {"id": datum["id"], "role": "image"}, token=contributor))["datum"]
    read_at = read["updatedAt"]
    stored = await Datum.get(object_id(datum["id"]))
    assert stored is not None and stored.updated_at is None and datetime.fromisoformat(read_at) == stored.created_at
    # In the millisecond of the read: the change moves updatedAt on all the same.
    monkeypatch.setattr(clock, "utcnow", lambda: datetime.fromisoformat(read_at))
    first = (await api.data("UpdateDatum", {"input": {"id": datum["id"], "metadata": {"lr": 0.1, "epochs": 5},
                                                      "expectedUpdatedAt": read_at}}, token=contributor))["updateDatum"]
    monkeypatch.undo()
    assert first["updatedAt"] > read_at
    error = await api.error("UpdateDatum", {"input": {"id": datum["id"], "metadata": {"lr": 0.2},
                                                      "expectedUpdatedAt": read_at}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error
    again = (await api.data("Datum", {"id": datum["id"], "role": "image"}, token=contributor))["datum"]
    assert again["metadata"] == {"lr": 0.1, "epochs": 5} and again["updatedAt"] == first["updatedAt"]

    # The other writer's change landing between the check and the write.
    once_after(monkeypatch, Datum, "get",
               lambda: datums_service.update_datum(object_id(datum["id"]), {"split": Split.TRAIN}))
    error = await api.error("UpdateDatum", {"input": {"id": datum["id"], "metadata": {},
                                                      "expectedUpdatedAt": again["updatedAt"]}}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error
    now = (await api.data("Datum", {"id": datum["id"], "role": "image"}, token=contributor))["datum"]
    assert now["metadata"] == {"lr": 0.1, "epochs": 5} and now["split"] == "TRAIN", now
    # Without it, as before: the change is made whatever the datum holds, and moves updatedAt on.
    last = (await api.data("UpdateDatum", {"input": {"id": datum["id"], "split": "TEST"}}, token=contributor))["updateDatum"]
    assert last["split"] == "TEST" and last["updatedAt"] > now["updatedAt"]


async def test_two_writers_changing_collection_metadata_they_read_never_lose_a_change_unnoticed(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """updateCollection replaces metadata whole: with expectedEditedAt (the editedAt read), the second
    of two writers that read the same collection is CONFLICT. editedAt, not updatedAt, which every
    addToCollection moves: an item added meanwhile is no conflict."""
    collection = await factories.collection(api, contributor, name="runs")
    asset = await factories.value_asset(api, contributor, name="one")
    read = (await api.data("Collection", {"id": collection["id"], "first": 10}, token=contributor))["collection"]
    read_at = read["editedAt"]
    await api.data("AddToCollection", {"input": {"collectionId": collection["id"], "items": [{"assetId": asset["id"]}]}},
                   token=contributor)
    monkeypatch.setattr(clock, "utcnow", lambda: datetime.fromisoformat(read_at))  # in the millisecond of the read
    first = (await api.data("UpdateCollection", {"input": {"id": collection["id"], "metadata": {"owner": "ana"},
                                                           "expectedEditedAt": read_at}},
                            token=contributor))["updateCollection"]
    monkeypatch.undo()
    assert first["editedAt"] > read_at
    error = await api.error("UpdateCollection", {"input": {"id": collection["id"], "metadata": {"stage": "raw"},
                                                           "expectedEditedAt": read_at}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedEditedAt"}, error

    # The other writer's change landing between the check and the write.
    once_after(monkeypatch, collections_service, "get_collection",
               lambda: collections_service.update_collection(object_id(collection["id"]), {"description": "theirs"}))
    error = await api.error("UpdateCollection", {"input": {"id": collection["id"], "metadata": {},
                                                           "expectedEditedAt": first["editedAt"]}}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedEditedAt"}, error
    now = (await api.data("UpdateCollection", {"input": {"id": collection["id"], "name": "runs2"}},
                          token=contributor))["updateCollection"]  # without it, as before
    assert now["metadata"] == {"owner": "ana"} and now["description"] == "theirs" and now["editedAt"] > first["editedAt"]
