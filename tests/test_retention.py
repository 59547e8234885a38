"""Retention pins and the garbage collector: what the grace period counts from, what a round reads,
and what an automatic round leaves in the audit trail."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect

from documents.annotation import AnnotationRecord
from documents.asset import Alias, Asset
from documents.clock import utcnow
from documents.common import RetentionOwnerType
from documents.dataset import DatumAsset
from documents.event import AUDIT, Event
from graphlake.app import _collect_assets, _maintenance_round
from resolvers.context import AppState
from services import assets as assets_service
from services import batches, retention
from services.schedules import SCHEDULES
from storage import LocalStore
from tests import factories
from tests.conftest import Served
from tests.fault_injection import once_after
from tests.operations import Api, object_id
from tests.test_content_route import uploaded
from tests.test_query_plans import assert_paged_through_indexes


async def _age_flag(asset_id: str, days: float) -> None:
    """What `days` of waiting do to an asset's flag (tests cannot wait for days)."""
    await Asset.get_pymongo_collection().update_one(
        {"_id": object_id(asset_id), "unpinned_at": {"$ne": None}},
        {"$set": {"unpinned_at": utcnow() - timedelta(days=days)}})


async def _pinned_during_unpin(api: Api, token: str, asset_id: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Pin the asset by hand, then unpin it while a second pin of it races the unpin: the unpin
    found no other pin, the second pin cleared a flag not yet there, then the unpin flagged the
    asset. Returns the second pin, which holds a flagged asset."""
    first = (await api.data("PinAsset", {"assetId": asset_id}, token=token))["pinAsset"]
    second: dict = {}
    held = retention._held

    async def racing_pin(*args, **kwargs):  # the other pin lands between the release's read and its flag
        found = await held(*args, **kwargs)
        if not second:
            second.update((await api.data("PinAsset", {"assetId": asset_id}, token=token))["pinAsset"])
        return found

    monkeypatch.setattr(retention, "_held", racing_pin)
    await api.data("UnpinAsset", {"retentionId": first["id"]}, token=token)
    monkeypatch.setattr(retention, "_held", held)
    assert second
    return second


async def _flag(asset_id: str) -> object:
    return (await Asset.get_pymongo_collection().find_one({"_id": object_id(asset_id)})).get("unpinned_at")


async def test_the_grace_period_counts_from_the_last_release_even_after_a_racing_pin(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asset left pinned and flagged (_pinned_during_unpin) kept its old flag when that pin went,
    weeks later, and the collector deleted it at its next round: no grace period at all."""
    asset = await factories.value_asset(api, contributor, name="kept")
    second = await _pinned_during_unpin(api, contributor, asset["id"], monkeypatch)
    assert await _flag(asset["id"]) is not None
    await _age_flag(asset["id"], 30)  # a month goes by, the second pin holding the asset
    await api.data("UnpinAsset", {"retentionId": second["id"]}, token=contributor)  # nothing pins it from now

    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # 7 days from now, not before
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "ACTIVE"
    await _age_flag(asset["id"], 8)
    assert [a.name for a in await assets_service.collect_unpinned(timedelta(days=7), state.stores)] == ["kept"]


async def test_the_collector_drops_the_flag_of_an_asset_pinned_again(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flagged asset a pin holds is no candidate: the collector keeps it and drops its flag, so that
    its later rounds do not read it again, each time, for as long as the pin holds it."""
    asset = await factories.value_asset(api, contributor, name="held")
    second = await _pinned_during_unpin(api, contributor, asset["id"], monkeypatch)
    await _age_flag(asset["id"], 30)
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []
    assert await _flag(asset["id"]) is None
    await api.data("UnpinAsset", {"retentionId": second["id"]}, token=contributor)
    assert await _flag(asset["id"]) is not None  # flagged by its release, as ever


async def test_the_automatic_collector_audits_what_it_deletes(api: Api, contributor: str, state: AppState,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With GRAPHLAKE_ASSET_GC_AFTER_DAYS the server's maintenance deletes assets: each round is in
    the audit trail, as `graphlake assets gc` puts its rounds. It deleted them unaudited: an asset
    found DELETED had no event saying when or why."""
    monkeypatch.setattr(state.settings, "asset_gc_after_days", 7.0)
    monkeypatch.setattr(assets_service, "GC_BATCH", 2)
    names = ["a", "b", "c"]
    assets = [await factories.value_asset(api, contributor, name=name) for name in names]
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": a["id"]} for a in assets]}}, token=contributor)
    await api.data("DeleteCollection", {"id": coll["id"]}, token=contributor)
    for asset in assets:
        await _age_flag(asset["id"], 8)
    await state.db[SCHEDULES].delete_many({})  # the round's daily jobs due too, as on a server's first round
    await _maintenance_round(state, time.monotonic())

    assert {a["status"] for a in [(await api.data("Asset", {"id": x["id"]}, token=contributor))["asset"]
                                  for x in assets]} == {"DELETED"}
    await state.feed.settled()
    audits = [e.data.decode() for e in await Event.find({"event_type": AUDIT}).to_list()]
    rounds = [a for a in audits if a.get("command") == "asset-gc-after-days"]
    assert sorted(i for a in rounds for i in a["ids"]) == sorted(a["id"] for a in assets)
    assert [a["idCount"] for a in rounds] == [2, 1] and {a["olderThanDays"] for a in rounds} == {"7"}


async def test_each_round_of_the_collector_reads_its_candidates_through_an_index(
        api: Api, contributor: str, state: AppState, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each round reads its candidates (and, after its last, finds none left) in the order of an
    index, stopping after the round: read in `_id` order, beside a filter on the flag, each round
    sorted every candidate left (a backlog of a million, 2,000 rounds of up to a million each)."""
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    monkeypatch.setattr(assets_service, "GC_BATCH", 2)
    assets = [await factories.value_asset(api, contributor, name=f"r{i}") for i in range(5)]
    await Asset.get_pymongo_collection().update_many({"_id": {"$in": [object_id(a["id"]) for a in assets]}},
                                                     {"$set": {"unpinned_at": utcnow() - timedelta(days=10)}})
    for dry_run in (True, False):
        served.commands.clear()
        rounds = [r async for r in assets_service.unpinned_rounds(timedelta(days=7), state.stores, dry_run=dry_run)]
        assert sorted(a.name for r in rounds for a in r) == [f"r{i}" for i in range(5)]
        reads = [f for f in served.commands.finds if f["find"] == "assets" and "unpinned_at" in f["filter"]]
        assert len(reads) >= 3
        await assert_paged_through_indexes(state, reads)


async def test_a_collection_cut_short_after_its_flip_is_finished_by_a_later_round(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round that died after it turned its assets DELETED (a crash, a store that failed) left their
    aliases held by DELETED assets: later rounds read only assets not DELETED, so nothing freed the
    names, and storing a new asset under one was CONFLICT for good. The flag now goes last, and a
    later round finishes an asset DELETED and still flagged, once an hour has settled it (before,
    the delete may yet be undone)."""
    asset = await factories.value_asset(api, contributor, name="old", aliases=["reports/latest"])
    pin = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)
    await _age_flag(asset["id"], 8)
    await _round_dying_after_the_flip(monkeypatch, state)
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "DELETED"

    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # not settled: left alone
    assert (await Alias.get("reports/latest")).asset_id == object_id(asset["id"])
    await Asset.get_pymongo_collection().update_one(  # an hour goes by
        {"_id": object_id(asset["id"])}, {"$set": {"deleted_at": utcnow() - timedelta(hours=2)}})
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # finished, not listed again
    assert await Alias.get("reports/latest") is None
    assert await _flag(asset["id"]) is None
    again = await factories.value_asset(api, contributor, name="new", aliases=["reports/latest"])
    assert again["aliases"] == ["reports/latest"]


async def test_a_collected_or_deleted_asset_leaves_the_flagged_ones(api: Api, contributor: str, state: AppState) -> None:
    """Collected (or deleted by hand) assets kept their flag, so every later round of the collector
    read every asset it had ever collected, before and among its candidates."""
    assets = [await factories.value_asset(api, contributor, name=name) for name in ("gc", "by-hand")]
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": a["id"]} for a in assets]}}, token=contributor)
    await api.data("DeleteCollection", {"id": coll["id"]}, token=contributor)
    await _age_flag(assets[0]["id"], 8)
    assert [a.name for a in await assets_service.collect_unpinned(timedelta(days=7), state.stores)] == ["gc"]
    await api.data("DeleteAsset", {"id": assets[1]["id"]}, token=contributor)
    for asset in assets:
        assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "DELETED"
        assert await _flag(asset["id"]) is None


async def test_one_process_of_a_cluster_collects_each_round(api: Api, contributor: str, state: AppState, served: Served,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server process ran the automatic collector each round: all walked the same candidates
    and checked the same pins and uses, and all but one found nothing left to delete."""
    monkeypatch.setattr(state.settings, "asset_gc_after_days", 7.0)
    asset = await factories.value_asset(api, contributor, name="old")
    pin = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)
    await _age_flag(asset["id"], 8)
    await state.db[SCHEDULES].delete_many({})
    served.commands.clear()
    await asyncio.gather(*[_collect_assets(state) for _ in range(3)])  # three processes' rounds, at once
    walks = [f for f in served.commands.finds if f["find"] == "assets" and "unpinned_at" in f["filter"]]
    assert len(walks) == 1, walks
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "DELETED"
    await _collect_assets(state)  # and not again before the next round is due
    assert len([f for f in served.commands.finds if f["find"] == "assets" and "unpinned_at" in f["filter"]]) == 1


async def _flagged(api: Api, token: str, name: str) -> dict:
    """An asset released by its only collection (so flagged) a month ago."""
    asset = await factories.value_asset(api, token, name=name)
    coll = await factories.collection(api, token, name=f"held-{name}")
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": asset["id"]}]}},
                   token=token)
    await api.data("DeleteCollection", {"id": coll["id"]}, token=token)
    await _age_flag(asset["id"], 30)
    return asset


async def _used_and_flagged(api: Api, token: str, name: str) -> tuple[dict, dict]:
    """An asset a datum uses, released by its only collection (so flagged) a month ago: (asset, datum)."""
    asset = await _flagged(api, token, name)
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset["id"]}]}]},
                            token=token))["createDatums"][0]
    return asset, datum


async def _collected_after_a_grace_period_from_now(asset: dict, state: AppState) -> None:
    """The asset is not collected now, and is a grace period (7 days here) later."""
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # its grace period first
    await _age_flag(asset["id"], 8)
    assert [a.name for a in await assets_service.collect_unpinned(timedelta(days=7), state.stores)] == [asset["name"]]


async def test_a_used_asset_is_collected_once_its_last_use_goes(api: Api, contributor: str, state: AppState) -> None:
    """The collector dropped the flag of an unpinned asset a datum or record used: once that datum went,
    nothing flagged the asset again, and its bytes stayed for good. It keeps the flag now, from the
    round that found the asset used, and a round after the datum went collects it."""
    asset, datum = await _used_and_flagged(api, contributor, "used")
    before = utcnow()
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # used: kept
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "ACTIVE"
    assert await _flag(asset["id"]) >= before  # still flagged, from that round
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # not read again so soon
    await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor)
    await _collected_after_a_grace_period_from_now(asset, state)


async def test_a_use_made_while_the_collector_deletes_keeps_the_asset_flagged(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A datum's use written after the collector's first look, before its look again after the flip,
    gives the asset back: it kept it unflagged, and so for good once the datum went."""
    asset, datum = await _used_and_flagged(api, contributor, "late")
    uses = await state.db.datum_assets.find({"asset_id": object_id(asset["id"])}).to_list()
    await state.db.datum_assets.delete_many({"asset_id": object_id(asset["id"])})  # not written yet
    used, calls = assets_service.asset_users.used, []

    async def written_after_the_flip(asset_ids):
        calls.append(asset_ids)
        if len(calls) == 2:  # the look again after the flip
            await state.db.datum_assets.insert_many(uses)
        return await used(asset_ids)

    monkeypatch.setattr(assets_service.asset_users, "used", written_after_the_flip)
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []
    monkeypatch.undo()
    assert len(calls) == 2
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "ACTIVE"
    assert await _flag(asset["id"]) is not None
    await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor)
    await _age_flag(asset["id"], 8)
    assert [a.name for a in await assets_service.collect_unpinned(timedelta(days=7), state.stores)] == ["late"]


async def test_a_used_asset_gets_its_grace_period_from_when_its_datum_goes(
        api: Api, contributor: str, state: AppState) -> None:
    """The flag the collector keeps on a used asset is as old as the last round that found it used:
    deleting its datum moves it on to then, and the asset has its whole grace period from there."""
    asset, datum = await _used_and_flagged(api, contributor, "late-use")
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []
    await _age_flag(asset["id"], 8)  # that round was 8 days ago
    await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor)
    await _collected_after_a_grace_period_from_now(asset, state)


@pytest.mark.parametrize("use", ["datum", "record"])
async def test_a_use_whose_batch_is_abandoned_gives_its_asset_a_grace_period_from_its_removal(
        use: str, api: Api, contributor: str, state: AppState) -> None:
    """A batch whose writer died is removed by the next maintenance round (services/batches.remove_abandoned):
    its datums' uses and its records went with a plain delete, the flags of their assets left as the
    collector's last round set them, so an asset whose last use that was could go at once, not a
    grace period after its use went, as it does when its datum or record is deleted."""
    asset, datum = await _used_and_flagged(api, contributor, f"abandoned-{use}")
    if use == "record":  # the datum goes; a record of an addAnnotations batch uses the asset instead
        schema = await factories.schema(api, contributor)
        labels = await factories.annotation_set(api, contributor, schema["id"])
        await api.data("AddAnnotations", {"setId": labels["id"], "records": [
            {"assetId": asset["id"], "kind": "CLASSIFICATION", "label": "dent"}]}, token=contributor)
        await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor)
        written = state.db.annotation_records
        found = {"asset_id": object_id(asset["id"])}
        collections = ["annotation_records"]
    else:
        written = state.db.datums
        found = {"_id": object_id(datum["id"])}
        collections = ["datum_assets", "datums"]
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # used: kept
    await _age_flag(asset["id"], 8)  # that round was 8 days ago
    # What a writer that died before dropping its journal entry leaves: the entry, its lease lapsed.
    batch = (await written.find_one(found))["batch"]
    await state.db[batches.JOURNAL].insert_one({"_id": batch, "collection": collections[-1], "collections": collections,
                                                "expires_at": utcnow() - timedelta(minutes=1)})
    assert await batches.remove_abandoned(state.db) == 1
    assert await written.count_documents(found) == 0 and await state.db.datum_assets.count_documents({}) == 0
    await _collected_after_a_grace_period_from_now(asset, state)


