"""Datums, datasets and immutable versions: the builder, manifests, diffs and training splits."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bson import ObjectId

from documents.annotation import AnnotationRecord
from documents.asset import Asset
from documents.clock import utcnow
from documents.dataset import DatasetVersion, Datum, DatumAsset, VersionMember
from documents.record_pack import VersionRecordPack
from documents.retention import AssetRetention
from documents.roles import Role
from graphlake.settings import Settings
from graphlake_client import Client, ResumeState
from resolvers.context import AppState
from services import bulk_deletes, datasets, delete_marks, retention, snapshots, version_build, version_order
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import MakeToken, S3Service, Served
from tests.operations import Api, object_id
from tests.waiting import wait_for


async def test_create_datums_checks_everything_first(api: Api, contributor: str) -> None:
    image = await factories.image_asset(api, contributor)
    made = await factories.datums(api, contributor, 2)
    assert [r["role"] for r in made[0]["roles"]] == ["image", "mask"] and made[0]["metadata"] == {"index": 0}
    unknown = "QXNzZXQ6NjRiMDAwMDAwMDAwMDAwMDAwMDAwMDAx"  # a well-formed ID of no asset
    deleted = await factories.image_asset(api, contributor)
    await api.data("DeleteAsset", {"id": deleted["id"]}, token=contributor)
    before = await Datum.count()
    cases = [  # (the inputs, the code, the field at fault, what the message names: the IDs sent)
        ([{"roles": [{"role": "image", "assetId": image["id"]}]},
          {"roles": [{"role": "image", "assetId": unknown}]}], "NOT_FOUND", "inputs[1].roles[0].assetId", unknown),
        ([{"roles": [{"role": "image", "assetId": image["id"]}, {"role": "old", "assetId": deleted["id"]}]}], "CONFLICT",
         "inputs[0].roles[1].assetId", f"asset(s) DELETED: {deleted['id']}"),  # refused before anything is written
        ([{"roles": []}], "BAD_USER_INPUT", "inputs[0].roles", None),
        ([{"roles": [{"role": "a", "assetId": image["id"]}, {"role": "a", "assetId": image["id"]}]}], "BAD_USER_INPUT",
         "inputs[0].roles[1].role", None),
        ([{"roles": [{"role": "a", "assetId": "garbage"}]}], "BAD_USER_INPUT", "inputs[0].roles[0].assetId", None),
    ]
    for inputs, code, field, named in cases:
        error = await api.error("CreateDatums", {"inputs": inputs}, token=contributor)
        assert error["extensions"]["code"] == code and error["extensions"]["field"] == field, error
        if named:
            assert named in error["message"]
    assert await Datum.count() == before


async def test_a_role_name_refuses_control_characters(api: Api, contributor: str) -> None:
    """A datum's role names one of its assets in every export and `asset(role:)` read: a name's rule
    (services/checks.py), so a newline or a NUL in one is refused naming the role, before any datum is
    written. A datum stored before with one still reads by it."""
    image = await factories.image_asset(api, contributor)
    for role, at in (("ima\nge", "inputs[1].roles[1].role"), ("mask\x00", "inputs[1].roles[1].role"),
                     ("depth\x9b", "inputs[1].roles[1].role")):
        error = await api.error("CreateDatums", {"inputs": [
            {"roles": [{"role": "image", "assetId": image["id"]}]},
            {"roles": [{"role": "image", "assetId": image["id"]}, {"role": role, "assetId": image["id"]}]}]},
            token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": at}, error
        assert "control character" in error["message"], error
    assert await Datum.count() == 0
    made = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": image["id"]}]}]},
                           token=contributor))["createDatums"][0]
    await Datum.get_pymongo_collection().update_one({"_id": object_id(made["id"])}, {"$set": {"roles.0.role": "ima\nge"}})
    read = (await api.data("Datum", {"id": made["id"], "role": "ima\nge"}, token=contributor))["datum"]
    assert read["asset"]["id"] == image["id"] and read["roles"][0]["role"] == "ima\nge"


async def test_versions_build_from_parents_and_stay_immutable(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 4, roles=("image",), split="TRAIN")
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d[:3]])
    assert v1["datumCount"] == 3 and {s["split"]: s["count"] for s in v1["splitCounts"]}["TRAIN"] == 3
    v2 = await factories.version(api, contributor, ds["id"], "v2", parentId=v1["id"],
                                 addDatums=[d[3]["id"]], removeDatums=[d[0]["id"]])
    assert v2["datumCount"] == 3 and v2["parent"]["id"] == v1["id"] and v2["manifestSha256"] != v1["manifestSha256"]

    # the same content gives the same manifest hash
    twin = await factories.version(api, contributor, ds["id"], "v1-again", addDatums=[x["id"] for x in d[:3]])
    assert twin["manifestSha256"] == v1["manifestSha256"]

    # changing a datum's split later does not change what the version says
    await api.data("UpdateDatum", {"input": {"id": d[1]["id"], "split": "TEST"}}, token=contributor)
    again = (await api.data("DatasetVersion", {"id": v1["id"], "split": "TRAIN"}, token=contributor))["datasetVersion"]
    assert again["datums"]["totalCount"] == 3 and again["manifestSha256"] == v1["manifestSha256"]

    diff = (await api.data("VersionDiff", {"id": v2["id"], "against": v1["id"]}, token=contributor))["datasetVersion"]["diff"]
    assert diff["addedCount"] == 1 and diff["removedCount"] == 1 and diff["changedCount"] == 0
    assert [e["node"]["id"] for e in diff["added"]["edges"]] == [d[3]["id"]]
    assert [e["node"]["id"] for e in diff["removed"]["edges"]] == [d[0]["id"]]

    # content changes are changes too: d[1]'s metadata, as a version built now holds it
    await api.data("UpdateDatum", {"input": {"id": d[1]["id"], "metadata": {"index": 42}}}, token=contributor)
    v3 = await factories.version(api, contributor, ds["id"], "v3", parentId=v2["id"])
    diff = (await api.data("VersionDiff", {"id": v3["id"], "against": v2["id"]}, token=contributor))["datasetVersion"]["diff"]
    assert (diff["addedCount"], diff["removedCount"], diff["changedCount"]) == (0, 0, 1)
    assert [e["node"] for e in diff["changed"]["edges"]] == [{"id": d[1]["id"], "split": "TRAIN", "metadata": {"index": 42}}]
    # A datum the parent holds, added again, comes as it is now: its split of today (TEST), not the parent's.
    v4 = await factories.version(api, contributor, ds["id"], "v4", parentId=v3["id"], addDatums=[d[1]["id"]])
    diff = (await api.data("VersionDiff", {"id": v4["id"], "against": v3["id"]}, token=contributor))["datasetVersion"]["diff"]
    assert [e["node"]["split"] for e in diff["changed"]["edges"]] == ["TEST"]

    data = (await api.data("Dataset", {"name": "widgets", "version": "v1"}, token=contributor))["dataset"]
    assert data["latest"]["version"] == "v4" and data["version"]["id"] == v1["id"]
    assert [e["node"]["version"] for e in data["versions"]["edges"]] == ["v1", "v2", "v1-again", "v3", "v4"]
    by_name = (await api.data("DatasetVersion", {"dataset": "widgets", "version": "v2"}, token=contributor))["datasetVersion"]
    assert by_name["id"] == v2["id"]
    for asked, field in (({"id": v2["id"], "dataset": "widgets", "version": "v1"}, "id"), ({"dataset": "widgets"}, "version"),
                         ({"version": "v1"}, "dataset"), ({}, "id")):
        error = await api.error("DatasetVersion", asked, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, asked


async def test_version_errors_write_nothing(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    other = await factories.dataset(api, contributor, "other")
    d = await factories.datums(api, contributor, 2, roles=("image",))
    labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d[0]["id"]], addAnnotationSets=[labels["id"]])
    foreign = await factories.version(api, contributor, other["id"], "x")
    before = await DatasetVersion.count()
    cases = [
        ({"version": "v1"}, "CONFLICT", "version"),
        ({"version": "bad name"}, "BAD_USER_INPUT", "version"),
        ({"version": "v2\n"}, "BAD_USER_INPUT", "version"),  # `$` matched before a last newline
        ({"version": "v2", "parentId": foreign["id"]}, "BAD_USER_INPUT", "parentId"),
        ({"version": "v2", "parentId": v1["id"], "removeDatums": [d[1]["id"]]}, "BAD_USER_INPUT", "removeDatums[0]"),
        ({"version": "v2", "removeDatums": [d[0]["id"]]}, "BAD_USER_INPUT", "removeDatums"),  # no parent to remove from
        ({"version": "v2", "parentId": v1["id"], "removeDatums": [d[0]["id"], d[0]["id"]]}, "BAD_USER_INPUT",
         "removeDatums[1]"),  # named twice (the second removal failed INTERNAL)
        ({"version": "v2", "parentId": v1["id"], "addDatums": [d[0]["id"]], "removeDatums": [d[0]["id"]]},
         "BAD_USER_INPUT", "removeDatums"),
        ({"version": "v2", "parentId": v1["id"], "addAnnotationSets": [labels["id"]], "removeAnnotationSets": [labels["id"]]},
         "BAD_USER_INPUT", "removeAnnotationSets"),  # was taken silently as a removal
        ({"version": "v2", "addDatums": [d[1]["id"], "RGF0dW06NjRiMDAwMDAwMDAwMDAwMDAwMDAwMDAw"]}, "NOT_FOUND",
         "addDatums[1]"),
        ({"version": "v2", "addAnnotationSets": ["QW5ub3RhdGlvblNldDo2NGIwMDAwMDAwMDAwMDAwMDAwMDAwMDA"]}, "NOT_FOUND",
         "addAnnotationSets[0]"),
    ]
    for fields, code, field in cases:
        error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], **fields}}, token=contributor)
        assert error["extensions"]["code"] == code and error["extensions"]["field"] == field, (fields, error)
    assert await DatasetVersion.count() == before


async def test_versions_pin_their_assets(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 2)
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d])
    pins = await AssetRetention.find({"owner_id": object_id(v1["id"])}).count()
    assert pins == 4  # 2 datums x 2 roles
    image_id = d[0]["roles"][0]["asset"]["id"]
    error = await api.error("DeleteAsset", {"id": image_id}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and "DATASET_VERSION" in error["message"]


async def test_version_from_a_collection(api: Api, contributor: str) -> None:
    coll = await factories.collection(api, contributor)
    assets = [await factories.image_asset(api, contributor, f"{i}.png") for i in range(3)]
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": a["id"], "path": f"imgs/{i}.png", "split": "TRAIN" if i else "TEST"} for i, a in enumerate(assets)]}},
        token=contributor)
    ds = await factories.dataset(api, contributor)
    v = await factories.version(api, contributor, ds["id"], "from-scan", fromCollection=coll["id"])
    assert v["datumCount"] == 3
    assert {s["split"]: s["count"] for s in v["splitCounts"]} == {"TRAIN": 2, "TEST": 1, "VALIDATION": 0, "UNASSIGNED": 0}
    datums = (await api.data("DatasetVersion", {"id": v["id"]}, token=contributor))["datasetVersion"]["datums"]["edges"]
    first = (await api.data("Datum", {"id": datums[0]["node"]["id"], "role": "asset"}, token=contributor))["datum"]
    assert first["asset"]["id"] in {a["id"] for a in assets} and first["metadata"]["path"].startswith("imgs/")


async def test_a_version_from_a_collection_is_made_a_batch_at_a_time_and_undone_whole(
        api: Api, contributor: str, served: Served, monkeypatch) -> None:
    """A collection's items become datums ITEMS_PER_BATCH at a time (here 2: five items, three
    batches), each batch read and inserted on its own, in the items' order with their splits and
    paths. A build that fails once they are all written (an asset not ACTIVE) removes the datums of
    every batch, and their uses of their assets, a batch at a time too."""
    monkeypatch.setattr(datasets, "ITEMS_PER_BATCH", 2)
    splits = ["TRAIN", "TEST", "VALIDATION", "UNASSIGNED", "TRAIN"]

    async def collection_of(name: str) -> tuple[dict, list[dict]]:
        coll = await factories.collection(api, contributor, name)
        assets = [await factories.image_asset(api, contributor, f"{name}-{i}.png") for i in range(5)]
        await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
            {"assetId": a["id"], "path": f"{name}/{i}.png", "split": splits[i]} for i, a in enumerate(assets)]}},
            token=contributor)
        return coll, assets

    coll, assets = await collection_of("scan")
    ds = await factories.dataset(api, contributor)
    served.commands.clear()
    v = await factories.version(api, contributor, ds["id"], "v1", fromCollection=coll["id"])
    assert v["datumCount"] == 5
    assert [n for collection, n in served.commands.inserts if collection == "datums"] == [2, 2, 1]
    read = [f for f in served.commands.finds if f["find"] == "collection_items"]
    assert [f["limit"] for f in read] == [2, 2, 2] and "_id" not in read[0]["filter"]  # resuming after the last `_id`
    made = await Datum.get_pymongo_collection().find({}, sort=[("_id", 1)]).to_list()
    assert [d["roles"] for d in made] == [[{"role": "asset", "asset_id": object_id(a["id"])}] for a in assets]
    assert [d["split"] for d in made] == splits
    assert [orjson.loads(d["metadata"]["json"]) for d in made] == [{"path": f"scan/{i}.png"} for i in range(5)]
    members = (await api.data("DatasetVersion", {"id": v["id"], "first": 10}, token=contributor))["datasetVersion"]
    assert [e["node"] for e in members["datums"]["edges"]] == [
        {"id": encode_id(NodeType.DATUM, d["_id"]), "split": d["split"]} for d in made]

    failing, assets = await collection_of("failing")
    await Asset.get_pymongo_collection().update_one({"_id": object_id(assets[4]["id"])}, {"$set": {"status": "PENDING"}})
    datums_before, uses_before = await Datum.count(), await DatumAsset.count()
    served.commands.clear()
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "v2",
                                                               "fromCollection": failing["id"]}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "addDatums"} and assets[4]["id"] in error["message"]
    assert [n for collection, n in served.commands.inserts if collection == "datums"] == [2, 2, 1]
    assert (await Datum.count(), await DatumAsset.count()) == (datums_before, uses_before)
    assert served.commands.tally("datums")["delete"] == 3, served.commands.commands  # a batch at a time
    assert await DatasetVersion.find({"version": "v2"}).count() == 0


DIFF_PAGES = """query DiffPages($id: ID!, $against: ID!, $after: String) {
  datasetVersion(id: $id) {
    a: diff(against: $against) { addedCount added(first: 2, after: $after) { edges { node { id } } pageInfo { endCursor hasNextPage } } }
    b: diff(against: $against) {
      added(first: 100) { edges { node { id } } }
      removed(last: 1) { edges { node { id } } }
      changed(first: 100) { edges { node { id split } } }
    }
  }
}"""
VERSIONS_DIFF = """query VersionsDiff($name: String!, $against: ID!) {
  dataset(name: $name) { versions(first: 10) { edges { node { version diff(against: $against) { addedCount removedCount } } } } }
}"""
SPLIT_PAGES = """query SplitPages($version: ID!, $ratios: SplitRatios!, $after: String) {
  a: trainingSplit(datasetVersion: $version, ratios: $ratios, seed: 7) {
    train(first: 2, after: $after) { totalCount edges { node { id } } pageInfo { endCursor hasNextPage } }
  }
  b: trainingSplit(datasetVersion: $version, ratios: $ratios, seed: 7) {
    train(first: 100) { edges { node { id } } }
    validation(first: 100) { edges { node { id } } }
    test(first: 100) { edges { node { id } } }
  }
}"""


async def test_a_diff_and_a_split_are_computed_once_per_request_and_page_consistently(
        api: Api, contributor: str, served: Served, monkeypatch) -> None:
    """A diff or a training split is computed over whole versions: once per request, whatever number
    of aliases and pages ask (each version's members are walked once, MEMBERS_PER_READ at a time: here
    3), and a version list's diffs against one version read that one once. Its pages, across requests,
    give the whole list in order."""
    monkeypatch.setattr(datasets, "MEMBERS_PER_READ", 3)
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 10, roles=("image",))
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d[:7]])
    await api.data("UpdateDatum", {"input": {"id": d[2]["id"], "split": "TEST"}}, token=contributor)
    v2 = await factories.version(api, contributor, ds["id"], "v2", parentId=v1["id"],
                                 addDatums=[x["id"] for x in (d[2], d[7], d[8], d[9])], removeDatums=[d[0]["id"], d[1]["id"]])

    def member_walks() -> int:  # a page of a version's members read whole (not a page's datums by id)
        return len([f for f in served.commands.finds
                    if f["find"] == "version_members" and "datum_id" not in f.get("filter", {})])

    served.commands.clear()
    pages, after = [], None
    while True:
        body = await api.run("DiffPages", {"id": v2["id"], "against": v1["id"], "after": after}, token=contributor,
                             query=DIFF_PAGES)
        assert not body.get("errors"), body
        if after is None:
            assert member_walks() == 6  # v2's 8 members and v1's 7, three a page: once for both aliases
            whole = body["data"]["datasetVersion"]["b"]
        page = body["data"]["datasetVersion"]["a"]
        pages += [e["node"]["id"] for e in page["added"]["edges"]]
        if not page["added"]["pageInfo"]["hasNextPage"]:
            break
        after = page["added"]["pageInfo"]["endCursor"]
    assert pages == [e["node"]["id"] for e in whole["added"]["edges"]] == sorted((x["id"] for x in d[7:]), key=object_id)
    assert page["addedCount"] == 3 and [e["node"]["id"] for e in whole["removed"]["edges"]] == [max((d[0]["id"], d[1]["id"]), key=object_id)]
    assert [e["node"] for e in whole["changed"]["edges"]] == [{"id": d[2]["id"], "split": "TEST"}]

    served.commands.clear()
    listed = (await api.run("VersionsDiff", {"name": "widgets", "against": v1["id"]}, token=contributor,
                            query=VERSIONS_DIFF))["data"]["dataset"]["versions"]["edges"]
    assert [(e["node"]["version"], e["node"]["diff"]["addedCount"], e["node"]["diff"]["removedCount"]) for e in listed] == [
        ("v1", 0, 0), ("v2", 3, 2)]
    assert member_walks() == 6  # v1 once (the one compared against, and compared with itself), v2 once

    ratios = {"train": 0.5, "validation": 0.25, "test": 0.25}
    served.commands.clear()
    pages, after = [], None
    while True:
        body = await api.run("SplitPages", {"version": v2["id"], "ratios": ratios, "after": after}, token=contributor,
                             query=SPLIT_PAGES)
        assert not body.get("errors"), body
        if after is None:
            assert member_walks() == 3  # v2's 8 members, once for both aliases
            whole = body["data"]["b"]
        page = body["data"]["a"]["train"]
        pages += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == [e["node"]["id"] for e in whole["train"]["edges"]] and page["totalCount"] == len(pages)
    parts = {part: [e["node"]["id"] for e in whole[part]["edges"]] for part in ("train", "validation", "test")}
    assert all(ids == sorted(ids, key=object_id) for ids in parts.values())
    assert sorted(x for ids in parts.values() for x in ids) == sorted(x["id"] for x in d[2:])
    assert d[2]["id"] in parts["test"]  # its split was assigned: it keeps it


async def test_training_split_is_deterministic_and_can_require_verification(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 30, roles=("image",))
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    added = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": x["roles"][0]["asset"]["id"], "datumId": x["id"], "kind": "CLASSIFICATION", "label": "dent"}
        for x in d[:10]]}, token=contributor))["addAnnotations"]["records"]
    await api.data("VerifyAnnotations", {"ids": [r["id"] for r in added[:4]], "verified": True}, token=contributor)
    v = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d],
                                addAnnotationSets=[labels["id"]])
    ratios = {"train": 0.6, "validation": 0.2, "test": 0.2}

    async def split(seed: int, verified_only: bool = False) -> dict[str, list[str]]:
        data = (await api.data("TrainingSplit", {"version": v["id"], "ratios": ratios, "seed": seed,
                                                 "verifiedOnly": verified_only, "first": 100}, token=contributor))
        return {part: [e["node"]["id"] for e in data["trainingSplit"][part]["edges"]] for part in ("train", "validation", "test")}

    a, b, c = await split(1), await split(1), await split(2)
    assert a == b and a != c
    assert sorted(x for ids in a.values() for x in ids) == sorted(x["id"] for x in d)
    # Roughly 60% of 30 (18): the ids are new each run, and 10..26 failed about one run in 500; this
    # band fails one in 250,000, and still catches ratios ignored (all or none in train).
    assert 5 <= len(a["train"]) <= 28
    verified = await split(1, verified_only=True)
    assert sorted(x for ids in verified.values() for x in ids) == sorted(x["id"] for x in d[:4])
    # Null for either (what Python's None sends) is its default, as the contract has them nullable.
    nulls = (await api.data("TrainingSplit", {"version": v["id"], "ratios": ratios, "seed": None, "verifiedOnly": None,
                                              "first": 100}, token=contributor))["trainingSplit"]
    assert {part: [e["node"]["id"] for e in nulls[part]["edges"]] for part in ("train", "validation", "test")} == \
        await split(0)
    for bad, field in (({"train": -1, "validation": 0, "test": 0}, "ratios.train"),
                       ({"train": 0, "validation": 0, "test": 0}, "ratios")):
        error = await api.error("TrainingSplit", {"version": v["id"], "ratios": bad}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, bad
    # A float literal too big for a double (infinity, once read) is refused before any resolver runs.
    huge = ("query TrainingSplit($version: ID!) { trainingSplit(datasetVersion: $version, "
            "ratios: {train: 1, validation: 1e309, test: 0}) { train(first: 1) { totalCount } } }")
    error = await api.error("TrainingSplit", {"version": v["id"]}, token=contributor, query=huge)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "ratios.validation"}


async def test_training_split_keeps_assigned_splits_and_counts_only_ground_truth(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    tests = await factories.datums(api, contributor, 5, roles=("image",), split="TEST")
    free = await factories.datums(api, contributor, 20, roles=("image",))
    schema = await factories.schema(api, contributor)
    truth = await factories.annotation_set(api, contributor, schema["id"])
    guesses = await factories.annotation_set(api, contributor, schema["id"], purpose="PREDICTION",
                                             source={"kind": "MODEL", "name": "net", "version": "1"}, name="guesses")

    async def annotate(set_id: str, datums: list[dict]) -> list[dict]:
        return (await api.data("AddAnnotations", {"setId": set_id, "records": [
            {"assetId": x["roles"][0]["asset"]["id"], "datumId": x["id"], "kind": "CLASSIFICATION", "label": "dent"}
            for x in datums]}, token=contributor))["addAnnotations"]["records"]

    labelled = await annotate(truth["id"], free[:3])
    await api.data("VerifyAnnotations", {"ids": [r["id"] for r in labelled], "verified": True}, token=contributor)
    await annotate(guesses["id"], free[:3])  # predictions are never verified: they must not hide the labels
    v = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in tests + free],
                                addAnnotationSets=[truth["id"], guesses["id"]])
    # All to train: the five assigned to TEST stay there.
    data = (await api.data("TrainingSplit", {"version": v["id"], "ratios": {"train": 1, "validation": 0, "test": 0},
                                             "seed": 3, "first": 100}, token=contributor))["trainingSplit"]
    assert sorted(e["node"]["id"] for e in data["test"]["edges"]) == sorted(x["id"] for x in tests)
    assert sorted(e["node"]["id"] for e in data["train"]["edges"]) == sorted(x["id"] for x in free)
    verified = (await api.data("TrainingSplit", {"version": v["id"], "ratios": {"train": 1, "validation": 0, "test": 0},
                                                 "verifiedOnly": True, "first": 100}, token=contributor))["trainingSplit"]
    assert sorted(e["node"]["id"] for part in ("train", "validation", "test") for e in verified[part]["edges"]) == \
        sorted(x["id"] for x in free[:3])


FROZEN = """query Frozen($id: ID!) { datasetVersion(id: $id) { manifestSha256 datums(first: 50) { edges { node {
  id split metadata roles { role asset { id } }
  annotations(first: 50) { totalCount edges { node { id label verified verifiedBy
    datum { id split metadata annotations(first: 1) { totalCount } } } } } } } } } }"""


async def test_a_ready_version_shows_what_it_was_built_from_whatever_changes_later(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 3, roles=("image",), split="TRAIN")
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])

    async def label(datum: dict, name: str) -> dict:
        return (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
            {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION",
             "label": name}]}, token=contributor))["addAnnotations"]["records"][0]

    first = await label(d[0], "dent")
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d],
                                 addAnnotationSets=[labels["id"]])

    async def read(version: dict) -> dict:
        body = await api.run("Frozen", {"id": version["id"]}, token=contributor, query=FROZEN)
        assert not body.get("errors"), body
        return body["data"]["datasetVersion"]

    async def verified_split(version: dict) -> list[str]:
        data = await api.data("TrainingSplit", {"version": version["id"], "ratios": {"train": 1, "validation": 0, "test": 0},
                                                "verifiedOnly": True, "first": 50}, token=contributor)
        return [e["node"]["id"] for e in data["trainingSplit"]["train"]["edges"]]

    built = await read(v1)
    assert [len(e["node"]["annotations"]["edges"]) for e in built["datums"]["edges"]] == [1, 0, 0]
    # A record reached through the version leads back to the datum as the version holds it, not as it is now.
    record = built["datums"]["edges"][0]["node"]["annotations"]["edges"][0]["node"]
    assert record["datum"] == {"id": d[0]["id"], "split": "TRAIN", "metadata": built["datums"]["edges"][0]["node"]["metadata"],
                               "annotations": {"totalCount": 1}}
    assert await verified_split(v1) == []

    # everything that can change afterwards changes
    await api.data("UpdateDatum", {"input": {"id": d[0]["id"], "split": "TEST", "metadata": {"index": 99}}}, token=contributor)
    await label(d[1], "scratch")
    await api.data("VerifyAnnotations", {"ids": [first["id"]], "verified": True}, token=contributor)

    assert await read(v1) == built  # splits, metadata, roles, records, verification, hash: as built
    assert await verified_split(v1) == []
    live = (await api.data("Datum", {"id": d[0]["id"], "role": "image"}, token=contributor))["datum"]
    assert live["split"] == "TEST" and live["metadata"] == {"index": 99}  # the datum itself did change

    v2 = await factories.version(api, contributor, ds["id"], "v2", parentId=v1["id"])  # a new version sees it
    later = await read(v2)
    assert [len(e["node"]["annotations"]["edges"]) for e in later["datums"]["edges"]] == [1, 1, 0]
    assert later["datums"]["edges"][0]["node"]["metadata"] == {"index": 99}
    assert later["datums"]["edges"][0]["node"]["annotations"]["edges"][0]["node"]["verified"] is True
    assert await verified_split(v2) == [d[0]["id"]]

    # Each version's own count of a set's records, where the set's recordCount is what it holds now.
    counts = "query Counts($id: ID!) { datasetVersion(id: $id) { annotationCounts { set { id recordCount } records } } }"

    async def counted(version: dict) -> list[tuple[str, int, int]]:
        body = await api.run("Counts", {"id": version["id"]}, query=counts, token=contributor)
        return [(c["set"]["id"], c["set"]["recordCount"], c["records"]) for c in body["data"]["datasetVersion"]["annotationCounts"]]

    assert await counted(v1) == [(labels["id"], 2, 1)] and await counted(v2) == [(labels["id"], 2, 2)]
    # A version built before builds counted is counted from its copies, once.
    from documents.dataset import DatasetVersion as VersionDocument
    from tests.operations import object_id
    await VersionDocument.get_pymongo_collection().update_one({"_id": object_id(v1["id"])}, {"$unset": {"record_counts": ""}})
    assert await counted(v1) == [(labels["id"], 2, 1)]
    stored = await VersionDocument.get_pymongo_collection().find_one({"_id": object_id(v1["id"])})
    assert stored["record_counts"] == {str(object_id(labels["id"])): 1}


async def test_the_manifest_hash_covers_content_not_ids(api: Api, contributor: str) -> None:
    """Separately stored copies of the same content give the same hash; any change of content changes it."""
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    twins = [await factories.datums(api, contributor, 2, roles=("image",), split="TRAIN") for _ in range(2)]  # new assets, same bytes
    for datums in twins:
        await api.data("AddAnnotations", {"setId": labels["id"], "records": [
            {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": "dent"}
            for d in datums]}, token=contributor)
    one, other = await factories.dataset(api, contributor, "one"), await factories.dataset(api, contributor, "other")
    a = await factories.version(api, contributor, one["id"], "v1", addDatums=[d["id"] for d in twins[0]],
                                addAnnotationSets=[labels["id"]])
    b = await factories.version(api, contributor, other["id"], "v1", addDatums=[d["id"] for d in twins[1]],
                                addAnnotationSets=[labels["id"]])
    assert a["manifestSha256"] == b["manifestSha256"]
    await api.data("UpdateDatum", {"input": {"id": twins[1][0]["id"], "metadata": {"index": 7}}}, token=contributor)
    c = await factories.version(api, contributor, other["id"], "v2", addDatums=[d["id"] for d in twins[1]],
                                addAnnotationSets=[labels["id"]])
    assert c["manifestSha256"] != b["manifestSha256"]  # metadata is content
    d = await factories.version(api, contributor, other["id"], "v3", addDatums=[d["id"] for d in twins[0]])
    assert d["manifestSha256"] != a["manifestSha256"]  # so are the annotations


async def test_verify_recomputes_the_hash_and_checks_every_asset(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 3, roles=("image",))
    v = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d["id"] for d in datums])

    async def verification() -> dict:
        return (await api.data("VerifyVersion", {"id": v["id"]}, token=contributor))["datasetVersion"]["verification"]

    checked = await verification()
    assert checked["ok"] and checked["datums"] == 3 and checked["computedSha256"] == v["manifestSha256"] == checked["storedSha256"]

    members = VersionMember.get_pymongo_collection()
    target = {"version_id": object_id(v["id"]), "datum_id": object_id(datums[0]["id"])}
    await members.update_one(target, {"$set": {"split": "TEST"}})  # what the version holds, changed behind its back
    checked = await verification()
    assert not checked["ok"] and checked["computedSha256"] != v["manifestSha256"]
    assert checked["problems"] == [  # the datum's entry, which diffs compare, and the split counts kept beside it too
        f"datum {datums[0]['id']}: the entry a diff compares is not that of what the version holds",
        "the hash of what the version holds is not the one recorded when it was built",
        "its datums are in splits TEST 1, UNASSIGNED 2; UNASSIGNED 3 were recorded"]
    await members.update_one(target, {"$set": {"split": "UNASSIGNED"}})
    assert (await verification())["ok"]

    asset_id = object_id(datums[1]["roles"][0]["asset"]["id"])
    await Asset.get_pymongo_collection().update_one({"_id": asset_id}, {"$set": {"sha256": "0" * 64}})
    checked = await verification()
    shown = datums[1]["roles"][0]["asset"]["id"]  # the ID the API gives, not the database's
    assert not checked["ok"] and checked["problems"] == [f"asset {shown} now has sha256:{'0' * 64}; the version holds "
                                                         f"sha256:{hashlib.sha256(b'PNG').hexdigest()}"]


VERIFY_ALL = """
query VerifyAll { datasets(first: 10) { edges { node { name
  versions(first: 10) { edges { node { version verification { ok computedSha256 datums records problems } } } } } } } }
