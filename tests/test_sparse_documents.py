"""Annotation records and their version copies are stored sparse (documents/sparse.py): written
without their null fields, and read back, filtered and hashed as if the fields were there. A
version's members keep their datum's metadata as text alone."""

from __future__ import annotations

import types
import typing

from bson import ObjectId

from documents import annotation as docs
from documents.asset import Asset
from documents.common import Ownership
from documents.dataset import Datum, VersionRecord
from documents.event import Event
from documents.json_value import JsonText
from documents.manifest import record_entry
from documents.sparse import sparse
from services.annotations import NewRecord, record_document, record_fields
from tests import factories
from tests.operations import Api, object_id

SHAPES = {
    docs.AnnotationKind.CLASSIFICATION: None,
    docs.AnnotationKind.REGRESSION: None,
    docs.AnnotationKind.BBOX: docs.BBoxShape(x=1, y=2, width=3, height=4),
    docs.AnnotationKind.ROTATED_BBOX: docs.RotatedBBoxShape(cx=1, cy=2, width=3, height=4, angle=30),
    docs.AnnotationKind.POLYGON: docs.PolygonShape(points=[docs.Point(x=0, y=0), docs.Point(x=1, y=0), docs.Point(x=0, y=1)]),
    docs.AnnotationKind.POLYLINE: docs.PolylineShape(points=[docs.Point(x=0, y=0), docs.Point(x=1, y=1)]),
    docs.AnnotationKind.KEYPOINTS: docs.KeypointsShape(points=[docs.Keypoint(x=1, y=1), docs.Keypoint(name="tip", x=2, y=2, visible=True)]),
    docs.AnnotationKind.MASK: docs.MaskShape(asset_id=ObjectId()),
}


def test_record_documents_are_what_the_model_would_store() -> None:
    """record_document writes by hand what AnnotationRecord(...).model_dump() gives: every kind, with
    and without the record's own source, a set with and without one, a correction and not."""
    set_sources = [None, docs.AnnotationSource(kind=docs.SourceKind.MODEL, name="detr", version="1.2")]
    own_sources = [None, docs.AnnotationSource(kind=docs.SourceKind.HUMAN, name="alice")]
    checked = 0
    for kind, shape in SHAPES.items():
        for set_source in set_sources:
            for own_source in own_sources:
                if set_source is None and own_source is None:
                    continue  # refused before anything is written: a record needs a source
                for supersedes, reason in ((None, None), (ObjectId(), "wrong label")):
                    annotation_set = docs.AnnotationSet(id=ObjectId(), name="s", purpose=docs.AnnotationPurpose.PREDICTION,
                                                        schema_id=ObjectId(), source=set_source)
                    new = NewRecord(asset_id=ObjectId(), kind=kind, datum_id=ObjectId() if supersedes else None,
                                    label=None if kind is docs.AnnotationKind.REGRESSION else "dent",
                                    score=0.5 if own_source is None else None,
                                    value=2.5 if kind is docs.AnnotationKind.REGRESSION else None, geometry=shape,
                                    attributes=JsonText.encode({"occluded": True}) if supersedes else None, source=own_source)
                    shared = record_fields(annotation_set, "alice", supersedes, reason)
                    written = record_document(new, shared)
                    model = docs.AnnotationRecord(
                        id=written["_id"], set_id=annotation_set.id, datum_id=new.datum_id, asset_id=new.asset_id, kind=kind,
                        label=new.label, score=new.score, value=new.value, geometry=shape,
                        attributes=new.attributes or JsonText.encode({}), purpose=annotation_set.purpose,
                        source=own_source or set_source, created_at=shared["created_at"], created_by="alice",
                        supersedes=supersedes, supersede_reason=reason)
                    assert written == sparse(model.model_dump(by_alias=True)), (kind, set_source, own_source, supersedes)
                    checked += 1
    assert checked == len(SHAPES) * 3 * 2


def test_every_field_left_out_reads_back_as_none() -> None:
    """A missing field reads as its default: every field that can be None must default to None, or a
    record stored without it would read back as something else."""
    for model in (docs.AnnotationRecord, VersionRecord, Asset, Datum, Event, Ownership):
        for name, field in model.model_fields.items():
            args = typing.get_args(field.annotation)
            nullable = field.annotation is type(None) or type(None) in args or (
                typing.get_origin(field.annotation) is types.UnionType and type(None) in args)
            if nullable and name != "id":
                assert field.default is None and field.default_factory is None, (model.__name__, name)


def test_a_record_hashes_the_same_with_or_without_its_nulls() -> None:
    full = {"_id": ObjectId(), "set_id": ObjectId(), "asset_id": ObjectId(), "kind": "KEYPOINTS", "label": "dent",
            "score": None, "value": None, "verified": False, "verified_by": None, "superseded_by": None,
            "geometry": {"type": "KEYPOINTS", "points": [{"name": None, "x": 1.0, "y": 1.0, "visible": None}]},
            "attributes": {"json": "{}"}, "purpose": "GROUND_TRUTH", "source": {"kind": "HUMAN", "name": "a", "version": None}}
    assert record_entry(sparse(full), {"name": "s", "purpose": "GROUND_TRUTH"}) == \
        record_entry(full, {"name": "s", "purpose": "GROUND_TRUTH"})
    assert sparse(full)["geometry"] == full["geometry"]  # nested nulls are kept: the hash covers them