@pytest.mark.parametrize("use", ["datum", "record"])
async def test_a_batch_its_writer_takes_back_gives_its_assets_a_grace_period_from_then(
        use: str, api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch is visible while it is written, and a collector's round then finds its assets used:
    it keeps their flags, from that round. The writer's rollback (here: the answer to an insert that
    landed never came) took the uses back with a plain delete, so an asset whose last use that was
    had its grace period from that round, not from the rollback: a writer that long in its batch left
    the asset to go at the collector's next round."""
    asset = await _flagged(api, contributor, f"taken-back-{use}")

    async def a_round_then_a_lost_answer() -> None:
        assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # used: kept
        await _age_flag(asset["id"], 8)  # that round was 8 days ago (tests cannot wait for a slow writer)
        raise AutoReconnect("connection closed")  # the chunk landed; its answer did not come

    if use == "datum":
        written, found = state.db.datum_assets, {"asset_id": object_id(asset["id"])}
        once_after(monkeypatch, DatumAsset.get_pymongo_collection(), "insert_many", a_round_then_a_lost_answer)
        error = await api.error("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset["id"]}]}]},
                                token=contributor, status=503)
    else:
        labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])
        written, found = state.db.annotation_records, {"set_id": object_id(labels["id"])}
        once_after(monkeypatch, AnnotationRecord.get_pymongo_collection(), "insert_many", a_round_then_a_lost_answer)
        error = await api.error("AddAnnotations", {"setId": labels["id"], "records": [
            {"assetId": asset["id"], "kind": "CLASSIFICATION", "label": "dent"}]}, token=contributor, status=503)
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert await written.count_documents(found) == 0 and await state.db[batches.JOURNAL].count_documents({}) == 0
    await _collected_after_a_grace_period_from_now(asset, state)


