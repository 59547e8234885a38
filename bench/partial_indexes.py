"""Inserts on the embedded default with its indexes as declared, the `embedded_partial` ones full
(as before Session 65) or partial (documents/indexes.py): FerretDB's CPU per inserted document.

    PYTHONPATH=. python bench/partial_indexes.py [ROUNDS] [ASSETS] [RECORDS] [EVENTS]

One FerretDB (our build), three collections of each kind holding the same documents, the indexes
declared `embedded_partial` full, partial, or none at all:
value assets as storeValue writes them (no owner, pinned, no URI), one insert each, and
bounding-box annotation records as an import writes them (no mask), in insert_many of 1,000, and
unkeyed AUDIT events as the journal flushes them, in insert_many of 15.
Rounds alternate which collection goes first; the figures are the medians over rounds of
FerretDB's CPU (/proc/PID/stat, user + system) per document, and the median of each round's difference.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bson import ObjectId
from peer import cpu_seconds  # bench/peer.py's: a process's CPU from /proc
from pymongo import MongoClient
from pymongo.collection import Collection

from documents.annotation import (
    AnnotationKind,
    AnnotationPurpose,
    AnnotationRecord,
    AnnotationSource,
    BBoxShape,
    SourceKind,
)
from documents.asset import Asset
from documents.common import AssetKind, AssetStatus
from documents.event import Event, new_event_id
from documents.indexes import On, embedded_filter, servers_of, with_filter
from documents.json_value import StoredJson
from documents.sparse import stored
from graphlake.local_services import find_binary, start_ferretdb

VARIANTS = ["full", "partial", "none"]


def value_asset(i: int) -> dict[str, Any]:
    return stored(Asset.model_construct(kind=AssetKind.VALUE, status=AssetStatus.ACTIVE, name=f"reading-{i}",
                        value=StoredJson.encode({"temperature": 20 + i % 7, "run": i // 100}),
                        media_type="application/json", size_bytes=40, sha256=f"{i:064x}", created_by="bench"))


def bbox_record(i: int, set_id: ObjectId, asset_id: ObjectId) -> dict[str, Any]:
    return stored(AnnotationRecord.model_construct(set_id=set_id, datum_id=ObjectId(), asset_id=asset_id, kind=AnnotationKind.BBOX,
                                   label=f"class-{i % 80}", geometry=BBoxShape(x=i % 600, y=i % 400, width=32.5, height=20.25),
                                   purpose=AnnotationPurpose.GROUND_TRUTH, source=AnnotationSource(kind=SourceKind.HUMAN, name="coco"),
                                   key=f"coco:{i}", created_by="bench"))


def audit_event(i: int) -> dict[str, Any]:
    return {"_id": new_event_id(), **stored(Event.model_construct(
        event_type="AUDIT", level=20, message="storeValue", by_lake=True,
        data=StoredJson.encode({"operation": "storeValue", "asset_id": str(ObjectId()), "by": "bench"})))}


def make(collection: Collection, model: type, variant: str) -> None:
    """The embedded default's indexes of `model`, the `embedded_partial` ones "full", "partial" or left out ("none")."""
    for index in model.Settings.indexes:  # type: ignore[attr-defined]
        if servers_of(index) & On.EMBEDDED:
            partial = embedded_filter(index)
            if partial is None or variant == "full":
                collection.create_indexes([index])
            elif variant == "partial":
                collection.create_indexes([with_filter(index, partial)])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    counts = {"value assets": int(sys.argv[2]) if len(sys.argv) > 2 else 1500,
              "bbox records": int(sys.argv[3]) if len(sys.argv) > 3 else 10000,
              "audit events": int(sys.argv[4]) if len(sys.argv) > 4 else 6000}
    with tempfile.TemporaryDirectory() as tmp:
        service = start_ferretdb(find_binary("ferretdb"), Path(tmp))
        try:
            assert service.process is not None
            pid = service.process.pid
            client: MongoClient = MongoClient(f"mongodb://127.0.0.1:{service.port}/")
            db = client.bench
            kinds: dict[str, tuple[type, Callable[[int], dict[str, Any]]]] = {}
            set_id, asset_id = ObjectId(), ObjectId()
            kinds["value assets"] = (Asset, value_asset)
            kinds["bbox records"] = (AnnotationRecord, lambda i: bbox_record(i, set_id, asset_id))
            kinds["audit events"] = (Event, audit_event)
            for name, (model, _) in kinds.items():
                for variant in VARIANTS:
                    make(db[f"{name}-{variant}"], model, variant)
            figures: dict[tuple[str, str], list[float]] = {}
            serial = 0
            for r in range(rounds):
                for name, (_, build) in kinds.items():
                    for variant in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
                        count = counts[name]
                        docs = [build(serial + i) for i in range(count)]
                        serial += count
                        collection = db[f"{name}-{variant}"]
                        before = cpu_seconds(pid) or 0.0
                        if name == "value assets":
                            for doc in docs:
                                collection.insert_one(doc)
                        else:
                            batch = 1000 if name == "bbox records" else 15  # an import's batch; the journal's flush
                            for start in range(0, count, batch):
                                collection.insert_many(docs[start:start + batch])
                        figures.setdefault((name, variant), []).append(((cpu_seconds(pid) or 0.0) - before) / count * 1e6)
            for name in kinds:
                full, part, none = (statistics.median(figures[(name, v)]) for v in VARIANTS)
                saved = statistics.median(f - p for f, p in zip(figures[(name, "full")], figures[(name, "partial")], strict=True))
                print(f"{name}: full {full:.1f} µs, partial {part:.1f} µs, none {none:.1f} µs a document "
                      f"(partial {(part - full) / full:+.0%}); median of the rounds' full - partial {saved:.1f} µs; "
                      f"{rounds} rounds of {counts[name]}")
            client.close()
        finally:
            service.stop()


if __name__ == "__main__":
    main()
