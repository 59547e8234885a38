"""Deletes that race the writes that need what they delete: an annotation set deleted while a version
is built from it or records are added to it, a datum deleted while records are added on it. Whichever comes second sees the other (the set is marked
as its delete starts: services/annotations.delete_set), so no version holds a set that is gone or
half its records, and no record outlives its set. Each test puts the other side in the gap a real
race would, through the function that runs there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from documents.clock import utcnow
from resolvers.context import AppState
from services import annotations, batches, bulk_deletes, datasets, delete_marks, snapshots, unfinished_deletes
from services import collections as collections_service
from services import datums as datums_service
from services.errors import Conflict
from tests import factories
from tests.fault_injection import once_before
from tests.operations import Api, object_id
from tests.test_query_plans import plan_problems


async def _labelled(api: Api, token: str, count: int = 3) -> tuple[list[dict], dict]:
    datums = await factories.datums(api, token, count, roles=("image",))
    schema = await factories.schema(api, token)
    labels = await factories.annotation_set(api, token, schema["id"])
    records = [{"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": "dent"}
               for d in datums]
    await api.data("AddAnnotations", {"setId": labels["id"], "records": records}, token=token)
    return datums, labels


def _delete_while_building(monkeypatch: pytest.MonkeyPatch, delete: Callable[[], Awaitable[Any]]) -> list[Conflict]:
    """Run `delete` once a build has claimed its name, before it copies anything; the refusals it met."""
    build, refused = datasets._build, []

    async def deleting_meanwhile(*args: Any, **kwargs: Any) -> Any:
        try:
            await delete()
        except Conflict as conflict:
            refused.append(conflict)
        return await build(*args, **kwargs)

    monkeypatch.setattr(datasets, "_build", deleting_meanwhile)
    return refused


async def _records_of(db: Any, set_id: str) -> int:
    return await db.annotation_records.count_documents({"set_id": object_id(set_id)})


async def test_a_set_deleted_before_a_build_claims_its_version_fails_the_build(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    db = state.db
    datums, labels = await _labelled(api, contributor)
    dataset = await factories.dataset(api, contributor)
    claim = datasets._claim_name

    async def deleted_first(*args: Any, **kwargs: Any) -> Any:  # the delete lands after the build checked the set
        assert await annotations.delete_set(object_id(labels["id"])) == 3
        return await claim(*args, **kwargs)

    monkeypatch.setattr(datasets, "_claim_name", deleted_first)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "addDatums": [d["id"] for d in datums],
                                                               "addAnnotationSets": [labels["id"]]}}, token=contributor)
    assert error["extensions"]["code"] == "NOT_FOUND" and error["extensions"]["field"] == "addAnnotationSets[0]", error
    assert "being deleted" in error["message"]
    assert await db.dataset_versions.count_documents({}) == 0  # its BUILDING record went with it


async def test_a_build_that_starts_while_its_set_is_deleted_is_refused(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    db = state.db
    datums, labels = await _labelled(api, contributor)
    dataset = await factories.dataset(api, contributor)
    delete_all, built, started = bulk_deletes.delete_all, [], []

    async def build_in_the_gap(*args: Any, **kwargs: Any) -> Any:
        # The delete found no version holding the set, and is about to take its records out: a build
        # runs whole now. Finding the delete's mark on the set, it stops.
        if not started:  # once: the failed build's own cleanup deletes through here too
            started.append(True)
            built.append(await api.run("CreateDatasetVersion", {"input": {
                "datasetId": dataset["id"], "version": "v1", "addDatums": [d["id"] for d in datums],
                "addAnnotationSets": [labels["id"]]}}, token=contributor))
        return await delete_all(*args, **kwargs)

    monkeypatch.setattr(bulk_deletes, "delete_all", build_in_the_gap)
    assert await annotations.delete_set(object_id(labels["id"])) == 3
    error = built[0]["errors"][0]
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "addAnnotationSets[0]"}, built
    assert await _records_of(db, labels["id"]) == 0 and await db.dataset_versions.count_documents({}) == 0


async def test_a_delete_refused_by_a_building_version_leaves_the_set_whole(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    db = state.db
    datums, labels = await _labelled(api, contributor)
    dataset = await factories.dataset(api, contributor)
    refused = _delete_while_building(monkeypatch, lambda: annotations.delete_set(object_id(labels["id"])))
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums],
                                      addAnnotationSets=[labels["id"]])
    assert len(refused) == 1 and "dataset versions" in str(refused[0])
    assert len(await factories.version_copies(version["id"])) == 3 and await _records_of(db, labels["id"]) == 3
    stored = await db.annotation_sets.find_one({"_id": object_id(labels["id"])})
    assert "deleting_at" not in stored or stored["deleting_at"] is None  # the refused delete took its mark back
    more = [{"assetId": datums[0]["roles"][0]["asset"]["id"], "datumId": datums[0]["id"], "kind": "CLASSIFICATION",
             "label": "scratch"}]
    await api.data("AddAnnotations", {"setId": labels["id"], "records": more}, token=contributor)  # still open to writes


async def test_a_build_waits_out_a_delete_still_looking_for_holders_and_goes_on(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete marks the set after the build claimed its name, and the build looks for marks
    before the delete has looked for holders. Both used to fail: the build on the mark, the delete on
    the build. Now the build waits out a mark not yet committed: the delete finds it building, is
    refused and takes its mark back, and the build goes on."""
    db = state.db
    datums, labels = await _labelled(api, contributor)
    dataset = await factories.dataset(api, contributor)
    claim, look, mark = datasets._claim_name, datasets._what_it_holds, delete_marks.mark
    marked, looked, deletes = asyncio.Event(), asyncio.Event(), []

    async def delete_after_the_claim(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        deletes.append(asyncio.ensure_future(annotations.delete_set(object_id(labels["id"]))))
        await asyncio.wait_for(marked.wait(), 10)
        return claimed

    async def holders_looked_for_after_the_build(*args: Any, **kwargs: Any) -> Any:
        token = await mark(*args, **kwargs)
        marked.set()  # the set is marked: the delete looks for holders once the build has looked for marks
        await asyncio.wait_for(looked.wait(), 10)
        return token

    async def build_looks(*args: Any, **kwargs: Any) -> Any:
        found = await look(*args, **kwargs)
        looked.set()
        return found

    monkeypatch.setattr(datasets, "_claim_name", delete_after_the_claim)
    monkeypatch.setattr(delete_marks, "mark", holders_looked_for_after_the_build)
    monkeypatch.setattr(datasets, "_what_it_holds", build_looks)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums],
                                      addAnnotationSets=[labels["id"]])
    with pytest.raises(Conflict, match="dataset versions"):
        await deletes[0]
    assert version["datumCount"] == 3 and len(await factories.version_copies(version["id"])) == 3
    stored = await db.annotation_sets.find_one({"_id": object_id(labels["id"])})
    assert stored.get("deleting_at") is None and await _records_of(db, labels["id"]) == 3


