"""Backups and restores: a round trip gives the same answers and the same bytes, a backup taken while
writers run holds every write acknowledged before it began, and a damaged or crafted backup is refused."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import bson
import httpx
import pytest
from bson import CodecOptions, ObjectId, decode_file_iter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from documents.event import LEVELS
from graphlake.database_access import SchemaNotCurrent, require_current_schema
from graphlake.settings import Settings
from graphlake_client import Client, ResumeState
from migrations import SCHEMA_VERSION, read_state
from resolvers.context import AppState
from services import batches
from services.backups.layout import Manifest, verify_backup
from services.backups.reader import files_on_unknown_mounts, missing_local_files, restore_backup
from services.backups.schedule import BACKUP_COMPLETED, BACKUP_FAILED, prune, scheduled_backup
from services.backups.writer import write_backup
from services.errors import BadUserInput, Conflict
from services.schedules import RETRY_AFTER, SCHEDULES
from tests import factories
from tests.conftest import S3Service, Served, mount_at
from tests.operations import Api, object_id
from tests.processes import start_server_process
from tests.waiting import wait_for


def local_root(settings: Settings) -> Path:
    path = settings.mounts["local"].path  # type: ignore[union-attr]
    assert path is not None
    return path


async def documents(db: AsyncDatabase, name: str) -> list[dict]:
    return [d async for d in db[name].find().sort("_id", 1)]


async def seed_lake(api: Api, token: str, served: Served, tmp_path: Path) -> dict[str, str]:
    """Something of every kind, through the API: values, a file on the local mount, a dataset version
    with annotations, events. Returns the ids the test reads back."""
    value = await factories.value_asset(api, token, "reading", {"temperature": 21.5, "unit": "C"})
    await factories.value_asset(api, token, "reading in F", {"temperature": 70.7, "unit": "F"}, derivedFrom=[value["id"]])
    data = tmp_path / "frame.bin"
    data.write_bytes(os.urandom(300_000))
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "resume.json")) as lake:
        file = await lake.upload_file(data, mount="local")
    dataset = await factories.dataset(api, token)
    datums = await factories.datums(api, token, 4, split="TRAIN")
    version = await factories.version(api, token, dataset["id"], "v1", addDatums=[d["id"] for d in datums])
    schema = await factories.schema(api, token)
    labels = await factories.annotation_set(api, token, schema["id"])
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": "scratch"}
        for d in datums]}, token=token)
    await api.data("LogEvents", {"inputs": [{"eventType": "RUN_STARTED", "source": {"nodeId": "robot-1"}}]}, token=token)
    # Backed up below as the server's scheduled backup takes it: with its journaled AUDIT events stored.
    await served.app.state.graphlake.feed.settled()
    return {"value": value["id"], "file": file["id"], "version": version["id"], "sha256": file["sha256"]}


READS = [  # what a user asks the restored lake, and must get exactly as before
    ("Assets", {"first": 50}),
    ("DatasetVersion", {"dataset": "widgets", "version": "v1", "first": 50}),
    ("Annotations", {"first": 50}),
    ("Events", {"filter": {"eventTypes": ["RUN_STARTED"]}, "first": 50}),
]


async def test_a_round_trip_gives_the_same_answers_and_bytes(api: Api, admin: str, served: Served, state: AppState,
                                                             settings: Settings, scratch_db: AsyncDatabase,
                                                             mongodb_url: str, tmp_path: Path) -> None:
    seeded = await seed_lake(api, admin, served, tmp_path)
    backup = tmp_path / "backup"
    manifest = await write_backup(state.db, backup, graphlake_version="test", local_roots={"local": local_root(settings)})
    assert manifest.schema_version == SCHEMA_VERSION and manifest.payloads and manifest.documents >= 20
    assert await verify_backup(backup) == (Manifest.read(backup), [])
    # Owner-only all through, payloads included: a copy of its contents keeps them private.
    modes = {stat.S_IMODE(p.stat().st_mode) for p in [backup, *backup.rglob("*")] if p.is_dir()}
    assert modes == {0o700}
    modes = {stat.S_IMODE(p.stat().st_mode) for p in backup.rglob("*") if p.is_file()}
    assert modes == {0o600} and len(list((backup / "payloads").rglob("*"))) > 1

    new_data_dir = tmp_path / "new-lake"
    new_root = new_data_dir / "objects" / "local"
    restored = await restore_backup(scratch_db, backup, local_roots={"local": new_root})
    assert restored.documents == manifest.documents
    assert (await read_state(scratch_db)).current
    for entry in manifest.collections:  # every document, byte for byte
        assert await documents(scratch_db, entry.name) == await documents(state.db, entry.name), entry.name
    # Datums' uses of assets and assets' lineage links are left out, and made again from the datums and assets.
    assert not {"datum_assets", "asset_lineage"} & {entry.name for entry in manifest.collections}

    async def derived(db: AsyncDatabase) -> tuple[list[tuple], list[tuple]]:
        return (sorted([(u["asset_id"], u["datum_id"]) async for u in db.datum_assets.find()]),
                sorted([(link["source_id"], link["asset_id"]) async for link in db.asset_lineage.find()]))
    uses, links = await derived(state.db)
    assert await derived(scratch_db) == (uses, links) and len(uses) >= 8 and len(links) == 1

    process, url = await start_server_process(mongodb_url, scratch_db.name, new_data_dir)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            restored_api = Api(http)
            for operation, variables in READS:
                before = await api.data(operation, variables, token=admin)
                assert '"id"' in json.dumps(before), operation  # something to compare
                assert await restored_api.data(operation, variables, token=admin) == before, operation  # tokens came too
            async with Client(url, admin) as lake:
                saved = await lake.download(seeded["file"], tmp_path / "downloaded.bin")
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == seeded["sha256"]
    finally:
        process.terminate()
        await process.wait()


async def test_a_backup_under_load_holds_every_write_acknowledged_before_it(api: Api, contributor: str, state: AppState,
                                                                         tmp_path: Path) -> None:
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            acknowledged.append((await factories.value_asset(api, contributor, f"w{n}-{i}", {"i": i}))["id"])
            i += 1

    writers = [asyncio.create_task(writer(n)) for n in range(3)]
    await wait_for(lambda: len(acknowledged) >= 30, what="the writers to store 30 values")
    before = list(acknowledged)
    try:
        await write_backup(state.db, tmp_path / "backup", graphlake_version="test")
    finally:
        stop.set()
        await asyncio.gather(*writers)
    with (tmp_path / "backup" / "collections" / "assets.bson").open("rb") as file:
        backed_up = {doc["_id"] for doc in decode_file_iter(file, CodecOptions())}
    assert {object_id(i) for i in before} <= backed_up
    assert len(acknowledged) > len(before)  # the writers did run during the backup


async def test_a_restore_counts_the_local_files_it_did_not_bring(api: Api, admin: str, served: Served, state: AppState,
                                                                 settings: Settings, scratch_db: AsyncDatabase,
                                                                 tmp_path: Path) -> None:
    """A backup holds a local mount's files only with --with-payloads: restored elsewhere without
    them, the lake names files its mount does not hold, and `graphlake restore` says how many."""
    await seed_lake(api, admin, served, tmp_path)
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")  # documents only, as `graphlake backup`
    await restore_backup(scratch_db, backup, local_roots={"local": tmp_path / "new-root"})
    files = await scratch_db["assets"].count_documents({"kind": "FILE", "status": "ACTIVE", "storage.mount": "local"})
    contents = await scratch_db["dataset_versions"].count_documents({"status": "READY", "content.mount": "local"})
    assert files > 0 and contents > 0  # else this checks nothing
    files += contents  # a version's content file is one of them
    assert await missing_local_files(scratch_db, {"local": tmp_path / "new-root"}) == {"local": files}
    assert await missing_local_files(scratch_db, {"local": local_root(settings)}) == {}  # the old root holds them


async def test_a_damaged_backup_is_named_and_refused(state: AppState, api: Api, contributor: str, tmp_path: Path,
                                                     scratch_db: AsyncDatabase) -> None:
    await factories.value_asset(api, contributor)
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    assets = backup / "collections" / "assets.bson"
    damaged = bytearray(assets.read_bytes())
    damaged[-2] ^= 0xFF
    assets.write_bytes(bytes(damaged))
    _, problems = await verify_backup(backup)
    assert len(problems) == 1 and problems[0].startswith("collections/assets.bson:")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700  # owner-only, as the data dir: token hashes, every document
    (backup / "collections" / "extra.bson").write_bytes(b"put there since")
    _, problems = await verify_backup(backup)
    assert problems[1:] == ["collections/extra.bson: not in the manifest"]
    # A link to a file of the same bytes outside the backup vouched for it; a FIFO held the check for good.
    outside, whole = tmp_path / "outside.bson", bytearray(damaged)
    whole[-2] ^= 0xFF
    outside.write_bytes(bytes(whole))  # the bytes the manifest names
    assets.rename(tmp_path / "aside.bson")
    assets.symlink_to(outside)
    _, problems = await asyncio.wait_for(verify_backup(backup), 30)
    assert problems[0] == "collections/assets.bson: a symbolic link, not a file the backup wrote", problems
    assets.unlink()
    os.mkfifo(assets)
    _, problems = await asyncio.wait_for(verify_backup(backup), 30)
    assert problems[0] == "collections/assets.bson: a FIFO, not a file the backup wrote", problems
    assets.unlink()
    (tmp_path / "aside.bson").rename(assets)
    with pytest.raises(BadUserInput, match="does not match its manifest"):
        await restore_backup(scratch_db, backup, local_roots={})
    assert await scratch_db.list_collection_names() == []  # nothing written
    damaged[-2] ^= 0xFF
    assets.write_bytes(bytes(damaged))  # mended: only the file the manifest does not name is left
    await restore_backup(scratch_db, backup, local_roots={})  # which a restore never reads: no reason to refuse
    assert await scratch_db.assets.count_documents({}) == 1
    await scratch_db.client.drop_database(scratch_db.name)  # empty again, for the rest of this test

    root = tmp_path / "objects"
    (root / "assets").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "assets" / name).write_bytes(os.urandom(5000))
    with_objects = tmp_path / "with-objects"
    await write_backup(state.db, with_objects, graphlake_version="test", local_roots={"local": root})
    (with_objects / "payloads" / "local" / "assets" / "b").write_bytes(os.urandom(5000))  # damaged
    target = tmp_path / "new-objects"
    with pytest.raises(BadUserInput, match="payloads/local/assets/b: 5000 bytes, SHA-256"):
        await restore_backup(scratch_db, with_objects, local_roots={"local": target})
    assert await scratch_db.list_collection_names() == []
    assert [p for p in target.rglob("*") if p.is_file()] == []  # the good object's temp copy went too


async def test_a_crafted_manifest_cannot_reach_outside(state: AppState, api: Api, contributor: str, tmp_path: Path,
                                                       scratch_db: AsyncDatabase) -> None:
    await factories.value_asset(api, contributor)
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    raw = json.loads((backup / "manifest.json").read_text())
    for tamper in ({"payloads": [{"mount": "local", "key": "../../etc/cron.d/x", "size": 1, "sha256": "0"}]},
                   {"collections": [{"name": "system.users", "file": "collections/system.users.bson"}]},
                   {"collections": [{"name": "assets", "file": "../../secret.bson"}]}):
        (backup / "manifest.json").write_text(json.dumps({**raw, **tamper}))
        with pytest.raises(BadUserInput, match="names"):
            await restore_backup(scratch_db, backup, local_roots={"local": tmp_path / "root"})


async def test_restore_refuses_a_lake_with_data_and_replaces_it_when_asked(state: AppState, api: Api, contributor: str,
                                                                          tmp_path: Path, scratch_db: AsyncDatabase) -> None:
    await factories.value_asset(api, contributor, "kept")
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    await scratch_db.assets.insert_one({"name": "already here"})
    with pytest.raises(Conflict, match="holds Graphlake data"):
        await restore_backup(scratch_db, backup, local_roots={})
    assert await scratch_db.assets.count_documents({}) == 1
    await restore_backup(scratch_db, backup, local_roots={}, replace=True)
    assert [a["name"] async for a in scratch_db.assets.find()] == ["kept"]
    with pytest.raises(Conflict, match="exists already"):
        await write_backup(state.db, backup, graphlake_version="test")


async def test_a_restore_that_died_keeps_the_server_off(state: AppState, settings: Settings, tmp_path: Path,
                                                        scratch_db: AsyncDatabase) -> None:
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    await restore_backup(scratch_db, backup, local_roots={})
    await scratch_db.graphlake_schema.update_one({"_id": "schema"}, {"$set": {"restoring": {"source": str(backup)}}})
    with pytest.raises(SchemaNotCurrent, match=f"graphlake restore {backup} --replace"):
        await require_current_schema(settings.model_copy(update={"database": scratch_db.name}))


async def test_scheduled_backups_are_taken_once_per_period_logged_and_pruned(state: AppState, settings: Settings,
                                                                            api: Api, contributor: str, tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    await factories.value_asset(api, contributor)
    schedule = settings.model_copy(update={"backup_every_hours": 1.0, "backup_keep": 2})
    directory = tmp_path / "scheduled"
    await state.db[SCHEDULES].delete_many({})

    async def take(into: Path = directory) -> Path | None:
        return await scheduled_backup(state.db, state.feed, schedule, into, graphlake_version="test")

    async def an_hour_later() -> None:
        await state.db[SCHEDULES].update_one({"_id": "backup"}, {"$set": {"next_at": utcnow()}})

    taken = [await take()]  # the first is due at once
    assert taken[0] is not None and (await verify_backup(taken[0]))[1] == []
    assert await take() is None  # another process, or the next check: not due for an hour
    for _ in range(2):
        await an_hour_later()
        taken.append(await take())
    assert sorted(directory.iterdir()) == sorted(taken[1:])  # the oldest went: two are kept
    completed = [e async for e in state.db.events.find({"event_type": BACKUP_COMPLETED})]
    assert len(completed) == 3 and json.loads(completed[0]["data"]["json"])["documents"] >= 1

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the backup directory should be")
    await an_hour_later()
    with caplog.at_level(logging.ERROR, logger="graphlake.backups"):
        assert await take(blocked) is None
    logged = [r.getMessage() for r in caplog.records if r.name == "graphlake.backups"]  # in the server's log too
    assert len(logged) == 1 and logged[0].startswith(f"scheduled backup to {blocked}/scheduled-") and " failed: " in logged[0]
    failed = await state.db.events.find_one({"event_type": BACKUP_FAILED})
    assert failed["level"] == LEVELS["ERROR"] and failed["alert"] is True and str(blocked) in failed["message"]


def test_the_commands_move_an_embedded_lake_to_a_new_data_dir(tmp_path: Path) -> None:
    """The README's round trip on the embedded default: backup with payloads, a new data dir, restore."""
    def graphlake(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
        env.update(GRAPHLAKE_DATA_DIR=str(data_dir), COLUMNS="2000")
        data_dir.mkdir(exist_ok=True)
        return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, cwd=data_dir, capture_output=True,
                              text=True, timeout=120)

    old, new, backup = tmp_path / "old", tmp_path / "new", tmp_path / "backup"
    # Where no lake is, a command that works on one says so rather than making an empty one there.
    nowhere = graphlake(old, "token", "create", "lab-bot", "--role", "contributor")
    assert nowhere.returncode == 1 and f"no lake in {old}" in " ".join(nowhere.stderr.split()), nowhere.stderr
    assert not (old / "ferretdb").exists()
    assert graphlake(old, "db", "migrate").returncode == 0  # as `make run` makes it, before it serves
    assert graphlake(old, "token", "create", "lab-bot", "--role", "contributor").returncode == 0
    stored = old / "objects" / "local" / "assets" / "0123456789abcdef01234567"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(os.urandom(10_000))  # an object of the local mount, as an upload leaves it
    made = graphlake(old, "backup", str(backup), "--with-payloads")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(backup) and "1 objects" in made.stderr
    assert graphlake(old, "backup", "verify", str(backup)).returncode == 0

    restored = graphlake(new, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "lab-bot" in graphlake(new, "token", "list").stdout
    assert (new / "objects" / "local" / stored.relative_to(old / "objects" / "local")).read_bytes() == stored.read_bytes()
    again = graphlake(new, "restore", str(backup))
    assert again.returncode == 1 and "holds Graphlake data" in again.stderr and "(--replace drops it first)" in " ".join(again.stderr.split())

    # The lake being replaced left AUDIT events in its journal (a server that died): they are its
    # own, and must not be stored into the lake the restore puts in its place.
    journal = new / "audit-journal" / "graphlake"
    journal.mkdir(parents=True)
    segment = journal / "gone-server-0.bson"
    entry = bson.encode({"_id": ObjectId(), "event_type": "AUDIT", "message": "of the replaced lake"})
    segment.write_bytes(entry)
    with segment.open("rb") as held:  # while a process holds it, a server lives: the restore refuses
        fcntl.flock(held, fcntl.LOCK_EX)
        running = graphlake(new, "restore", str(backup), "--replace")
    assert running.returncode == 1 and "stop it first" in running.stderr and str(segment) in running.stderr
    alive = journal / "quiet-server.alive"  # a server that journals but has written nothing yet
    with alive.open("wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        running = graphlake(new, "restore", str(backup), "--replace")
    assert running.returncode == 1 and str(alive) in running.stderr
    replaced = graphlake(new, "restore", str(backup), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    (aside,) = (new / "audit-journal").glob("graphlake.replaced-*")
    assert not journal.exists() and f"moved to {aside}" in replaced.stderr
    assert graphlake(new, "token", "list").returncode == 0  # a command replays the journal: none is left
    assert (aside / segment.name).read_bytes() == entry  # set aside whole, never replayed


async def test_a_restore_makes_nothing_at_a_local_mount_it_writes_no_object_into(
        state: AppState, api: Api, contributor: str, scratch_db: AsyncDatabase, mongodb_url: str, tmp_path: Path) -> None:
    """`graphlake restore` opened every configured mount's store, and opening a local one makes its root
    and marker file: a drill on a host where a mount is not mounted made an empty directory in its place
    (or failed, where the path is read-only). A mount the backup holds no object of is only asked for its
    owner, by path (as `graphlake mounts list` asks); one it holds objects of gets its root made, and the
    restore says so first."""
    await factories.value_asset(api, contributor)
    objects = tmp_path / "objects"
    (objects / "assets").mkdir(parents=True)
    (objects / "assets" / "a").write_bytes(os.urandom(5000))
    plain, with_objects = tmp_path / "plain", tmp_path / "with-objects"
    await write_backup(state.db, plain, graphlake_version="test")
    await write_backup(state.db, with_objects, graphlake_version="test", local_roots={"local": objects})

    not_mounted = {name: tmp_path / "nfs" / name for name in ("local", "scratch")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name, COLUMNS="2000",
               GRAPHLAKE_DATA_DIR=str(tmp_path / "data"), GRAPHLAKE_MOUNTS=json.dumps(
                   {name: {"backend": "local", "path": str(path)} for name, path in not_mounted.items()}))
    (tmp_path / "data").mkdir()

    def graphlake(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    def restore(*args: str) -> subprocess.CompletedProcess[str]:
        return graphlake("restore", *args)

    restored = await asyncio.to_thread(restore, str(plain))
    assert restored.returncode == 0, restored.stderr
    assert not (tmp_path / "nfs").exists()  # neither root, nor their parent: nothing made where a mount goes
    listed = await asyncio.to_thread(graphlake, "mounts", "list")  # which reads owners alike
    assert listed.returncode == 0, listed.stderr
    assert [row.split("\t")[:3] for row in listed.stdout.splitlines()[1:]] == [["local", "local", "-"], ["scratch", "local", "-"]]
    assert not (tmp_path / "nfs").exists()

    again = await asyncio.to_thread(restore, str(with_objects), "--replace")
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stderr.split())
    assert f"mount local: {not_mounted['local']} does not exist; making it to restore the backup's 1 object(s)" in said
    assert (not_mounted["local"] / "assets" / "a").read_bytes() == (objects / "assets" / "a").read_bytes()
    assert not not_mounted["scratch"].exists() and "mount scratch" not in said


async def test_s3_objects_are_copied_when_asked_and_put_back(api: Api, contributor: str, served: Served, state: AppState,
                                                             s3: S3Service, scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    data = tmp_path / "frame.bin"
    data.write_bytes(os.urandom(70_000))
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
        file = await lake.upload_file(data, mount="lab")
        await lake.register_external(url="https://data.example.org/run7.csv")  # a link: no mount to configure
    # A READY version whose content file is on the mount: exporters and `verify --deep` read it.
    content = tmp_path / "content.jsonl"
    content.write_bytes(b'{"datum": 1}\n')
    version_id = ObjectId()
    await state.stores["lab"].write(f"versions/{version_id}.jsonl", content)
    await state.db["dataset_versions"].insert_one({"_id": version_id, "status": "READY", "content": {
        "format": "graphlake-version-jsonl", "mount": "lab", "key": f"versions/{version_id}.jsonl",
        "size_bytes": content.stat().st_size, "sha256": hashlib.sha256(content.read_bytes()).hexdigest()}})
    backup = tmp_path / "backup"
    manifest = await write_backup(state.db, backup, graphlake_version="test", stores={"lab": state.stores["lab"]})
    payload, version_file = manifest.payloads
    assert payload.mount == "lab" and payload.sha256 == file["sha256"] and manifest.referenced_mounts == []
    assert (backup / payload.file).read_bytes() == data.read_bytes()
    assert version_file.key == f"versions/{version_id}.jsonl" and (backup / version_file.file).read_bytes() == content.read_bytes()

    # Restored into another lake (scratch_db), the objects go to a mount of its own under that name: the
    # served lake's is that lake's (tests/test_mount_owners.py). A prefix of its own, the bucket's.
    own = mount_at(s3, "lab", f"restored-{ObjectId()}")
    await own.open()
    try:
        await restore_backup(scratch_db, backup, local_roots={}, stores={"lab": own})
        key = own.object_key(payload.key)
        assert s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() == data.read_bytes()
    finally:
        await own.close()
        s3.client().delete_object(Bucket=s3.bucket, Key=own.object_key(payload.key))
        s3.client().delete_object(Bucket=s3.bucket, Key=own.object_key(version_file.key))
    # A lake restored without the mount serves these files with no URL: `graphlake restore` says so.
    assert await files_on_unknown_mounts(scratch_db, {"local"}) == {"lab": 2}  # the file, the version's content
    assert await files_on_unknown_mounts(scratch_db, {"local", "lab"}) == {}
    with pytest.raises(BadUserInput, match=r"mount\(s\) lab, which this configuration does not have"):
        await restore_backup(scratch_db, backup, local_roots={}, replace=True)


async def test_a_restore_replaces_collections_of_an_older_schema_too(state: AppState, api: Api, contributor: str,
                                                                     tmp_path: Path, scratch_db: AsyncDatabase) -> None:
    """A lake still at schema 10 holds its versions' copies of records one a document (`version_records`,
    packed since: migrations/v011_record_packs.py). Replaced by a backup of schema 11, none of it may
    stay: nothing would read it again, and no privacy request would reach the people it names."""
    await factories.value_asset(api, contributor, "kept")
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    await scratch_db.version_records.insert_one({"version_id": ObjectId(), "created_by": "alice@lab.org"})
    with pytest.raises(Conflict, match="holds Graphlake data"):
        await restore_backup(scratch_db, backup, local_roots={})
    await restore_backup(scratch_db, backup, local_roots={}, replace=True)
    assert "version_records" not in await scratch_db.list_collection_names()


KILLED_MID_BACKUP = """
import asyncio, sys, time
from pathlib import Path
from pymongo import AsyncMongoClient
from services.backups.writer import write_backup

def stop_here(line):  # after its first collection: the partial holds documents, as a kill leaves it
    print("writing", flush=True)
    time.sleep(600)

client = AsyncMongoClient(sys.argv[1], tz_aware=True)
asyncio.run(write_backup(client[sys.argv[2]], Path(sys.argv[3]), graphlake_version="test", progress=stop_here))
"""


async def test_a_killed_backups_partial_is_removed_by_the_next_backup_and_prune_but_a_running_ones_is_not(
        state: AppState, api: Api, contributor: str, mongodb_url: str, tmp_path: Path) -> None:
    """A backup killed (kill -9: no cleanup) leaves `.<name>.partial` holding documents and token
    hashes; later backups have other names. The next backup or prune removes it, once nobody holds
    it: never while its backup still runs, nor a directory of that form that is not a backup's."""
    await factories.value_asset(api, contributor)
    directory = tmp_path / "backups"
    directory.mkdir()
    hour_ago = time.time() - 3600

    async def start_backup(name: str) -> tuple[asyncio.subprocess.Process, Path]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", KILLED_MID_BACKUP, mongodb_url, state.db.name, str(directory / name),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"writing\n"
        partial = directory / f".{name}.partial"
        assert any((partial / "collections").iterdir())
        os.utime(partial, (hour_ago, hour_ago))  # long past the grace a partial just made is given
        return process, partial

    running, running_partial = await start_backup("scheduled-1")
    killed, killed_partial = await start_backup("scheduled-2")
    killed.kill()
    await killed.wait()
    not_ours = directory / ".notes.partial"
    not_ours.mkdir()
    (not_ours / "mine.txt").write_text("a user's")
    os.utime(not_ours, (hour_ago, hour_ago))
    try:
        await write_backup(state.db, directory / "manual", graphlake_version="test")
        assert not killed_partial.exists()
        assert running_partial.is_dir() and not_ours.is_dir()
        # One that dies after that backup started is prune's (a scheduled backup prunes after it is written).
        running.kill()
        await running.wait()
        prune(directory, keep=5)
        assert sorted(p.name for p in directory.iterdir()) == [".notes.partial", "manual"]
    finally:
        for process in (running, killed):
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_backup_copies_only_the_mounts_regular_files_and_a_restore_follows_no_planted_link(
        state: AppState, api: Api, contributor: str, tmp_path: Path, scratch_db: AsyncDatabase,
        caplog: pytest.LogCaptureFixture) -> None:
    """The server stores only regular files in a mount. A link planted as `assets/<id>` would put
    the file it points to into the backup (and a restore would write that back as the asset), and a
    FIFO would hold the backup for ever: both are skipped, each named. A restore writes each object
    through a new file of its own, never through a link planted under the name it would use."""
    await factories.value_asset(api, contributor)
    root = tmp_path / "objects"
    (root / "assets").mkdir(parents=True)
    stored = os.urandom(5000)
    (root / "assets" / "a").write_bytes(stored)
    secret = tmp_path / "outside.txt"
    secret.write_text("not the lake's")
    (root / "assets" / "b").symlink_to(secret)
    os.mkfifo(root / "assets" / "c")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x").write_text("not the lake's either")
    (root / "assets" / "d").symlink_to(tmp_path / "elsewhere")
    said: list[str] = []
    backup = tmp_path / "backup"
    with caplog.at_level(logging.WARNING, logger="graphlake.backups"):
        task = asyncio.create_task(write_backup(state.db, backup, graphlake_version="test", local_roots={"local": root},
                                                progress=said.append))
        done, _ = await asyncio.wait({task}, timeout=30)
        if not done:
            os.close(os.open(root / "assets" / "c", os.O_WRONLY | os.O_NONBLOCK))  # ends the read it hangs in
            await task
            pytest.fail("the backup hung on a FIFO in the mount")
    manifest = task.result()
    assert [p.key for p in manifest.payloads] == ["assets/a"]
    assert [p.name for p in (backup / "payloads" / "local").rglob("*") if p.is_file()] == ["a"]
    warnings = [line for line in said if line.startswith("warning: ")]
    assert warnings == ["warning: skipped local/assets/d: a symbolic link", "warning: skipped local/assets/b: a symbolic link",
                        "warning: skipped local/assets/c: a FIFO"], said
    assert [r.getMessage() for r in caplog.records if r.name == "graphlake.backups"] == [
        w.replace("warning: ", "backup: ") for w in warnings]  # in a server's log, for a scheduled backup

    # A restore's temporary name beside the object's place, planted as a link to a file outside.
    target_root = tmp_path / "restored-objects"
    (target_root / "assets").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("must stay")
    for name in (".upload-restore-a", ".upload-a", ".upload-restore-a.partial"):
        (target_root / "assets" / name).symlink_to(victim)
    await restore_backup(scratch_db, backup, local_roots={"local": target_root})
    assert victim.read_text() == "must stay"
    placed = target_root / "assets" / "a"
    assert not placed.is_symlink() and placed.read_bytes() == stored

    # A backup's payload that is a link (to a file of the same bytes: the manifest's hash matches) is refused.
    copied = backup / "payloads" / "local" / "assets" / "a"
    (tmp_path / "same-bytes").write_bytes(stored)
    copied.unlink()
    copied.symlink_to(tmp_path / "same-bytes")
    with pytest.raises(BadUserInput, match="payloads/local/assets/a in the backup is a symbolic link"):
        await restore_backup(scratch_db, backup, local_roots={"local": tmp_path / "third"}, replace=True)


async def test_a_restore_writes_through_no_folder_swapped_for_a_link(state: AppState, api: Api, contributor: str,
                                                                     tmp_path: Path, scratch_db: AsyncDatabase) -> None:
    """A direct writer sharing the mount puts a link where an object's folder would be: the restore
    refuses, naming it, and writes nothing where the link points (it made folders and files by path,
    so the object landed outside the mount, under the key's name)."""
    await factories.value_asset(api, contributor)
    root = tmp_path / "objects"
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "a").write_bytes(os.urandom(5000))
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test", local_roots={"local": root})
    target_root, outside = tmp_path / "restored", tmp_path / "outside"
    target_root.mkdir()
    outside.mkdir()
    (target_root / "assets").symlink_to(outside)
    with pytest.raises(BadUserInput, match="local:assets/a: a folder on its way in the mount is a symbolic link") as refused:
        await restore_backup(scratch_db, backup, local_roots={"local": target_root})
    assert refused.value.extensions["field"] == "mounts"
    assert list(outside.iterdir()) == [] and await scratch_db.list_collection_names() == []


async def test_a_restore_refuses_a_backup_or_a_lake_newer_than_this_code(state: AppState, api: Api, contributor: str,
                                                                         tmp_path: Path, scratch_db: AsyncDatabase,
                                                                         mongodb_url: str) -> None:
    """A backup of a newer schema is refused (this code cannot read it). So is a lake of a newer
    schema under --replace: only the collections this code knows would be dropped, and the newer
    release's others left beside the backup's, a database no release reads; unless asked."""
    await factories.value_asset(api, contributor, "kept")
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    newer_backup = tmp_path / "newer-backup"
    shutil.copytree(backup, newer_backup)
    raw = json.loads((backup / "manifest.json").read_text())
    (newer_backup / "manifest.json").write_text(json.dumps({**raw, "schema_version": SCHEMA_VERSION + 1,
                                                            "graphlake_version": "9.0"}))
    with pytest.raises(BadUserInput, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this Graphlake reads "
                                           rf"\({SCHEMA_VERSION}\); restore it with Graphlake 9\.0"):
        await restore_backup(scratch_db, newer_backup, local_roots={})
    assert await scratch_db.list_collection_names() == []

    await scratch_db.graphlake_schema.insert_one({"_id": "schema", "version": SCHEMA_VERSION + 1, "written_by": "9.0",
                                                  "history": []})
    await scratch_db.assets.insert_one({"name": "the newer lake's"})
    await scratch_db.future_things.insert_one({"made_by": "9.0"})  # a collection only the newer release knows
    with pytest.raises(Conflict, match=rf"holds schema version {SCHEMA_VERSION + 1} \(written by Graphlake 9\.0\), "
                                       rf"newer than this Graphlake's {SCHEMA_VERSION}"):
        await restore_backup(scratch_db, backup, local_roots={}, replace=True)
    assert [a["name"] async for a in scratch_db.assets.find()] == ["the newer lake's"]  # nothing touched
    assert (await read_state(scratch_db)).version == SCHEMA_VERSION + 1

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name, GRAPHLAKE_DATA_DIR=str(tmp_path),
               COLUMNS="2000")
    said = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", "restore", str(backup), "--replace"],
                                   env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert said.returncode == 1 and "Traceback" not in said.stderr, said.stderr
    assert f"holds schema version {SCHEMA_VERSION + 1}" in said.stderr and "(--replace-newer does so)" in said.stderr

    await restore_backup(scratch_db, backup, local_roots={}, replace=True, replace_newer=True)  # asked: done
    assert [a["name"] async for a in scratch_db.assets.find()] == ["kept"]
    assert (await read_state(scratch_db)).current


async def upload(served: Served, token: str, tmp_path: Path, mount: str, count: int) -> list[tuple[str, str]]:
    """`count` files uploaded to `mount`: each one's asset id (as the database holds it) and object key."""
    made = []
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "resume.json")) as lake:
        for n in range(count):
            data = tmp_path / f"file-{n}.bin"
            data.write_bytes(os.urandom(20_000))
            made.append(object_id((await lake.upload_file(data, mount=mount))["id"]))
    return [(str(a["_id"]), a["storage"]["key"]) async for a in served.app.state.graphlake.db.assets.find(
        {"_id": {"$in": made}}).sort("_id", 1)]


