"""Version 4: a dataset version's manifest hash covers its content, not database ids.

Version 3 hashed datum, asset and set ids, so the same content built in two lakes hashed
differently. Version 4 records, beside each copied datum and record, the digests of the assets they
name and (on each member) the hash of its entry, which diffs compare, and hashes the content (documents/manifest.py, format `graphlake-manifest-2`). Forward takes
the digests the assets have at migration time and recomputes each READY version's hash; backward
drops the digests and puts back the id-based hash (its recipe is frozen below).
"""

from __future__ import annotations

import hashlib

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from documents.manifest import asset_digest, datum_entry, manifest_hash

VERSION = 4
SUMMARY = "dataset version hashes cover content (asset digests), not ids"

VERSIONS, MEMBERS, COPIES, ASSETS, SETS = "dataset_versions", "version_members", "version_records", "assets", "annotation_sets"
BATCH = 1000


async def _digests(db: AsyncDatabase, ids: set[ObjectId]) -> dict[ObjectId, str]:
    found = {a["_id"]: a async for a in db[ASSETS].find({"_id": {"$in": list(ids)}}, {"sha256": 1, "storage": 1})}
    return {a: asset_digest(found.get(a)) for a in ids}


async def forward(db: AsyncDatabase) -> None:
    async for version in db[VERSIONS].find({"status": "READY"}, {"annotation_set_ids": 1}):
        set_ids = version.get("annotation_set_ids", [])
        sets = {s["_id"]: s async for s in db[SETS].find({"_id": {"$in": set_ids}}, {"name": 1, "purpose": 1})}
        entries: list[bytes] = []
        batch: list[dict] = []
        async for member in db[MEMBERS].find({"version_id": version["_id"]}):
            batch.append(member)
            if len(batch) >= BATCH:
                entries += await _forward_batch(db, version["_id"], batch, sets)
                batch = []
        if batch:
            entries += await _forward_batch(db, version["_id"], batch, sets)
        await db[VERSIONS].update_one({"_id": version["_id"]}, {"$set": {"manifest_sha256": manifest_hash(entries, sets.values())}})


async def _forward_batch(db: AsyncDatabase, version_id: ObjectId, members: list[dict], sets: dict) -> list[bytes]:
    copies = await db[COPIES].find({"version_id": version_id, "datum_id": {"$in": [m["datum_id"] for m in members]}}).to_list()
    masks = {c["geometry"]["asset_id"] for c in copies if (c.get("geometry") or {}).get("type") == "MASK"}
    digests = await _digests(db, {r["asset_id"] for m in members for r in m.get("roles", [])}
                             | {c["asset_id"] for c in copies} | masks)
    copy_updates = []
    for member in members:
        member["digests"] = {r["role"]: digests[r["asset_id"]] for r in member.get("roles", [])}
    for copy in copies:
        copy["asset_digest"] = digests[copy["asset_id"]]
        fields = {"asset_digest": copy["asset_digest"]}
        if (copy.get("geometry") or {}).get("type") == "MASK":
            copy["mask_digest"] = fields["mask_digest"] = digests[copy["geometry"]["asset_id"]]
        copy_updates.append(UpdateOne({"_id": copy["_id"]}, {"$set": fields}))
    if copy_updates:
        await db[COPIES].bulk_write(copy_updates)
    by_datum: dict[ObjectId, list[dict]] = {}
    for copy in copies:
        by_datum.setdefault(copy["datum_id"], []).append(copy)
    entries = [datum_entry(m, by_datum.get(m["datum_id"], []), sets) for m in members]
    await db[MEMBERS].bulk_write([UpdateOne({"_id": m["_id"]}, {"$set": {"digests": m["digests"], "entry": e.hex()}})
                                  for m, e in zip(members, entries, strict=True)])
    return entries


def _id_hash(members: list[dict], set_ids: list[ObjectId]) -> str:
    """Version 3's recipe: datum ids, frozen splits, role asset ids, set ids."""
    digest = hashlib.sha256()
    for member in sorted(members, key=lambda m: str(m["datum_id"])):
        roles = ",".join(f"{r['role']}={r['asset_id']}" for r in sorted(member.get("roles", []), key=lambda r: r["role"]))
        digest.update(f"datum {member['datum_id']} {member['split']} {roles}\n".encode())
    for set_id in sorted(map(str, set_ids)):
        digest.update(f"set {set_id}\n".encode())
    return digest.hexdigest()


async def backward(db: AsyncDatabase) -> None:
    await db[MEMBERS].update_many({}, {"$unset": {"digests": "", "entry": ""}})
    await db[COPIES].update_many({}, {"$unset": {"asset_digest": "", "mask_digest": ""}})
    async for version in db[VERSIONS].find({"status": "READY"}, {"annotation_set_ids": 1}):
        members = await db[MEMBERS].find({"version_id": version["_id"]}, {"datum_id": 1, "split": 1, "roles": 1}).to_list()
        await db[VERSIONS].update_one({"_id": version["_id"]}, {"$set": {
            "manifest_sha256": _id_hash(members, version.get("annotation_set_ids", []))}})