async def test_a_build_gives_up_on_a_mark_a_delete_cut_short_left(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mark that stays pending (its delete died before it committed) is waited out only so long
    (delete_marks.WAIT_SECONDS): the build then fails as for a set being deleted."""
    datums, labels = await _labelled(api, contributor)
    dataset = await factories.dataset(api, contributor)
    await delete_marks.mark(state.db.annotation_sets, object_id(labels["id"]), {"deleting_at": utcnow()})
    monkeypatch.setattr(delete_marks, "WAIT_SECONDS", 0.2)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "addDatums": [d["id"] for d in datums],
                                                               "addAnnotationSets": [labels["id"]]}}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "addAnnotationSets[0]"}, error
    assert await state.db.dataset_versions.count_documents({}) == 0


async def test_records_added_while_their_set_is_deleted_do_not_outlive_it(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    db = state.db
    datums, labels = await _labelled(api, contributor)
    schema_of = annotations._schema

    async def deleted_meanwhile(schema_id: Any) -> Any:  # the add checked the set; the delete runs whole now
        assert await annotations.delete_set(object_id(labels["id"])) == 3
        return await schema_of(schema_id)

    monkeypatch.setattr(annotations, "_schema", deleted_meanwhile)
    records = [{"assetId": datums[1]["roles"][0]["asset"]["id"], "datumId": datums[1]["id"], "kind": "CLASSIFICATION",
                "label": "dent"}]
    error = await api.error("AddAnnotations", {"setId": labels["id"], "records": records}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "setId"}, error
    assert await _records_of(db, labels["id"]) == 0


async def test_items_added_as_their_collection_is_deleted_do_not_outlive_it(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete's rounds find no item left; before it removes the collection, an add writes its
    items. It had been answered as done, and left items, pins and a `collection_ids` entry naming a
    collection that was gone."""
    db = state.db
    kept = await factories.collection(api, contributor, "doomed")
    first = await factories.value_asset(api, contributor, "first")
    late = await factories.value_asset(api, contributor, "late")
    await api.data("AddToCollection", {"input": {"collectionId": kept["id"], "items": [{"assetId": first["id"]}]}},
                   token=contributor)
    first_left, added = bulk_deletes.first_left, []

    async def add_after_the_last_round(collection: Any, query: dict, *args: Any, **kwargs: Any) -> Any:
        found = await first_left(collection, query, *args, **kwargs)
        if not found and not added and collection.name == "collection_items":
            added.append(await api.run("AddToCollection", {"input": {"collectionId": kept["id"],
                                                                     "items": [{"assetId": late["id"]}]}}, token=contributor))
        return found

    monkeypatch.setattr(bulk_deletes, "first_left", add_after_the_last_round)
    await api.data("DeleteCollection", {"id": kept["id"]}, token=contributor)
    error = added[0]["errors"][0]
    assert error["extensions"]["code"] == "NOT_FOUND" and "being deleted" in error["message"], added
    gone = object_id(kept["id"])
    assert await db.collection_items.count_documents({"collection_id": gone}) == 0
    assert await db.retentions.count_documents({"owner_id": gone}) == 0
    assert await db.assets.count_documents({"collection_ids": gone}) == 0
    assert await db.collections.count_documents({"_id": gone}) == 0


async def test_an_add_whose_asset_went_meanwhile_still_leaves_nothing_in_a_collection_being_deleted(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The add wrote its items; then a delete of the collection began, and one of its assets was
    deleted. It answered that asset's refusal first and left the other items behind, in a collection
    whose delete had passed them."""
    db = state.db
    doomed = await factories.collection(api, contributor, "doomed")
    kept, gone = (await factories.value_asset(api, contributor, "kept"), await factories.value_asset(api, contributor, "gone"))
    write = collections_service._write_items

    async def delete_begins_after_the_write(collection_id: Any, *args: Any, **kwargs: Any) -> None:
        await write(collection_id, *args, **kwargs)
        await db.collections.update_one({"_id": collection_id}, {"$set": {"deleting_at": utcnow()}})

    async def one_asset_went(asset_ids: Any) -> list:
        return [object_id(gone["id"])]

    monkeypatch.setattr(collections_service, "_write_items", delete_begins_after_the_write)
    monkeypatch.setattr(collections_service, "in_use_despite_delete", one_asset_went)
    error = await api.error("AddToCollection", {"input": {"collectionId": doomed["id"], "items": [
        {"assetId": kept["id"]}, {"assetId": gone["id"]}]}}, token=contributor)
    assert error["extensions"]["code"] == "NOT_FOUND" and "being deleted" in error["message"], error
    assert await db.collection_items.count_documents({"collection_id": object_id(doomed["id"])}) == 0


async def test_a_version_from_a_collection_deleted_while_it_is_read_fails(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read a page at a time, the collection lost its items to the delete's rounds after the first
    page: the version was READY with two of its five items."""
    db = state.db
    doomed = await factories.collection(api, contributor, "doomed")
    assets = [await factories.value_asset(api, contributor, f"v{i}") for i in range(5)]
    await api.data("AddToCollection", {"input": {"collectionId": doomed["id"],
                                                 "items": [{"assetId": a["id"]} for a in assets]}}, token=contributor)
    dataset = await factories.dataset(api, contributor)
    monkeypatch.setattr(datasets, "ITEMS_PER_BATCH", 2)
    deleted = once_before(monkeypatch, datasets, "insert_datums",  # as the first page is written
                          lambda: api.run("DeleteCollection", {"id": doomed["id"]}, token=contributor))
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "fromCollection": doomed["id"]}}, token=contributor)
    assert not deleted[0].get("errors"), deleted
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "fromCollection"}, error
    assert await db.dataset_versions.count_documents({}) == 0 and await db.datums.count_documents({}) == 0