"""


async def test_versions_checked_together_each_get_their_own_verification(api: Api, contributor: str) -> None:
    """A list of versions is verified in one pass (services/snapshots.verify_many): each version's
    problems, counts and hash are its own, as verify of it alone gives them, even where they share datums."""
    datums = await factories.datums(api, contributor, 4, roles=("image",))
    labels = await factories.labelled_set(api, contributor, datums[:3])
    shared = await factories.dataset(api, contributor, "shared")
    v1 = await factories.version(api, contributor, shared["id"], "v1", addDatums=[d["id"] for d in datums[:2]],
                                 addAnnotationSets=[labels["id"]])
    v2 = await factories.version(api, contributor, shared["id"], "v2", parentId=v1["id"], addDatums=[datums[2]["id"]])
    other = await factories.dataset(api, contributor, "other")
    v3 = await factories.version(api, contributor, other["id"], "v1", addDatums=[d["id"] for d in datums[1:]])
    # v2's copy of the datum it alone holds, changed behind its back; and an asset only v3 names, changed.
    await VersionMember.get_pymongo_collection().update_one(
        {"version_id": object_id(v2["id"]), "datum_id": object_id(datums[2]["id"])}, {"$set": {"split": "TEST"}})
    await Asset.get_pymongo_collection().update_one({"_id": object_id(datums[3]["roles"][0]["asset"]["id"])},
                                                    {"$set": {"sha256": "0" * 64}})
    body = await api.run("VerifyAll", token=contributor, query=VERIFY_ALL)
    assert not body.get("errors"), body["errors"]
    together = {(e["node"]["name"], v["node"]["version"]): v["node"]["verification"]
                for e in body["data"]["datasets"]["edges"] for v in e["node"]["versions"]["edges"]}
    alone = {key: (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]["verification"]
             for key, version in {("shared", "v1"): v1, ("shared", "v2"): v2, ("other", "v1"): v3}.items()}
    assert {key: {k: checked[k] for k in ("ok", "computedSha256", "datums", "records", "problems")}
            for key, checked in alone.items()} == together
    assert together["shared", "v1"]["ok"] and (together["shared", "v1"]["datums"], together["shared", "v1"]["records"]) == (2, 2)
    assert together["shared", "v2"]["problems"] == [
        f"datum {datums[2]['id']}: the entry a diff compares is not that of what the version holds",
        "the hash of what the version holds is not the one recorded when it was built",
        "its datums are in splits TEST 1, UNASSIGNED 2; UNASSIGNED 3 were recorded"]
    assert together["other", "v1"]["problems"] == [
        f"asset {datums[3]['roles'][0]['asset']['id']} now has sha256:{'0' * 64}; the version holds "
        f"sha256:{hashlib.sha256(b'PNG').hexdigest()}"]


async def test_verify_checks_the_counts_and_entries_kept_beside_what_a_version_holds(api: Api, contributor: str) -> None:
    """splitCounts, annotationCounts and each datum's entry (what a diff compares) are kept on the
    version apart from what it holds: verify checks each against what it holds."""
    ds = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 3, roles=("image",), split="TRAIN")
    labels = await factories.labelled_set(api, contributor, datums)
    v = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d["id"] for d in datums],
                                addAnnotationSets=[labels["id"]])

    async def problems() -> list[str]:
        return (await api.data("VerifyVersion", {"id": v["id"]}, token=contributor))["datasetVersion"]["verification"]["problems"]

    assert await problems() == []
    versions, members = DatasetVersion.get_pymongo_collection(), VersionMember.get_pymongo_collection()
    vid = object_id(v["id"])
    await versions.update_one({"_id": vid}, {"$set": {"split_counts.TRAIN": 99}})
    assert await problems() == ["its datums are in splits TRAIN 3; TRAIN 99 were recorded"]
    await versions.update_one({"_id": vid}, {"$set": {"split_counts.TRAIN": 3, "record_counts": {str(object_id(labels["id"])): 42}}})
    assert await problems() == [f"it holds {labels['id']} 3 records; {labels['id']} 42 were recorded"]
    await versions.update_one({"_id": vid}, {"$set": {"record_counts": {str(object_id(labels["id"])): 3}}})
    await members.update_one({"version_id": vid, "datum_id": object_id(datums[0]["id"])}, {"$set": {"entry": "00" * 32}})
    assert await problems() == [f"datum {datums[0]['id']}: the entry a diff compares is not that of what the version holds"]


async def test_a_deep_verify_reads_the_stored_bytes_again(api: Api, contributor: str, served: Served, settings: Settings,
                                                          tmp_path: Path) -> None:
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(20_000))
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
        file = await lake.upload_file(scan, mount="local")
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": file["id"]}]}]},
                            token=contributor))["createDatums"][0]
    ds = await factories.dataset(api, contributor, "scans")
    v = await factories.version(api, contributor, ds["id"], "v1", addDatums=[datum["id"]])

    async def verify(*args: str) -> subprocess.CompletedProcess[str]:  # in a thread: the app shares this loop
        env = {k: val for k, val in os.environ.items() if not k.startswith("GRAPHLAKE_")}
        env.update(GRAPHLAKE_MONGODB_URL=settings.mongodb_url.get_secret_value(), GRAPHLAKE_DATABASE=settings.database,  # type: ignore[union-attr]
                   GRAPHLAKE_DATA_DIR=str(settings.data_dir), COLUMNS="2000")
        return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", "datasets", "verify", *args],
                                       env=env, cwd=settings.data_dir, capture_output=True, text=True, timeout=60)

    assert (await verify("scans/v1", "--deep")).stdout.strip() == "ok"
    stored = await Asset.get_pymongo_collection().find_one({"_id": object_id(file["id"])})
    path = settings.data_dir / "objects" / "local" / stored["storage"]["key"]
    path.chmod(0o644)
    path.write_bytes(os.urandom(20_000))  # the disk changed under the lake (a direct writer, bit rot)
    shallow = await verify(v["id"])
    assert shallow.returncode == 0 and shallow.stdout.strip() == "ok"  # the records alone still agree
    deep = await verify(v["id"], "--deep")
    assert deep.returncode == 1 and deep.stdout.strip() == "MISMATCH"
    assert f"asset {encode_id(NodeType.ASSET, stored['_id'])}: its stored bytes hash to sha256:" in deep.stderr and "2 files read" in deep.stderr  # and the content file


async def test_deletes_refuse_what_is_held_and_name_the_holder(api: Api, contributor: str, admin: str) -> None:
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 3, roles=("image",))
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    (record,) = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d[1]["roles"][0]["asset"]["id"], "datumId": d[1]["id"], "kind": "CLASSIFICATION", "label": "dent"}]},
        token=contributor))["addAnnotations"]["records"]
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d[0]["id"], d[1]["id"]],
                                 addAnnotationSets=[labels["id"]])
    v2 = await factories.version(api, contributor, ds["id"], "v2", parentId=v1["id"])

    async def refused(operation: str, id: str, holder: str, token: str = contributor) -> None:
        error = await api.error(operation, {"id": id}, token=token)
        assert error["extensions"]["code"] == "CONFLICT" and holder in error["extensions"]["holders"], error

    await refused("DeleteDatum", d[0]["id"], v1["id"])  # a version holds it
    await refused("DeleteDatum", d[1]["id"], record["id"])  # and a record annotates this one
    await refused("DeleteAnnotationSet", labels["id"], v1["id"])
    await refused("DeleteAnnotationSchema", schema["id"], labels["id"])
    await refused("DeleteDataset", ds["id"], v1["id"])
    await refused("DeleteDatasetVersion", v1["id"], v2["id"], token=admin)  # a child names it as its parent
    error = await api.error("DeleteDatasetVersion", {"id": v2["id"]}, token=contributor)
    assert error["extensions"]["code"] == "FORBIDDEN"

    assert (await api.data("DeleteDatum", {"id": d[2]["id"]}, token=contributor))["deleteDatum"]["deleted"]
    assert await Datum.find_one({"_id": object_id(d[2]["id"])}) is None
    before = (await api.data("VerifyVersion", {"id": v1["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert (await api.data("DeleteAnnotationRecord", {"id": record["id"]}, token=contributor))["deleteAnnotationRecord"]["deleted"]
    after = (await api.data("VerifyVersion", {"id": v1["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert after == before and after["ok"] and after["records"] == 1  # the version keeps its copy

    # newest first, down to nothing: each delete releases what it held
    pinned = object_id(d[0]["roles"][0]["asset"]["id"])
    for version in (v2, v1):
        assert (await api.data("DeleteDatasetVersion", {"id": version["id"]}, token=admin))["deleteDatasetVersion"]["deleted"]
    assert await AssetRetention.find({"asset_id": pinned}).count() == 0
    assert (await api.data("DatasetVersion", {"id": v1["id"]}, token=contributor))["datasetVersion"] is None
    for operation, id in (("DeleteDatum", d[0]["id"]), ("DeleteAnnotationSet", labels["id"]),
                          ("DeleteAnnotationSchema", schema["id"]), ("DeleteDataset", ds["id"])):
        assert (await api.data(operation, {"id": id}, token=contributor))[operation[0].lower() + operation[1:]]["deleted"]
    assert await DatasetVersion.count() == 0 and await VersionMember.count() == 0 and await VersionRecordPack.count() == 0
    # Deleting what is gone already is done (DeletePayload.deleted): a retry after a lost answer is no error.
    again = [("DeleteDatum", d[0]["id"], contributor), ("DeleteAnnotationSet", labels["id"], contributor),
             ("DeleteAnnotationSchema", schema["id"], contributor), ("DeleteDataset", ds["id"], contributor),
             ("DeleteDatasetVersion", v1["id"], admin), ("DeleteAnnotationRecord", record["id"], contributor)]
    for operation, id, token in again:
        assert (await api.data(operation, {"id": id}, token=token))[operation[0].lower() + operation[1:]] == {
            "id": id, "deleted": True}, operation


async def test_a_correction_supersedes_a_record_and_keeps_its_history(api: Api, contributor: str,
                                                                      make_token: MakeToken) -> None:
    ds = await factories.dataset(api, contributor)
    (datum,) = await factories.datums(api, contributor, 1, roles=("image",))
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"], source={"kind": "MODEL", "name": "detector"})
    asset = datum["roles"][0]["asset"]["id"]
    (wrong,) = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"}]},
        token=contributor))["addAnnotations"]["records"]
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[datum["id"]], addAnnotationSets=[labels["id"]])

    fix = {"id": wrong["id"], "reason": "it is a scratch, not a dent",
           "record": {"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "scratch"}}
    annotator = await make_token(Role.CONTRIBUTOR, "ann-laptop", user_id="ann@lab")
    fixed = (await api.data("SupersedeAnnotation", {"input": fix}, token=annotator))["supersedeAnnotation"]
    assert fixed["label"] == "scratch" and fixed["supersedeReason"] == "it is a scratch, not a dent"
    assert fixed["supersedes"]["id"] == wrong["id"] and fixed["supersedes"]["supersededBy"]["id"] == fixed["id"]
    assert fixed["supersedes"]["supersededAt"] is not None
    # Credited to the person who made it, not to the set's source (a model's, for a prediction set).
    assert fixed["source"] == {"kind": "HUMAN", "name": "ann@lab"} and fixed["createdBy"] == "ann@lab"
    assert fixed["supersedes"]["source"] == {"kind": "MODEL", "name": "detector"}
    # The history of one annotation stays on its image, and is not lost on its own.
    (other,) = await factories.datums(api, contributor, 1, roles=("image",))
    moved = await api.error("SupersedeAnnotation", {"input": {**fix, "id": fixed["id"], "record": {
        **fix["record"], "assetId": other["roles"][0]["asset"]["id"], "datumId": other["id"]}}}, token=contributor)
    assert moved["extensions"] == {"code": "BAD_USER_INPUT", "field": "record.datumId"}, moved
    kept = await api.error("DeleteAnnotationRecord", {"id": wrong["id"]}, token=contributor)
    assert kept["extensions"] == {"code": "CONFLICT", "field": "id"} and fixed["id"] in kept["message"]

    async def labels_of(filter: dict | None = None) -> list[str]:
        data = await api.data("Annotations", {"filter": filter, "first": 10}, token=contributor)
        return sorted(e["node"]["label"] for e in data["annotations"]["edges"])

    assert await labels_of() == ["scratch"]  # lists show the current record
    assert await labels_of({"includeSuperseded": True}) == ["dent", "scratch"]  # history stays
    again = await api.error("SupersedeAnnotation", {"input": fix}, token=contributor)
    assert again["extensions"]["code"] == "CONFLICT" and fixed["id"] in again["message"]
    bad = await api.error("SupersedeAnnotation", {"input": {**fix, "id": fixed["id"], "reason": " "}}, token=contributor)
    assert bad["extensions"] == {"code": "BAD_USER_INPUT", "field": "reason"}
    bad = await api.error("SupersedeAnnotation", {"input": {**fix, "id": fixed["id"], "record": {**fix["record"], "label": "x"}}},
                          token=contributor)
    assert bad["extensions"]["field"] == "record.label"

    old = await api.run("Frozen", {"id": v1["id"]}, token=contributor, query=FROZEN)
    assert [e["node"]["label"] for e in old["data"]["datasetVersion"]["datums"]["edges"][0]["node"]["annotations"]["edges"]] == ["dent"]
    v2 = await factories.version(api, contributor, ds["id"], "v2", parentId=v1["id"])
    new = await api.run("Frozen", {"id": v2["id"]}, token=contributor, query=FROZEN)
    assert [e["node"]["label"] for e in new["data"]["datasetVersion"]["datums"]["edges"][0]["node"]["annotations"]["edges"]] == ["scratch"]

    await api.data("DeleteAnnotationRecord", {"id": fixed["id"]}, token=contributor)  # the correction withdrawn
    assert await labels_of() == ["dent"]  # the record it corrected is current again


async def test_a_forced_delete_racing_a_build_fails_the_build(api: Api, contributor: str, admin: str,
                                                              state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forced delete that read the asset's holders before the build pinned it, and flipped it before
    the build looked again, left a READY version pinning a DELETED asset that its `broken` did not
    name. The build looks again once its pins are written, and gives way."""
    from services import datasets as building
    from services.assets import delete_asset

    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 2, roles=("image",))
    victim = object_id(d[1]["roles"][0]["asset"]["id"])
    pin = building.retention.pin

    async def deleted_just_before(asset_ids, *args, **kwargs):  # the delete lands between check and pin
        await delete_asset(victim, True, state.stores)
        return await pin(asset_ids, *args, **kwargs)

    monkeypatch.setattr(building.retention, "pin", deleted_just_before)
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "v1",
                                                               "addDatums": [x["id"] for x in d]}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "addDatums"} and d[1]["roles"][0]["asset"]["id"] in error["message"]
    monkeypatch.undo()
    assert await DatasetVersion.count() == 0 and await VersionMember.count() == 0  # nothing of the build stays
    assert not await AssetRetention.find({"asset_id": victim}).count()  # nor its pins


