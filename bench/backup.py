"""Backup and restore: Graphlake's backup services against raw baselines measured in the same run.

    .venv/bin/python bench/backup.py [--documents 100000] [--payload-mib 1024] [--file-mib 4] [--runs 3]

Seeds one database with N documents (assets, events and annotation records in thirds, a few hundred
bytes each, inserted raw) and a second one holding a local mount of M MiB of payloads (files of random
bytes at `assets/<id>`, one FILE asset document each), then times, in interleaved rounds (Graphlake
and baseline alternately, which goes first alternating per round, outputs deleted between runs):

  documents backup   write_backup of the documents (raw BSON, SHA-256, fsync, rename into place)
                     vs  find() decoded to dicts, bson.encode of each written to a file per collection
  documents restore  restore_backup into an empty database (verify every SHA-256, raw insert_many)
                     vs  bson.decode_file_iter of the same BSON, insert_many of 1,000 at a time
  payloads backup    write_backup of the small database with the mount (each file copied and hashed)
                     vs  shutil.copytree of the mount's root
  payloads restore   restore_backup into an empty database and a new root  vs  shutil.copytree back
  ..., synced copy   the same two, against a copytree whose files and directories are then synced
                     to disk (a backup and a restore sync theirs before they say they are done)

and prints each median and the throughput ratio baseline/graphlake (1.0 = as fast as raw; 0.5 = takes
twice as long). Targets (#18): 0.5x or better for documents, 0.7x for payloads. Uses FerretDB from the
build cache, or GRAPHLAKE_BENCH_MONGODB_URL (its databases bench_backup_* are dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bson
from bson import ObjectId
from pymongo import AsyncMongoClient

from documents.json_value import StoredJson
from migrations import check_schema
from services.backups.reader import restore_backup
from services.backups.writer import write_backup
from tests.processes import bench_database

COLLECTIONS = ("assets", "events", "annotation_records")
BATCH = 1000
SPREAD = 100  # distinct metadata/data templates
DOCS, PAYLOAD, RESTORED = "bench_backup_docs", "bench_backup_payloads", "bench_backup_restored"
TARGETS = {"documents backup": 0.5, "documents restore": 0.5, "payloads backup": 0.7, "payloads restore": 0.7,
           "payloads backup, synced copy": 0.7, "payloads restore, synced copy": 0.7}


class Seeder:
    """Documents of the shapes documents/ stores, made from a few templates (a model per document would
    make seeding the bench's bottleneck)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC) - timedelta(days=30)
        self.metadata = [StoredJson.encode({"camera": f"cam-{k % 8}", "exposure_ms": 10 + k}).model_dump() for k in range(SPREAD)]
        self.data = [StoredJson.encode({"step": f"s{k}", "ok": k % 9 != 0}).model_dump() for k in range(SPREAD)]
        self.attributes = [StoredJson.encode({"occluded": k % 5 == 0}).model_dump() for k in range(SPREAD)]
        self.set_id = ObjectId()

    def owner(self, k: int) -> dict:
        return {"user_id": f"user-{k % 10}", "experiment_id": f"exp-{k % 20}", "campaign_id": None, "project_id": "proj",
                "workflow_id": f"wf-{k}", "step_id": None, "node_id": f"node-{k % 4}", "lab_id": "lab"}

    def asset(self, i: int, *, key: str | None = None, size: int = 0) -> dict:
        k, at = i % SPREAD, self.start + timedelta(seconds=i)
        _id = ObjectId(key.rsplit("/", 1)[1]) if key else ObjectId()
        key = key or f"assets/{_id}"
        return {"_id": _id, "kind": "FILE", "status": "ACTIVE", "name": f"run-{i // 100:05}/frame-{i:07}.tiff",
                "description": None, "media_type": "image/tiff", "size_bytes": size or 1 << 20, "sha256": os.urandom(32).hex(),
                "value": None, "text": None, "storage": {"mount": "local", "key": key, "uri": f"local:{key}", "external": False},
                "metadata": self.metadata[k], "labels": ["raw", f"batch-{k % 10}"], "owner": self.owner(k),
                "data_timestamp": at, "created_at": at, "updated_at": at, "created_by": "bench", "derived_from": [],
                "collection_ids": [], "unpinned_at": None, "deleted_at": None, "digest_error": None, "digest_failed_at": None}

    def event(self, i: int) -> dict:
        k = i % SPREAD
        return {"_id": ObjectId(), "event_type": f"STEP_{k % 12}", "level": 40 if k == 7 else 20,
                "message": f"workflow step {k} finished on node-{k % 4}", "data": self.data[k], "source": self.owner(k),
                "timestamp": self.start + timedelta(milliseconds=500 * i), "alert": False,
                "trace_id": os.urandom(16).hex(), "span_id": os.urandom(8).hex(), "archived": False}

    def annotation(self, i: int) -> dict:
        k = i % SPREAD
        return {"_id": ObjectId(), "set_id": self.set_id, "datum_id": ObjectId(), "asset_id": ObjectId(), "kind": "BBOX",
                "label": f"class-{k % 6}", "score": k / SPREAD, "value": None,
                "geometry": {"type": "BBOX", "x": 10.5 + k, "y": 20.25, "width": 64.0, "height": 48.0},
                "attributes": self.attributes[k], "purpose": "PREDICTION",
                "source": {"kind": "MODEL", "name": "detector", "version": "2.1"}, "verified": False,
                "verified_by": None, "verified_at": None, "created_at": self.start + timedelta(seconds=i), "created_by": "bench"}


async def seed_documents(db, seeder: Seeder, total: int) -> None:
    makers = {"assets": seeder.asset, "events": seeder.event, "annotation_records": seeder.annotation}
    for n, name in enumerate(COLLECTIONS):
        count = total // 3 + (1 if n < total % 3 else 0)
        for first in range(0, count, BATCH):
            await db[name].insert_many([makers[name](i) for i in range(first, min(first + BATCH, count))], ordered=False)


def write_payloads(root: Path, files: int, size: int) -> list[str]:
    keys = []
    for _ in range(files):
        key = f"assets/{ObjectId()}"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(os.urandom(size))
        keys.append(key)
    return keys


async def dump(db, directory: Path) -> None:
    """Baseline backup: what a hand-written dump does, documents decoded and encoded again."""
    directory.mkdir()
    for name in COLLECTIONS:
        with (directory / f"{name}.bson").open("wb") as out:
            async for document in db[name].find({}):
                out.write(bson.encode(document))


async def load(db, directory: Path) -> None:
    """Baseline restore: the dump's BSON decoded and inserted a thousand at a time."""
    for name in COLLECTIONS:
        with (directory / f"{name}.bson").open("rb") as file:
            documents = bson.decode_file_iter(file)
            while batch := list(islice(documents, BATCH)):
                await db[name].insert_many(batch, ordered=False)


Run = Callable[[], Awaitable[object]]


def copy_durably(source: Path, target: Path) -> None:
    """shutil.copytree, then every file and directory synced to disk."""
    shutil.copytree(source, target)
    for folder, _dirs, files in os.walk(target):
        for name in files:
            with open(Path(folder, name), "rb") as file:
                os.fsync(file.fileno())
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)


