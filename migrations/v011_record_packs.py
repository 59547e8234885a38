"""Version 11: a dataset version's copies of records are packed, one document per datum.

Until now a version held a document of its own for each record it froze (`version_records`);
now it holds their datum's copies in one (`version_record_packs`: documents/record_pack.py says
why and how). Forward packs every version's copies, datum by datum, counts its records per set
where the version has no counts yet (those were counted from the copies when asked, which packs
no longer allow cheaply), and drops `version_records`. Backward unpacks them again.

A version at a time, so a run that died half-way is finished by running it again, in either
direction. Before a run writes a version's one side from the other, it marks the version with the
side that is whole (UNPACKED: its copies, while packs are written; PACKED: its packs, while copies
are written), and once the new side is all written it marks that one, and only then deletes the old
side. So whatever a run cut short left (a side half written, or half deleted: a delete_many is not
atomic, on MongoDB a run that died in it left some of the version's documents), the next run in
either direction rebuilds only from the side marked whole, and drops the other: forward packs a
version's copies unless it is marked PACKED, backward unpacks its packs unless it is marked
UNPACKED. The marks go once the side no longer needed is dropped as a whole. A version unmarked
holds one side only. Offline and reading every copy once.
"""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import bson
from bson.codec_options import CodecOptions
from pymongo.asynchronous.database import AsyncDatabase

VERSION = 11
SUMMARY = "a dataset version's copies of records are packed, one document per datum"

VERSIONS, COPIES, PACKS = "dataset_versions", "version_records", "version_record_packs"
BATCH = 500  # packs, or copies, written per insert
# On a version while a run rewrites it, which side of it is whole (its packs, its copies); the other
# one may be half written or half deleted. The names are the ones earlier releases set once the new
# side was all written, which means the same.
PACKED, UNPACKED = "v011_packed", "v011_unpacked"

# The pack of this version's time (documents/record_pack.py, format 1), frozen here.
FORMAT = 1
PART_BYTES = 4 << 20
IDENTITY = ("created_by", "verified_by")
ON_THE_PACK = ("version_id", "datum_id")
CODEC = CodecOptions(tz_aware=True)


def pack(version_id: Any, datum_id: Any, copies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"version_id": version_id, "datum_id": datum_id, "part": n, "held": len(part), "format": FORMAT,
             "records": records, "people": people, "created_at": _oldest(part)}
            for n, (part, records, people) in enumerate(_parts(copies))]


def _parts(copies: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], bytes, list[str]]]:
    people: dict[str, int] = {}

    def place(name: Any) -> Any:
        return people.setdefault(name, len(people)) if isinstance(name, str) else name

    stored = []
    for copy in copies:
        copy = {key: value for key, value in copy.items() if key not in ON_THE_PACK}
        for field in IDENTITY:
            if field in copy:
                copy[field] = place(copy[field])
        source = copy.get("source")
        if isinstance(source, dict) and source.get("kind") == "HUMAN" and "name" in source:
            copy["source"] = {**source, "name": place(source["name"])}
        stored.append(copy)
    records = zlib.compress(bson.encode({"r": stored}), 1)
    if len(records) <= PART_BYTES or len(copies) == 1:
        return [(copies, records, list(people))]
    middle = len(copies) // 2
    return _parts(copies[:middle]) + _parts(copies[middle:])


def _oldest(copies: list[dict[str, Any]]) -> datetime:
    times = [c["created_at"] for c in copies if isinstance(c.get("created_at"), datetime)]
    return min(times) if times else datetime.now(UTC)


def unpack(document: dict[str, Any]) -> list[dict[str, Any]]:
    people = document.get("people") or []
    copies = bson.decode(zlib.decompress(document["records"]), CODEC)["r"]
    for copy in copies:
        copy["version_id"], copy["datum_id"] = document["version_id"], document["datum_id"]
        for field in IDENTITY:
            if isinstance(copy.get(field), int):
                copy[field] = people[copy[field]]
        source = copy.get("source")
        if isinstance(source, dict) and isinstance(source.get("name"), int):
            source["name"] = people[source["name"]]
    return copies