async def test_a_version_holds_active_assets_only(api: Api, contributor: str) -> None:
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 2, roles=("image",))
    pending = object_id(d[1]["roles"][0]["asset"]["id"])
    await Asset.get_pymongo_collection().update_one({"_id": pending}, {"$set": {"status": "PENDING"}})  # an upload not finished
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "v1",
                                                               "addDatums": [x["id"] for x in d]}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "addDatums"}
    assert d[1]["id"] in error["message"] and "PENDING" in error["message"]
    assert await DatasetVersion.count() == 0 and await VersionMember.count() == 0  # nothing of the build stays

    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": d[1]["roles"][0]["asset"]["id"], "path": "a.png"}]}}, token=contributor)
    datums_before = await Datum.count()
    error = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "v1",
                                                               "fromCollection": coll["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and await Datum.count() == datums_before  # its datums went too


async def test_a_datum_and_a_delete_racing_never_leave_a_datum_on_a_deleted_asset(api: Api, contributor: str) -> None:
    """Each side looks again after it writes, so whatever the interleaving one of them gives way."""
    for _ in range(15):
        image = await factories.image_asset(api, contributor)
        made, deleted = await asyncio.gather(
            api.run("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": image["id"]}]}]}, token=contributor),
            api.run("DeleteAsset", {"id": image["id"]}, token=contributor))
        status = (await Asset.get_pymongo_collection().find_one({"_id": object_id(image["id"])}))["status"]
        datums = await Datum.find({"roles.asset_id": object_id(image["id"])}).count()
        assert not (status == "DELETED" and datums), (made, deleted)
        assert datums == (0 if made.get("errors") else 1) and (status == "DELETED") == (not deleted.get("errors"))


