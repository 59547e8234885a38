"""A big version builds within the request time limit: its records are read, and its copies written,
in bounded operations (services/snapshots.py). Before, one read of all of a batch's records (a COCO
version of 2,000 images and 20,000 boxes) ran past the limit and the build failed UNAVAILABLE.

The server runs as a process of its own on a FerretDB of its own (as in test_faults.py), with a
short time limit; the datums and records are copied straight into its database (through the API
this would take minutes)."""

from __future__ import annotations

from pathlib import Path

from bson import ObjectId
from pymongo import AsyncMongoClient

from services.node_ids import NodeType, decode_id, encode_id
from tests import factories
from tests.operations import Api
from tests.test_faults import DATABASE, own_lake

DATUMS = 1000
RECORDS_PER_DATUM = 30  # 30,000 records: one read of them all took ~6 s here, three times the limit


async def test_a_version_of_30000_records_builds_within_a_2_second_limit(tmp_path: Path) -> None:
    async with own_lake(tmp_path, DATABASE_TIMEOUT_SECONDS="2") as lake:
        api = Api(lake.http)
        labels = await factories.annotation_set(api, "", (await factories.schema(api, ""))["id"])
        [datum] = await factories.datums(api, "", 1, roles=("image",))
        asset_id = datum["roles"][0]["asset"]["id"]
        await api.data("AddAnnotations", {"setId": labels["id"], "records": [
            {"assetId": asset_id, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "scratch"}]})
        async with AsyncMongoClient(lake.url) as client:
            db = client[DATABASE]
            datum_doc = await db["datums"].find_one({"_id": ObjectId(decode_id(datum["id"], NodeType.DATUM))})
            record_doc = await db["annotation_records"].find_one({})
            copies = [{**datum_doc, "_id": ObjectId()} for _ in range(DATUMS - 1)]
            await db["datums"].insert_many(copies)
            # With their uses of their assets, as services/datums.insert_datums writes them.
            await db["datum_assets"].insert_many([{"_id": ObjectId(), "asset_id": role["asset_id"], "datum_id": d["_id"]}
                                                  for d in copies for role in d["roles"]])
            records = [{**record_doc, "_id": ObjectId(), "datum_id": d["_id"]}
                       for d in copies for _ in range(RECORDS_PER_DATUM)]
            for start in range(0, len(records), 5000):
                await db["annotation_records"].insert_many(records[start:start + 5000])
            dataset = await factories.dataset(api, "")
            version = await factories.version(api, "", dataset["id"], "v1", addDatums=[datum["id"]] + [
                encode_id(NodeType.DATUM, d["_id"]) for d in copies], addAnnotationSets=[labels["id"]])
            assert version["datumCount"] == DATUMS
            packs = db["version_record_packs"].find({"version_id": ObjectId(decode_id(version["id"], NodeType.DATASET_VERSION))})
            held = sum([pack["held"] async for pack in packs])
            assert held == 1 + (DATUMS - 1) * RECORDS_PER_DATUM
            verified = (await api.data("VerifyVersion", {"id": version["id"]}))["datasetVersion"]["verification"]
            assert verified["ok"], verified