async def _two_versions(api: Api, token: str) -> tuple[dict, dict, list[dict]]:
    datums = await factories.datums(api, token, 5, roles=("image",))
    dataset = await factories.dataset(api, token)
    older = await factories.version(api, token, dataset["id"], "v1", addDatums=[d["id"] for d in datums])
    newer = await factories.version(api, token, dataset["id"], "v2", addDatums=[datums[0]["id"]])
    return older, newer, datums


def _delete_after_the_first_page(monkeypatch: pytest.MonkeyPatch, version_id: str, deleted: list) -> None:
    """Members read two a page; once the first page of `version_id`'s is read, the version is deleted whole."""
    pages = datasets.key_pages
    monkeypatch.setattr(datasets, "MEMBERS_PER_READ", 2)

    async def paged(collection: Any, query: dict, *args: Any, **kwargs: Any) -> Any:
        async for page in pages(collection, query, *args, **kwargs):
            yield page
            if not deleted and query == {"version_id": object_id(version_id)}:
                deleted.append(version_id)
                await datasets.delete_version(object_id(version_id))

    monkeypatch.setattr(datasets, "key_pages", paged)


async def test_a_diff_against_a_version_deleted_while_it_is_read_fails(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its members read in pages, the version lost the rest to the delete's rounds: the diff said
    four datums were added that both versions held."""
    older, newer, _ = await _two_versions(api, contributor)
    deleted: list = []
    _delete_after_the_first_page(monkeypatch, older["id"], deleted)
    error = await api.error("VersionDiff", {"id": newer["id"], "against": older["id"]}, token=contributor)
    assert deleted and error["extensions"] == {"code": "NOT_FOUND", "field": "against"}, error


async def test_a_training_split_of_a_version_deleted_while_it_is_read_fails(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    older, _, _ = await _two_versions(api, contributor)
    deleted: list = []
    _delete_after_the_first_page(monkeypatch, older["id"], deleted)
    error = await api.error("TrainingSplit", {"version": older["id"], "ratios": {"train": 1, "validation": 0, "test": 0}},
                            token=contributor)
    assert deleted and error["extensions"] == {"code": "NOT_FOUND", "field": "datasetVersion"}, error


async def test_a_child_built_while_its_parent_is_deleted_fails_or_stops_the_delete(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete looked for children before the child claimed its name, then took the parent's
    members out while the child read them: the child was READY with part of its parent, naming a
    parent that was gone. Now the delete marks the parent first: the child finds the mark."""
    db = state.db
    older, _, datums = await _two_versions(api, contributor)
    deleted: list = []
    _delete_after_the_first_page(monkeypatch, older["id"], deleted)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": older["dataset"]["id"], "version": "v3",
                                                               "parentId": older["id"]}}, token=contributor)
    assert deleted and error["extensions"] == {"code": "NOT_FOUND", "field": "parentId"}, error
    assert await db.dataset_versions.count_documents({"version": {"$in": ["v1", "v3"]}}) == 0

    # The other order: a delete that finds the child building is refused, and its version stays READY.
    monkeypatch.undo()
    parent = await factories.version(api, contributor, older["dataset"]["id"], "v4", addDatums=[datums[1]["id"]])
    refused = _delete_while_building(monkeypatch, lambda: datasets.delete_version(object_id(parent["id"])))
    child = await factories.version(api, contributor, older["dataset"]["id"], "v5", parentId=parent["id"])
    assert len(refused) == 1 and "child versions" in str(refused[0])
    assert child["datumCount"] == 1
    read = (await api.data("VersionDiff", {"id": child["id"], "against": parent["id"]}, token=contributor))
    assert read["datasetVersion"]["diff"]["addedCount"] == 0  # the parent is READY again, whole