async def test_objects_deleted_while_a_backup_runs_are_named_not_fatal(contributor: str, served: Served, state: AppState,
                                                                        settings: Settings, scratch_db: AsyncDatabase,
                                                                        tmp_path: Path) -> None:
    """The lake goes on while a backup copies its objects (for hours on a large one): an object
    deleted after the assets were read, or after the mount was listed, is left out, and the backup
    names the ACTIVE assets it holds without their bytes. It failed on the second (FileNotFoundError)
    and said nothing of the first."""
    root = local_root(settings)
    (early, early_key), (late, late_key), (_, kept_key) = await upload(served, contributor, tmp_path, "local", 3)

    def delete_meanwhile(line: str) -> None:
        if line.startswith("assets: "):  # read: the backup holds it ACTIVE
            (root / early_key).unlink()
        if line.startswith("mount local: copying"):  # listed, not copied yet
            (root / late_key).unlink()

    backup = tmp_path / "backup"
    manifest = await write_backup(state.db, backup, graphlake_version="test", local_roots={"local": root},
                                  progress=delete_meanwhile)
    assert {(m.collection, m.id, m.mount, m.key) for m in manifest.missing_payloads} == {
        ("assets", early, "local", early_key), ("assets", late, "local", late_key)}
    assert kept_key in {p.key for p in manifest.payloads} and not {early_key, late_key} & {p.key for p in manifest.payloads}
    assert await verify_backup(backup) == (Manifest.read(backup), [])  # whole: it says what it lacks
    assert Manifest.read(backup).missing_payloads == manifest.missing_payloads

    verified = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "graphlake", "backup", "verify", str(backup)], capture_output=True,
        text=True, timeout=120, env={**os.environ, "COLUMNS": "2000"})
    assert verified.returncode == 0, verified.stderr
    assert f"asset {early}: its object local/{early_key} is not in the backup" in verified.stderr
    assert "2 stored file(s) the backup names are not in it" in verified.stderr

    new_root = tmp_path / "new-root"
    await restore_backup(scratch_db, backup, local_roots={"local": new_root})  # restored all the same
    assert (new_root / kept_key).is_file() and not (new_root / early_key).exists()
    assert await scratch_db.assets.count_documents({"_id": {"$in": [ObjectId(early), ObjectId(late)]},
                                                    "status": "ACTIVE"}) == 2


