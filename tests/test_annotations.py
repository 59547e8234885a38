"""Annotations: schemas, sets, every kind and geometry, all-or-nothing validation, filters, verification."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect

from documents.annotation import AnnotationKind, AnnotationRecord, AnnotationSchema, AnnotationSet, LabelClass
from documents.asset import Asset
from documents.clock import utcnow
from documents.dataset import Datum
from documents.json_value import StoredJson, dumps_json
from resolvers.context import AppState
from services import batches, bulk_deletes, delete_marks, retention
from services.assets import collect_unpinned, delete_asset
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import Served
from tests.fault_injection import once_after
from tests.operations import Api, object_id


@pytest.fixture
async def setup(api: Api, contributor: str) -> dict:
    image = await factories.image_asset(api, contributor, "photo.png")
    mask = await factories.image_asset(api, contributor, "mask.png")
    text = (await api.data("StoreText", {"input": {"name": "n.txt", "text": "x"}}, token=contributor))["storeText"]
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": image["id"]}]}]},
                            token=contributor))["createDatums"][0]
    schema = await factories.schema(api, contributor, requiredAttributes=["occluded"])
    truth = await factories.annotation_set(api, contributor, schema["id"])
    model = await factories.annotation_set(api, contributor, schema["id"], purpose="PREDICTION",
                                           source={"kind": "MODEL", "name": "detr", "version": "1.2"}, name="preds")
    return {"image": image, "mask": mask, "text": text, "datum": datum, "schema": schema, "truth": truth, "model": model}


def record(s: dict, kind: str, **fields: object) -> dict:
    return {"assetId": s["image"]["id"], "datumId": s["datum"]["id"], "kind": kind, "attributes": {"occluded": False},
            **fields}


async def test_every_kind_round_trips(api: Api, contributor: str, setup: dict) -> None:
    s = setup
    records = [
        record(s, "CLASSIFICATION", label="dent"),
        record(s, "REGRESSION", value=3.5),
        record(s, "BBOX", label="scratch", geometry={"bbox": {"x": 1, "y": 2, "width": 3, "height": 4}}),
        record(s, "ROTATED_BBOX", label="dent", geometry={"rotatedBbox": {"cx": 5, "cy": 5, "width": 2, "height": 1, "angle": 30}}),
        record(s, "POLYGON", label="dent", geometry={"polygon": {"points": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 0, "y": 1}]}}),
        record(s, "POLYLINE", label="scratch", geometry={"polyline": {"points": [{"x": 0, "y": 0}, {"x": 2, "y": 2}]}}),
        record(s, "KEYPOINTS", label="dent", geometry={"keypoints": {"points": [{"name": "tip", "x": 1, "y": 1, "visible": True}]}}),
        record(s, "MASK", label="dent", geometry={"mask": {"assetId": s["mask"]["id"]}}),
    ]
    added = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": records}, token=contributor))["addAnnotations"]
    assert added["count"] == 8
    by_kind = {r["kind"]: r for r in added["records"]}
    assert by_kind["REGRESSION"]["value"] == 3.5 and by_kind["REGRESSION"]["geometry"] is None
    assert by_kind["BBOX"]["geometry"] == {"__typename": "BBox", "x": 1, "y": 2, "width": 3, "height": 4}
    assert by_kind["ROTATED_BBOX"]["geometry"]["angle"] == 30
    assert len(by_kind["POLYGON"]["geometry"]["points"]) == 3
    assert by_kind["KEYPOINTS"]["geometry"]["points"][0]["name"] == "tip"
    assert by_kind["MASK"]["geometry"] == {"__typename": "Mask", "asset": {"id": s["mask"]["id"], "mediaType": "image/png"}}
    assert all(r["source"] == {"kind": "HUMAN", "name": "alice", "version": None} for r in added["records"])
    assert all(r["datum"]["id"] == s["datum"]["id"] and r["set"]["purpose"] == "GROUND_TRUTH" for r in added["records"])


async def test_invalid_records_name_index_and_field_and_write_nothing(api: Api, contributor: str, setup: dict) -> None:
    s = setup
    good = record(s, "CLASSIFICATION", label="dent")
    cases = [
        (record(s, "CLASSIFICATION", label="crack"), "records[1].label"),
        (record(s, "CLASSIFICATION"), "records[1].label"),
        (record(s, "REGRESSION"), "records[1].value"),
        (record(s, "REGRESSION", value=1.0, label="dent"), "records[1].label"),  # a value, not a label
        (record(s, "CLASSIFICATION", label="dent", value=2.0), "records[1].value"),  # a label, not a value
        ({**record(s, "CLASSIFICATION", label="dent"), "source": {"kind": "DERIVED", "name": " "}},
         "records[1].source.name"),
        (record(s, "BBOX", label="dent"), "records[1].geometry"),
        (record(s, "BBOX", label="dent", geometry={"bbox": {"x": 0, "y": 0, "width": 0, "height": 1}}),
         "records[1].geometry.bbox.width"),
        (record(s, "BBOX", label="dent", geometry={"polygon": {"points": []}}), "records[1].geometry"),
        (record(s, "POLYGON", label="dent", geometry={"polygon": {"points": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]}}),
         "records[1].geometry.polygon.points"),
        (record(s, "MASK", label="dent", geometry={"mask": {"assetId": s["text"]["id"]}}), "records[1].geometry.mask.assetId"),
        (record(s, "CLASSIFICATION", label="dent", geometry={"bbox": {"x": 0, "y": 0, "width": 1, "height": 1}}),
         "records[1].geometry"),
        ({**record(s, "CLASSIFICATION", label="dent"), "attributes": {}}, "records[1].attributes"),
        (record(s, "CLASSIFICATION", label="dent", score=1.5), "records[1].score"),
        ({**record(s, "CLASSIFICATION", label="dent"), "assetId": s["mask"]["id"]}, "records[1].assetId"),
    ]
    for bad, field in cases:
        error = await api.error("AddAnnotations", {"setId": s["truth"]["id"], "records": [good, bad]}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == field, (bad, error)
    # A datum or asset the lake does not have is NOT_FOUND, named by the ID sent.
    unknown = "RGF0dW06NjRiMDAwMDAwMDAwMDAwMDAwMDAwMDAw"
    error = await api.error("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        good, record(s, "CLASSIFICATION", label="dent", datumId=unknown)]}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "records[1].datumId"} and unknown in error["message"]
    assert await AnnotationRecord.count() == 0


async def test_schema_rules(api: Api, contributor: str) -> None:
    first = await factories.schema(api, contributor, "parts", kinds=["CLASSIFICATION"], allowScores=False)
    second = await factories.schema(api, contributor, "parts", kinds=["CLASSIFICATION"])
    assert (first["version"], second["version"]) == (1, 2)
    error = await api.error("CreateAnnotationSchema", {"input": {"name": "parts", "version": 1, "kinds": ["BBOX"],
                                                                 "labels": []}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "version"}
    error = await api.error("CreateAnnotationSchema", {"input": {"name": "p", "kinds": [], "labels": []}}, token=contributor)
    assert error["extensions"]["field"] == "kinds"
    error = await api.error("CreateAnnotationSchema", {"input": {"name": "p", "kinds": ["BBOX"],
                                                                 "labels": [{"name": "a"}, {"name": "a"}]}}, token=contributor)
    assert error["extensions"]["field"] == "labels[1].name"
    for colour in ("#ff8800", "#f80", "teal", "rgb(255, 136, 0)", "hsl(30\t100% 50%)"):
        await factories.schema(api, contributor, f"c{len(colour)}-{colour[:3]}", labels=[{"name": "a", "color": colour}])
    error = await api.error("CreateAnnotationSchema", {"input": {"name": "p", "kinds": ["BBOX"], "labels": [
        {"name": "a", "color": "#ff0000"}, {"name": "b", "color": "red; } body { display: none"}]}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "labels[1].color"}
    # Only spaces and tabs between the parentheses: `\s` let these control characters and line breaks in.
    for space in ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u2028"):
        error = await api.error("CreateAnnotationSchema", {"input": {"name": "p", "kinds": ["BBOX"], "labels": [
            {"name": "a", "color": f"rgb(255,{space}136, 0)"}]}}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "labels[0].color"}, repr(space)
    image = await factories.image_asset(api, contributor)
    no_scores = await factories.annotation_set(api, contributor, first["id"])
    error = await api.error("AddAnnotations", {"setId": no_scores["id"], "records": [
        {"assetId": image["id"], "kind": "CLASSIFICATION", "label": "scratch", "score": 0.5}]}, token=contributor)
    assert error["extensions"]["field"] == "records[0].score"
    error = await api.error("AddAnnotations", {"setId": no_scores["id"], "records": [
        {"assetId": image["id"], "kind": "BBOX", "label": "scratch", "geometry": {"bbox": {"x": 0, "y": 0, "width": 1, "height": 1}}}]},
        token=contributor)
    assert error["extensions"]["field"] == "records[0].kind" and "allowed: CLASSIFICATION" in error["message"]
    # The last version there is: a schema numbered past it would break every list of schemas (GraphQL's Int).
    await factories.schema(api, contributor, "huge", version=2**31 - 1)
    error = await api.error("CreateAnnotationSchema", {"input": {"name": "huge", "kinds": ["BBOX"], "labels": []}},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "version"}
    listed = (await api.data("AnnotationSchemas", {"first": 10}, token=contributor))["annotationSchemas"]["edges"]
    assert len(listed) == 3 + 5  # parts v1, v2, huge, and the five colours above


async def test_filters_and_verification(api: Api, contributor: str, setup: dict) -> None:
    s = setup
    truth = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "CLASSIFICATION", label="dent"), record(s, "BBOX", label="scratch",
                                                          geometry={"bbox": {"x": 0, "y": 0, "width": 1, "height": 1}})]},
        token=contributor))["addAnnotations"]["records"]
    await api.data("AddAnnotations", {"setId": s["model"]["id"], "records": [
        record(s, "CLASSIFICATION", label="dent", score=0.9), record(s, "CLASSIFICATION", label="scratch", score=0.3)]},
        token=contributor)

    async def labels(filter: dict) -> list[tuple[str, str]]:
        edges = (await api.data("Annotations", {"filter": filter, "first": 50}, token=contributor))["annotations"]["edges"]
        return sorted((e["node"]["kind"], e["node"]["label"]) for e in edges)

    assert await labels({"purposes": ["PREDICTION"]}) == [("CLASSIFICATION", "dent"), ("CLASSIFICATION", "scratch")]
    assert await labels({"sourceKinds": ["MODEL"], "minScore": 0.5}) == [("CLASSIFICATION", "dent")]
    assert await labels({"maxScore": 0.5}) == [("CLASSIFICATION", "scratch")]  # records without a score never match
    assert await labels({"minScore": 0.3, "maxScore": 0.9}) == [("CLASSIFICATION", "scratch")]  # [0.3, 0.9)
    assert await labels({"kinds": ["BBOX"]}) == [("BBOX", "scratch")]
    assert await labels({"labels": ["dent"], "setIds": [s["truth"]["id"]]}) == [("CLASSIFICATION", "dent")]

    verified = (await api.data("VerifyAnnotations", {"ids": [truth[0]["id"]], "verified": True}, token=contributor))
    record_out = verified["verifyAnnotations"][0]
    assert record_out["verified"] is True and record_out["verifiedBy"].startswith("token:") and record_out["verifiedAt"]
    assert await labels({"verified": True}) == [("CLASSIFICATION", "dent")]
    undone = (await api.data("VerifyAnnotations", {"ids": [truth[0]["id"]], "verified": False}, token=contributor))
    assert undone["verifyAnnotations"][0]["verifiedBy"] is None
    missing = "QW5ub3RhdGlvblJlY29yZDo2NGIwMDAwMDAwMDAwMDAwMDAwMDAwMDA"
    error = await api.error("VerifyAnnotations", {"ids": [truth[0]["id"], missing], "verified": True}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "ids[1]"} and missing in error["message"]
    twice = (await api.data("VerifyAnnotations", {"ids": [truth[1]["id"], truth[1]["id"]], "verified": True},
                            token=contributor))["verifyAnnotations"]
    assert [r["id"] for r in twice] == [truth[1]["id"]] * 2  # answered in the order given, one per id
    # A superseded record is never edited again (Guarantees): verifying it is refused, naming its correction.
    fix = {"id": truth[0]["id"], "reason": "wrong label", "record": record(s, "CLASSIFICATION", label="scratch")}
    correction = (await api.data("SupersedeAnnotation", {"input": fix}, token=contributor))["supersedeAnnotation"]
    error = await api.error("VerifyAnnotations", {"ids": [truth[0]["id"]], "verified": True}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "ids[0]"} and correction["id"] in error["message"]
    assert await labels({"superseded": True}) == [("CLASSIFICATION", "dent")]  # what people corrected
    assert ("CLASSIFICATION", "dent") not in await labels({"superseded": False, "setIds": [s["truth"]["id"]]})

    datum = (await api.data("Datum", {"id": s["datum"]["id"], "role": "image"}, token=contributor))["datum"]
    assert datum["annotations"]["totalCount"] == 4 and datum["asset"]["id"] == s["image"]["id"]
    sets = (await api.data("AnnotationSets", {"first": 10}, token=contributor))["annotationSets"]["edges"]
    assert sorted(e["node"]["recordCount"] for e in sets) == [2, 3]  # superseded ones included: the correction is a third


async def test_a_correction_from_a_token_without_a_user_keeps_the_sets_source_and_its_asset(
        api: Api, contributor: str, setup: dict) -> None:
    """A pipeline's token names no person: its correction keeps the set's source, as its records do.
    A record on an asset alone is corrected on that asset alone (no datum added, no other asset)."""
    s = setup
    (guess,) = (await api.data("AddAnnotations", {"setId": s["model"]["id"], "records": [
        {"assetId": s["image"]["id"], "kind": "CLASSIFICATION", "label": "dent", "score": 0.4,
         "attributes": {"occluded": False}}]}, token=contributor))["addAnnotations"]["records"]
    fix = {"id": guess["id"], "reason": "rerun", "record": {"assetId": s["image"]["id"], "kind": "CLASSIFICATION",
                                                             "label": "scratch", "attributes": {"occluded": False}}}
    for moved, field in (({"datumId": s["datum"]["id"]}, "record.datumId"), ({"assetId": s["mask"]["id"]}, "record.assetId")):
        error = await api.error("SupersedeAnnotation", {"input": {**fix, "record": {**fix["record"], **moved}}},
                                token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
    fixed = (await api.data("SupersedeAnnotation", {"input": fix}, token=contributor))["supersedeAnnotation"]
    assert fixed["source"] == {"kind": "MODEL", "name": "detr"} and fixed["createdBy"].startswith("token:")


async def test_assets_datums_and_annotations_use_are_neither_deleted_nor_collected(
        api: Api, contributor: str, admin: str, setup: dict) -> None:
    """References never dangle (README, Guarantees): an asset a datum holds as a role, or an
    annotation record annotates or uses as its mask, is refused to deleteAsset, naming who uses it,
    and left alone by the garbage collector."""
    s = setup
    added = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "MASK", label="dent", geometry={"mask": {"assetId": s["mask"]["id"]}})]},
        token=contributor))["addAnnotations"]["records"]
    for asset, kind, user in ((s["image"], "DATUM", s["datum"]["id"]), (s["mask"], "ANNOTATION_RECORD", added[0]["id"])):
        error = await api.error("DeleteAsset", {"id": asset["id"]}, token=contributor)
        assert error["extensions"]["code"] == "CONFLICT" and kind in error["message"], error
        assert user in error["extensions"]["holders"]
    image_users = (await api.error("DeleteAsset", {"id": s["image"]["id"]}, token=contributor))["extensions"]["holders"]
    assert set(image_users) == {s["datum"]["id"], added[0]["id"]}  # the datum, and the record annotating it

    # Flagged for collection long ago (as if a collection had held them once): still in use, so kept.
    await Asset.get_pymongo_collection().update_many(
        {"_id": {"$in": [object_id(s["image"]["id"]), object_id(s["mask"]["id"]), object_id(s["text"]["id"])]}},
        {"$set": {"unpinned_at": utcnow() - timedelta(days=30)}})
    would = await collect_unpinned(timedelta(days=1), {}, dry_run=True)
    collected = await collect_unpinned(timedelta(days=1), {})
    assert [a.id for a in would] == [a.id for a in collected] == [object_id(s["text"]["id"])]  # only the unused one

    forced = (await api.data("DeleteAsset", {"id": s["mask"]["id"], "force": True}, token=admin))["deleteAsset"]
    assert forced["broken"] == [added[0]["id"]]  # the record keeps pointing at it, now DELETED: audited


async def test_a_mask_gets_its_grace_period_from_when_its_record_goes(
        api: Api, contributor: str, state: AppState, setup: dict) -> None:
    """A flagged mask a record uses is kept, its flag moved on by each round that finds it used. Once
    its record goes (deleted, or with its set) the grace period starts again from then: the flag was
    as old as the last round that found the mask used, and the mask could go at the very next one."""
    s = setup
    masks = [await factories.image_asset(api, contributor, f"m{i}.png") for i in range(2)]
    [one] = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "MASK", label="dent", geometry={"mask": {"assetId": masks[0]["id"]}})]},
        token=contributor))["addAnnotations"]["records"]
    await api.data("AddAnnotations", {"setId": s["model"]["id"], "records": [
        record(s, "MASK", label="dent", geometry={"mask": {"assetId": masks[1]["id"]}}, score=0.5)]},
        token=contributor)
    ids = [object_id(m["id"]) for m in masks]

    async def age(days: float) -> None:
        await Asset.get_pymongo_collection().update_many(
            {"_id": {"$in": ids}}, {"$set": {"unpinned_at": utcnow() - timedelta(days=days)}})

    await age(30)  # flagged long ago, as if a collection had held them
    assert await collect_unpinned(timedelta(days=7), state.stores) == []  # used: kept, flagged from now
    await age(8)  # that round was 8 days ago
    await api.data("DeleteAnnotationRecord", {"id": one["id"]}, token=contributor)
    await api.data("DeleteAnnotationSet", {"id": s["model"]["id"]}, token=contributor)
    assert await collect_unpinned(timedelta(days=7), state.stores) == []  # a grace period from the deletes
    await age(8)
    assert sorted(a.id for a in await collect_unpinned(timedelta(days=7), state.stores)) == sorted(ids)


async def test_attributes_are_stored_as_text_alone_and_older_records_still_read(
        api: Api, contributor: str, setup: dict) -> None:
    """No query reads a record's attributes by path, so they are stored as their JSON text alone
    (documents.json_value.JsonText): on the embedded default the query views doubled what a record
    cost to write and read. Records stored with the views before still read, and a version copies
    either form as text, under the same hash."""
    s = setup
    attributes = {"occluded": True, "note": {"by": "a.b", "tags": ["x", 2]}}
    added = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "CLASSIFICATION", label="dent", attributes=attributes)]}, token=contributor))["addAnnotations"]["records"]
    records = AnnotationRecord.get_pymongo_collection()
    stored = await records.find_one({"_id": object_id(added[0]["id"])})
    assert stored is not None and stored["attributes"] == {"json": dumps_json(attributes)}
    ds = await factories.dataset(api, contributor)
    lean = await factories.version(api, contributor, ds["id"], "lean", addDatums=[s["datum"]["id"]],
                                   addAnnotationSets=[s["truth"]["id"]])

    # The same record as an older server stored it: with the views beside the text.
    await records.update_one({"_id": stored["_id"]}, {"$set": {"attributes": StoredJson.encode(attributes).model_dump()}})
    listed = (await api.data("Annotations", {"filter": {"setIds": [s["truth"]["id"]]}}, token=contributor))["annotations"]
    assert [e["node"]["attributes"] for e in listed["edges"]] == [attributes]
    older = await factories.version(api, contributor, ds["id"], "older", addDatums=[s["datum"]["id"]],
                                    addAnnotationSets=[s["truth"]["id"]])
    assert older["manifestSha256"] == lean["manifestSha256"]
    copies = await factories.version_copies(older["id"])
    assert [c["attributes"] for c in copies] == [{"json": dumps_json(attributes)}]
    checked = (await api.data("VerifyVersion", {"id": older["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert checked["ok"] and checked["records"] == 1, checked


async def test_a_geometry_with_two_shapes_is_refused_before_anything_is_checked_or_stored(
        api: Api, contributor: str, setup: dict) -> None:
    """GeometryInput is @oneOf: graphql-core refuses two shapes while it reads the variables, naming the
    variable and where in it, before the planned input conversion (resolvers/inputs.py) or the
    resolver sees them (resolvers/schema.py marks the type)."""
    s = setup
    two = record(s, "BBOX", label="dent", geometry={"bbox": {"x": 0, "y": 0, "width": 1, "height": 1},
                                                     "polygon": {"points": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 0, "y": 1}]}})
    error = await api.error("AddAnnotations", {"setId": s["truth"]["id"], "records": [two]}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["message"].startswith("Variable '$records' has invalid value at [0].geometry: "), error
    assert "exactly one field" in error["message"], error
    assert await AnnotationRecord.count() == 0


async def test_a_literal_geometry_with_two_shapes_gets_one_error_naming_the_argument(
        api: Api, contributor: str, setup: dict) -> None:
    s = setup
    literal = (f'{{assetId: "{s["image"]["id"]}", kind: BBOX, label: "dent", '
               "geometry: {bbox: {x: 0, y: 0, width: 1, height: 1}, polygon: {points: []}}}")
    query = f"mutation Two($setId: ID!) {{ addAnnotations(setId: $setId, records: [{literal}]) {{ count }} }}"
    error = await api.error("Two", {"setId": s["truth"]["id"]}, query=query, token=contributor)  # exactly one error
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == "records[0].geometry", error
    null_member = literal.replace("geometry: {bbox: {x: 0, y: 0, width: 1, height: 1}, polygon: {points: []}}", "geometry: {bbox: null}")
    query = f"mutation Two($setId: ID!) {{ addAnnotations(setId: $setId, records: [{null_member}]) {{ count }} }}"
    error = await api.error("Two", {"setId": s["truth"]["id"]}, query=query, token=contributor)  # one here too
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"].startswith("records[0].geometry"), error
    assert await AnnotationRecord.count() == 0


async def test_a_set_of_many_records_is_deleted_a_round_at_a_time_and_a_delete_cut_short_by_a_retry(
        api: Api, contributor: str, setup: dict, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its records go a few at a time (services/bulk_deletes.py), each delete naming at most a round's
    records, and the set last: a delete that dies part-way leaves the set with the records it had not
    reached, and deleting it again removes them. Another set's records on the same datum stay."""
    s = setup
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 7)
    labels = [record(s, "CLASSIFICATION", label="dent")] * 45  # six full rounds and a part
    await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": labels}, token=contributor)
    await api.data("AddAnnotations", {"setId": s["model"]["id"], "records": labels[:4]}, token=contributor)
    truth, model = object_id(s["truth"]["id"]), object_id(s["model"]["id"])
    read, reads = bulk_deletes.first_left, 0

    async def dies_at_the_fourth_read(*args: Any, **kwargs: Any) -> list[dict]:
        nonlocal reads
        reads += 1
        if reads == 4:
            raise ConnectionError("the server died here")
        return await read(*args, **kwargs)

    monkeypatch.setattr(bulk_deletes, "first_left", dies_at_the_fourth_read)
    failed = await api.run("DeleteAnnotationSet", {"id": s["truth"]["id"]}, token=contributor)
    assert failed.get("errors") and reads == 4, failed
    monkeypatch.setattr(bulk_deletes, "first_left", read)
    assert await AnnotationRecord.find({"set_id": truth}).count() == 45 - 3 * 7
    assert await AnnotationSet.get(truth) is not None  # the set goes last

    served.commands.clear()
    assert (await api.data("DeleteAnnotationSet", {"id": s["truth"]["id"]}, token=contributor))["deleteAnnotationSet"]["deleted"]
    deletes = [name for c, name in zip(served.commands.commands, served.commands.collections, strict=True) if c == "delete"]
    assert deletes.count("annotation_records") == 4, deletes  # the 24 left: three full rounds and a part
    assert await AnnotationRecord.find({"set_id": truth}).count() == 0
    assert await AnnotationSet.get(truth) is None
    assert await AnnotationRecord.find({"set_id": model}).count() == 4