async def test_records_taken_back_for_a_set_deleted_meanwhile_give_their_assets_a_grace_period_from_then(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """addAnnotations takes back the records it wrote when their set, asset or datum went meanwhile
    (here: a delete of the set marked it). Written, they were uses a collector's round could find,
    keeping their assets' flags from that round; a plain delete left those flags so, as the writer's
    rollback did."""
    asset = await _flagged(api, contributor, "taken-back-late")
    labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])

    async def a_round_then_the_set_marked() -> None:
        assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # used: kept
        await _age_flag(asset["id"], 8)  # that round was 8 days ago
        await state.db.annotation_sets.update_one({"_id": object_id(labels["id"])}, {"$set": {"deleting_at": utcnow()}})

    once_after(monkeypatch, batches, "insert_all", a_round_then_the_set_marked)
    error = await api.error("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": asset["id"], "kind": "CLASSIFICATION", "label": "dent"}]}, token=contributor)
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert await state.db.annotation_records.count_documents({"set_id": object_id(labels["id"])}) == 0
    await _collected_after_a_grace_period_from_now(asset, state)


async def test_a_deleted_use_never_flags_an_asset_never_pinned(api: Api, contributor: str, state: AppState) -> None:
    """An asset no collection, version or pin ever held is never collected, datums or none."""
    asset = await factories.value_asset(api, contributor, name="loose")
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset["id"]}]}]},
                            token=contributor))["createDatums"][0]
    await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor)
    assert await _flag(asset["id"]) is None