async def test_s3_objects_deleted_while_a_backup_runs_are_named_not_fatal(contributor: str, served: Served,
                                                                           state: AppState, s3: S3Service,
                                                                           tmp_path: Path) -> None:
    """As on a local mount: an S3 object deleted before the backup reads it (NoSuchKey failed it)."""
    (gone, gone_key), (_, kept_key) = await upload(served, contributor, tmp_path, "lab", 2)
    s3.client().delete_object(Bucket=s3.bucket, Key=state.stores["lab"].object_key(gone_key))  # type: ignore[attr-defined]
    backup = tmp_path / "backup"
    manifest = await write_backup(state.db, backup, graphlake_version="test", stores={"lab": state.stores["lab"]})
    assert [(m.id, m.mount, m.key) for m in manifest.missing_payloads] == [(gone, "lab", gone_key)]
    assert [p.key for p in manifest.payloads] == [kept_key]
    assert await verify_backup(backup) == (Manifest.read(backup), [])  # no file of it left behind either


class _HeldBatch:
    """A collection whose batch write (services/batches.py) stops after its `after`-th chunk until
    `go_on` is set: the batch half written (or written and not yet finished) for as long as a test needs."""

    def __init__(self, inner: AsyncCollection, after: int, held: threading.Event, go_on: threading.Event) -> None:
        self.inner, self.name, self.database = inner, inner.name, inner.database
        self.after, self.held, self.go_on, self.chunks = after, held, go_on, 0

    async def insert_many(self, documents: list[dict], **options: object) -> object:
        result = await self.inner.insert_many(documents, **options)
        self.chunks += 1
        if self.chunks == self.after:
            self.held.set()
            assert await asyncio.to_thread(self.go_on.wait, 60)
        return result

    async def delete_many(self, query: dict) -> object:
        return await self.inner.delete_many(query)


