"""What the lake holds, counted: one `$match`/`$group` aggregation per part asked for ($sum only, which
FerretDB v1 has), each grouped on the fields its listing filters and indexes use. MongoDB reads the
matching index entries or documents once per call; the embedded default scans the collection."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from documents.annotation import AnnotationRecord
from documents.asset import Asset
from documents.clock import to_millis
from documents.collection import Collection
from documents.common import AssetStatus
from documents.dataset import Dataset, DatasetVersion, VersionStatus
from documents.event import Event
from services.errors import BadUserInput


@dataclass
class Tally:
    """How many, and how many bytes (0 where sizes are unknown)."""

    count: int = 0
    size_bytes: int = 0

    def add(self, count: int, size_bytes: int) -> None:
        self.count += count
        self.size_bytes += size_bytes


@dataclass
class AssetTallies:
    total: Tally = field(default_factory=Tally)  # every asset but DELETED ones
    by_kind: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))  # DELETED ones aside
    by_mount: dict[str | None, Tally] = field(default_factory=lambda: defaultdict(Tally))  # None: in the database
    by_status: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))  # every status


async def _groups(model: type, match: dict[str, Any], keys: dict[str, str], total: Any = 1) -> list[dict]:
    """Rows of {_id: {key: value}, n: the $sum of `total` (1 counts)} for each combination of the keys.

    One accumulator per $group: FerretDB v1 fills only a group's first one (any further one comes back
    0; FerretDB/FerretDB#4616, open), so a count and a sum of bytes take two aggregations."""
    group = {"_id": {name: f"${path}" for name, path in keys.items()}, "n": {"$sum": total}}
    cursor = await model.get_pymongo_collection().aggregate([{"$match": match}, {"$group": group}])
    return [row async for row in cursor]


def _key(row: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in row["_id"].items()))


async def asset_tallies() -> AssetTallies:
    """Assets by kind, status and mount, with their bytes: two aggregations (count, bytes), folded here."""
    keys = {"kind": "kind", "status": "status", "mount": "storage.mount"}
    counts, sizes = await asyncio.gather(_groups(Asset, {}, keys), _groups(Asset, {}, keys, "$size_bytes"))
    size_of = {_key(row): int(row["n"] or 0) for row in sizes}
    tallies = AssetTallies()
    for row in counts:
        key, count, size = row["_id"], row["n"], size_of.get(_key(row), 0)
        tallies.by_status[key["status"]].add(count, size)
        if key["status"] != AssetStatus.DELETED.value:
            tallies.total.add(count, size)
            tallies.by_kind[key["kind"]].add(count, size)
            tallies.by_mount[key.get("mount") or None].add(count, size)  # "": registered by URL
    return tallies


async def record_tallies() -> tuple[dict[str, int], dict[str, int]]:
    """Current (not superseded) annotation records by kind, and by purpose."""
    by_kind: dict[str, int] = defaultdict(int)
    by_purpose: dict[str, int] = defaultdict(int)
    for row in await _groups(AnnotationRecord, {"superseded_by": None}, {"kind": "kind", "purpose": "purpose"}):
        by_kind[row["_id"]["kind"]] += row["n"]
        by_purpose[row["_id"]["purpose"]] += row["n"]
    return dict(by_kind), dict(by_purpose)


async def event_tallies(after: datetime, before: datetime) -> tuple[dict[int, int], dict[str, int]]:
    """Events with a timestamp in [after, before), archived ones too, by level number and by type."""
    after, before = to_millis(after), to_millis(before)
    if before <= after:
        raise BadUserInput("must be after `after`", field="before")
    # Both values of `archived`, named: MongoDB then reads the timeline index (archived, timestamp) by range.
    match = {"archived": {"$in": [False, True]}, "timestamp": {"$gte": after, "$lt": before}}
    by_level: dict[int, int] = defaultdict(int)
    by_type: dict[str, int] = defaultdict(int)
    for row in await _groups(Event, match, {"level": "level", "type": "event_type"}):
        by_level[row["_id"]["level"]] += row["n"]
        by_type[row["_id"]["type"]] += row["n"]
    return dict(by_level), dict(by_type)


async def collection_count() -> int:
    return await Collection.get_pymongo_collection().count_documents({})


async def dataset_count() -> int:
    return await Dataset.get_pymongo_collection().count_documents({})


async def version_count() -> int:
    """READY versions: one being built or deleted is not there for readers."""
    return await DatasetVersion.get_pymongo_collection().count_documents({"status": VersionStatus.READY.value})
