"""Version 5: records can be superseded, versions are deleted in steps, batches are journaled.

New in version 5: an annotation record may carry `supersedes` / `supersede_reason` and, once
corrected, `superseded_by` / `superseded_at` (lists show current records only); a dataset version
may be DELETING (hidden while its copies and pins go); createDatums and addAnnotations name each
batch in `write_batches` while they write it; external S3 assets record their ETag.

Forward has nothing to change: every new field is absent on older documents, which reads as "not
superseded", "not in a batch". Backward makes the data readable by version 4, which knows none of
it: superseded records go (version 4 would list them as current beside their corrections), the
corrections lose their links, versions left DELETING are deleted, and the documents of batches whose
writers died are removed with the journal.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

VERSION = 5
SUMMARY = "records can be superseded, versions deleted in steps, batches journaled"

RECORDS, VERSIONS, MEMBERS, COPIES, PINS, JOURNAL = (
    "annotation_records", "dataset_versions", "version_members", "version_records", "retentions", "write_batches")


async def forward(db: AsyncDatabase) -> None:
    return None


async def backward(db: AsyncDatabase) -> None:
    await db[RECORDS].delete_many({"superseded_by": {"$type": "objectId"}})
    await db[RECORDS].update_many({"$or": [{"supersedes": {"$exists": True}}, {"superseded_by": {"$exists": True}}]},
                                  {"$unset": {"supersedes": "", "supersede_reason": "", "superseded_by": "",
                                              "superseded_at": ""}})
    async for version in db[VERSIONS].find({"status": "DELETING"}, {"_id": 1}):
        await db[MEMBERS].delete_many({"version_id": version["_id"]})
        await db[COPIES].delete_many({"version_id": version["_id"]})
        await db[PINS].delete_many({"owner_type": "DATASET_VERSION", "owner_id": version["_id"]})
        await db[VERSIONS].delete_one({"_id": version["_id"]})
    async for entry in db[JOURNAL].find():
        await db[entry["collection"]].delete_many({"batch": entry["_id"]})
    if JOURNAL in await db.list_collection_names():
        await db.drop_collection(JOURNAL)