async def test_a_version_holds_the_same_records_whatever_its_page_size(api: Api, contributor: str,
                                                                       monkeypatch) -> None:
    """A version's records are read datum by datum, a page at a time; a page may stop inside a datum
    (whose rest is read next) or at its end. Built with pages of 4 records, datums of 3, 5 and 2
    records and a set holding records of other datums too, the version holds the same records and
    the same hash as one built with pages of 2,000, and both check out."""
    labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])
    datums = await factories.datums(api, contributor, 4, roles=("image",))
    for datum, n in zip(datums, (3, 5, 2, 6), strict=True):
        await api.data("AddAnnotations", {"setId": labels["id"], "records": [
            {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION",
             "label": "scratch", "key": f"{datum['id']}-{i}"} for i in range(n)]}, token=contributor)
    chosen = [d["id"] for d in datums[:3]]  # the fourth's records are in the set, not in the versions
    dataset = await factories.dataset(api, contributor)
    versions = []
    for size in (2000, 4):
        monkeypatch.setattr(snapshots, "RECORDS_PER_READ", size)
        versions.append(await factories.version(api, contributor, dataset["id"], f"by{size}", addDatums=chosen,
                                                addAnnotationSets=[labels["id"]]))
    assert versions[0]["manifestSha256"] == versions[1]["manifestSha256"]
    records = {r["_id"] async for r in AnnotationRecord.get_pymongo_collection().find(
        {"datum_id": {"$in": [object_id(d) for d in chosen]}}, {"_id": 1})}
    assert len(records) == 10
    for version in versions:
        copies = await factories.version_copies(version["id"])
        assert sorted(c["record_id"] for c in copies) == sorted(records)
        checked = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]["verification"]
        assert checked["ok"] and checked["datums"] == 3, checked  # checked with pages of 4 too


