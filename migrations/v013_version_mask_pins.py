"""Version 13: a dataset version pins the masks its MASK records' copies name.

A version freezes copies of its records (packed a datum's to a document: v011). A MASK copy names
its mask asset, and until the build change that came with schema 12's last code nothing pinned it
for the version: once the record was deleted (the version keeps its copy) nothing held the mask, and
a contributor's deleteAsset took it (or the garbage collector, once it had left its collections), so
the version no longer verified. Builds pin their masks now (services/version_build.py); forward gives
the versions built before that the pins such a build writes (owner DATASET_VERSION, the version's
id, made now, by whoever built the version: the build's actor, kept as the version's `created_by`)
and clears the mask's `unpinned_at` as a pin does, so the collector no longer counts it as unheld.

Which versions: READY ones, and DELETING ones whose delete has not committed (a delete cut short
before its checks is run again by the maintenance, and one refused by a child version shows it
READY again, whole). Not a committed delete's (its retry removes its pins by owner, and its packs
may be half gone), nor a BUILDING one: migrations run with no server up (unless forced), so a
version still BUILDING is a dead build whose leftovers are discarded, never shown; a build of this
code pins its masks itself.

Every mask a copy names is pinned, whatever its status, as a version built now keeps its pins on
an asset force-deleted under it (and a mask still PENDING, which builds of that time froze, may yet
finish). A mask already DELETED cannot be restored (`verifyVersion` reports it), nor one whose
upload FAILED since: they are counted by status and logged; one with no asset document left is
counted with them, as gone, and not pinned. Idempotent: pins that exist are kept as they are, so a
run that died half way is run again. A version at a time, its masks a batch at a time.

Backward leaves the pins: the code of version 12 writes the same ones itself since the build change
(which came before this migration), so they cannot be told from its own; and no code of version 12
minds them, before that change or after: a version's delete releases all of its pins by owner,
whatever they hold, and an asset's holders list any pin. Taking them away would open the hole again.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

VERSION = 13
SUMMARY = "dataset versions built before their masks were pinned pin them"

log = logging.getLogger("graphlake.migrations")

# The shapes of this version's time, frozen here.
VERSIONS, PACKS, PINS, ASSETS = "dataset_versions", "version_record_packs", "retentions", "assets"
OWNER_TYPE = "DATASET_VERSION"  # documents/common.RetentionOwnerType
READY, DELETING = "READY", "DELETING"  # documents/dataset.VersionStatus
TOKEN, COMMITTED = "delete_token", "delete_committed"  # services/delete_marks.py
DELETED, FAILED = "DELETED", "FAILED"  # documents/common.AssetStatus: lost for good
GONE = "gone"  # no asset document
DUPLICATE_KEY = 11000
BATCH = 500  # masks looked up and pinned at once
NAMED = 10  # lost masks named in the log

# The pack of this version's time (documents/record_pack.py, format 1), read as its unpack reads it.
FORMAT = 1
IDENTITY = ("created_by", "verified_by")
CODEC = CodecOptions(tz_aware=True)
PACK_FIELDS = {"version_id": 1, "datum_id": 1, "format": 1, "records": 1, "people": 1}


def unpack(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The copies a pack document holds, each naming its people again."""
    if document.get("format", FORMAT) != FORMAT:
        raise ValueError(f"a record pack of format {document.get('format')}: version {VERSION} reads format {FORMAT}")
    people = document.get("people") or []
    copies = bson.decode(zlib.decompress(document["records"]), CODEC)["r"]
    for copy in copies:
        copy["version_id"], copy["datum_id"] = document["version_id"], document["datum_id"]
        for name in IDENTITY:
            if isinstance(copy.get(name), int):
                copy[name] = people[copy[name]]
        source = copy.get("source")
        if isinstance(source, dict) and isinstance(source.get("name"), int):
            source["name"] = people[source["name"]]
    return copies


@dataclass
class Tally:
    """What a forward run found and did."""

    versions: int = 0  # versions looked at
    pinned_versions: int = 0  # of them, those given at least one pin
    pins: int = 0  # pins added
    lost: dict[ObjectId, str] = field(default_factory=dict)  # masks DELETED, FAILED or gone, across versions: their status
    lost_versions: int = 0  # versions naming at least one of them


