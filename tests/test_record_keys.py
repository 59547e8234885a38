"""Record keys (services/record_keys.py): a record sent again under its key is found, not stored twice."""

from __future__ import annotations

import asyncio

import pytest

from documents.annotation import AnnotationRecord
from documents.clock import utcnow
from migrations.liveness import this_process
from resolvers.context import AppState
from services import batches
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id
from tests.test_query_plans import plan_problems
from tests.waiting import wait_for


@pytest.fixture
async def lake(api: Api, contributor: str) -> dict:
    image = await factories.image_asset(api, contributor, "photo.png")
    other = await factories.image_asset(api, contributor, "other.png")
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": image["id"]}]}]},
                            token=contributor))["createDatums"][0]
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    return {"image": image["id"], "other": other["id"], "datum": datum["id"], "set": labels["id"], "schema": schema["id"]}


def box(lake: dict, key: str | None, x: float = 1, **fields: object) -> dict:
    return {"assetId": lake["image"], "datumId": lake["datum"], "kind": "BBOX", "label": "dent", "key": key,
            "geometry": {"bbox": {"x": x, "y": 2, "width": 3, "height": 4}}, **fields}


async def add(api: Api, token: str, lake: dict, records: list[dict]) -> dict:
    return (await api.data("AddAnnotations", {"setId": lake["set"], "records": records}, token=token))["addAnnotations"]


async def stored(lake: dict) -> int:
    return await AnnotationRecord.get_pymongo_collection().count_documents({"set_id": object_id(lake["set"])})


async def test_records_sent_again_under_their_keys_are_found_not_stored_twice(api: Api, contributor: str,
                                                                              lake: dict) -> None:
    first = await add(api, contributor, lake, [box(lake, "coco:1:bbox"), box(lake, "coco:2:bbox", x=5), box(lake, None)])
    assert (first["count"], first["existing"]) == (3, 0)
    assert [r["key"] for r in first["records"]] == ["coco:1:bbox", "coco:2:bbox", None]
    # The same two again, between two new ones: only the new ones are stored, and every ID comes back in place.
    again = await add(api, contributor, lake, [box(lake, "coco:0:bbox", x=7), box(lake, "coco:2:bbox", x=5),
                                               box(lake, "coco:1:bbox"), box(lake, "coco:3:bbox", x=9)])
    assert (again["count"], again["existing"]) == (2, 2)
    assert again["ids"][1:3] == [first["ids"][1], first["ids"][0]]
    assert again["records"][1]["geometry"]["x"] == 5 and again["records"][0]["key"] == "coco:0:bbox"
    assert await stored(lake) == 5
    # Attributes are JSON: sent again with their keys in another order, the record is the same one.
    ordered = await add(api, contributor, lake, [box(lake, "coco:4:bbox", attributes={"occluded": True, "pose": "left"})])
    reordered = await add(api, contributor, lake, [box(lake, "coco:4:bbox", attributes={"pose": "left", "occluded": True})])
    assert (reordered["count"], reordered["existing"], reordered["ids"]) == (0, 1, ordered["ids"])
    assert await stored(lake) == 6
    # ... but `true` is not `1`, nor `1` the text "1".
    for other in ({"occluded": 1, "pose": "left"}, {"occluded": True, "pose": "left", "n": "1"}):
        error = await api.error("AddAnnotations", {"setId": lake["set"], "records": [box(lake, "coco:4:bbox", attributes=other)]},
                                token=contributor)
        assert error["extensions"]["code"] == "CONFLICT", other
    # Records without keys are stored every time they are sent, as before keys.
    unkeyed = await add(api, contributor, lake, [box(lake, None)])
    assert (unkeyed["count"], unkeyed["existing"]) == (1, 0) and await stored(lake) == 7


async def test_a_key_held_with_other_content_is_a_conflict_and_stores_nothing(api: Api, contributor: str,
                                                                              lake: dict) -> None:
    held = await add(api, contributor, lake, [box(lake, "coco:1:bbox")])
    def on_other(record: dict) -> dict:
        return {**record, "assetId": lake["other"], "datumId": None}

    cases = [
        ([box(lake, "new:1"), box(lake, "coco:1:bbox", x=2)], "with other content"),  # another box
        ([box(lake, "new:1"), box(lake, "coco:1:bbox", score=0.5)], "with other content"),
        ([box(lake, "new:1"), on_other(box(lake, "coco:1:bbox"))], "with other content"),
        # The batch names only the other asset: the record holding the key is not among those read.
        ([on_other(box(lake, "new:1")), on_other(box(lake, "coco:1:bbox"))], "on another asset"),
    ]
    for records, says in cases:
        error = await api.error("AddAnnotations", {"setId": lake["set"], "records": records}, token=contributor)
        assert error["extensions"]["code"] == "CONFLICT", error
        assert error["extensions"]["field"] == "records[1].key" and says in error["message"], error
        assert await stored(lake) == 1  # the batch's new record went with it
    assert (await add(api, contributor, lake, [box(lake, "new:1")]))["count"] == 1  # it was rolled back, not kept
    # The same key in another set is another record.
    other = await factories.annotation_set(api, contributor, lake["schema"], name="second opinion")
    again = (await api.data("AddAnnotations", {"setId": other["id"], "records": [box(lake, "coco:1:bbox", x=2)]},
                            token=contributor))["addAnnotations"]
    assert again["count"] == 1 and again["ids"] != held["ids"]