@pytest.mark.parametrize(("others", "apart", "read"), [
    (3, 8, 28), (2, 8, 28),  # 2: other sets hold exactly half
    (1, 8, 42), (3, 1, 70)])  # most records are the version's; more sets than are read apart
async def test_a_version_reads_its_sets_records_apart_where_others_hold_most_and_lists_them_oldest_first(
        api: Api, contributor: str, served: Served, monkeypatch, others: int, apart: int, read: int) -> None:
    """Where other sets hold at least half the records on a version's datums (a lab's many prediction
    sets on the same images), a build reads each of its sets' records on its own and none of theirs;
    otherwise by datum, keeping its own. Either way it lists a datum's records of all its sets oldest
    first, as they were written, whatever the page size: the sets' reads are merged."""
    schema = (await factories.schema(api, contributor))["id"]
    sets = [await factories.annotation_set(api, contributor, schema, name=f"set{n}") for n in range(2 + others)]
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    written: dict[str, list[str]] = {d["id"]: [] for d in datums}  # each datum's records of the first two sets, in order
    for _ in range(7):  # one record at a time, turn by turn across the sets, so their ids interleave
        for datum in datums:
            for n, labelled in enumerate(sets):
                added = await api.data("AddAnnotations", {"setId": labelled["id"], "records": [
                    {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION",
                     "label": "scratch"}]}, token=contributor)
                if n < 2:
                    written[datum["id"]] += added["addAnnotations"]["ids"]
    dataset = await factories.dataset(api, contributor)
    monkeypatch.setattr(snapshots, "SETS_READ_APART", apart)
    versions = []
    for size in (2000, 3):  # pages of 3 stop inside datums and inside each set's run of records
        monkeypatch.setattr(snapshots, "RECORDS_PER_READ", size)
        served.commands.clear()
        versions.append(await factories.version(api, contributor, dataset["id"], f"by{size}",
                                                addDatums=[d["id"] for d in datums],
                                                addAnnotationSets=[sets[1]["id"], sets[0]["id"]]))
        # 2 datums x 7 records x 2 sets; by datum, each other set's 14 as well
        assert served.commands.returned["annotation_records"] == read
    assert versions[0]["manifestSha256"] == versions[1]["manifestSha256"]
    for version in versions:
        graph = (await api.data("VersionGraph", {"id": version["id"], "first": 2}, token=contributor))["datasetVersion"]
        listed = {edge["node"]["id"]: [a["node"]["id"] for a in edge["node"]["annotations"]["edges"]]
                  for edge in graph["datums"]["edges"]}
        assert listed == written
        checked = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]["verification"]
        assert checked["ok"] and checked["records"] == 28, checked