async def test_a_pin_racing_a_delete_cut_short_leaves_the_flag_that_finishes_it(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pin checked the asset before a collector round turned it DELETED, then cleared its flag (and
    took itself back, the asset DELETED): with the round cut short, nothing marked the delete as one
    to finish, and the asset's names stayed held for good. Neither kind of pin clears a DELETED
    asset's flag now."""
    asset = await factories.value_asset(api, contributor, name="old", aliases=["runs/last"])
    pin = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)
    await _age_flag(asset["id"], 8)
    active = await assets_service.get_asset(object_id(asset["id"]))  # as read before the flip
    await _round_dying_after_the_flip(monkeypatch, state)

    async def read_before_the_flip(*args, **kwargs):
        return active

    monkeypatch.setattr(assets_service, "get_asset", read_before_the_flip)
    error = await api.error("PinAsset", {"assetId": asset["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT"  # the pin sees the delete and takes itself back
    monkeypatch.undo()
    coll = await factories.collection(api, contributor)  # a collection's pin, through retention.pin
    await retention.pin([object_id(asset["id"])], RetentionOwnerType.COLLECTION, object_id(coll["id"]), None)
    assert await _flag(asset["id"]) is not None
    await state.db.retentions.delete_many({"asset_id": object_id(asset["id"])})

    await Asset.get_pymongo_collection().update_one(  # an hour goes by
        {"_id": object_id(asset["id"])}, {"$set": {"deleted_at": utcnow() - timedelta(hours=2)}})
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []
    assert await Alias.get("runs/last") is None  # the delete finished: the name is free


async def test_a_forced_delete_of_an_asset_in_a_collection_leaves_no_flag(api: Api, contributor: str, admin: str,
                                                                          state: AppState) -> None:
    """A forced delete takes the asset out of its collections, whose release flags it (nothing pins it
    any more): the delete read the asset before, unflagged, so it left that flag on the DELETED asset,
    and the collector, weeks later, read it as a delete cut short and went through its names, links,
    bytes and thumbnails again (the thumbnails of any other asset with the same bytes with them)."""
    asset = await factories.value_asset(api, contributor, name="held")
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": asset["id"]}]}},
                   token=contributor)
    assert await _flag(asset["id"]) is None
    assert (await api.data("DeleteAsset", {"id": asset["id"], "force": True}, token=admin))["deleteAsset"]["deleted"]
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "DELETED"
    assert await _flag(asset["id"]) is None


async def test_a_delete_cut_short_whose_store_still_fails_holds_no_other_asset_back(
        api: Api, contributor: str, state: AppState) -> None:
    """A DELETED asset still flagged is finished by the collector's rounds, its bytes deleted then. A
    store that still fails there (away, or refusing: here a folder of the mount swapped for a link)
    raised out of the round before the page's own candidates, each round anew: no asset was collected
    again, on any mount, until that store came back. The asset stays flagged, to be tried again."""
    cut = await uploaded(api, contributor, b"left behind", "local", "left.bin")
    await Asset.get_pymongo_collection().update_one({"_id": object_id(cut["id"])}, {"$set": {
        "status": "DELETED", "deleted_at": utcnow() - timedelta(hours=2), "unpinned_at": utcnow() - timedelta(days=20)}})
    asset = await factories.value_asset(api, contributor, name="due")
    pin = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)
    await _age_flag(asset["id"], 8)
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    folder = store.root / "assets"
    away = folder.with_name("assets-away")
    folder.rename(away)
    folder.symlink_to(away)  # every key under it is UnsafeKey now
    try:
        assert [a.name for a in await assets_service.collect_unpinned(timedelta(days=7), state.stores)] == ["due"]
        assert await _flag(cut["id"]) is not None
    finally:
        folder.unlink()
        away.rename(folder)
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # finished now
    assert await _flag(cut["id"]) is None


async def _round_dying_after_the_flip(monkeypatch: pytest.MonkeyPatch, state: AppState) -> None:
    """A collector round whose server dies right after it flipped its candidates DELETED: at its
    second look at their pins (the look again after the flip)."""
    pinned, calls = retention.pinned, []

    async def dies_after_the_flip(asset_ids):
        calls.append(asset_ids)
        if len(calls) == 2:
            raise ConnectionError("the server died")
        return await pinned(asset_ids)

    monkeypatch.setattr(retention, "pinned", dies_after_the_flip)
    with pytest.raises(ConnectionError, match="the server died"):  # ours, not a real connection's
        await assets_service.collect_unpinned(timedelta(days=7), state.stores)
    monkeypatch.setattr(retention, "pinned", pinned)
