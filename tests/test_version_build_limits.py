"""A big version is built, and checked, in bounded database commands (services/snapshots.py): its
records are read at most 2,000 a read, its datums' packs of copies and its members are written a
bounded number to an insert, and verification reads them back a page of datums at a time. Before,
one read of all of a batch's records (a COCO version of 2,000 images and 20,000 boxes) ran past the
request's time limit, so the build failed UNAVAILABLE, and held the database that long.

The test checks the size of each command the build sends, not how long it takes. It used to build on
a server of its own under a 2 s limit, and so passed or failed by the machine's speed: a read of
2,000 records takes 0.4-0.8 s here, and CI's VMs are up to twice as slow, busy. It runs in-process,
where the suite's listener (conftest.CommandCounter) sees every command, and without a time limit;
a hang is the watchdog's (tests/watchdog.py). The datums and records are copied straight into the
database (through the API this would take minutes)."""

from __future__ import annotations

import pytest
from bson import ObjectId

from documents.registry import DOCUMENT_MODELS
from resolvers.context import AppState
from services import snapshots
from services.availability import no_time_limit
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id

DATUMS = 1000  # two batches of the build (version_build.BUILD_BATCH): one is read while the other is written
RECORDS_PER_DATUM = 30  # 29,971 records (the first datum has 1): one read of them all took ~6 s here
RECORDS = 1 + (DATUMS - 1) * RECORDS_PER_DATUM
# What one read may answer, as numbers, not services/snapshots.py's constants, so that raising a read
# bound there fails here: a read of 2,000 records takes 0.4-0.8 s here, one of 10,000 took 2-4 s.
RECORDS_PER_READ = 2000  # snapshots.RECORDS_PER_READ
DATUMS_PER_READ = 1000  # members, or packs (one a datum), verification reads at a time: snapshots.BATCH
# A batch writes a pack a datum (documents/record_pack.py) and a member a datum: 1,000 of each, as many as
# snapshots.DOCUMENTS_PER_WRITE, so a build writing each in one insert would look bounded. The bound
# is lowered for this test, so an insert over it is one the build did not split. (Raising the constant
# itself goes unseen: a batch writes at most BATCH of either, a datum's pack split in parts aside.)
DOCUMENTS_PER_WRITE = 300
RECORDS_AT = "annotation_records"
WRITTEN = ("version_record_packs", "version_members")


async def test_a_version_of_30000_records_is_built_and_verified_in_bounded_reads_and_writes(
        api: Api, contributor: str, served: Served, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read of the records is one `find` with a limit of at most 2,000 and answers at most that
    (no `getMore`: no cursor read on), and together they read each record once; each insert of packs
    or members carries at most the write bound; verification reads members and packs a limited page at
    a time. The version then holds every datum and record, and verifies."""
    monkeypatch.setattr(snapshots, "DOCUMENTS_PER_WRITE", DOCUMENTS_PER_WRITE)
    # Without a time limit, the app's 5 s an operation included: the test checks sizes, and a limit
    # would make it pass or fail by the machine's speed again.
    with no_time_limit():
        try:
            labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"])
            [datum] = await factories.datums(api, contributor, 1, roles=("image",))
            await api.data("AddAnnotations", {"setId": labels["id"], "records": [
                {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION",
                 "label": "scratch"}]}, token=contributor)
            db = state.db
            datum_doc = await db["datums"].find_one({"_id": object_id(datum["id"])})
            record_doc = await db[RECORDS_AT].find_one({})
            copies = [{**datum_doc, "_id": ObjectId()} for _ in range(DATUMS - 1)]
            await db["datums"].insert_many(copies)
            # With their uses of their assets, as services/datums.insert_datums writes them.
            await db["datum_assets"].insert_many([{"_id": ObjectId(), "asset_id": role["asset_id"], "datum_id": d["_id"]}
                                                  for d in copies for role in d["roles"]])
            records = [{**record_doc, "_id": ObjectId(), "datum_id": d["_id"]}
                       for d in copies for _ in range(RECORDS_PER_DATUM)]
            for start in range(0, len(records), 5000):
                await db[RECORDS_AT].insert_many(records[start:start + 5000])
            dataset = await factories.dataset(api, contributor)

            served.commands.clear()
            version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datum["id"]] + [
                encode_id(NodeType.DATUM, d["_id"]) for d in copies], addAnnotationSets=[labels["id"]])
            finds = [f for f in served.commands.finds if f["find"] == RECORDS_AT]
            assert finds and all(0 < f.get("limit", 0) <= RECORDS_PER_READ for f in finds), \
                [f.get("limit") for f in finds]
            answers = [(command, n) for command, collection, n in served.commands.batches if collection == RECORDS_AT]
            assert all(command == "find" and n <= RECORDS_PER_READ for command, n in answers), answers
            assert sum(n for _, n in answers) == RECORDS  # each once, so 15 reads at least
            inserts = [(collection, n) for collection, n in served.commands.inserts if collection in WRITTEN]
            assert all(n <= DOCUMENTS_PER_WRITE for _, n in inserts), inserts
            assert {collection: sum(n for c, n in inserts if c == collection) for collection in WRITTEN} == \
                {collection: DATUMS for collection in WRITTEN}  # a member and a pack a datum, every one written
            assert version["datumCount"] == DATUMS
            packs = db["version_record_packs"].find({"version_id": object_id(version["id"])})
            assert sum([pack["held"] async for pack in packs]) == RECORDS

            served.commands.clear()
            verified = (await api.data("VerifyVersion", {"id": version["id"]},
                                       token=contributor))["datasetVersion"]["verification"]
            assert verified["ok"] and verified["records"] == RECORDS, verified
            finds = [f for f in served.commands.finds if f["find"] in WRITTEN]
            assert finds and all(0 < f.get("limit", 0) <= DATUMS_PER_READ for f in finds), \
                [(f["find"], f.get("limit")) for f in finds]
            answers = [(command, collection, n) for command, collection, n in served.commands.batches
                       if collection in WRITTEN]
            assert all(command == "find" and n <= DATUMS_PER_READ for command, _, n in answers), answers
        finally:
            # Deleted here, without a limit: the next test's clean_database would delete 30,000 records
            # under the app's 5 s (1.1 s here).
            for model in DOCUMENT_MODELS:
                await model.get_pymongo_collection().delete_many({})