async def test_labels_names_and_sources_are_words_not_blanks_or_pages(api: Api, contributor: str, setup: dict) -> None:
    """A schema that lists no labels takes any label, but a label all the same: a CLASSIFICATION
    record labelled "" or "  " said nothing and passed as labelled, and one of 100,000 characters was
    stored. A schema's label names and required attributes, and a source's name and version, are
    bounded too. Each refusal names the field; nothing is stored."""
    s = setup
    free = await factories.schema(api, contributor, "free", labels=[])
    free_set = await factories.annotation_set(api, contributor, free["id"], name="free")
    base = {"assetId": s["image"]["id"], "kind": "CLASSIFICATION"}
    for label in ("", "   ", "x" * 201):
        error = await api.error("AddAnnotations", {"setId": free_set["id"], "records": [
            {**base, "label": "fine"}, {**base, "label": label}]}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "records[1].label"}, (label, error)
    for source, field in (({"kind": "MODEL", "name": "m" * 501}, "records[0].source.name"),
                          ({"kind": "MODEL", "name": "m", "version": " "}, "records[0].source.version")):
        error = await api.error("AddAnnotations", {"setId": free_set["id"], "records": [
            {**base, "label": "fine", "source": source}]}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
    assert await AnnotationRecord.count() == 0
    added = (await api.data("AddAnnotations", {"setId": free_set["id"], "records": [
        {**base, "label": "y" * 200, "source": {"kind": "MODEL", "name": "m", "version": "1"}}]},
        token=contributor))["addAnnotations"]
    assert added["count"] == 1

    for fields, field in (({"labels": [{"name": "z" * 201}]}, "labels[0].name"),
                          ({"labels": [{"name": "a", "displayName": "d" * 501}]}, "labels[0].displayName"),
                          ({"labels": [], "requiredAttributes": ["ok", "q" * 201]}, "requiredAttributes[1]"),
                          ({"labels": [], "requiredAttributes": [" "]}, "requiredAttributes[0]")):
        error = await api.error("CreateAnnotationSchema", {"input": {"name": "long", "kinds": ["BBOX"], **fields}},
                                token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (fields, error)
    error = await api.error("CreateAnnotationSet", {"input": {
        "name": "s", "purpose": "PREDICTION", "schemaId": free["id"], "source": {"kind": "MODEL", "name": "m" * 501}}},
        token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "source.name"}, error


async def test_a_keypoint_name_is_given_once_per_record_and_is_not_blank(api: Api, contributor: str, setup: dict) -> None:
    """A pose's points are told apart by name (a COCO export lists the category's keypoints by the
    names of its records' points): two points of one record named alike, or a name "", are refused,
    naming the point. Unnamed points (null) may be many."""
    s = setup
    keypoints = record(s, "KEYPOINTS", label="dent")

    def points(*names: str | None) -> dict:
        return {**keypoints, "geometry": {"keypoints": {"points": [
            {"name": name, "x": i, "y": i} for i, name in enumerate(names)]}}}

    for names, at, said in ((("nose", "eye", "nose"), "points[2].name", "also points[0]"),
                            (("nose", ""), "points[1].name", "blank"), (("nose", " "), "points[1].name", "blank")):
        error = await api.error("AddAnnotations", {"setId": s["truth"]["id"], "records": [points(*names)]},
                                token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": f"records[0].geometry.keypoints.{at}"}, error
        assert said in error["message"], error  # each case its own reason, not either one
    assert await AnnotationRecord.count() == 0
    added = await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [points("nose", None, None, "eye")]},
                           token=contributor)
    assert added["addAnnotations"]["count"] == 1


async def test_a_sources_name_and_version_refuse_control_characters(api: Api, contributor: str, setup: dict) -> None:
    """A source's name and version are held to a name's rule (services/checks.py), on a set and on each
    record alike: a newline or an escape in one split the audit lines and exports naming it. Each is
    refused naming the field (with the record's index); nothing is stored. A set's source stored before
    still reads and still stands in for the records that name none."""
    s = setup
    base = {"assetId": s["image"]["id"], "kind": "CLASSIFICATION", "label": "dent", "attributes": {"occluded": False}}
    for source, field in (({"kind": "MODEL", "name": "detr\n"}, "source.name"),
                          ({"kind": "MODEL", "name": "detr", "version": "1.2\x00"}, "source.version")):
        error = await api.error("CreateAnnotationSet", {"input": {
            "name": "s", "purpose": "PREDICTION", "schemaId": s["schema"]["id"], "source": source}}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
        assert "control character" in error["message"], error
    for source, field in (({"kind": "HUMAN", "name": "bob\x1b[0m"}, "records[1].source.name"),
                          ({"kind": "MODEL", "name": "m", "version": "v\x9f"}, "records[1].source.version")):
        error = await api.error("AddAnnotations", {"setId": s["truth"]["id"], "records": [
            base, {**base, "source": source}]}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
        assert "control character" in error["message"], error
    assert await AnnotationSet.count() == 2 and await AnnotationRecord.count() == 0

    await AnnotationSet.get_pymongo_collection().update_one(
        {"_id": object_id(s["model"]["id"])}, {"$set": {"source.version": "1.2\n"}})
    added = (await api.data("AddAnnotations", {"setId": s["model"]["id"], "records": [base]},
                            token=contributor))["addAnnotations"]
    assert added["count"] == 1 and added["records"][0]["source"]["version"] == "1.2\n"


async def test_a_schemas_labels_and_words_refuse_control_characters(api: Api, contributor: str, setup: dict) -> None:
    """A schema's label names and display names, its required attributes, a keypoint's name and a
    label a schema without labels leaves free are held to a name's rule (services/checks.py): each is
    refused naming the field, nothing stored. A schema stored before with such a label still takes
    records carrying it: what is stored is not checked again."""
    s = setup
    for fields, field in (({"labels": [{"name": "ok"}, {"name": "scr\natch"}]}, "labels[1].name"),
                          ({"labels": [{"name": "a", "displayName": "A\tB"}]}, "labels[0].displayName"),
                          ({"labels": [], "requiredAttributes": ["ok", "occ\x00"]}, "requiredAttributes[1]")):
        error = await api.error("CreateAnnotationSchema", {"input": {"name": "odd", "kinds": ["BBOX"], **fields}},
                                token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (fields, error)
        assert "control character" in error["message"], error
    assert await AnnotationSchema.count() == 1  # setup's

    free = await factories.schema(api, contributor, "free", labels=[])
    free_set = await factories.annotation_set(api, contributor, free["id"], name="free")
    base = {"assetId": s["image"]["id"], "kind": "CLASSIFICATION"}
    error = await api.error("AddAnnotations", {"setId": free_set["id"], "records": [
        {**base, "label": "fine"}, {**base, "label": "two\nlines"}]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "records[1].label"}, error
    pose = {**base, "kind": "KEYPOINTS", "label": "dent", "attributes": {"occluded": False}, "geometry": {"keypoints": {
        "points": [{"name": "nose", "x": 1, "y": 1}, {"name": "eye\x7f", "x": 2, "y": 2}]}}}
    error = await api.error("AddAnnotations", {"setId": s["truth"]["id"], "records": [pose]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "records[0].geometry.keypoints.points[1].name"}, error
    assert await AnnotationRecord.count() == 0

    old = AnnotationSchema(name="old", version=1, kinds=[AnnotationKind.CLASSIFICATION],
                           labels=[LabelClass(name="scr\natch", display_name="Scr\tatch")])
    await old.insert()
    old_set = await factories.annotation_set(api, contributor, encode_id(NodeType.ANNOTATION_SCHEMA, old.id), name="old")
    added = await api.data("AddAnnotations", {"setId": old_set["id"], "records": [{**base, "label": "scr\natch"}]},
                           token=contributor)
    assert added["addAnnotations"]["records"][0]["label"] == "scr\natch"


def failing_marks(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """Make the next `times` writes marking a record superseded fail on this side, as a lost
    connection or a timeout would (the write itself not made); returns the count of those made."""
    update_one, failed = AsyncCollection.update_one, [0]

    async def flaky(self: AsyncCollection, query: dict, change: Any, *args: Any, **kwargs: Any) -> Any:
        if "superseded_by" in (change.get("$set") or {}) and failed[0] < times:
            failed[0] += 1
            raise AutoReconnect("connection lost")
        return await update_one(self, query, change, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "update_one", flaky)
    return failed


async def current_on(api: Api, token: str, s: dict) -> list[str]:
    edges = (await api.data("Annotations", {"filter": {"setIds": [s["truth"]["id"]]}}, token=token))["annotations"]["edges"]
    return sorted(e["node"]["label"] for e in edges)


async def test_a_correction_whose_mark_failed_once_still_takes_its_place(
        api: Api, contributor: str, setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The correction is stored, then the record it corrects is marked. A mark that failed on this
    side (a timeout, a lost connection) left both current, and the client's retry added a third
    record: two corrections of one record, both listed and both copied into every version."""
    s = setup
    (wrong,) = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "CLASSIFICATION", label="dent")]}, token=contributor))["addAnnotations"]["records"]
    fix = {"id": wrong["id"], "reason": "a scratch", "record": record(s, "CLASSIFICATION", label="scratch")}
    failed = failing_marks(monkeypatch, 1)
    answer = await api.run("SupersedeAnnotation", {"input": fix}, token=contributor, status=200)  # 503 before
    assert failed[0] == 1 and not answer.get("errors"), answer
    assert await current_on(api, contributor, s) == ["scratch"]
    assert answer["data"]["supersedeAnnotation"]["supersedes"]["supersededBy"]["id"] == answer["data"]["supersedeAnnotation"]["id"]


async def test_a_correction_cut_short_is_finished_by_the_same_one_sent_again_and_refuses_another(
        api: Api, contributor: str, setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A correction stored but never marked as its record's successor (its call cut short between
    the two writes) is found by the next correction of that record: the same one sent again takes its
    place, without a second copy; another is CONFLICT naming it (delete it to send another)."""
    s = setup
    (wrong,) = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "CLASSIFICATION", label="dent")]}, token=contributor))["addAnnotations"]["records"]
    fix = {"id": wrong["id"], "reason": "a scratch", "record": record(s, "CLASSIFICATION", label="scratch")}
    failing_marks(monkeypatch, 10**6)
    error = await api.error("SupersedeAnnotation", {"input": fix}, token=contributor, status=503)
    assert error["extensions"]["code"] == "UNAVAILABLE", error
    monkeypatch.undo()
    (stray,) = [r async for r in AnnotationRecord.get_pymongo_collection().find({"supersedes": object_id(wrong["id"])})]
    stray_id = encode_id(NodeType.ANNOTATION_RECORD, stray["_id"])

    other = {**fix, "record": record(s, "CLASSIFICATION", label="dent", attributes={"occluded": True})}
    error = await api.error("SupersedeAnnotation", {"input": other}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "id", "record": stray_id}, error
    # The same record for another reason is another correction.
    error = await api.error("SupersedeAnnotation", {"input": {**fix, "reason": "another reason"}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT", error

    finished = (await api.data("SupersedeAnnotation", {"input": fix}, token=contributor))["supersedeAnnotation"]
    assert finished["id"] == stray_id and finished["supersedes"]["supersededBy"]["id"] == stray_id
    assert await current_on(api, contributor, s) == ["scratch"]
    assert await AnnotationRecord.find({"set_id": object_id(s["truth"]["id"])}).count() == 2  # no second copy


async def test_a_version_pins_its_records_masks_and_holds_finished_ones_only(
        api: Api, contributor: str, setup: dict) -> None:
    """A version's copy of a MASK record names its mask asset. Pinned with the role assets, it stays
    while the version does: once the record was deleted (the version keeps its copy) nothing held the
    mask, a contributor's deleteAsset took it and the version no longer verified. A mask not ACTIVE
    (an upload not finished) is refused, as a role asset is, naming the record."""
    s = setup
    (masked,) = (await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "MASK", label="dent", geometry={"mask": {"assetId": s["mask"]["id"]}})]},
        token=contributor))["addAnnotations"]["records"]
    ds = await factories.dataset(api, contributor)
    await Asset.get_pymongo_collection().update_one({"_id": object_id(s["mask"]["id"])}, {"$set": {"status": "PENDING"}})
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "early", "addDatums": [
        s["datum"]["id"]], "addAnnotationSets": [s["truth"]["id"]]}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "addAnnotationSets"}, error
    assert s["mask"]["id"] in error["message"] and masked["id"] in error["message"] and "PENDING" in error["message"]
    await Asset.get_pymongo_collection().update_one({"_id": object_id(s["mask"]["id"])}, {"$set": {"status": "ACTIVE"}})

    version = await factories.version(api, contributor, ds["id"], "v1", addDatums=[s["datum"]["id"]],
                                      addAnnotationSets=[s["truth"]["id"]])
    await api.data("DeleteAnnotationRecord", {"id": masked["id"]}, token=contributor)
    error = await api.error("DeleteAsset", {"id": s["mask"]["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and version["id"] in error["extensions"]["holders"], error
    checked = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert checked["ok"] and checked["records"] == 1, checked


async def test_a_schema_deleted_while_a_set_is_created_on_it_leaves_neither_a_set_without_one(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """createAnnotationSet read the schema, then wrote the set; deleteAnnotationSchema looked for sets,
    then deleted the schema. Interleaved, a set named a schema that was gone: every list of sets
    asking for `schema` failed, and the set took no records. The set looks for the schema again
    after its write, and the delete marks the schema before it looks for sets: the set goes
    (NOT_FOUND), or the delete finds it (CONFLICT naming the set), the schema never gone meanwhile."""
    schema = await factories.schema(api, contributor, "raced")
    schema_id = object_id(schema["id"])
    insert = AnnotationSet.insert

    async def schema_deleted_first(self: AnnotationSet, *args: Any, **kwargs: Any) -> Any:
        await AnnotationSchema.get_pymongo_collection().delete_one({"_id": schema_id})  # a delete that saw no set
        return await insert(self, *args, **kwargs)

    monkeypatch.setattr(AnnotationSet, "insert", schema_deleted_first)
    error = await api.error("CreateAnnotationSet", {"input": {"name": "s", "purpose": "GROUND_TRUTH",
                                                              "schemaId": schema["id"]}}, token=contributor)
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "schemaId"}, error
    assert await AnnotationSet.count() == 0
    monkeypatch.undo()

    schema = await factories.schema(api, contributor, "raced again")
    schema_id = object_id(schema["id"])

    async def a_set_written_before_the_look() -> None:  # by a create that read the schema before the mark
        await AnnotationSet(name="late", purpose="GROUND_TRUTH", schema_id=schema_id).insert()

    once_after(monkeypatch, delete_marks, "mark", a_set_written_before_the_look)
    error = await api.error("DeleteAnnotationSchema", {"id": schema["id"]}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"]["code"] == "CONFLICT", error
    (late,) = await AnnotationSet.find_all().to_list()
    assert encode_id(NodeType.ANNOTATION_SET, late.id) in error["message"]
    sets = (await api.data("AnnotationSets", {"first": 10}, token=contributor))["annotationSets"]["edges"]
    assert [e["node"]["name"] for e in sets] == ["late"]
    kept = await AnnotationSchema.get_pymongo_collection().find_one({"_id": schema_id})
    assert kept is not None and "deleting_at" not in kept and "delete_token" not in kept  # as it was

    # A create meeting the mark of a delete past its checks is NOT_FOUND, and leaves no set; the delete goes on.
    await AnnotationSet.get_pymongo_collection().delete_many({})
    created = once_after(monkeypatch, delete_marks, "commit", lambda: api.error("CreateAnnotationSet", {"input": {
        "name": "meanwhile", "purpose": "GROUND_TRUTH", "schemaId": schema["id"]}}, token=contributor))
    assert (await api.data("DeleteAnnotationSchema", {"id": schema["id"]}, token=contributor))["deleteAnnotationSchema"]["deleted"]
    monkeypatch.undo()
    assert created[0]["extensions"] == {"code": "NOT_FOUND", "field": "schemaId"} and "being deleted" in created[0]["message"]
    assert await AnnotationSet.count() == 0 and await AnnotationSchema.get(schema_id) is None


async def test_a_version_built_while_records_are_written_holds_none_of_their_batch(
        api: Api, contributor: str, setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of records is written a chunk at a time, then its journal entry dropped (or, on a
    failure, its records removed first). A version built in between froze the part written: records
    never answered for, and kept after a rollback (a keyed batch meeting a held key is rolled back
    and written again: the version then held both the record and its twin). The build leaves out
    every record of a batch still open, and those of one rolled back since they were read."""
    s = setup
    await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [record(s, "CLASSIFICATION", label="dent")]},
                   token=contributor)
    ds = await factories.dataset(api, contributor)
    monkeypatch.setattr(batches, "CHUNK", 1)
    insert_many, paused, go = AsyncCollection.insert_many, asyncio.Event(), asyncio.Event()

    async def pausing(self: AsyncCollection, documents: list[dict], *args: Any, **kwargs: Any) -> Any:
        result = await insert_many(self, documents, *args, **kwargs)
        if self.name == "annotation_records" and documents[0].get("label") == "scratch":
            paused.set()  # the first chunk written, the batch still open
            await go.wait()
        return result

    monkeypatch.setattr(AsyncCollection, "insert_many", pausing)
    scratches = [record(s, "CLASSIFICATION", label="scratch")] * 2
    adding = asyncio.create_task(api.run("AddAnnotations", {"setId": s["truth"]["id"], "records": scratches},
                                         token=contributor))
    await paused.wait()
    during = await factories.version(api, contributor, ds["id"], "during", addDatums=[s["datum"]["id"]],
                                     addAnnotationSets=[s["truth"]["id"]])
    go.set()
    assert not (await adding).get("errors")
    assert [c["label"] for c in await factories.version_copies(during["id"])] == ["dent"]

    # Rolled back between the build's read of its records and its look at the journal.
    paused.clear()
    go.clear()
    still_written = batches.still_written

    async def rolled_back_first(db: Any, batch_ids: Any) -> set:
        open_ids = await still_written(db, batch_ids)
        for batch_id in open_ids:  # as a rollback does: the records, then the entry
            await AnnotationRecord.get_pymongo_collection().delete_many({"batch": batch_id})
            await db[batches.JOURNAL].delete_one({"_id": batch_id})
        return await still_written(db, batch_ids)

    monkeypatch.setattr(batches, "still_written", rolled_back_first)
    adding = asyncio.create_task(api.run("AddAnnotations", {"setId": s["truth"]["id"], "records": scratches},
                                         token=contributor))
    await paused.wait()
    after = await factories.version(api, contributor, ds["id"], "after", addDatums=[s["datum"]["id"]],
                                    addAnnotationSets=[s["truth"]["id"]])
    go.set()
    assert (await adding).get("errors")  # its batch was taken from it: nothing of it stays
    assert sorted(c["label"] for c in await factories.version_copies(after["id"])) == ["dent", "scratch", "scratch"]


async def test_a_datum_deleted_while_records_are_added_on_it_leaves_no_record_pointing_at_nothing(
        api: Api, contributor: str, admin: str, setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """addAnnotations read the datum, then wrote its records; deleteDatum looked for records, then
    removed the datum. Interleaved, records named a datum that was gone (no version takes them, no
    correction can stay on it). The delete marks the datum before it looks, and the records look for
    the mark after their write: the records go (CONFLICT), or the delete finds them (CONFLICT naming
    them), its mark taken back. Records meeting the mark of a delete still looking wait it out: a
    refused delete does not fail them too."""
    s = setup
    labelled = {"setId": s["truth"]["id"], "records": [record(s, "CLASSIFICATION", label="dent")]}
    insert_all = batches.insert_all

    async def datum_deleted_first(*args: Any, **kwargs: Any) -> Any:
        assert (await api.data("DeleteDatum", {"id": s["datum"]["id"]}, token=contributor))["deleteDatum"]["deleted"]
        return await insert_all(*args, **kwargs)

    monkeypatch.setattr(batches, "insert_all", datum_deleted_first)
    error = await api.error("AddAnnotations", labelled, token=contributor)
    monkeypatch.undo()
    assert error["extensions"] == {"code": "CONFLICT", "field": "records"} and s["datum"]["id"] in error["message"], error
    assert await AnnotationRecord.count() == 0

    image = await factories.image_asset(api, contributor, "again.png")
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": image["id"]}]}]},
                            token=contributor))["createDatums"][0]
    s = {**s, "datum": datum, "image": image}
    labelled = {"setId": s["truth"]["id"], "records": [record(s, "CLASSIFICATION", label="dent")]}
    # Records written before the delete's mark (their own look at the datum still to come) are found.
    raw = {"_id": ObjectId(), "set_id": object_id(s["truth"]["id"]), "datum_id": object_id(datum["id"]),
           "asset_id": object_id(image["id"]), "kind": "CLASSIFICATION", "label": "dent"}
    once_after(monkeypatch, delete_marks, "mark",
               lambda: AnnotationRecord.get_pymongo_collection().insert_one(raw))
    error = await api.error("DeleteDatum", {"id": datum["id"]}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"]["code"] == "CONFLICT" and encode_id(NodeType.ANNOTATION_RECORD, raw["_id"]) in \
        error["extensions"]["holders"], error
    assert "deleting_at" not in await Datum.get_pymongo_collection().find_one({"_id": object_id(datum["id"])})
    error = await api.error("DeleteAsset", {"id": image["id"]}, token=contributor)  # the datum uses it still
    assert datum["id"] in error["extensions"]["holders"], error
    # An addAnnotations meeting the mark of a delete still looking waits it out: refused (the datum is
    # in a version), the delete takes its mark back, and the records are written.
    await AnnotationRecord.get_pymongo_collection().delete_one({"_id": raw["_id"]})
    dataset = await factories.dataset(api, contributor)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datum["id"]])
    adding: list[asyncio.Future] = []
    waiting, waited_out = asyncio.Event(), delete_marks.waited_out

    async def noting_the_wait(*args: Any, **kwargs: Any) -> Any:
        waiting.set()
        return await waited_out(*args, **kwargs)

    async def records_added_meanwhile() -> None:
        adding.append(asyncio.ensure_future(api.run("AddAnnotations", labelled, token=contributor)))
        await asyncio.wait_for(waiting.wait(), 10)  # it met the mark and looks again until the delete decides

    monkeypatch.setattr(delete_marks, "waited_out", noting_the_wait)
    once_after(monkeypatch, delete_marks, "mark", records_added_meanwhile)
    error = await api.error("DeleteDatum", {"id": datum["id"]}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"]["code"] == "CONFLICT" and version["id"] in error["extensions"]["holders"], error
    added = await adding[0]
    assert not added.get("errors") and len(added["data"]["addAnnotations"]["ids"]) == 1, added

    # One meeting the mark of a delete past its checks is NOT_FOUND on the datum, the delete going on.
    await api.data("DeleteDatasetVersion", {"id": version["id"]}, token=admin)
    await AnnotationRecord.get_pymongo_collection().delete_many({})
    refused = once_after(monkeypatch, delete_marks, "commit",
                         lambda: api.error("AddAnnotations", labelled, token=contributor))
    assert (await api.data("DeleteDatum", {"id": datum["id"]}, token=contributor))["deleteDatum"]["deleted"]
    monkeypatch.undo()
    assert refused[0]["extensions"] == {"code": "NOT_FOUND", "field": "records[0].datumId"}, refused
    assert "being deleted" in refused[0]["message"]
    assert await AnnotationRecord.count() == 0


async def test_a_datum_a_refused_delete_marked_keeps_an_update_made_meanwhile(
        api: Api, contributor: str, setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """An updateDatum landing while a delete, refused in the end, looked for holders is kept: the
    refusal takes back the delete's mark alone (it had brought the datum back as the delete read it)."""
    s = setup
    await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [record(s, "CLASSIFICATION", label="dent")]},
                   token=contributor)
    once_after(monkeypatch, delete_marks, "mark", lambda: api.data(
        "UpdateDatum", {"input": {"id": s["datum"]["id"], "split": "TRAIN", "metadata": {"checked": True}}}, token=contributor))
    error = await api.error("DeleteDatum", {"id": s["datum"]["id"]}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"]["code"] == "CONFLICT", error
    kept = (await api.data("Datum", {"id": s["datum"]["id"], "role": "image"}, token=contributor))["datum"]
    assert kept["split"] == "TRAIN" and kept["metadata"] == {"checked": True}, kept
    assert kept["annotations"]["totalCount"] == 1


COMPENSATED = ("datums", "datum_assets", "annotation_records", "annotation_schemas", "annotation_sets")


async def test_deletes_past_their_checks_run_with_no_time_limit(
        api: Api, contributor: str, setup: dict, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A datum or schema delete past its checks removes what it deletes with no time limit: cut short
    on a slow database, the datum (schema) would stay marked, closed to records (sets), until a
    retry. Every command from its commit on is sent with no time limit (no maxTimeMS)."""
    s = setup
    async def from_here_on() -> None:
        served.commands.clear()

    once_after(monkeypatch, delete_marks, "commit", from_here_on)
    assert (await api.data("DeleteDatum", {"id": s["datum"]["id"]}, token=contributor))["deleteDatum"]["deleted"]
    monkeypatch.undo()
    sent = [(command, at, limit) for command, at, limit in served.commands.limits if at in COMPENSATED]
    assert {(command, at) for command, at, _ in sent} >= {("find", "datums"), ("delete", "datums"),
                                                          ("delete", "datum_assets")}, sent
    assert all(limit is None for *_, limit in sent), sent

    schema = await factories.schema(api, contributor, "slow")
    once_after(monkeypatch, delete_marks, "commit", from_here_on)
    assert (await api.data("DeleteAnnotationSchema", {"id": schema["id"]}, token=contributor))["deleteAnnotationSchema"]["deleted"]
    monkeypatch.undo()
    sent = [(command, at, limit) for command, at, limit in served.commands.limits if at in COMPENSATED]
    assert {(command, at) for command, at, _ in sent} == {("delete", "annotation_schemas")}, sent
    assert all(limit is None for *_, limit in sent), sent


async def test_a_second_delete_meeting_a_refused_one_does_not_answer_deleted(
        api: Api, contributor: str, setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two deleteAnnotationSchema at once, a set made meanwhile: the first deleted the schema, saw
    the set and brought the schema back (CONFLICT); the second, finding it gone in between, answered
    deleted, of a schema there afterwards. Each marks it now, and both are refused naming the set, the
    schema there all the while and unmarked after. Two deleteDatum at once, a record written
    meanwhile: both are refused naming it, and the datum stays, unmarked."""
    schema = await factories.schema(api, contributor, "twice")
    schema_id = object_id(schema["id"])

    async def a_set_then_another_delete() -> Any:
        await AnnotationSet(name="late", purpose="GROUND_TRUTH", schema_id=schema_id).insert()  # its create looked before the mark
        return await api.run("DeleteAnnotationSchema", {"id": schema["id"]}, token=contributor)

    second = once_after(monkeypatch, delete_marks, "mark", a_set_then_another_delete)
    error = await api.error("DeleteAnnotationSchema", {"id": schema["id"]}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"]["code"] == "CONFLICT", error
    kept = await AnnotationSchema.get_pymongo_collection().find_one({"_id": schema_id})
    assert kept is not None and "deleting_at" not in kept, kept
    late = await AnnotationSet.find_one(AnnotationSet.name == "late")
    assert late is not None
    [answer] = second
    assert [e["extensions"]["code"] for e in answer.get("errors", [])] == ["CONFLICT"], answer
    assert encode_id(NodeType.ANNOTATION_SET, late.id) in answer["errors"][0]["message"]

    s = setup
    raw = {"_id": ObjectId(), "set_id": object_id(s["truth"]["id"]), "datum_id": object_id(s["datum"]["id"]),
           "asset_id": object_id(s["image"]["id"]), "kind": "CLASSIFICATION", "label": "dent"}

    async def a_record_then_another_delete() -> Any:
        await AnnotationRecord.get_pymongo_collection().insert_one(raw)  # its writer had looked before the mark
        return await api.run("DeleteDatum", {"id": s["datum"]["id"]}, token=contributor)

    second = once_after(monkeypatch, delete_marks, "mark", a_record_then_another_delete)
    error = await api.error("DeleteDatum", {"id": s["datum"]["id"]}, token=contributor)
    monkeypatch.undo()
    record_id = encode_id(NodeType.ANNOTATION_RECORD, raw["_id"])
    assert error["extensions"]["code"] == "CONFLICT" and record_id in error["extensions"]["holders"], error
    [answer] = second
    assert [e["extensions"]["code"] for e in answer.get("errors", [])] == ["CONFLICT"], answer
    assert record_id in answer["errors"][0]["extensions"]["holders"], answer
    kept = await Datum.get_pymongo_collection().find_one({"_id": object_id(s["datum"]["id"])})
    assert kept is not None and "deleting_at" not in kept and "delete_token" not in kept, kept


async def test_a_mask_deleted_while_a_version_is_built_is_named_on_the_sets_that_brought_it(
        api: Api, contributor: str, setup: dict, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forced deleteAsset of a mask landing while a version is built, once the build pinned it: the
    build is refused (CONFLICT naming the mask) on addAnnotationSets, which brought its record in, as
    the check of the masks before the build names it; it said addDatums, which names role assets."""
    s = setup
    await api.data("AddAnnotations", {"setId": s["truth"]["id"], "records": [
        record(s, "MASK", label="dent", geometry={"mask": {"assetId": s["mask"]["id"]}})]}, token=contributor)
    ds = await factories.dataset(api, contributor)
    pin, mask_id = retention.pin, object_id(s["mask"]["id"])

    async def mask_deleted_once_pinned(*args: Any, **kwargs: Any) -> Any:
        pinned = await pin(*args, **kwargs)
        await delete_asset(mask_id, True, state.stores)  # an ADMIN's forced delete, that read no pin yet
        return pinned

    monkeypatch.setattr(retention, "pin", mask_deleted_once_pinned)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "v1", "addDatums": [
        s["datum"]["id"]], "addAnnotationSets": [s["truth"]["id"]]}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "addAnnotationSets"}, error
    assert s["mask"]["id"] in error["message"] and "mask" in error["message"]