async def forward(db: AsyncDatabase) -> None:
    tally = await pin_masks(db)
    log.info("schema %d: %d mask pin(s) added to %d of the %d dataset version(s) looked at",
             VERSION, tally.pins, tally.pinned_versions, tally.versions)
    if tally.lost:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(tally.lost.values()).items()))
        named = ", ".join(str(a) for a in sorted(tally.lost)[:NAMED])
        log.warning("schema %d: %d mask asset(s) named by %d dataset version(s) were lost already and cannot be "
                    "restored (%s; verifyVersion reports them): %s%s", VERSION, len(tally.lost), tally.lost_versions,
                    statuses, named, ", ..." if len(tally.lost) > NAMED else "")


async def pin_masks(db: AsyncDatabase) -> Tally:
    """Pin each kept version's masks; what it found."""
    tally = Tally()
    wanted = {"$or": [{"status": READY},
                      {"status": DELETING, TOKEN: {"$exists": True}, COMMITTED: {"$exists": False}}]}
    # Listed first (an id and a name each): pinning a big version's masks may take long enough for
    # MongoDB to drop a cursor left waiting meanwhile (10 minutes idle).
    for version in await db[VERSIONS].find(wanted, {"_id": 1, "created_by": 1}).to_list():
        tally.versions += 1
        added, lost = await _pin_version(db, version, tally.lost)
        tally.pins += added
        tally.pinned_versions += added > 0
        tally.lost_versions += lost
    return tally


async def _pin_version(db: AsyncDatabase, version: dict[str, Any], lost: dict[ObjectId, str]) -> tuple[int, bool]:
    """Pin the masks the version's copies name, a batch at a time; the pins added, and whether it names a lost mask."""
    seen: set[ObjectId] = set()
    batch: list[ObjectId] = []
    added, names_lost = 0, False
    async for document in db[PACKS].find({"version_id": version["_id"]}, PACK_FIELDS, sort=[("datum_id", 1), ("_id", 1)]):
        for copy in unpack(document):
            geometry = copy.get("geometry") or {}
            if geometry.get("type") == "MASK" and geometry.get("asset_id") not in seen:
                seen.add(geometry["asset_id"])
                batch.append(geometry["asset_id"])
        if len(batch) >= BATCH:
            done, gone = await _pin(db, version, batch, lost)
            added, names_lost, batch = added + done, names_lost or gone, []
    if batch:
        done, gone = await _pin(db, version, batch, lost)
        added, names_lost = added + done, names_lost or gone
    return added, names_lost


async def _pin(db: AsyncDatabase, version: dict[str, Any], masks: list[ObjectId],
               lost: dict[ObjectId, str]) -> tuple[int, bool]:
    """Pin these masks for the version as retention.pin does (those pinned already are left as they
    are), noting in `lost` those DELETED, FAILED or gone; the pins added, and whether any mask was lost."""
    owner = {"owner_type": OWNER_TYPE, "owner_id": version["_id"]}
    # Assets by id alone: beside another condition FerretDB reads the whole collection (services/id_reads.py).
    status = {a["_id"]: a.get("status") async for a in db[ASSETS].find(
        {"_id": {"$in": masks}}, {"status": 1}, batch_size=len(masks) + 1)}
    gone = {m: status.get(m, GONE) for m in masks if status.get(m, GONE) in (DELETED, FAILED, GONE)}
    lost.update(gone)
    held = {p["asset_id"] async for p in db[PINS].find(
        {**owner, "asset_id": {"$in": masks}}, {"asset_id": 1}, batch_size=len(masks) + 1)}
    now = datetime.now(UTC)
    pins = [{"asset_id": m, **owner, "created_at": now, "created_by": version.get("created_by")}
            for m in masks if m in status and m not in held]
    added = len(pins)
    if pins:
        try:
            await db[PINS].insert_many(pins, ordered=False)
        except BulkWriteError as error:  # a duplicate is a pin made since the read above: kept as it is
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            added -= len(errors)
    # As a pin does, for every mask pinned (by this run or one cut short before it got here): the
    # collector then no longer takes it for unheld. An $unset of a field not there writes nothing.
    if pinned := [m for m in masks if m in status]:
        await db[ASSETS].update_many({"_id": {"$in": pinned}}, {"$unset": {"unpinned_at": ""}})
    return added, bool(gone)


async def backward(db: AsyncDatabase) -> None:
    """Nothing: the pins stay (see above)."""