async def test_bad_keys_are_refused_naming_the_record(api: Api, contributor: str, lake: dict) -> None:
    cases = [
        ([box(lake, "a"), box(lake, "a", x=2)], "records[1].key", "given twice"),
        ([box(lake, "  ")], "records[0].key", "characters"),
        ([box(lake, "k" * 201)], "records[0].key", "characters"),
    ]
    for records, field, says in cases:
        error = await api.error("AddAnnotations", {"setId": lake["set"], "records": records}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == field, error
        assert says in error["message"], error
    assert await stored(lake) == 0
    held = await add(api, contributor, lake, [box(lake, "coco:1:bbox")])
    error = await api.error("SupersedeAnnotation", {"input": {"id": held["ids"][0], "reason": "moved",
                                                              "record": box(lake, "coco:1:bbox:fixed", x=2)}},
                            token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == "record.key", error


async def test_the_same_keyed_batch_twice_at_once_is_stored_once(api: Api, contributor: str, lake: dict) -> None:
    """Two calls racing with the same records (a rerun started while a stopped import's batch lands)."""
    records = [box(lake, f"coco:{n}:bbox", x=n) for n in range(300)]
    one, two = await asyncio.gather(add(api, contributor, lake, records), add(api, contributor, lake, records))
    assert sorted([one["count"], two["count"]]) == [0, 300] and one["existing"] + two["existing"] == 300
    assert one["ids"] == two["ids"]
    assert await stored(lake) == 300
    # In opposite orders each may refuse the other's records and both roll back; each then retries
    # after a jittered pause, and every record is stored once.
    more = [box(lake, f"coco:{n}:bbox", x=n) for n in range(300, 600)]
    one, two = await asyncio.gather(add(api, contributor, lake, more), add(api, contributor, lake, more[::-1]))
    assert one["count"] + two["count"] == 300 and one["existing"] + two["existing"] == 300
    assert one["ids"] == two["ids"][::-1]
    assert await stored(lake) == 600


async def test_a_key_another_call_is_still_writing_is_waited_for(api: Api, contributor: str, lake: dict,
                                                                  state: AppState, served: Served) -> None:
    """A record whose batch is still open may yet be rolled back: the call waits for the batch to
    end, then stores its own record if the other one went (here: a writer that died, its
    documents removed as the reaper would)."""
    held = await add(api, contributor, lake, [box(lake, "coco:1:bbox")])
    records = AnnotationRecord.get_pymongo_collection()
    batch = (await records.find_one({"_id": object_id(held["ids"][0])}))["batch"]
    journal = state.db[batches.JOURNAL]
    await journal.insert_one({"_id": batch, "collection": records.name, **this_process(),  # reopened: as if
                              "expires_at": utcnow() + batches.LEASE})  # still being written by this process
    served.commands.clear()
    adding = asyncio.create_task(add(api, contributor, lake, [box(lake, "coco:1:bbox")]))

    def journal_reads() -> int:
        return sum(1 for find in served.commands.finds if find["find"] == batches.JOURNAL)

    # It looked, found the batch open, and looked again: it waits.
    await wait_for(lambda: journal_reads() >= 2 or adding.done(), what="the call to look at the batch twice")
    assert not adding.done()
    await records.delete_many({"batch": batch})  # the writer's batch is rolled back...
    await journal.delete_one({"_id": batch})  # ...and closed
    added = await asyncio.wait_for(adding, 30)
    assert (added["count"], added["existing"]) == (1, 0) and added["ids"] != held["ids"]
    assert await stored(lake) == 1
    assert "batch" in (await records.find_one({"_id": object_id(added["ids"][0])}))  # written through the journal


async def test_keys_are_looked_up_through_an_index(api: Api, contributor: str, lake: dict, state: AppState,
                                                   served: Served) -> None:
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        pytest.skip("the plans checked are the embedded default's")
    await add(api, contributor, lake, [box(lake, "coco:1:bbox")])
    served.commands.clear()
    await add(api, contributor, lake, [box(lake, "coco:1:bbox")])
    lookups = [f for f in served.commands.finds if f["find"] == "annotation_records" and "key" in f.get("filter", {})]
    assert lookups, served.commands.finds
    for find in lookups:
        plan = await state.db.command("explain", {"find": find["find"], "filter": find["filter"]})
        steps = plan["queryPlanner"]["Plan"]
        assert not plan_problems(plan) and any("USING INDEX" in step for step in steps), steps


async def test_a_key_is_not_part_of_a_versions_hash(api: Api, contributor: str, lake: dict) -> None:
    """A key is an identifier: the same content hashes alike with or without keys (documents/manifest.py)."""
    dataset = await factories.dataset(api, contributor)
    await add(api, contributor, lake, [box(lake, "coco:1:bbox")])
    made = {"addDatums": [lake["datum"]], "addAnnotationSets": [lake["set"]]}
    keyed = await factories.version(api, contributor, dataset["id"], "v1", **made)
    records = AnnotationRecord.get_pymongo_collection()
    assert (await records.update_many({"set_id": object_id(lake["set"])}, {"$unset": {"key": ""}})).modified_count == 1
    unkeyed = await factories.version(api, contributor, dataset["id"], "v2", **made)
    assert keyed["manifestSha256"] == unkeyed["manifestSha256"]