async def test_a_build_failing_between_pages_leaves_none_of_the_version(api: Api, contributor: str) -> None:
    """A version's records are read a page at a time, and each page's copies are written while the
    next page is read (services/snapshots.py). A build that fails on a later page (here a record
    stored damaged: a mask without its asset, planted in the database) waits for the page being
    written before it discards what it wrote, so none of the version stays: not its record, not its
    members, not copies whose insert was still in flight."""
    labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])
    [datum] = await factories.datums(api, contributor, 1, roles=("image",))
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION",
         "label": "scratch"}]}, token=contributor)
    records = AnnotationRecord.get_pymongo_collection()
    record = await records.find_one({"datum_id": object_id(datum["id"])})
    # A first page full (and then some) before the damaged record, the last in `_id` order.
    planted = [{**record, "_id": ObjectId()} for _ in range(snapshots.RECORDS_PER_READ + 100)]
    planted.append({**record, "_id": ObjectId(), "geometry": {"type": "MASK"}})
    await records.insert_many(planted)
    dataset = await factories.dataset(api, contributor)

    error = await api.error("CreateDatasetVersion", {"input": {
        "datasetId": dataset["id"], "version": "v1", "addDatums": [datum["id"]], "addAnnotationSets": [labels["id"]]}},
        token=contributor)
    assert error["extensions"]["code"] == "INTERNAL"
    assert await DatasetVersion.find({"dataset_id": object_id(dataset["id"])}).count() == 0
    assert await VersionMember.get_pymongo_collection().count_documents({"datum_id": object_id(datum["id"])}) == 0
    assert await VersionRecordPack.count() == 0
    # The name is free again: the same build, once the record is mended, makes the version.
    await records.delete_one({"_id": planted[-1]["_id"]})
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datum["id"]],
                                      addAnnotationSets=[labels["id"]])
    copied = {record["_id"]} | {p["_id"] for p in planted}
    assert len([c for c in await factories.version_copies(version["id"]) if c["record_id"] in copied]) == len(planted)
    assert version["datumCount"] == 1


async def _labelled_datums(api: Api, contributor: str, count: int) -> tuple[dict, list[dict]]:
    """A set and `count` datums, with a record of the set on each."""
    labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])
    made = await factories.datums(api, contributor, count, roles=("image",))
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": "scratch"}
        for d in made]}, token=contributor)
    return labels, made


async def test_a_build_a_batch_at_a_time_holds_every_datum_in_order(api: Api, contributor: str, state: AppState,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A build reads and copies each batch of datums while the one before is written
    (version_build.BUILD_BATCH): here a datum a batch. The version still holds every datum and record, in
    the order it lists them, its content file's lines in that order too, and it verifies."""
    monkeypatch.setattr(version_build, "BUILD_BATCH", 1)
    labels, made = await _labelled_datums(api, contributor, 4)
    dataset = await factories.dataset(api, contributor)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[d["id"] for d in made],
                                      addAnnotationSets=[labels["id"]])
    assert version["datumCount"] == 4
    listed = [m["datum_id"] async for m in VersionMember.get_pymongo_collection().find(
        {"version_id": object_id(version["id"])}).sort("_id", 1)]
    assert sorted(listed) == sorted(object_id(d["id"]) for d in made)
    copies = await factories.version_copies(version["id"])
    assert sorted(c["datum_id"] for c in copies) == sorted(listed)
    stored = await DatasetVersion.get(object_id(version["id"]))
    assert stored is not None and stored.content is not None
    lines = [orjson.loads(line) for line in Path(state.stores["local"].path(stored.content.key)).read_bytes().splitlines()]
    assert [object_id(line["id"]) for line in lines] == listed  # written in the members' order, batch after batch
    assert await AssetRetention.find({"owner_id": object_id(version["id"])}).count() == 4
    checked = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert checked["ok"] and checked["records"] == 4, checked