async def test_records_are_stored_without_their_nulls_and_read_back_whole(api: Api, contributor: str, state) -> None:
    db = state.db
    image = await factories.image_asset(api, contributor, "photo.png")
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": image["id"]}]}]},
                            token=contributor))["createDatums"][0]
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    record = {"assetId": image["id"], "datumId": datum["id"], "kind": "BBOX", "label": "dent",
              "geometry": {"bbox": {"x": 1, "y": 2, "width": 3, "height": 4}}}
    added = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [record]}, token=contributor))["addAnnotations"]
    assert added["ids"] == [r["id"] for r in added["records"]] and len(added["ids"]) == 1
    assert added["records"][0]["score"] is None and added["records"][0]["verifiedBy"] is None
    stored = await db.annotation_records.find_one({"_id": object_id(added["ids"][0])})
    assert not {"score", "value", "verified_by", "verified_at", "supersedes", "superseded_by", "superseded_at"} & stored.keys()
    assert stored["verified"] is False and stored["geometry"]["width"] == 3

    # Found by the filter on a field left out (current records: superseded_by null), and read back whole.
    listed = (await api.data("Annotations", {"filter": {"labels": ["dent"]}}, token=contributor))["annotations"]
    assert [e["node"] for e in listed["edges"]] == added["records"]

    # A version's copy is sparse too, without the original's write journal, and reads the same.
    dataset = await factories.dataset(api, contributor)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datum["id"]],
                                      addAnnotationSets=[labels["id"]])
    (copy,) = await factories.version_copies(version["id"])
    assert "batch" in stored and "batch" not in copy and "superseded_by" not in copy and "score" not in copy
    member = await db.version_members.find_one({"version_id": object_id(version["id"])})
    assert member["metadata"] == {"json": "{}"}  # the text alone: nothing queries a member's metadata
    graph = (await api.data("VersionGraph", {"id": version["id"]}, token=contributor))["datasetVersion"]
    (node,) = [e["node"] for d in graph["datums"]["edges"] for e in d["node"]["annotations"]["edges"]]
    assert node["id"] == added["ids"][0] and node["score"] is None and node["verified"] is False
    checked = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert checked["ok"] and checked["records"] == 1, checked

    # Verified, then not: who and when are left out again, not stored as nulls.
    for verified in (True, False):
        await api.data("VerifyAnnotations", {"ids": added["ids"], "verified": verified}, token=contributor)
        stored = await db.annotation_records.find_one({"_id": object_id(added["ids"][0])})
        assert stored["verified"] is verified and ("verified_by" in stored) is verified, stored


async def test_assets_are_stored_without_their_nulls_and_read_back_whole(api: Api, contributor: str, state) -> None:
    text = (await api.data("StoreText", {"input": {"name": "note.txt", "text": "hello"}}, token=contributor))["storeText"]
    raw = await state.db.assets.find_one({"_id": object_id(text["id"])})
    assert not {"description", "value", "storage", "data_timestamp", "deleted_at", "unpinned_at", "digest_error"} & raw.keys()
    assert raw["owner"] == {}  # an ownership keeps only the fields it has
    read = (await api.data("Asset", {"id": text["id"]}, token=contributor))["asset"]
    assert read == {**text, "digestError": None, "retentions": [], "collections": {"totalCount": 0, "edges": []}}
    assert read["description"] is None and read["dataTimestamp"] is None and read["value"] is None
    # Lists filter and sort on fields left out as if they were null (data_timestamp: newest first puts them last).
    value = (await api.data("StoreValue", {"input": {"name": "reading", "value": 1, "dataTimestamp": "2026-01-01T00:00:00Z"}},
                            token=contributor))["storeValue"]
    for direction, expected in (("DESC", [value["id"], text["id"]]), ("ASC", [text["id"], value["id"]])):
        seen, after = [], None
        while True:  # a page at a time: the cursor after a missing value finds the next one
            page = (await api.data("Assets", {"orderBy": {"field": "DATA_TIMESTAMP", "direction": direction}, "first": 1,
                                              "after": after}, token=contributor))["assets"]
            seen += [e["node"]["id"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == expected, direction


async def test_clearing_a_field_leaves_it_out_and_rewrites_nothing_already_clear(api: Api, contributor: str, state) -> None:
    """A field set back to null is left out ($unset), as at insert: pinning fresh assets changes none
    of them (a `$set` to null wrote a null into each, rewriting the document), and a field cleared
    after it held a value is gone, not null."""
    db = state.db
    assets = [await factories.value_asset(api, contributor, name=f"v{i}", value=i) for i in range(3)]
    ids = [object_id(a["id"]) for a in assets]
    before = {a["_id"]: a async for a in db.assets.find({"_id": {"$in": ids}})}
    modified = []

    # The pin a collection makes clears each asset's unpinned_at: none had one, so none is rewritten.
    collection = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": collection["id"],
                                                 "items": [{"assetId": a["id"]} for a in assets]}}, token=contributor)
    after = {a["_id"]: a async for a in db.assets.find({"_id": {"$in": ids}})}
    for asset_id in ids:
        assert "unpinned_at" not in after[asset_id]
        modified.append({k: v for k, v in after[asset_id].items() if before[asset_id].get(k) != v and k != "collection_ids"})
    assert modified == [{}, {}, {}], modified

    # Unpinned (flagged for garbage collection), then pinned again: the flag is cleared by leaving the field out.
    loose = await factories.value_asset(api, contributor, name="loose")
    pin = (await api.data("PinAsset", {"assetId": loose["id"]}, token=contributor))["pinAsset"]
    await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)
    assert (await db.assets.find_one({"_id": object_id(loose["id"])}))["unpinned_at"] is not None
    await api.data("PinAsset", {"assetId": loose["id"]}, token=contributor)
    assert "unpinned_at" not in await db.assets.find_one({"_id": object_id(loose["id"])})

    # An asset's description cleared by updateAsset is left out; one set is stored.
    await api.data("UpdateAsset", {"input": {"id": assets[1]["id"], "description": "calibrated"}}, token=contributor)
    assert (await db.assets.find_one({"_id": ids[1]}))["description"] == "calibrated"
    updated = (await api.data("UpdateAsset", {"input": {"id": assets[1]["id"], "description": None}}, token=contributor))["updateAsset"]
    assert updated["description"] is None and "description" not in await db.assets.find_one({"_id": ids[1]})