async def forward(db: AsyncDatabase) -> None:
    # Marks a cut-short run left stay until their side is dropped: clearing them here would leave a
    # version holding its whole copies and half its packs (or the reverse) with nothing to tell which.
    if COPIES in await db.list_collection_names():
        # The index the copies were read by (a version's, by datum): one walk of each version's copies.
        await db[COPIES].create_index([("version_id", 1), ("datum_id", 1), ("_id", 1)], name="version_datum")
        async for version in db[VERSIONS].find({}, {"_id": 1, "annotation_set_ids": 1, "record_counts": 1, PACKED: 1}):
            if await db[COPIES].find_one({"version_id": version["_id"]}, {"_id": 1}) is not None:
                if not version.get(PACKED):  # its copies are whole (its packs, if any, a cut-short run's)
                    await _pack(db, version)
                await db[COPIES].delete_many({"version_id": version["_id"]})
        await db.drop_collection(COPIES)
    await _unmark(db)


async def _unmark(db: AsyncDatabase) -> None:
    """Every version holds one side only now: the marks say nothing more."""
    for mark in (PACKED, UNPACKED):
        await db[VERSIONS].update_many({mark: {"$exists": True}}, {"$unset": {mark: ""}})


async def _whole(db: AsyncDatabase, version_id: Any, mark: str, **also: Any) -> None:
    """Mark the version's `mark` side as the whole one (and the other as not), in one write."""
    other = UNPACKED if mark == PACKED else PACKED
    await db[VERSIONS].update_one({"_id": version_id}, {"$set": {mark: True, **also}, "$unset": {other: ""}})


async def _pack(db: AsyncDatabase, version: dict[str, Any]) -> None:
    """Write the version's packs from its copies (whole), and mark it as packed (its copies are deleted next)."""
    version_id = version["_id"]
    await _whole(db, version_id, UNPACKED)  # before its packs are touched: a run cut short in them keeps its copies
    await db[PACKS].delete_many({"version_id": version_id})  # a cut-short run's, made again below
    counts: Counter[str] = Counter()
    packs: list[dict[str, Any]] = []
    datum, held = None, []
    async for copy in db[COPIES].find({"version_id": version_id}, sort=[("datum_id", 1), ("_id", 1)]):
        counts[str(copy["set_id"])] += 1
        if copy["datum_id"] != datum and held:
            packs += pack(version_id, datum, held)
            held = []
        datum = copy["datum_id"]
        held.append(copy)
        if len(packs) >= BATCH:
            await db[PACKS].insert_many(packs)
            packs = []
    if held:
        packs += pack(version_id, datum, held)
    if packs:
        await db[PACKS].insert_many(packs)
    also: dict[str, Any] = {}
    if version.get("record_counts") is None:
        also["record_counts"] = {str(s): counts.get(str(s), 0) for s in version.get("annotation_set_ids") or []}
    await _whole(db, version_id, PACKED, **also)


async def backward(db: AsyncDatabase) -> None:
    # As in forward, a cut-short run's marks are kept: one marked UNPACKED (a forward run died writing
    # its packs) still holds all its copies, which unpacking its partial packs would replace.
    if PACKS in await db.list_collection_names():
        async for version_id, unpacked in _versions_packed(db):
            if not unpacked:  # its packs are whole (its copies, if any, a cut-short run's)
                await _unpack(db, version_id)
            await db[PACKS].delete_many({"version_id": version_id})
        await db.drop_collection(PACKS)
    await _unmark(db)


async def _unpack(db: AsyncDatabase, version_id: Any) -> None:
    """Write the version's copies from its packs (whole), and mark it as unpacked (its packs are deleted next)."""
    await _whole(db, version_id, PACKED)  # before its copies are touched: a run cut short in them keeps its packs
    await db[COPIES].delete_many({"version_id": version_id})  # a cut-short run's, made again below
    copies: list[dict[str, Any]] = []
    async for document in db[PACKS].find({"version_id": version_id}, sort=[("datum_id", 1), ("_id", 1)]):
        copies += unpack(document)
        if len(copies) >= BATCH:
            await db[COPIES].insert_many(copies)
            copies = []
    if copies:
        await db[COPIES].insert_many(copies)
    await _whole(db, version_id, UNPACKED)


async def _versions_packed(db: AsyncDatabase) -> Any:
    async for version in db[VERSIONS].find({}, {"_id": 1, UNPACKED: 1}):
        if await db[PACKS].find_one({"version_id": version["_id"]}, {"_id": 1}) is not None:
            yield version["_id"], bool(version.get(UNPACKED))