async def test_a_build_failing_in_a_later_batch_leaves_none_of_the_version(api: Api, contributor: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that fails while the one before is being written: the build waits for those writes,
    then removes all of it (members, copies, pins), and the name is free again. The second batch's
    writes are held back until the third batch has failed, so the failure comes while they are under
    way (held for a guessed 0.3 s alone, as before, a slow third batch came after them), and then until
    the build waits for them or, not waiting, discards (for a guessed 0.3 s, as before, a slow build
    discarded after them all the same)."""
    monkeypatch.setattr(version_build, "BUILD_BATCH", 1)
    write_batch, copy_batch, discard = snapshots.write_batch, snapshots.copy_batch, datasets._discard
    writes: dict[str, Any] = {"begun": 0, "ended": 0, "held until the failure": None, "ended at the discard": None,
                              "tasks": 0, "second awaited": False}

    class Watched(asyncio.Task):
        """The second batch's write task, telling when something (the build) waits for it."""

        def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
            writes["second awaited"] = True
            super().add_done_callback(fn, context=context)

    def watching_the_second_write(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task:
        if getattr(coro, "cr_code", None) is version_build._write_batch.__code__:
            writes["tasks"] += 1
            if writes["tasks"] == 2:
                return Watched(coro, loop=loop, **options)
        return asyncio.Task(coro, loop=loop, **options)

    loop = asyncio.get_running_loop()
    assert loop.get_task_factory() is None
    loop.set_task_factory(watching_the_second_write)
    failed = asyncio.Event()

    async def held_back(batch: snapshots.CopiedBatch, content: Any = None) -> None:
        writes["begun"] += 1
        try:
            if writes["begun"] == 2:  # bounded: a build that waited for these writes first would never fail
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(failed.wait(), 10)
                writes["held until the failure"] = failed.is_set()
                # And on until the build waits for them: a build that did not would discard meanwhile.
                await wait_for(lambda: writes["second awaited"] or writes["ended at the discard"] is not None,
                               what="the failed build to wait for its writes, or to discard")
            await write_batch(batch, content)
        finally:
            writes["ended"] += 1

    async def discard_after_the_writes(version_id: ObjectId) -> None:
        writes["ended at the discard"] = writes["ended"]
        await discard(version_id)

    async def noting_failure(*args: Any) -> snapshots.CopiedBatch:
        try:
            return await copy_batch(*args)
        except Exception:
            failed.set()
            raise

    monkeypatch.setattr(snapshots, "write_batch", held_back)
    monkeypatch.setattr(snapshots, "copy_batch", noting_failure)
    monkeypatch.setattr(datasets, "_discard", discard_after_the_writes)
    labels, made = await _labelled_datums(api, contributor, 3)
    records = AnnotationRecord.get_pymongo_collection()
    record = await records.find_one({"datum_id": object_id(made[2]["id"])})
    damaged = {**record, "_id": ObjectId(), "geometry": {"type": "MASK"}}  # a mask without its asset
    await records.insert_one(damaged)
    dataset = await factories.dataset(api, contributor)
    build = {"datasetId": dataset["id"], "version": "v1", "addDatums": [d["id"] for d in made],
             "addAnnotationSets": [labels["id"]]}

    try:
        error = await api.error("CreateDatasetVersion", {"input": build}, token=contributor)
    finally:
        loop.set_task_factory(None)
    assert error["extensions"]["code"] == "INTERNAL"
    assert writes["begun"] == 2 and writes["held until the failure"]  # the third failed during the second's writes
    assert writes["ended at the discard"] == 2  # the build waited for them before it removed anything
    await wait_for(lambda: writes["ended"] == writes["begun"])  # ended before the answer, or would land after it
    assert await DatasetVersion.find({"dataset_id": object_id(dataset["id"])}).count() == 0
    assert await VersionMember.get_pymongo_collection().count_documents(
        {"datum_id": {"$in": [object_id(d["id"]) for d in made]}}) == 0
    assert await VersionRecordPack.count() == 0
    assert await AssetRetention.find({"owner_type": "DATASET_VERSION"}).count() == 0
    await records.delete_one({"_id": damaged["_id"]})
    version = (await api.data("CreateDatasetVersion", {"input": build}, token=contributor))["createDatasetVersion"]
    assert version["datumCount"] == 3


async def test_a_build_cut_off_part_way_is_removed_by_a_later_build_of_its_name(api: Api, contributor: str) -> None:
    """Guarantees: what a build cut off from its database left stays BUILDING, and a later build of
    the same name removes it first once it is 10 minutes old (a younger one is still being built)."""
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 2, roles=("image",))
    left = {"_id": ObjectId(), "dataset_id": object_id(ds["id"]), "version": "v1", "status": "BUILDING",
            "annotation_set_ids": [], "created_at": utcnow()}
    await DatasetVersion.get_pymongo_collection().insert_one(left)
    await VersionMember.get_pymongo_collection().insert_one({"version_id": left["_id"], "datum_id": object_id(d[0]["id"]),
                                                             "split": "TRAIN"})
    young = await api.error("CreateDatasetVersion", {"input": {"datasetId": ds["id"], "version": "v1"}}, token=contributor)
    assert young["extensions"] == {"code": "CONFLICT", "field": "version"}
    assert "is being built" in young["message"] and "free again from" in young["message"]  # not "exists": none is listed
    await DatasetVersion.get_pymongo_collection().update_one(
        {"_id": left["_id"]}, {"$set": {"created_at": utcnow() - datasets.ABANDONED_AFTER - timedelta(seconds=1)}})
    made = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d[1]["id"]])
    assert made["datumCount"] == 1
    assert await DatasetVersion.get_pymongo_collection().find_one({"_id": left["_id"]}) is None
    assert await VersionMember.get_pymongo_collection().count_documents({"version_id": left["_id"]}) == 0


async def test_a_version_delete_that_crashed_part_way_is_finished_by_a_retry(api: Api, contributor: str,
                                                                            admin: str) -> None:
    """Guarantees: deleting a version hides it first (DELETING), then removes its copies and pins,
    then its record; a delete that died after hiding it is finished by the next one."""
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 2, roles=("image",))
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d])
    version_id = object_id(v1["id"])
    await DatasetVersion.get_pymongo_collection().update_one({"_id": version_id}, {"$set": {"status": "DELETING"}})
    assert (await api.data("DatasetVersion", {"id": v1["id"]}, token=contributor))["datasetVersion"] is None  # hidden
    assert await VersionMember.get_pymongo_collection().count_documents({"version_id": version_id}) == 2  # not gone yet
    done = (await api.data("DeleteDatasetVersion", {"id": v1["id"]}, token=admin))["deleteDatasetVersion"]
    assert done == {"id": v1["id"], "deleted": True}
    assert await VersionMember.get_pymongo_collection().count_documents({"version_id": version_id}) == 0
    assert await AssetRetention.find({"owner_id": version_id}).count() == 0
    assert await DatasetVersion.get_pymongo_collection().find_one({"_id": version_id}) is None