async def rounds(ops: dict[str, tuple[Run, Run, Run]], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each op's (graphlake, baseline, cleanup), `runs` times, the two alternating first; their seconds."""
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in ops}
    for r in range(runs):
        for name, (graphlake, baseline, cleanup) in ops.items():
            order = [(0, graphlake), (1, baseline)]
            for side, fn in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                await fn()
                times[name][side].append(time.perf_counter() - start)
                await cleanup()
            print(f"  round {r + 1} {name:<18} graphlake {times[name][0][-1]:7.2f}s  baseline {times[name][1][-1]:7.2f}s",
                  flush=True)
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=100_000, help="documents in all, a third per collection")
    parser.add_argument("--payload-mib", type=int, default=1024, help="MiB of local payloads")
    parser.add_argument("--file-mib", type=int, default=4, help="MiB per payload file")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    files = max(1, args.payload_mib // args.file_mib)

    with tempfile.TemporaryDirectory(prefix="graphlake-bench-backup-") as tmp_name, \
            bench_database(Path(tmp_name)) as url:
        tmp = Path(tmp_name)
        client = AsyncMongoClient(url, tz_aware=True)
        for name in (DOCS, PAYLOAD, RESTORED):
            await client.drop_database(name)
        docs_db, payload_db, restored = client[DOCS], client[PAYLOAD], client[RESTORED]
        seeder = Seeder()
        began = time.perf_counter()
        print(f"seeding {args.documents} documents and {files} files of {args.file_mib} MiB ...", flush=True)
        await check_schema(docs_db, "bench")
        await seed_documents(docs_db, seeder, args.documents)
        root = tmp / "root"
        keys = await asyncio.to_thread(write_payloads, root, files, args.file_mib << 20)
        await check_schema(payload_db, "bench")
        await payload_db.assets.insert_many([seeder.asset(i, key=key, size=args.file_mib << 20) for i, key in enumerate(keys)])
        print(f"seeded in {time.perf_counter() - began:.1f}s", flush=True)

        # References kept for the restores (and the backups' warm-up): one of each, untimed.
        docs_backup, docs_dump = tmp / "docs-backup", tmp / "docs-dump"
        payload_backup, payload_copy = tmp / "payload-backup", tmp / "payload-copy"
        manifest = await write_backup(docs_db, docs_backup, graphlake_version="bench")
        await dump(docs_db, docs_dump)
        await write_backup(payload_db, payload_backup, graphlake_version="bench", local_roots={"local": root})
        await asyncio.to_thread(shutil.copytree, root, payload_copy)
        bson_mb = sum(c.bytes for c in manifest.collections) / 1e6
        print(f"documents: {manifest.documents} in {bson_mb:.1f} MB of BSON "
              f"({bson_mb * 1e6 / max(1, manifest.documents):.0f} bytes each); payloads: {files} files, "
              f"{files * args.file_mib} MiB", flush=True)

        out, new_root = tmp / "out", tmp / "new-root"

        async def remove_out() -> None:
            await asyncio.to_thread(shutil.rmtree, out, ignore_errors=True)

        async def drop_restored(expected: dict[str, int]) -> None:
            counts = {name: await restored[name].count_documents({}) for name in expected}
            assert counts == expected, f"restored {counts}, expected {expected}"
            await client.drop_database(RESTORED)

        async def drop_docs() -> None:
            await drop_restored({c.name: c.documents for c in manifest.collections})

        async def drop_payloads() -> None:
            restored_files = sum(len(f) for _, _, f in os.walk(new_root))
            assert restored_files == files, f"restored {restored_files} files, expected {files}"
            await asyncio.to_thread(shutil.rmtree, new_root)
            await client.drop_database(RESTORED)

        ops: dict[str, tuple[Run, Run, Run]] = {
            "documents backup": (lambda: write_backup(docs_db, out, graphlake_version="bench"),
                                 lambda: dump(docs_db, out), remove_out),
            "documents restore": (lambda: restore_backup(restored, docs_backup, local_roots={}),
                                  lambda: load(restored, docs_dump), drop_docs),
            "payloads backup": (lambda: write_backup(payload_db, out, graphlake_version="bench", local_roots={"local": root}),
                                lambda: asyncio.to_thread(shutil.copytree, root, out), remove_out),
            "payloads restore": (lambda: restore_backup(restored, payload_backup, local_roots={"local": new_root}),
                                 lambda: asyncio.to_thread(shutil.copytree, payload_copy, new_root), drop_payloads),
            # The same, against a copy that is on disk when it ends, as a backup and a restore are.
            "payloads backup, synced copy": (
                lambda: write_backup(payload_db, out, graphlake_version="bench", local_roots={"local": root}),
                lambda: asyncio.to_thread(copy_durably, root, out), remove_out),
            "payloads restore, synced copy": (
                lambda: restore_backup(restored, payload_backup, local_roots={"local": new_root}),
                lambda: asyncio.to_thread(copy_durably, payload_copy, new_root), drop_payloads),
        }
        times = await rounds(ops, args.runs)
        await client.close()

    print()
    print(f"{'operation':<30}{'graphlake s':>12}{'baseline s':>12}{'ratio':>8}{'target':>8}")
    for name, (g, b) in times.items():
        g_med, b_med = statistics.median(g), statistics.median(b)
        ratio, target = b_med / g_med, TARGETS[name]
        print(f"{name:<30}{g_med:>12.2f}{b_med:>12.2f}{ratio:>7.2f}x{target:>7.1f}x  {'ok' if ratio >= target else 'MISSED'}")
    print("ratio = baseline / graphlake median (throughput; 1.0 = as fast as raw, 0.5 = takes twice as long)")


if __name__ == "__main__":
    asyncio.run(main())