async def test_a_refused_delete_takes_back_only_its_own_mark(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two deletes of one set: the first finds a version holding it and is refused; before it takes
    its mark back, the version goes and the second delete passes its checks and starts taking the
    records out. The first's refusal had cleared the second's mark, and a build then copied a set
    being deleted. Now it takes back only its own mark, never one a delete has committed."""
    db = state.db
    datums, labels = await _labelled(api, contributor)
    dataset = await factories.dataset(api, contributor)
    holder = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums],
                                     addAnnotationSets=[labels["id"]])
    take_back, second = delete_marks.take_back, []
    delete_all = bulk_deletes.delete_all
    removing = asyncio.Event()
    go_on = asyncio.Event()

    async def second_delete_in_the_gap(*args: Any, **kwargs: Any) -> None:
        if not second:  # the first delete, refused, about to take its mark back: a second one runs meanwhile
            second.append(asyncio.ensure_future(_second()))
            await asyncio.wait_for(removing.wait(), 10)  # past its checks, removing the records
        await take_back(*args, **kwargs)

    async def slow_rounds(collection: Any, *args: Any, **kwargs: Any) -> Any:
        if collection.name == "annotation_records":  # the second delete of the set stops in its first round
            removing.set()
            await go_on.wait()
        return await delete_all(collection, *args, **kwargs)

    async def _second() -> int:
        await datasets.delete_version(object_id(holder["id"]))
        return await annotations.delete_set(object_id(labels["id"]))

    monkeypatch.setattr(delete_marks, "take_back", second_delete_in_the_gap)
    monkeypatch.setattr(bulk_deletes, "delete_all", slow_rounds)
    first = asyncio.ensure_future(annotations.delete_set(object_id(labels["id"])))
    with pytest.raises(Conflict, match="dataset versions"):
        await first  # the first was refused by the version it had read
    stored = await db.annotation_sets.find_one({"_id": object_id(labels["id"])})
    assert stored["deleting_at"] is not None  # the second's mark stands
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v2",
                                                               "addAnnotationSets": [labels["id"]]}}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "addAnnotationSets[0]"}, error
    go_on.set()
    assert await second[0] == 3
    assert await db.annotation_sets.count_documents({"_id": object_id(labels["id"])}) == 0


async def test_a_version_refused_by_a_child_is_shown_again_unless_a_delete_has_begun_removing_it(
        api: Api, contributor: str, state: AppState) -> None:
    db = state.db
    older, _, _ = await _two_versions(api, contributor)
    child = await factories.version(api, contributor, older["dataset"]["id"], "v3", parentId=older["id"])
    with pytest.raises(Conflict, match="child versions"):
        await datasets.delete_version(object_id(older["id"]))
    stored = await db.dataset_versions.find_one({"_id": object_id(older["id"])})
    assert stored["status"] == "READY" and "delete_token" not in stored  # shown again, unmarked
    # Marked by one delete, then by another: the first may not go on (the second decides).
    versions = db.dataset_versions
    first = await delete_marks.mark(versions, object_id(older["id"]), {"status": "DELETING"})
    second = await delete_marks.mark(versions, object_id(older["id"]), {"status": "DELETING"})
    with pytest.raises(Conflict, match="another delete"):
        await delete_marks.commit(versions, object_id(older["id"]), first, "this version")
    await delete_marks.take_back(versions, object_id(older["id"]), first, {"$set": {"status": "READY"}})
    assert (await versions.find_one({"_id": object_id(older["id"])}))["status"] == "DELETING"  # not the first's to undo
    await delete_marks.commit(versions, object_id(older["id"]), second, "this version")
    await delete_marks.take_back(versions, object_id(older["id"]), second, {"$set": {"status": "READY"}})
    assert (await versions.find_one({"_id": object_id(older["id"])}))["status"] == "DELETING"  # committed: stays
    assert (await versions.find_one({"_id": object_id(child["id"])}))["parent_id"] == object_id(older["id"])


async def test_a_version_shown_again_loses_nothing(api: Api, contributor: str, state: AppState) -> None:
    """A delete marked a version with a child and is still looking. Another delete finds it marked and
    uncommitted: it checks for itself (refused by the child), never removes it as a leftover. And what
    removes leftovers (a rebuild of the name, a dataset's delete) removes nothing of a version shown
    READY again: it had stripped one, left READY and empty."""
    db = state.db
    older, _, _ = await _two_versions(api, contributor)
    await factories.version(api, contributor, older["dataset"]["id"], "v3", parentId=older["id"])
    version_id = object_id(older["id"])
    members = await db.version_members.count_documents({"version_id": version_id})
    await delete_marks.mark(db.dataset_versions, version_id, {"status": "DELETING"})  # a delete, still looking
    with pytest.raises(Conflict, match="child versions"):
        await datasets.delete_version(version_id)
    assert (await db.dataset_versions.find_one({"_id": version_id}))["status"] == "READY"
    await datasets._discard(version_id)  # as a leftover: READY now, so nothing goes
    assert await db.version_members.count_documents({"version_id": version_id}) == members
    stored = await db.dataset_versions.find_one({"_id": version_id})
    assert stored["status"] == "READY" and not stored.get("delete_committed")


async def test_a_build_taken_over_while_it_runs_is_never_flipped_ready(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that outlived ABANDONED_AFTER is taken over (its name rebuilt, its dataset or itself
    deleted), and the takeover's removal is under way when the old build reaches its flip to READY:
    it flipped, and the removal went on, leaving a READY version with nothing in it."""
    db = state.db
    datums = await factories.datums(api, contributor, 3, roles=("image",))
    dataset = await factories.dataset(api, contributor)
    build, delete_all = datasets._build, bulk_deletes.delete_all
    removing, flipped, takeover = asyncio.Event(), asyncio.Event(), []

    async def paused_removal(collection: Any, *args: Any, **kwargs: Any) -> Any:
        if collection.name == "version_members" and not removing.is_set():
            removing.set()
            await flipped.wait()
        return await delete_all(collection, *args, **kwargs)

    async def taken_over(version: Any, *args: Any, **kwargs: Any) -> Any:
        takeover.append(asyncio.ensure_future(datasets._discard(version.id)))  # as a takeover would
        await asyncio.wait_for(removing.wait(), 10)
        try:
            return await build(version, *args, **kwargs)  # runs to its flip while the removal waits
        finally:
            flipped.set()

    monkeypatch.setattr(bulk_deletes, "delete_all", paused_removal)
    monkeypatch.setattr(datasets, "_build", taken_over)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "addDatums": [d["id"] for d in datums]}}, token=contributor)
    await takeover[0]
    assert error["extensions"]["code"] == "CONFLICT" and "discarded while it ran" in error["message"], error
    assert await db.dataset_versions.count_documents({}) == 0 and await db.version_members.count_documents({}) == 0


