"""The lists the API returns whole, not as connections (`derivedFrom`, a datum's `roles`, a version's
`annotationSets`), stay small because what fills them is bounded when it is written: one more than
the documented limit is BAD_USER_INPUT naming the field, and nothing is stored."""

from __future__ import annotations

from bson import ObjectId

from documents.annotation import AnnotationPurpose, AnnotationSet
from documents.asset import Asset
from documents.dataset import DatasetVersion, Datum
from services.checks import MAX_LINEAGE, MAX_ROLES, MAX_VERSION_SETS
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.operations import Api, object_id


async def test_a_lineage_holds_at_most_the_documented_number_of_assets(api: Api, contributor: str) -> None:
    parent = await factories.value_asset(api, contributor, name="parent")
    before = await Asset.count()
    too_many = [encode_id(NodeType.ASSET, ObjectId()) for _ in range(MAX_LINEAGE + 1)]
    error = await api.error("StoreValue", {"input": {"name": "child", "value": 1, "derivedFrom": too_many}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "derivedFrom"}
    assert f"at most {MAX_LINEAGE}" in error["message"] and await Asset.count() == before
    # The same parent named many times is one entry of the lineage.
    child = await factories.value_asset(api, contributor, name="child", derivedFrom=[parent["id"]] * (MAX_LINEAGE + 5))
    stored = await Asset.get(object_id(child["id"]))
    assert stored is not None and stored.derived_from == [object_id(parent["id"])]
    refused = await api.error("UpdateAsset", {"input": {"id": child["id"], "derivedFrom": too_many}}, token=contributor)
    assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": "derivedFrom"}


async def test_a_datum_holds_at_most_the_documented_number_of_roles(api: Api, contributor: str) -> None:
    asset = await factories.value_asset(api, contributor)
    roles = [{"role": f"r{i}", "assetId": asset["id"]} for i in range(MAX_ROLES + 1)]
    error = await api.error("CreateDatums", {"inputs": [{"roles": roles}]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[0].roles"}
    assert await Datum.count() == 0
    made = await api.data("CreateDatums", {"inputs": [{"roles": roles[:MAX_ROLES]}]}, token=contributor)
    assert len(made["createDatums"]) == 1


async def test_a_version_holds_at_most_the_documented_number_of_annotation_sets(api: Api, contributor: str) -> None:
    schema = await factories.schema(api, contributor)
    sets = [AnnotationSet(id=ObjectId(), name=f"s{i}", purpose=AnnotationPurpose.PREDICTION, schema_id=object_id(schema["id"]))
            for i in range(MAX_VERSION_SETS + 1)]
    await AnnotationSet.insert_many(sets)
    dataset = await factories.dataset(api, contributor)
    ids = [encode_id(NodeType.ANNOTATION_SET, s.id) for s in sets]
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": dataset["id"], "version": "v1",
                                                               "addAnnotationSets": ids}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "addAnnotationSets"}
    assert await DatasetVersion.count() == 0
    made = await factories.version(api, contributor, dataset["id"], "v1", addAnnotationSets=ids[:MAX_VERSION_SETS])
    assert len(made["annotationSets"]) == MAX_VERSION_SETS