async def test_a_version_of_many_datums_is_deleted_a_round_at_a_time_releasing_only_its_own_pins(
        api: Api, contributor: str, admin: str, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its copies and pins go a few at a time (services/bulk_deletes.py), each delete naming at most a
    round's documents. A delete that dies while it releases the pins is finished by the next one: the
    assets only it held end flagged for the garbage collector, and those another version holds keep
    that version's pins, unflagged."""
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 7)
    ds = await factories.dataset(api, contributor)
    d = await factories.datums(api, contributor, 20)  # 40 role assets: six full rounds of pins and a part
    labels = await factories.labelled_set(api, contributor, d)
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d],
                                 addAnnotationSets=[labels["id"]])
    v2 = await factories.version(api, contributor, ds["id"], "v2", addDatums=[x["id"] for x in d[:6]])
    version_id, kept_id = object_id(v1["id"]), object_id(v2["id"])
    assets = [object_id(r["asset"]["id"]) for x in d for r in x["roles"]]
    held = {a for a in assets if await AssetRetention.find({"asset_id": a, "owner_id": kept_id}).count()}
    assert len(held) == 12
    write, calls = retention._write_released, 0

    async def dies_after_the_third(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        await write(*args, **kwargs)
        calls += 1
        if calls == 3:
            raise ConnectionError("the server died here")

    monkeypatch.setattr(retention, "_write_released", dies_after_the_third)
    served.commands.clear()
    failed = await api.run("DeleteDatasetVersion", {"id": v1["id"]}, token=admin)
    assert failed.get("errors") and calls == 3, failed
    monkeypatch.setattr(retention, "_write_released", write)
    sent = served.commands.tally()
    assert sent["delete version_members"] == sent["delete version_record_packs"] == 3, sent  # 20 each
    assert (await api.data("DatasetVersion", {"id": v1["id"]}, token=contributor))["datasetVersion"] is None  # hidden
    assert 0 < await AssetRetention.find({"owner_id": version_id}).count() < 40

    assert (await api.data("DeleteDatasetVersion", {"id": v1["id"]}, token=admin))["deleteDatasetVersion"]["deleted"]
    assert await DatasetVersion.get_pymongo_collection().find_one({"_id": version_id}) is None
    assert await VersionMember.get_pymongo_collection().count_documents({"version_id": version_id}) == 0
    assert await VersionRecordPack.get_pymongo_collection().count_documents({"version_id": version_id}) == 0
    assert await AssetRetention.find({"owner_id": version_id}).count() == 0
    stored = await Asset.find({"_id": {"$in": assets}}).to_list()
    assert {a.id for a in stored if a.unpinned_at is not None} == set(assets) - held
    assert {p.asset_id for p in await AssetRetention.find({"owner_id": kept_id}).to_list()} == held
    assert (await api.data("DatasetVersion", {"id": v2["id"]}, token=contributor))["datasetVersion"]["datumCount"] == 6


async def test_a_deep_verify_asks_s3_whether_objects_registered_in_place_changed(
        api: Api, contributor: str, state: AppState, s3: S3Service) -> None:
    client = s3.client()
    for name in ("a.csv", "b.csv", "c.csv"):
        client.put_object(Bucket=s3.bucket, Key=f"ext/verify/{name}", Body=f"{name}\n1,2\n".encode())
    registered = (await api.data("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "ext/verify/"}},
                                 token=contributor))["registerExternal"]["assets"]
    by_name = {a["name"]: a["id"] for a in registered}
    datums = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "table", "assetId": by_name[n]}]}
                                                         for n in sorted(by_name)]}, token=contributor))["createDatums"]
    ds = await factories.dataset(api, contributor, "tables")
    v = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d["id"] for d in datums])
    version = await DatasetVersion.get(object_id(v["id"]))
    assert version is not None

    checked = await snapshots.verify(version, state.stores)
    assert checked.ok and checked.external_checked == 3, checked.problems

    before = client.head_object(Bucket=s3.bucket, Key="ext/verify/a.csv")["ETag"]
    client.put_object(Bucket=s3.bucket, Key="ext/verify/a.csv", Body=b"rewritten by the bucket's owner\n")
    after = client.head_object(Bucket=s3.bucket, Key="ext/verify/a.csv")["ETag"]
    client.delete_object(Bucket=s3.bucket, Key="ext/verify/b.csv")
    assert (await snapshots.verify(version, None)).ok  # the lake's own records still agree: only S3 knows
    checked = await snapshots.verify(version, state.stores)
    assert not checked.ok and checked.external_checked == 3
    # Compared as sets: each problem starts with its asset's ID, whose order (base64 of the ObjectId)
    # is not the files' (one run's IDs ending ...NTgz and ...NTg0 sorted b.csv's first).
    assert set(checked.problems) == {
        f"asset {by_name['a.csv']}: its object s3://{s3.bucket}/ext/verify/a.csv, registered in place, has changed: "
        f"ETag {after} and 32 bytes now, {before} and 10 bytes when registered",
        f"asset {by_name['b.csv']}: its object s3://{s3.bucket}/ext/verify/b.csv, registered in place, is gone",
    } and len(checked.problems) == 2


async def test_datasets_are_searched_by_name_in_any_case_page_by_page(api: Api, contributor: str) -> None:
    """`datasets(nameContains:)`: names containing the text in any case, as typed (a `.` is a dot, not
    any character), newest first, and the search kept from page to page (the cursor and the filter)."""
    for name in ("plates-2024", "widgets", "Plates.old", "platesXold", "PLATES-2025"):
        await factories.dataset(api, contributor, name)

    async def names(**variables: object) -> tuple[list[str], int, dict]:
        found = (await api.data("Datasets", variables, token=contributor))["datasets"]
        return [e["node"]["name"] for e in found["edges"]], found["totalCount"], found["pageInfo"]

    assert (await names(nameContains="plates"))[:2] == (["PLATES-2025", "platesXold", "Plates.old", "plates-2024"], 4)
    assert (await names(nameContains="s.o"))[:2] == (["Plates.old"], 1)
    assert (await names(nameContains="nothing"))[:2] == ([], 0)
    assert (await names(nameContains=""))[1] == (await names(nameContains=None))[1] == 5

    first, _, page = await names(nameContains="PLATES", first=3)
    assert first == ["PLATES-2025", "platesXold", "Plates.old"] and page["hasNextPage"]
    rest, _, page = await names(nameContains="PLATES", first=3, after=page["endCursor"])
    assert rest == ["plates-2024"] and not page["hasNextPage"]


async def _listed(api: Api, token: str, dataset_id: str, after: str | None = None) -> tuple[list[str], str | None]:
    """The names of a dataset's versions from `after` on, as a client following the list reads them
    (a page of one at a time), and the cursor it would go on from."""
    names: list[str] = []
    while True:
        page = (await api.data("DatasetVersions", {"id": dataset_id, "first": 1, "after": after},
                               token=token))["dataset"]["versions"]
        names += [e["node"]["version"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"] or after
        if not page["pageInfo"]["hasNextPage"]:
            return names, after


async def test_a_client_following_the_versions_sees_one_whose_build_began_before_those_it_saw(
        api: Api, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions are listed in the order they became READY. In the order they were made, a version
    whose build ran while a later one finished (so it was not listed yet) became READY behind the
    cursor of a client that had read on past the later one: following the list, it never saw it."""
    dataset = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    first = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datums[0]["id"]])
    copy_in, copying, go_on = version_build.copy_in, asyncio.Event(), asyncio.Event()

    async def held_open(*args: Any, **kwargs: Any) -> Any:  # v2's build, until v3 is listed
        if not copying.is_set():
            copying.set()
            await asyncio.wait_for(go_on.wait(), 30)
        return await copy_in(*args, **kwargs)

    monkeypatch.setattr(version_build, "copy_in", held_open)
    building = asyncio.ensure_future(factories.version(api, contributor, dataset["id"], "v2", parentId=first["id"],
                                                       addDatums=[datums[1]["id"]]))
    await asyncio.wait_for(copying.wait(), 30)
    await factories.version(api, contributor, dataset["id"], "v3", addDatums=[datums[1]["id"]])
    seen, cursor = await _listed(api, contributor, dataset["id"])
    assert seen == ["v1", "v3"]
    go_on.set()
    assert (await building)["version"] == "v2"
    assert (await _listed(api, contributor, dataset["id"], cursor))[0] == ["v2"]
    assert (await _listed(api, contributor, dataset["id"]))[0] == ["v1", "v3", "v2"]
    whole = (await api.data("DatasetVersions", {"id": dataset["id"], "last": 3}, token=contributor))["dataset"]["versions"]
    assert [e["node"]["version"] for e in whole["edges"]] == ["v1", "v3", "v2"] and whole["totalCount"] == 3


@pytest.mark.parametrize("deleted", [False, True], ids=["listed-after-it", "deleted-since"])
async def test_a_version_placed_where_another_was_listed_moves_after_it(
        api: Api, contributor: str, admin: str, monkeypatch: pytest.MonkeyPatch, deleted: bool) -> None:
    """Taking a place is a read of the highest and a write, nothing holding other builds off between:
    a build that read its place just before another one took it, and wrote it after a client had
    listed the other (which may be deleted by then), checks after its write and moves after it."""
    dataset = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    next_place, read, go_on = version_order.next_place, asyncio.Event(), asyncio.Event()

    async def read_then_held(*args: Any, **kwargs: Any) -> Any:  # v1's read of its place, until v2 is listed
        place = await next_place(*args, **kwargs)
        if not read.is_set():
            read.set()
            await asyncio.wait_for(go_on.wait(), 30)
        return place

    monkeypatch.setattr(version_order, "next_place", read_then_held)
    building = asyncio.ensure_future(factories.version(api, contributor, dataset["id"], "v1", addDatums=[datums[0]["id"]]))
    await asyncio.wait_for(read.wait(), 30)
    v2 = await factories.version(api, contributor, dataset["id"], "v2", addDatums=[datums[1]["id"]])
    seen, cursor = await _listed(api, contributor, dataset["id"])
    assert seen == ["v2"]
    if deleted:
        await api.data("DeleteDatasetVersion", {"id": v2["id"]}, token=admin)
    go_on.set()
    await building
    assert (await _listed(api, contributor, dataset["id"], cursor))[0] == ["v1"]
    assert (await _listed(api, contributor, dataset["id"]))[0] == (["v1"] if deleted else ["v2", "v1"])


async def test_a_version_a_refused_delete_hid_comes_again_after_those_listed_meanwhile(
        api: Api, contributor: str, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delete hides its version (DELETING) before it looks for what holds it; refused, it shows the
    version again. A client that read on past its place meanwhile would never see it at that place."""
    dataset = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 1, roles=("image",))
    v1 = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datums[0]["id"]])
    await factories.version(api, contributor, dataset["id"], "v2", parentId=v1["id"])  # holds v1
    mark, marked, go_on = delete_marks.mark, asyncio.Event(), asyncio.Event()

    async def marked_then_held(*args: Any, **kwargs: Any) -> Any:  # the delete, once it has hidden v1
        token = await mark(*args, **kwargs)
        marked.set()
        await asyncio.wait_for(go_on.wait(), 30)
        return token

    monkeypatch.setattr(delete_marks, "mark", marked_then_held)
    deleting = asyncio.ensure_future(api.error("DeleteDatasetVersion", {"id": v1["id"]}, token=admin))
    await asyncio.wait_for(marked.wait(), 30)
    seen, cursor = await _listed(api, contributor, dataset["id"])
    assert seen == ["v2"]  # v1 hidden while its delete looks
    go_on.set()
    assert (await deleting)["extensions"]["code"] == "CONFLICT"
    assert (await _listed(api, contributor, dataset["id"], cursor))[0] == ["v1"]
    assert (await _listed(api, contributor, dataset["id"]))[0] == ["v2", "v1"]