async def test_what_a_build_wrote_after_its_record_went_is_removed_too(api: Api, contributor: str,
                                                                        state: AppState) -> None:
    """A build taken over keeps writing until its flip fails; its cleanup then finds its record gone,
    and removed nothing, its members and pins left for good."""
    db = state.db
    gone = ObjectId()
    await db.version_members.insert_one({"version_id": gone, "datum_id": ObjectId(), "split": "TRAIN"})
    await db.retentions.insert_one({"asset_id": ObjectId(), "owner_type": "DATASET_VERSION", "owner_id": gone})
    await datasets._discard(gone)
    assert await db.version_members.count_documents({"version_id": gone}) == 0
    assert await db.retentions.count_documents({"owner_id": gone}) == 0


async def test_a_build_whose_dataset_is_deleted_before_it_claims_its_name_fails(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset was checked when the build started; its delete found no version yet and went
    through; the build then made a READY version of a dataset that was gone."""
    db = state.db
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    dataset = await factories.dataset(api, contributor)
    claim = datasets._claim_name

    async def deleted_first(*args: Any, **kwargs: Any) -> Any:
        await datasets.delete_dataset(object_id(dataset["id"]))
        return await claim(*args, **kwargs)

    monkeypatch.setattr(datasets, "_claim_name", deleted_first)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "addDatums": [d["id"] for d in datums]}}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "datasetId"}, error
    assert await db.dataset_versions.count_documents({}) == 0 and await db.datasets.count_documents({}) == 0


async def test_a_dataset_delete_that_finds_a_build_gives_its_mark_back(api: Api, contributor: str,
                                                                        state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    db = state.db
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    dataset = await factories.dataset(api, contributor)
    refused = _delete_while_building(monkeypatch, lambda: datasets.delete_dataset(object_id(dataset["id"])))
    await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums])
    assert len(refused) == 1 and "being built" in str(refused[0])
    stored = await db.datasets.find_one({"_id": object_id(dataset["id"])})
    assert stored.get("deleting_at") is None and "delete_token" not in stored


async def test_a_build_waits_out_a_dataset_delete_that_has_leftovers_to_remove(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset holds an abandoned build; its delete marks the dataset just after a new build
    claimed its name. The delete removed its leftovers before it looked for the new build, longer
    than the build waits, so both failed. It looks for a build under way first now: it is refused at
    once, and the build goes on."""
    db = state.db
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    dataset = await factories.dataset(api, contributor)
    await db.dataset_versions.insert_one({"dataset_id": object_id(dataset["id"]), "version": "abandoned",
                                          "status": "BUILDING", "annotation_set_ids": [],
                                          "created_at": utcnow() - datasets.ABANDONED_AFTER - timedelta(minutes=1)})
    claim, delete_version, mark, deletes = datasets._claim_name, datasets.delete_version, delete_marks.mark, []
    marked = asyncio.Event()
    monkeypatch.setattr(delete_marks, "WAIT_SECONDS", 0.5)

    async def marking(*args: Any, **kwargs: Any) -> Any:
        token = await mark(*args, **kwargs)
        marked.set()
        return token

    async def slow_leftovers(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(1)  # longer than the build waits
        return await delete_version(*args, **kwargs)

    async def delete_after_the_claim(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        deletes.append(asyncio.ensure_future(datasets.delete_dataset(object_id(dataset["id"]))))
        await asyncio.wait_for(marked.wait(), 10)  # marked before the build looks
        return claimed

    monkeypatch.setattr(datasets, "delete_version", slow_leftovers)
    monkeypatch.setattr(datasets, "_claim_name", delete_after_the_claim)
    monkeypatch.setattr(delete_marks, "mark", marking)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums])
    with pytest.raises(Conflict, match="being built"):
        await deletes[0]
    assert version["datumCount"] == 2
    assert await db.dataset_versions.count_documents({"version": "abandoned"}) == 1  # nothing of it removed yet
    stored = await db.datasets.find_one({"_id": object_id(dataset["id"])})
    assert stored.get("deleting_at") is None


async def test_a_leftover_that_turned_ready_is_not_removed_as_one(api: Api, contributor: str, state: AppState,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild of a name, or a dataset's delete, removes the version under that name as a leftover
    (a build abandoned after 10 minutes). If that build turns READY first, it is CONFLICT: it had
    deleted the READY version (mark, checks, removal), or left it without its dataset."""
    db = state.db
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    dataset = await factories.dataset(api, contributor)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in datums])
    with pytest.raises(Conflict, match="built meanwhile"):
        await datasets.delete_version(object_id(version["id"]), leftover=True)
    # Taken for abandoned while BUILDING, then turned READY before the removal committed it.
    await db.dataset_versions.update_one({"_id": object_id(version["id"])}, {"$set": {"status": "BUILDING",
                                                                                     "created_at": utcnow() - datasets.ABANDONED_AFTER}})
    discard = datasets._discard

    async def turned_ready_first(version_id: Any, *args: Any, **kwargs: Any) -> bool:
        await db.dataset_versions.update_one({"_id": version_id}, {"$set": {"status": "READY"}})
        return await discard(version_id, *args, **kwargs)

    monkeypatch.setattr(datasets, "_discard", turned_ready_first)
    with pytest.raises(Conflict, match="built meanwhile"):
        await datasets.delete_version(object_id(version["id"]), leftover=True)
    monkeypatch.undo()
    stored = await db.dataset_versions.find_one({"_id": object_id(version["id"])})
    assert stored["status"] == "READY" and await db.version_members.count_documents(
        {"version_id": object_id(version["id"])}) == 2
    error = await api.error("DeleteDataset", {"id": dataset["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT", error


async def test_deletes_that_died_half_done_are_run_again(api: Api, contributor: str, state: AppState) -> None:
    """A delete that died after its mark left a version hidden, or a set closed to writes, until someone
    deleted it again by id. The maintenance runs marks older than half an hour again: the delete
    finishes, or, refused by a holder, shows the version again. A recent mark is left to its delete."""
    db = state.db
    long_ago = utcnow() - unfinished_deletes.STALE_AFTER - timedelta(minutes=5)
    stale = {"delete_token": ObjectId.from_datetime(long_ago)}
    older, newer, _ = await _two_versions(api, contributor)
    held = await factories.version(api, contributor, older["dataset"]["id"], "v3", parentId=newer["id"])
    _, labels = await _labelled(api, contributor)
    doomed = await factories.collection(api, contributor, "doomed")
    recent = await factories.collection(api, contributor, "recent")
    await db.dataset_versions.update_one({"_id": object_id(older["id"])}, {"$set": {"status": "DELETING", **stale}})
    await db.dataset_versions.update_one({"_id": object_id(newer["id"])}, {"$set": {"status": "DELETING", **stale}})
    await db.annotation_sets.update_one({"_id": object_id(labels["id"])}, {"$set": {"deleting_at": long_ago, **stale}})
    await db.collections.update_one({"_id": object_id(doomed["id"])}, {"$set": {"deleting_at": long_ago}})
    await db.collections.update_one({"_id": object_id(recent["id"])}, {"$set": {"deleting_at": utcnow()}})

    assert await unfinished_deletes.finish(state.stores) == 4
    assert await db.dataset_versions.count_documents({"_id": object_id(older["id"])}) == 0  # finished
    shown = await db.dataset_versions.find_one({"_id": object_id(newer["id"])})
    assert shown["status"] == "READY" and "delete_token" not in shown  # its child holds it: shown again
    assert await db.annotation_sets.count_documents({"_id": object_id(labels["id"])}) == 0
    assert await db.annotation_records.count_documents({"set_id": object_id(labels["id"])}) == 0
    assert await db.collections.count_documents({"_id": object_id(doomed["id"])}) == 0
    assert await db.collections.count_documents({"_id": object_id(recent["id"])}) == 1  # its delete may still run
    assert (await db.dataset_versions.find_one({"_id": object_id(held["id"])}))["status"] == "READY"
    assert await unfinished_deletes.finish(state.stores) == 0


async def test_a_commit_is_never_lost_to_a_mark_sent_at_once(scratch_db: Any) -> None:
    """A delete's commit and another delete's mark of the same document, sent at once: a commit that
    succeeded stays on the document. Both are conditional single-document updates, each atomic on
    MongoDB and on our FerretDB build (scripts/ferretdb/patch.py, step 13); before it, one write
    replaced the document the other had just changed, and about one commit in twenty was lost."""
    marks = scratch_db.marks
    for _ in range(100):
        document_id, token = ObjectId(), ObjectId()
        await marks.insert_one({"_id": document_id, delete_marks.TOKEN: token})
        outcome = await asyncio.gather(delete_marks.commit(marks, document_id, token, "the thing"),
                                       delete_marks.mark(marks, document_id, {"deleting_at": utcnow()}),
                                       return_exceptions=True)
        stored = await marks.find_one({"_id": document_id})
        assert stored.get("deleting_at") is not None  # the mark: unconditional here
        if outcome[0] is None:  # committed: it stays, whatever the mark's token
            assert stored.get(delete_marks.COMMITTED) is True
        else:  # the mark came first and took the token over
            assert isinstance(outcome[0], Conflict) and stored[delete_marks.TOKEN] == outcome[1]


async def test_an_asset_delete_while_a_datum_delete_looks_for_holders_never_takes_the_asset_from_under_it(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three at once: deleteDatum, addAnnotations on the datum, and deleteAsset of another of its role
    assets. The datum delete removed the datum and its uses, looked for records, found the new one and
    brought the datum back; an asset delete in between found nothing using the asset and deleted it,
    so the datum came back naming a DELETED asset. The datum delete now marks it and removes nothing
    until it has found no holder: every asset delete meanwhile is refused, naming the datum."""
    db = state.db
    (datum,) = await factories.datums(api, contributor, 1, roles=("image", "depth"))
    image, depth = (role["asset"]["id"] for role in datum["roles"])
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    looks, answers = datums_service._records_on, []

    async def others_after_each_look(*args: Any) -> list[str]:
        found = await looks(*args)
        if not answers:  # an addAnnotations after the delete's (first) look: it saw the datum unmarked, or the mark
            answers.append(await api.run("AddAnnotations", {"setId": labels["id"], "records": [
                {"assetId": image, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"}]}, token=contributor))
        answers.append(await api.run("DeleteAsset", {"id": depth}, token=contributor))
        return found

    monkeypatch.setattr(datums_service, "_records_on", others_after_each_look)
    await api.run("DeleteDatum", {"id": datum["id"]}, token=contributor)
    monkeypatch.undo()
    asset_deletes = answers[1:]
    assert asset_deletes and all([e["extensions"]["code"] for e in a.get("errors", [])] == ["CONFLICT"]
                                 for a in asset_deletes), asset_deletes
    assert (await db.assets.find_one({"_id": object_id(depth)}))["status"] == "ACTIVE"
    kept = await db.datums.find_one({"_id": object_id(datum["id"])})
    records = await db.annotation_records.count_documents({"datum_id": object_id(datum["id"])})
    assert kept is not None or records == 0  # no record names a datum that is gone
    if kept is not None:  # nor does a datum name a DELETED asset
        assert "deleting_at" not in kept
        assert await db.assets.count_documents({"_id": {"$in": [object_id(image), object_id(depth)]},
                                                "status": "ACTIVE"}) == 2


async def test_records_written_while_a_datum_delete_looks_leave_one_side_standing(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """addAnnotations read the datum before its delete marked it, and wrote its records between the
    mark and the delete's look; then each side looks at the other at once. Either the records find
    the mark and go (CONFLICT), or the delete finds them and is refused, its mark taken back; never
    both standing, and never records on a datum that is gone."""
    db = state.db
    (datum,) = await factories.datums(api, contributor, 1, roles=("image",))
    image = datum["roles"][0]["asset"]["id"]
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    looks, insert_all = datums_service._records_on, batches.insert_all
    marked, written = asyncio.Event(), asyncio.Event()
    deleting: list[asyncio.Future] = []

    async def look_once_written(*args: Any) -> list[str]:
        marked.set()
        await asyncio.wait_for(written.wait(), 10)
        return await looks(*args)

    async def delete_marks_before_the_write(*args: Any, **kwargs: Any) -> Any:
        if not deleting:
            deleting.append(asyncio.ensure_future(api.run("DeleteDatum", {"id": datum["id"]}, token=contributor)))
            await asyncio.wait_for(marked.wait(), 10)
        done = await insert_all(*args, **kwargs)
        written.set()  # the delete looks now, as this writer looks for the mark
        return done

    monkeypatch.setattr(datums_service, "_records_on", look_once_written)
    monkeypatch.setattr(batches, "insert_all", delete_marks_before_the_write)
    added = await api.run("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": image, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"}]}, token=contributor)
    deleted = await deleting[0]
    monkeypatch.undo()
    codes = {"records": [e["extensions"]["code"] for e in added.get("errors", [])],
             "delete": [e["extensions"]["code"] for e in deleted.get("errors", [])]}
    assert codes in ({"records": ["CONFLICT"], "delete": []}, {"records": ["CONFLICT"], "delete": ["CONFLICT"]},
                     {"records": [], "delete": ["CONFLICT"]}), (added, deleted)
    kept = await db.datums.find_one({"_id": object_id(datum["id"])})
    records = await db.annotation_records.count_documents({"datum_id": object_id(datum["id"])})
    assert (kept is None) == (codes["delete"] == []) and records == (0 if codes["records"] else 1)
    assert kept is None or "deleting_at" not in kept


async def test_a_datum_delete_cut_short_is_run_again(api: Api, contributor: str, state: AppState) -> None:
    """A datum delete that died after its mark left the datum closed to records; the maintenance runs it
    again once its mark is half an hour old, found through an index (datums are many): it finishes,
    or, refused by a record, takes its mark back."""
    db = state.db
    long_ago = utcnow() - unfinished_deletes.STALE_AFTER - timedelta(minutes=5)
    doomed, held, recent = await factories.datums(api, contributor, 3, roles=("image",))
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": held["roles"][0]["asset"]["id"], "datumId": held["id"], "kind": "CLASSIFICATION", "label": "dent"}]},
        token=contributor)
    for datum, at in ((doomed, long_ago), (held, long_ago), (recent, utcnow())):
        await db.datums.update_one({"_id": object_id(datum["id"])},
                                   {"$set": {"deleting_at": at, "delete_token": ObjectId.from_datetime(at)}})
    stale = {"deleting_at": {"$lt": utcnow() - unfinished_deletes.STALE_AFTER}}
    plan = await db.command("explain", {"find": "datums", "filter": stale})
    assert plan_problems(plan) == [] and any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]), plan

    assert await unfinished_deletes.finish(state.stores) == 2
    assert await db.datums.count_documents({"_id": object_id(doomed["id"])}) == 0
    assert await db.datum_assets.count_documents({"datum_id": object_id(doomed["id"])}) == 0
    shown = await db.datums.find_one({"_id": object_id(held["id"])})
    assert "deleting_at" not in shown and "delete_token" not in shown  # its record holds it: open again
    assert (await db.datums.find_one({"_id": object_id(recent["id"])}))["deleting_at"] is not None  # its delete may still run
    assert await unfinished_deletes.finish(state.stores) == 0


async def test_a_schema_delete_cut_short_is_run_again(api: Api, contributor: str, state: AppState) -> None:
    """A schema delete that died after its mark left the schema closed to new sets; the maintenance
    runs it again once the mark is half an hour old: it finishes, or, refused by a set, takes its mark back."""
    db = state.db
    long_ago = utcnow() - unfinished_deletes.STALE_AFTER - timedelta(minutes=5)
    unused = await factories.schema(api, contributor, "unused")
    used = await factories.schema(api, contributor, "used")
    await factories.annotation_set(api, contributor, used["id"])
    for schema in (unused, used):
        await db.annotation_schemas.update_one({"_id": object_id(schema["id"])}, {"$set": {
            "deleting_at": long_ago, "delete_token": ObjectId.from_datetime(long_ago)}})
    error = await api.error("CreateAnnotationSet", {"input": {"name": "later", "purpose": "GROUND_TRUTH",
                                                              "schemaId": unused["id"]}}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "schemaId"}, error  # closed meanwhile

    assert await unfinished_deletes.finish(state.stores) == 2
    assert await db.annotation_schemas.count_documents({"_id": object_id(unused["id"])}) == 0
    shown = await db.annotation_schemas.find_one({"_id": object_id(used["id"])})
    assert "deleting_at" not in shown and "delete_token" not in shown  # its set holds it: open again
    assert await unfinished_deletes.finish(state.stores) == 0


async def test_a_datum_deleted_while_a_version_is_built_from_it_fails_the_build(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build read its datums; a delete of one marked it, found no version holding it (the members
    not written yet), and removed it; the build then wrote its members and turned READY, holding a
    datum that was gone. The build looks for the datums' marks once their members are written: it
    fails (CONFLICT naming the datum, the version discarded), or the delete, looking after, finds it."""
    db = state.db
    kept, doomed = await factories.datums(api, contributor, 2, roles=("image",))
    dataset = await factories.dataset(api, contributor)
    deleted = once_before(monkeypatch, snapshots, "write_batch",
                          lambda: api.data("DeleteDatum", {"id": doomed["id"]}, token=contributor))
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "addDatums": [kept["id"], doomed["id"]]}}, token=contributor)
    monkeypatch.undo()
    assert deleted[0]["deleteDatum"]["deleted"]
    assert error["extensions"] == {"code": "CONFLICT", "field": "addDatums"} and doomed["id"] in error["message"], error
    assert await db.dataset_versions.count_documents({}) == 0 and await db.version_members.count_documents({}) == 0