async def test_events_and_ownership_are_stored_without_their_nulls(api: Api, contributor: str, state) -> None:
    """An event keeps only the fields it has, its source too, and reads, filters and sorts as if the
    others were null; so does an asset's owner."""
    logged = (await api.data("LogEvents", {"inputs": [
        {"eventType": "NODE_START", "source": {"nodeId": "arm-1", "workflowId": "wf-7"}},
        {"eventType": "NODE_START", "message": "second", "traceId": "t-1"},
    ]}, token=contributor))["logEvents"]
    first, second = [await state.db.events.find_one({"_id": object_id(i)}) for i in logged["ids"]]
    assert first["source"] == {"node_id": "arm-1", "workflow_id": "wf-7"}
    assert not {"message", "trace_id", "span_id"} & first.keys() and second["source"] == {} and second["trace_id"] == "t-1"
    events = (await api.data("Events", {"filter": {"eventTypes": ["NODE_START"], "source": {"nodeId": "arm-1"}}},
                             token=contributor))["events"]
    (node,) = [e["node"] for e in events["edges"]]
    assert node["id"] == logged["ids"][0] and node["message"] is None and node["traceId"] is None
    assert node["source"]["nodeId"] == "arm-1" and node["source"]["userId"] is None

    value = (await api.data("StoreValue", {"input": {"name": "owned", "value": 1, "owner": {"userId": "ada"}}},
                            token=contributor))["storeValue"]
    assert (await state.db.assets.find_one({"_id": object_id(value["id"])}))["owner"] == {"user_id": "ada"}
    owned = (await api.data("Assets", {"filter": {"owner": {"userId": "ada"}}}, token=contributor))["assets"]
    assert [e["node"]["id"] for e in owned["edges"]] == [value["id"]]


async def test_json_views_are_stored_only_when_they_hold_something(api: Api, contributor: str, state) -> None:
    """Empty metadata is stored as its text alone, and predicates treat the missing views as empty:
    it has no path, equals nothing, and differs from everything."""
    empty = await factories.value_asset(api, contributor, name="bare", value=1)
    full = await factories.value_asset(api, contributor, name="tagged", value=2, metadata={"a": 1})
    raw = await state.db.assets.find_one({"_id": object_id(empty["id"])})
    assert raw["metadata"] == {"json": "{}"} and "truncated" not in raw["value"] and raw["value"]["attrs"]
    assert (await state.db.assets.find_one({"_id": object_id(full["id"])}))["metadata"]["paths"] == ["a"]

    async def names(*predicates: dict) -> list[str]:
        found = (await api.data("Assets", {"filter": {"metadata": list(predicates)}}, token=contributor))["assets"]
        return sorted(e["node"]["name"] for e in found["edges"])

    assert await names({"path": "a", "op": "EXISTS", "value": False}) == ["bare"]
    assert await names({"path": "a", "op": "NE", "value": 1}) == ["bare"]
    assert await names({"path": "a", "op": "NIN", "value": [1]}) == ["bare"]
    assert await names({"path": "a", "op": "EQ", "value": 1}) == ["tagged"]
    assert await names({"path": "a", "op": "EXISTS"}) == ["tagged"]
    read = (await api.data("Asset", {"id": empty["id"]}, token=contributor))["asset"]
    assert read["metadata"] == {} and read["value"] == 1