def _held_batch_writer(mongodb_url: str, database: str,
                       held_after: int) -> tuple[threading.Thread, threading.Event, threading.Event, threading.Event]:
    """A batch of 30 `items` written by a thread (not started yet) with a client of its own (the
    backup holds the test's event loop), held after its `held_after`-th chunk (_HeldBatch) until
    `go_on` is set: the thread, and the events `held`, `go_on` and `finished`."""
    held, go_on, finished = threading.Event(), threading.Event(), threading.Event()

    def write() -> None:
        async def batch() -> None:
            client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True)
            try:
                items = _HeldBatch(client[database].items, held_after, held, go_on)
                await batches.insert_all(items, [{"n": n} for n in range(30)])  # type: ignore[arg-type]
            finally:
                await client.close()
        asyncio.run(batch())
        finished.set()

    return threading.Thread(target=write), held, go_on, finished


@pytest.mark.parametrize(("held_after", "restored"), [(1, 0), (3, 30)])
async def test_a_batch_written_while_a_backup_reads_it_is_restored_whole_or_not_at_all(
        held_after: int, restored: int, state: AppState, mongodb_url: str, scratch_db: AsyncDatabase, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of three chunks is held after its first (or its last) while the backup reads its
    collection, and finishes before the backup reads anything else. Held after its first, the backup
    holds a third of it, and read the journal after it had finished: restored, that third stayed for
    good, a batch in part. Now the backup notes the batches under way, and the restore keeps one it
    holds whole and removes one it holds in part."""
    monkeypatch.setattr(batches, "CHUNK", 10)
    await state.db.drop_collection("items")  # no collection of the app's: not cleared between tests
    writer, held, go_on, finished = _held_batch_writer(mongodb_url, state.db.name, held_after)
    writer.start()
    try:
        await wait_for(held.is_set, timeout=30, what="the batch to be held part-way")

        def finish_after_items(line: str) -> None:
            if line.startswith("items: "):  # read while the batch was under way: it finishes before the next read
                go_on.set()
                assert finished.wait(60), "the batch did not finish"

        backup = tmp_path / "backup"
        manifest = await write_backup(state.db, backup, graphlake_version="test", progress=finish_after_items)
    finally:
        go_on.set()
        await asyncio.to_thread(writer.join, 60)
    assert finished.is_set() and await state.db.items.count_documents({}) == 30  # the batch was stored
    await restore_backup(scratch_db, backup, local_roots={})
    assert await scratch_db.items.count_documents({}) == restored
    assert await scratch_db[batches.JOURNAL].count_documents({}) == 0  # nothing left for a server to take back later
    assert [(b.collections, b.documents) for b in manifest.open_batches] == [(["items"], {"items": 30})]


@pytest.mark.parametrize(("held_after", "restored"), [(1, 0), (3, 30)])
async def test_a_batch_that_begins_and_ends_between_two_journal_reads_is_restored_whole_or_not_at_all(
        held_after: int, restored: int, state: AppState, mongodb_url: str, scratch_db: AsyncDatabase, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that begins after the journal read before its collection's read, has a chunk written
    as the read begins, and ends before the journal read after the first documents came: no journal
    read saw it under way, and the backup held a third of it, which a restore kept for good. Now the
    backup compares what it holds of each batch begun about then with what the lake holds once it has
    ended: the third is removed, and a batch held whole (written wholly before the read) is kept.
    The batch is moved on at those two points of the backup, never by timing."""
    from services.backups import writer

    monkeypatch.setattr(batches, "CHUNK", 10)
    await state.db.drop_collection("items")  # no collection of the app's: not cleared between tests
    writer_thread, held, go_on, finished = _held_batch_writer(mongodb_url, state.db.name, held_after)
    await state.db.items.insert_one({"n": -1})  # there before the backup: read and kept, whatever the batch
    copy = writer._write_collection

    async def begun_after_the_journal_read(db: AsyncDatabase, name: str, directory: Path, **options: Any) -> object:
        if name != "items":
            return await copy(db, name, directory, **options)
        writer_thread.start()  # the journal was read just before: the batch begins after it
        assert await asyncio.to_thread(held.wait, 30), "the batch was not held"
        reading = options.pop("reading")

        async def first_documents_came() -> None:  # and it ends before the journal is read again
            go_on.set()
            assert await asyncio.to_thread(finished.wait, 60), "the batch did not finish"
            await reading()

        return await copy(db, name, directory, reading=first_documents_came, **options)

    monkeypatch.setattr(writer, "_write_collection", begun_after_the_journal_read)
    backup = tmp_path / "backup"
    try:
        manifest = await write_backup(state.db, backup, graphlake_version="test")
    finally:
        go_on.set()
        if writer_thread.is_alive():
            await asyncio.to_thread(writer_thread.join, 60)
    assert finished.is_set() and await state.db.items.count_documents({}) == 31  # the batch was stored
    held_in_backup = sum(1 for _ in decode_file_iter((backup / "collections" / "items.bson").open("rb")))
    assert held_in_backup == 1 + (10 if held_after == 1 else 30)
    await restore_backup(scratch_db, backup, local_roots={})
    assert await scratch_db.items.count_documents({}) == 1 + restored
    assert [(b.collections, b.documents) for b in manifest.open_batches] == ([(["items"], None)] if not restored else [])


async def test_a_batch_written_before_the_backup_is_kept_whole_though_a_document_of_it_goes_meanwhile(
        state: AppState, scratch_db: AsyncDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch stored just before the backup began is one the backup looks at (begun about then); a
    document of it deleted after the backup read its collection leaves the lake holding fewer than the
    backup. That is no part of a batch: what was stored before the backup began is in it, and restored."""
    from services.backups import writer

    await state.db.drop_collection("items")  # no collection of the app's: not cleared between tests
    await batches.insert_all(state.db.items, [{"n": n} for n in range(30)])
    copy = writer._write_collection

    async def deleted_once_read(db: AsyncDatabase, name: str, directory: Path, **options: Any) -> object:
        entry = await copy(db, name, directory, **options)
        if name == "items":
            await state.db.items.delete_one({"n": 7})
        return entry

    monkeypatch.setattr(writer, "_write_collection", deleted_once_read)
    manifest = await write_backup(state.db, tmp_path / "backup", graphlake_version="test")
    assert manifest.open_batches == []
    await restore_backup(scratch_db, tmp_path / "backup", local_roots={})
    assert await scratch_db.items.count_documents({}) == 30


async def test_a_value_holding_a_batch_marks_bytes_takes_no_batch_out_of_a_restore(
        state: AppState, scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    """The backup found each document's batch as the first bytes of an ObjectId element named
    `batch`; those bytes can be inside a value that comes before it (a name, a binary field). Then
    the document's own batch was counted short, as held in part, and the batch the value named was
    counted in a collection where the lake holds none of it: a restore removed both, each held whole."""
    for name in ("items", "items2"):  # no collections of the app's: not cleared between tests
        await state.db.drop_collection(name)
    await batches.insert_all(state.db.items2, [{"n": 0}])
    other = (await state.db.items2.find_one({}))["batch"]
    mark = b"\x07batch\x00"
    await batches.insert_all(state.db.items, [
        {"name": mark.decode() + "\x7f" * 12},  # a name anyone may give, naming a batch "begun" in 2037
        {"blob": mark + other.binary},  # bytes naming another writer's batch
        {"n": 2}])
    manifest = await write_backup(state.db, tmp_path / "backup", graphlake_version="test")
    assert manifest.open_batches == []
    await restore_backup(scratch_db, tmp_path / "backup", local_roots={})
    assert (await scratch_db.items.count_documents({}), await scratch_db.items2.count_documents({})) == (3, 1)


async def test_documents_of_4_kib_and_more_are_backed_up_and_restored(state: AppState, scratch_db: AsyncDatabase,
                                                                    tmp_path: Path) -> None:
    """PyMongo (4.18 on) hands a document of 4 KiB or more as a memoryview of the batch it came in, not
    bytes: the backup's search of each document for its batch failed on it, so `graphlake backup`
    stopped (AttributeError) on any lake holding one, such as an event with a long traceback."""
    await state.db.drop_collection("items")  # no collection of the app's: not cleared between tests
    await batches.insert_all(state.db.items, [{"n": 0, "text": "x" * 5000}, {"n": 1}])  # a recent batch, counted
    await state.db.items.insert_one({"n": 2, "text": "y" * 8000})
    manifest = await write_backup(state.db, tmp_path / "backup", graphlake_version="test")
    assert manifest.open_batches == []  # the batch is held whole
    await restore_backup(scratch_db, tmp_path / "backup", local_roots={})
    assert await documents(scratch_db, "items") == await documents(state.db, "items")


async def test_counting_the_missing_local_files_holds_a_page_of_keys_not_all(state: AppState, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """After a restore without payloads, the stored files a mount lacks are counted. Every key of the
    mount was gathered into one list first: memory that grew with the lake. Now the keys are looked
    at a page (reader.BATCH) at a time as they are read: each page the check is handed is counted
    here (the check itself runs as it does). Measured by tracemalloc instead, the served app's own
    work in this process during the count made the figure vary more than the difference."""
    from services.backups import reader

    await state.db.assets.insert_many([{"kind": "FILE", "status": "ACTIVE",
                                        "storage": {"mount": "local", "key": f"assets/{ObjectId()}"}}
                                       for _ in range(20_000)])
    (tmp_path / "assets").mkdir()
    present = await state.db.assets.find_one({})
    (tmp_path / present["storage"]["key"]).write_bytes(b"x")  # one file there: counted as not missing
    pages: list[int] = []
    absent = reader._absent

    def counted(root: Path, keys: list[str]) -> int:
        pages.append(len(keys))
        return absent(root, keys)

    monkeypatch.setattr(reader, "_absent", counted)
    assert await missing_local_files(state.db, {"local": tmp_path}) == {"local": 19_999}
    assert sum(pages) == 20_000 and max(pages) <= reader.BATCH, (len(pages), max(pages))


async def test_a_scheduled_backup_that_fails_is_tried_again_within_the_hour_not_a_period_later(
        state: AppState, settings: Settings, api: Api, contributor: str, tmp_path: Path) -> None:
    """The other scheduled jobs are due again an hour after a failed run (services/schedules.py); a
    failed scheduled backup was reported and then waited its whole period: a day without a backup, at
    24 hours, for a passing fault (a full disk, the database away a moment)."""
    await factories.value_asset(api, contributor)
    schedule = settings.model_copy(update={"backup_every_hours": 24.0, "backup_keep": 2})
    await state.db[SCHEDULES].delete_many({})
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the backup directory should be")
    assert await scheduled_backup(state.db, state.feed, schedule, blocked, graphlake_version="test") is None
    next_at = (await state.db[SCHEDULES].find_one({"_id": "backup"}))["next_at"].replace(tzinfo=UTC)
    assert abs(next_at - (utcnow() + RETRY_AFTER)) < timedelta(minutes=1)
    # Once that hour has passed, the backup is taken, and the next is a period on.
    await state.db[SCHEDULES].update_one({"_id": "backup"}, {"$set": {"next_at": utcnow()}})
    taken = await scheduled_backup(state.db, state.feed, schedule, tmp_path / "scheduled", graphlake_version="test")
    assert taken is not None and (await verify_backup(taken))[1] == []
    next_at = (await state.db[SCHEDULES].find_one({"_id": "backup"}))["next_at"].replace(tzinfo=UTC)
    assert abs(next_at - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)
