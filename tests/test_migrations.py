"""Schema versions: the start gate, each migration forward and back on the shapes of its time, and
runs that died half-way, against the test database server (a fresh database per test)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from graphlake.database import connect
from graphlake.database_access import SchemaNotCurrent, require_current_schema
from graphlake.settings import Settings
from migrations import (
    SCHEMA_VERSION,
    STATE_COLLECTION,
    MigrationInProgress,
    SchemaMismatch,
    check_schema,
    migrate,
    read_state,
    runner,
)
from migrations import v002_upload_sweeps as v002
from migrations import v003_frozen_versions as v003
from migrations import v004_content_manifests as v004
from migrations import v005_corrections_and_batches as v005
from migrations import v006_datum_uses as v006
from migrations import v007_asset_lineage as v007
from migrations import v008_event_origin as v008
from migrations import v009_event_keys as v009
from migrations import v010_full_json_views as v010
from migrations import v011_record_packs as v011
from migrations import v012_item_sort_keys as v012
from migrations import v013_version_mask_pins as v013
from migrations.liveness import this_process
from resolvers.context import AppState
from services.backups.writer import write_backup
from services.errors import Conflict
from services.schema_watch import SchemaWatch
from tests import factories
from tests.operations import Api, object_id


async def fill_v1(db: AsyncDatabase) -> None:
    """A version-1 lake: upload sessions in every state, none with `sweep_due`, and the probe collection."""
    now = datetime.now(UTC)
    await db.upload_sessions.insert_many([
        {"_id": status, "asset_id": uuid.uuid4().hex, "mount": "local", "key": f"assets/{status}", "status": status,
         "expires_at": now, "created_at": now} for status in ("OPEN", "COMPLETED", "ABORTED", "EXPIRED")])
    await db.assets.insert_one({"name": "a", "kind": "VALUE", "status": "ACTIVE"})
    await db.create_collection("graphlake_probe")


async def sweep_marks(db: AsyncDatabase) -> dict[str, object]:
    return {s["_id"]: s.get("sweep_due", "absent") async for s in db.upload_sessions.find()}


async def test_an_empty_database_is_recorded_at_this_version(scratch_db: AsyncDatabase) -> None:
    assert (await read_state(scratch_db)).version is None
    state = await check_schema(scratch_db, "9.9")
    assert (state.version, state.written_by, state.current) == (SCHEMA_VERSION, "9.9", True)
    assert await check_schema(scratch_db, "9.9") == state  # the next start finds it recorded


async def test_another_systems_collections_do_not_make_a_lake(scratch_db: AsyncDatabase) -> None:
    await scratch_db.datapoints.insert_one({"madsci": True})  # MADSci sharing the database
    assert (await read_state(scratch_db)).version is None


async def test_a_version_1_lake_is_refused_until_migrated(scratch_db: AsyncDatabase, settings: Settings) -> None:
    await fill_v1(scratch_db)
    with pytest.raises(SchemaMismatch, match="holds schema version 1"):
        await check_schema(scratch_db, "new")
    other = settings.model_copy(update={"database": scratch_db.name})
    with pytest.raises(SchemaNotCurrent, match="graphlake db migrate"):
        await require_current_schema(other)  # what `graphlake serve` runs first
    with pytest.raises(SchemaNotCurrent, match="graphlake db migrate"):
        await connect(settings.mongodb_url.get_secret_value(), scratch_db.name)  # what every app and command opens with
    assert (await read_state(scratch_db)).version == 1  # refusing wrote nothing


async def test_v002_forward_backward_and_again(scratch_db: AsyncDatabase) -> None:
    await fill_v1(scratch_db)
    steps = await migrate(scratch_db, writer="new", to=2)
    assert [(s.from_version, s.to_version) for s in steps] == [(1, 2)]
    assert await sweep_marks(scratch_db) == {"OPEN": False, "COMPLETED": False, "ABORTED": True, "EXPIRED": True}
    assert "graphlake_probe" not in await scratch_db.list_collection_names()
    state = await read_state(scratch_db)
    assert (state.version, state.written_by, state.interrupted) == (2, "new", None)
    assert [(h["from"], h["to"]) for h in state.history] == [(1, 2)]

    await migrate(scratch_db, writer="new", to=1)
    assert set((await sweep_marks(scratch_db)).values()) == {"absent"}
    assert (await read_state(scratch_db)).version == 1

    await v002.forward(scratch_db)  # idempotent: the same result however often a step runs
    await migrate(scratch_db, writer="new", to=2)
    assert await sweep_marks(scratch_db) == {"OPEN": False, "COMPLETED": False, "ABORTED": True, "EXPIRED": True}
    assert await scratch_db.assets.count_documents({}) == 1


async def test_a_dry_run_touches_nothing(scratch_db: AsyncDatabase) -> None:
    await fill_v1(scratch_db)
    steps = await migrate(scratch_db, writer="new", dry_run=True)
    assert [str(s) for s in steps] == [f"1 -> 2: {v002.SUMMARY}", f"2 -> 3: {v003.SUMMARY}", f"3 -> 4: {v004.SUMMARY}",
                                       f"4 -> 5: {v005.SUMMARY}", f"5 -> 6: {v006.SUMMARY}",
                                       f"6 -> 7: {v007.SUMMARY}", f"7 -> 8: {v008.SUMMARY}",
                                       f"8 -> 9: {v009.SUMMARY}", f"9 -> 10: {v010.SUMMARY}",
                                       f"10 -> 11: {v011.SUMMARY}", f"11 -> 12: {v012.SUMMARY}",
                                       f"12 -> 13: {v013.SUMMARY}"]
    assert (await read_state(scratch_db)).version == 1 and set((await sweep_marks(scratch_db)).values()) == {"absent"}


def dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                             check=True)
    return int(process.stdout)


async def test_a_step_that_died_half_way_is_finished_by_the_next_run(scratch_db: AsyncDatabase) -> None:
    await fill_v1(scratch_db)
    await scratch_db.upload_sessions.update_one({"_id": "ABORTED"}, {"$set": {"sweep_due": True}})  # half done
    marker = {"migration": 2, "direction": "forward", "writer": "new", **this_process(), "pid": dead_pid(),
              "started_at": datetime.now(UTC)}
    await scratch_db[STATE_COLLECTION].insert_one({"_id": "schema", "version": 1, "migrating": marker, "history": []})
    with pytest.raises(SchemaMismatch, match="did not finish"):
        await check_schema(scratch_db, "new")  # no start on half-migrated data

    await migrate(scratch_db, writer="new")
    assert await sweep_marks(scratch_db) == {"OPEN": False, "COMPLETED": False, "ABORTED": True, "EXPIRED": True}
    assert (await check_schema(scratch_db, "new")).current


async def test_a_step_half_done_is_undone_when_going_back(scratch_db: AsyncDatabase) -> None:
    await fill_v1(scratch_db)
    await migrate(scratch_db, writer="new")
    await scratch_db.upload_sessions.update_one({"_id": "OPEN"}, {"$unset": {"sweep_due": ""}})  # a downgrade died
    marker = {"migration": 2, "direction": "backward", **this_process(), "pid": dead_pid(),
              "started_at": datetime.now(UTC)}
    await scratch_db[STATE_COLLECTION].update_one({"_id": "schema"}, {"$set": {"migrating": marker}})
    await migrate(scratch_db, writer="new", to=1)
    assert set((await sweep_marks(scratch_db)).values()) == {"absent"}
    state = await read_state(scratch_db)
    assert (state.version, state.interrupted) == (1, None)


async def test_a_runner_alive_elsewhere_keeps_its_marker(scratch_db: AsyncDatabase) -> None:
    await fill_v1(scratch_db)
    marker = {"migration": 2, "direction": "forward", "host": "another-host", "pid": 1, "started_at": datetime.now(UTC)}
    await scratch_db[STATE_COLLECTION].insert_one({"_id": "schema", "version": 1, "migrating": marker, "history": []})
    with pytest.raises(MigrationInProgress, match="another-host"):
        await migrate(scratch_db, writer="new")
    await migrate(scratch_db, writer="new", take_over=True)  # its operator knows it is gone
    assert (await read_state(scratch_db)).current


async def test_of_runners_started_together_one_takes_each_step(scratch_db: AsyncDatabase) -> None:
    """Eight runners at once, thirty times over: one runs the step, the others stop or find it done.
    FerretDB's conditional update of the record let several match (up to three winners a round)."""
    await fill_v1(scratch_db)
    for round_ in range(30):
        await scratch_db[STATE_COLLECTION].replace_one({"_id": "schema"}, {
            "version": 1, "migrating": None, "history": [{"from": None, "to": 1, "at": datetime.now(UTC)}]}, upsert=True)
        ran: list[object] = []
        outcomes = await asyncio.gather(*(migrate(scratch_db, writer="new", to=2, on_step=ran.append)
                                          for _ in range(8)), return_exceptions=True)
        assert len(ran) == 1, (round_, outcomes)
        assert all(o == [] or isinstance(o, MigrationInProgress) for o in outcomes if o != ran), outcomes
        state = await read_state(scratch_db)
        assert (state.version, state.interrupted) == (2, None)


async def test_a_claim_whose_runner_died_before_it_marked_the_record_is_taken_over(scratch_db: AsyncDatabase) -> None:
    """A runner that claimed the step and stopped before it set its marker leaves no marker, only its
    claim: one gone is taken over, as a marker is; one alive elsewhere is left, unless `take_over`."""
    await fill_v1(scratch_db)
    claim = {"_id": runner._claim_id(None), "migration": 2, "direction": "forward", "claim": "elsewhere",
             "host": "another-host", "pid": 1, "started_at": datetime.now(UTC)}
    await scratch_db[STATE_COLLECTION].insert_one(claim)
    with pytest.raises(MigrationInProgress, match="another-host"):
        await migrate(scratch_db, writer="new")
    await scratch_db[STATE_COLLECTION].replace_one({"_id": claim["_id"]}, {
        **claim, **this_process(), "pid": dead_pid(), "claim": "dead"})
    await migrate(scratch_db, writer="new")  # its runner is gone
    assert (await read_state(scratch_db)).current

    await migrate(scratch_db, writer="new", to=1)
    record = await scratch_db[STATE_COLLECTION].find_one({"_id": "schema"})
    await scratch_db[STATE_COLLECTION].insert_one({**claim, "_id": runner._claim_id(record)})  # alive elsewhere
    with pytest.raises(MigrationInProgress, match="another-host"):
        await migrate(scratch_db, writer="new")
    await migrate(scratch_db, writer="new", take_over=True)  # its operator knows it is gone
    assert (await read_state(scratch_db)).current


async def test_a_version_this_code_does_not_know_is_refused_on_an_empty_database_too(scratch_db: AsyncDatabase,
                                                                                    settings: Settings) -> None:
    """The dry run the commands start with returned before the target was checked: `db downgrade
    --to 99` exited 0 saying the database was at version 99, and `db migrate` said it was at this
    code's version, where nothing was recorded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=settings.mongodb_url.get_secret_value(), GRAPHLAKE_DATABASE=scratch_db.name,
               GRAPHLAKE_DATA_DIR=str(settings.data_dir), COLUMNS="2000")
    for args in (("downgrade", "--to", "99"), ("downgrade", "--to", "0", "--dry-run"), ("migrate", "--to", "99")):
        refused = await cli(env, "db", *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert "unknown to this code" in refused.stderr and "Traceback" not in refused.stderr
    with pytest.raises(ValueError, match="unknown to this code"):
        await migrate(scratch_db, writer="new", to=SCHEMA_VERSION + 1, dry_run=True)
    for args in (("migrate",), ("migrate", "--dry-run")):
        done = await cli(env, "db", *args)
        assert done.returncode == 0, done.stderr
        assert "the database is empty: nothing to migrate" in done.stderr and "at schema version" not in done.stderr
    assert (await read_state(scratch_db)).version is None  # the first start records it


async def test_a_newer_database_is_refused_with_the_way_back(scratch_db: AsyncDatabase, settings: Settings) -> None:
    await scratch_db[STATE_COLLECTION].insert_one({"_id": "schema", "version": SCHEMA_VERSION + 1, "written_by": "9.0",
                                               "history": []})
    other = settings.model_copy(update={"database": scratch_db.name})
    with pytest.raises(SchemaNotCurrent, match=rf"Graphlake 9\.0.*downgrade --to {SCHEMA_VERSION}"):
        await require_current_schema(other)
    with pytest.raises(ValueError, match="unknown to this code"):
        await migrate(scratch_db, writer="new")
    # `db status` says why it exits 3.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=settings.mongodb_url.get_secret_value(), GRAPHLAKE_DATABASE=scratch_db.name,
               GRAPHLAKE_DATA_DIR=str(settings.data_dir), COLUMNS="2000")
    status = await cli(env, "db", "status")
    assert status.returncode == 3 and "the database is newer than this Graphlake: run Graphlake 9.0" in status.stdout
    # Nor is it backed up: the backup's manifest would name this release as the one to restore it with.
    with pytest.raises(Conflict, match=rf"schema {SCHEMA_VERSION + 1} \(written by Graphlake 9\.0\), newer than"):
        await write_backup(scratch_db, settings.data_dir / "newer-backup", graphlake_version="0.1.0")
    assert not (settings.data_dir / "newer-backup").exists()


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a thread: the test's event loop must not be held."""
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", *args], env=env,
                                   cwd=env["GRAPHLAKE_DATA_DIR"], capture_output=True, text=True, timeout=60)


async def test_the_db_commands_upgrade_a_version_1_lake(scratch_db: AsyncDatabase, mongodb_url: str, tmp_path: Path) -> None:
    await fill_v1(scratch_db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name, GRAPHLAKE_DATA_DIR=str(tmp_path),
               GRAPHLAKE_BACKUP_DIR=str(tmp_path / "backups"), GRAPHLAKE_PORT="1", COLUMNS="2000")

    status = await cli(env, "db", "status")
    assert status.returncode == 3 and "stored schema version: 1" in status.stdout and "pending: 1 -> 2" in status.stdout
    served = await cli(env, "serve")  # refused before it listens (port 1 would fail later anyway)
    assert served.returncode == 1 and "graphlake db migrate" in served.stderr and "Traceback" not in served.stderr

    dry = await cli(env, "db", "migrate", "--dry-run")
    assert dry.returncode == 0 and "would run: 1 -> 2" in dry.stdout and (await read_state(scratch_db)).version == 1

    migrated = await cli(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "schema 13: 0 mask pin(s) added to 0 of the 0 dataset version(s)" in migrated.stderr  # steps log there
    assert (await read_state(scratch_db)).current
    backups = list((tmp_path / "backups").iterdir())  # taken before the first step
    assert [b.name.startswith(f"pre-migrate-1-to-{SCHEMA_VERSION}-") for b in backups] == [True]
    assert (await cli(env, "backup", "verify", str(backups[0]))).returncode == 0
    assert (await cli(env, "db", "status")).returncode == 0

    back = await cli(env, "db", "downgrade", "--to", "1", "--no-backup")
    assert back.returncode == 0, back.stderr
    assert (await read_state(scratch_db)).version == 1 and len(list((tmp_path / "backups").iterdir())) == 1


async def fill_v2_versions(db: AsyncDatabase) -> dict[str, ObjectId]:
    """Version-2 dataset versions: members with a datum id and split only, records read live."""
    now = datetime.now(UTC)
    ids = {name: ObjectId() for name in ("version", "empty", "building", "datum", "other", "set", "record", "asset")}
    await db.datums.insert_many([
        {"_id": ids["datum"], "split": "TRAIN", "roles": [{"role": "image", "asset_id": ids["asset"]}],
         "metadata": {"json": "{\"i\":1}", "attrs": [{"k": "i", "v": 1}], "paths": ["i"]}, "created_at": now},
        {"_id": ids["other"], "split": "TEST", "roles": [], "metadata": {"json": "{}", "attrs": [], "paths": []},
         "created_at": now}])
    await db.dataset_versions.insert_many([
        {"_id": ids["version"], "status": "READY", "annotation_set_ids": [ids["set"]], "version": "v1"},
        {"_id": ids["empty"], "status": "READY", "annotation_set_ids": [], "version": "v0"},
        {"_id": ids["building"], "status": "BUILDING", "annotation_set_ids": [ids["set"]], "version": "v2"}])
    await db.version_members.insert_many([
        {"version_id": ids["version"], "datum_id": ids["datum"], "split": "VALIDATION"},
        {"version_id": ids["version"], "datum_id": ids["other"], "split": "TEST"},
        {"version_id": ids["empty"], "datum_id": ids["other"], "split": "TEST"}])
    await db.annotation_records.insert_many([
        {"_id": ids["record"], "set_id": ids["set"], "datum_id": ids["datum"], "label": "dent", "verified": False},
        {"set_id": ObjectId(), "datum_id": ids["datum"], "label": "in another set"}])
    return ids


async def test_v003_copies_what_each_ready_version_shows(scratch_db: AsyncDatabase) -> None:
    await fill_v1(scratch_db)
    await migrate(scratch_db, writer="new", to=2)
    ids = await fill_v2_versions(scratch_db)
    await migrate(scratch_db, writer="new", to=3)
    members = {(m["version_id"], m["datum_id"]): m async for m in scratch_db.version_members.find()}
    first = members[(ids["version"], ids["datum"])]
    assert first["split"] == "VALIDATION" and first["roles"] == [{"role": "image", "asset_id": ids["asset"]}]
    assert first["metadata"]["json"] == '{"i":1}' and "datum_created_at" in first
    assert all("roles" in m for m in members.values())
    copies = [c async for c in scratch_db.version_records.find()]
    assert [(c["version_id"], c["record_id"], c["label"]) for c in copies] == [(ids["version"], ids["record"], "dent")]

    await v003.forward(scratch_db)  # again: the same copies, not doubled
    assert await scratch_db.version_records.count_documents({}) == 1

    await migrate(scratch_db, writer="new", to=2)
    assert "version_records" not in await scratch_db.list_collection_names()
    assert [set(m) async for m in scratch_db.version_members.find()] == [{"_id", "version_id", "datum_id", "split"}] * 3


async def test_v004_gives_versions_built_before_the_hash_the_builder_gives(api: Api, contributor: str,
                                                                          state: AppState) -> None:
    ds = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 3, roles=("image", "mask"))
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "MASK", "label": "dent",
         "geometry": {"mask": {"assetId": d["roles"][1]["asset"]["id"]}}} for d in datums]}, token=contributor)
    built = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d["id"] for d in datums],
                                    addAnnotationSets=[labels["id"]])
    db = state.db
    await v011.backward(db)  # the copies one a document, as version 4 read them
    await v004.backward(db)  # as version 3 left it: no digests, the id-based hash
    id_hash = (await db.dataset_versions.find_one())["manifest_sha256"]
    assert id_hash != built["manifestSha256"]
    assert await db.version_members.count_documents({"digests": {"$exists": True}}) == 0
    await v004.forward(db)
    assert (await db.dataset_versions.find_one())["manifest_sha256"] == built["manifestSha256"]
    assert await db.version_records.count_documents({"mask_digest": {"$regex": "^sha256:"}}) == 3
    await v004.forward(db)  # idempotent
    assert (await db.dataset_versions.find_one())["manifest_sha256"] == built["manifestSha256"]
    await v011.forward(db)
    verified = (await api.data("VerifyVersion", {"id": built["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert verified["ok"] and verified["records"] == 3, verified


async def test_v005_backward_leaves_what_version_4_can_read(scratch_db: AsyncDatabase) -> None:
    old, new, keep, gone, member = ObjectId(), ObjectId(), ObjectId(), ObjectId(), ObjectId()
    batch = ObjectId()
    await scratch_db.annotation_records.insert_many([
        {"_id": old, "label": "dent", "superseded_by": new}, {"_id": new, "label": "scratch", "supersedes": old,
                                                               "supersede_reason": "typo"},
        {"_id": keep, "label": "ok"}, {"label": "half a batch", "batch": batch}])
    await scratch_db.write_batches.insert_one({"_id": batch, "collection": "annotation_records"})
    await scratch_db.dataset_versions.insert_many([{"_id": gone, "status": "DELETING"}, {"status": "READY"}])
    await scratch_db.version_members.insert_one({"_id": member, "version_id": gone})
    await scratch_db.retentions.insert_one({"owner_type": "DATASET_VERSION", "owner_id": gone})
    await v005.forward(scratch_db)
    await v005.backward(scratch_db)
    records = {r["_id"]: r async for r in scratch_db.annotation_records.find()}
    assert set(records) == {new, keep} and set(records[new]) == {"_id", "label"}
    assert [v["status"] async for v in scratch_db.dataset_versions.find()] == ["READY"]
    assert await scratch_db.version_members.count_documents({}) == 0 and await scratch_db.retentions.count_documents({}) == 0
    assert "write_batches" not in await scratch_db.list_collection_names()
    await v005.backward(scratch_db)  # idempotent


async def test_v006_stores_each_datums_uses_in_datum_order(scratch_db: AsyncDatabase) -> None:
    image, mask, other = ObjectId(), ObjectId(), ObjectId()
    datums = [{"_id": ObjectId(), "roles": roles} for roles in (
        [{"role": "image", "asset_id": image}, {"role": "preview", "asset_id": image}],  # one asset in two roles
        [{"role": "image", "asset_id": other}, {"role": "mask", "asset_id": mask}],
        [{"role": "image", "asset_id": image}])]
    await scratch_db.datums.insert_many(datums)
    on_mongodb = "ferretdbVersion" not in await scratch_db.client.admin.command("buildInfo")
    if on_mongodb:  # version 5's multikey index, which the embedded default never had
        await scratch_db.datums.create_index("roles.asset_id", name="role_asset")
    await scratch_db.datum_assets.insert_one({"asset_id": other, "datum_id": ObjectId()})  # a run that died half way
    unfinished = ObjectId()  # a batch whose writer died: the next start removes its datums
    await scratch_db.write_batches.insert_one({"_id": unfinished, "collection": "datums"})
    await scratch_db.datums.insert_one({"roles": [{"role": "image", "asset_id": other}], "batch": unfinished})

    for _ in range(2):  # idempotent
        await v006.forward(scratch_db)
        uses = [(u["asset_id"], u["datum_id"]) async for u in scratch_db.datum_assets.find(sort=[("_id", 1)])]
        assert uses == [(image, datums[0]["_id"]), (other, datums[1]["_id"]), (mask, datums[1]["_id"]),
                        (image, datums[2]["_id"])]
    assert "role_asset" not in await scratch_db.datums.index_information()
    await v006.backward(scratch_db)
    assert "datum_assets" not in await scratch_db.list_collection_names()
    assert await scratch_db.datums.count_documents({}) == 4


async def test_v007_links_each_asset_to_its_sources_but_deleted_ones(scratch_db: AsyncDatabase) -> None:
    a, b = ObjectId(), ObjectId()
    assets = [{"_id": ObjectId(), "status": status, "derived_from": sources} for status, sources in (
        ("ACTIVE", [a, b]), ("ACTIVE", []), ("DELETED", [a]), ("PENDING", [b]))]
    await scratch_db.assets.insert_many([{"_id": a, "status": "ACTIVE"}, {"_id": b, "status": "ACTIVE"}, *assets])
    if "ferretdbVersion" not in await scratch_db.client.admin.command("buildInfo"):
        await scratch_db.assets.create_index("derived_from", name="derived_from")  # version 6's, on MongoDB
    await scratch_db.asset_lineage.insert_one({"source_id": a, "asset_id": ObjectId()})  # a run that died half way

    for _ in range(2):  # idempotent
        await v007.forward(scratch_db)
        links = [(link["source_id"], link["asset_id"]) async for link in scratch_db.asset_lineage.find(sort=[("_id", 1)])]
        assert links == [(a, assets[0]["_id"]), (b, assets[0]["_id"]), (b, assets[3]["_id"])]
    assert "derived_from" not in await scratch_db.assets.index_information()
    await v007.backward(scratch_db)
    assert "asset_lineage" not in await scratch_db.list_collection_names()


async def test_v008_marks_the_events_the_lake_wrote_and_backward_clears_them(scratch_db: AsyncDatabase) -> None:
    types = ["AUDIT", "NODE_START", "ASSET_STATUS", "BACKUP_COMPLETED", "audit", "ALERT_DELIVERY_FAILED"]
    events = [{"_id": ObjectId(), "event_type": t, "level": 20, "archived": n % 2 == 0} for n, t in enumerate(types)]
    await scratch_db.events.insert_many(events)
    await scratch_db.events.create_index([("archived", 1), ("by_lake", 1), ("_id", -1)], name="origin_received")

    for _ in range(2):  # idempotent
        await v008.forward(scratch_db)
        marked = [e["event_type"] async for e in scratch_db.events.find({"by_lake": True}, sort=[("_id", 1)])]
        assert marked == ["AUDIT", "ASSET_STATUS", "BACKUP_COMPLETED", "ALERT_DELIVERY_FAILED"]  # types are exact
        assert await scratch_db.events.count_documents({"by_lake": None}) == 2
    await v008.backward(scratch_db)
    assert await scratch_db.events.count_documents({"by_lake": {"$exists": True}}) == 0
    assert "origin_received" not in await scratch_db.events.index_information()


async def test_v009_backward_takes_the_keys_and_their_indexes(scratch_db: AsyncDatabase) -> None:
    await scratch_db.events.insert_many([{"_id": ObjectId(), "event_type": "T", "level": 20, "key": "k1"},
                                         {"_id": ObjectId(), "event_type": "T", "level": 20}])
    await scratch_db.events.create_index("key", name="key_unique", unique=True)
    await scratch_db.events.create_index([("key", 1), ("_id", 1)], name="key")
    for _ in range(2):  # idempotent
        await v009.forward(scratch_db)
        assert await scratch_db.events.count_documents({"key": "k1"}) == 1
    for _ in range(2):
        await v009.backward(scratch_db)
        assert await scratch_db.events.count_documents({"key": {"$exists": True}}) == 0
        assert {"key_unique", "key"}.isdisjoint(await scratch_db.events.index_information())
    assert await scratch_db.events.count_documents({}) == 2


async def test_v010_backward_gives_every_stored_value_all_its_views_as_earlier_releases_require(
        scratch_db: AsyncDatabase) -> None:
    from documents.json_value.encoding import JsonText, StoredJson

    def full(value: object) -> dict:  # every view, as releases before version 10 stored and required them
        made = StoredJson.encode(value)
        return {"json": made.json, "attrs": [a.model_dump() for a in made.attrs], "paths": made.paths,
                "truncated": made.truncated, "leaves": made.leaves}

    value = {"plate": {"well.A1": [0.5, 7]}, "big": 2**70, "tags": ["x", {"deep": None}], "n": list(range(1200))}
    asset, record, untouched = ObjectId(), ObjectId(), ObjectId()
    await scratch_db.assets.insert_many([
        # As today's code stores them: empty views left out, a value's others kept.
        {"_id": asset, "value": StoredJson.encode(value).model_dump(), "metadata": StoredJson.encode({}).model_dump(),
         "owner": {}},
        {"_id": untouched, "metadata": full({"a": 1})}])
    await scratch_db.annotation_records.insert_one({"_id": record, "attributes": JsonText.encode({"iscrowd": 0}).model_dump()})
    await scratch_db.version_members.insert_one({"roles": [{"role": "image", "metadata": {"json": "[1,2]"}}]})
    await scratch_db.events.insert_one({"data": {"json": "{}"}, "note": {"json": "not stored JSON", "other": 1},
                                        "text": {"json": "not JSON text"}})
    before = await scratch_db.assets.find_one({"_id": untouched})

    await v010.forward(scratch_db)  # either form reads: nothing to do
    assert (await scratch_db.assets.find_one({"_id": asset}))["metadata"] == {"json": "{}"}
    for _ in range(2):  # idempotent
        await v010.backward(scratch_db)
        stored = await scratch_db.assets.find_one({"_id": asset})
        assert stored["value"] == full(value) and stored["value"]["truncated"] is True
        assert stored["metadata"] == full({}) and stored["owner"] == {}
        assert (await scratch_db.annotation_records.find_one({"_id": record}))["attributes"] == full({"iscrowd": 0})
        assert (await scratch_db.version_members.find_one())["roles"][0]["metadata"] == full([1, 2])
        event = await scratch_db.events.find_one()
        assert event["data"] == full({}) and event["note"] == {"json": "not stored JSON", "other": 1}
        assert event["text"] == {"json": "not JSON text"}
        assert await scratch_db.assets.find_one({"_id": untouched}) == before


async def _labelled_version(api: Api, contributor: str) -> dict:
    """A version of 3 datums holding a set of 6 records (2 a datum): what version 11 packs."""
    ds = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 3)
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": label}
        for d in datums for label in ("dent", "scratch")]}, token=contributor)
    built = await factories.version(api, contributor, ds["id"], "v1", addDatums=[d["id"] for d in datums],
                                    addAnnotationSets=[labels["id"]])
    return built


async def test_v011_run_again_after_dying_in_a_delete_loses_no_copy(api: Api, contributor: str, state: AppState) -> None:
    """A run of version 11 (either way) that died while deleting what it had just rewritten (a
    delete_many is not atomic on MongoDB: some of the version's documents gone, the rest not) is
    finished by running it again: every copy is still there, once. Packing again what was left of
    the copies replaced the whole packs with those of the rest."""
    built = await _labelled_version(api, contributor)
    db = state.db

    async def verified() -> dict:
        return (await api.data("VerifyVersion", {"id": built["id"]}, token=contributor))["datasetVersion"]["verification"]

    # Forward died in its delete of the version's copies: its packs all written, a datum's copies deleted.
    await v011.backward(db)
    version = await db.dataset_versions.find_one()
    await v011._pack(db, version)
    first = await db.version_records.find_one(sort=[("datum_id", 1)])
    await db.version_records.delete_many({"datum_id": first["datum_id"]})
    await v011.forward(db)  # run again
    checked = await verified()
    assert checked["ok"] and checked["records"] == 6, checked
    assert v011.PACKED not in await db.dataset_versions.find_one()

    # Forward died there again, and the lake was taken back to version 10 before it was run again.
    await v011.backward(db)
    await v011._pack(db, await db.dataset_versions.find_one())
    await db.version_records.delete_many({"datum_id": first["datum_id"]})
    await v011.backward(db)
    await v011.forward(db)
    checked = await verified()
    assert checked["ok"] and checked["records"] == 6, checked

    # Backward died in its delete of the version's packs: its copies all written, a datum's pack deleted.
    await v011._unpack(db, version["_id"])
    one = await db.version_record_packs.find_one(sort=[("datum_id", 1)])
    await db.version_record_packs.delete_one({"_id": one["_id"]})
    await v011.backward(db)  # run again
    assert await db.version_records.count_documents({}) == 6
    assert v011.UNPACKED not in await db.dataset_versions.find_one()
    await v011.forward(db)
    checked = await verified()
    assert checked["ok"] and checked["records"] == 6, checked


@pytest.fixture
def forced_past_the_server(state: AppState) -> Iterator[None]:
    """For a test that forces migrations past the served app: the app sees its schema change and
    would refuse writes for the rest of the session (services/schema_watch.py); afterwards it looks
    afresh, as a restart would."""
    yield
    state.schema_watch = SchemaWatch()


async def test_v011_cut_short_in_one_direction_then_run_the_other_loses_no_copy(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch,
        forced_past_the_server: None) -> None:
    """A run of version 11 that died while writing a version's new side (its packs going forward, its
    copies going back: some written, the rest not) and is then run the other way, through the runner,
    keeps every copy: the side it rebuilds from is the one still whole, not the one half written."""
    built = await _labelled_version(api, contributor)
    db = state.db  # the served app's, alive: each migration is forced past it
    monkeypatch.setattr(v011, "BATCH", 1)  # a write per pack (per copy): the first datum's lands, then the crash

    def dies_after_the_first(name: str) -> None:
        real, calls = getattr(v011, name), []

        def cut_short(*args: object) -> object:
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("killed")
            return real(*args)
        monkeypatch.setattr(v011, name, cut_short)

    async def verified() -> dict:
        return (await api.data("VerifyVersion", {"id": built["id"]}, token=contributor))["datasetVersion"]["verification"]

    await migrate(db, writer="new", to=10, force=True)
    assert await db.version_records.count_documents({}) == 6

    # Forward dies in the version's packs (one datum's written), then the lake is taken back to 10.
    dies_after_the_first("pack")
    with pytest.raises(RuntimeError, match="killed"):
        await migrate(db, writer="new", force=True)
    assert await db.version_record_packs.count_documents({}) == 1
    monkeypatch.undo()
    monkeypatch.setattr(v011, "BATCH", 1)
    await migrate(db, writer="new", to=10, force=True)
    assert await db.version_records.count_documents({}) == 6
    assert "version_record_packs" not in await db.list_collection_names()
    await migrate(db, writer="new", force=True)
    checked = await verified()
    assert checked["ok"] and checked["records"] == 6, checked

    # Backward dies in the version's copies (one datum's written), then the lake is migrated again.
    dies_after_the_first("unpack")
    with pytest.raises(RuntimeError, match="killed"):
        await migrate(db, writer="new", to=10, force=True)
    assert await db.version_records.count_documents({}) == 2
    monkeypatch.undo()
    await migrate(db, writer="new", force=True)
    assert (await read_state(db)).current
    checked = await verified()
    assert checked["ok"] and checked["records"] == 6, checked
    assert {v011.PACKED, v011.UNPACKED}.isdisjoint(await db.dataset_versions.find_one())


async def test_v012_gives_each_item_its_assets_creation_time(api: Api, contributor: str, state: AppState,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Items stored before version 12 hold no key to list a collection's assets by: forward gives
    each its asset's `created_at` (in batches, and again harmlessly), after which the collection's
    assets list as before, newest first and oldest first. An item whose asset is gone keeps none.
    Backward takes the keys and their index away."""
    db = state.db
    coll = await factories.collection(api, contributor)
    assets = [await factories.value_asset(api, contributor, f"a{i}") for i in range(5)]
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": a["id"]} for a in reversed(assets)]}}, token=contributor)

    async def listed(direction: str) -> list[str]:
        page = await api.data("Assets", {"first": 10, "filter": {"collectionId": coll["id"]},
                                         "orderBy": {"field": "CREATED_AT", "direction": direction}}, token=contributor)
        return [e["node"]["name"] for e in page["assets"]["edges"]]

    assert await listed("DESC") == [f"a{i}" for i in reversed(range(5))]
    for _ in range(2):
        await v012.backward(db)
        assert await db.collection_items.count_documents({v012.KEY: {"$exists": True}}) == 0
        assert v012.INDEX not in await db.collection_items.index_information()
    assert await listed("DESC") == []  # what a server of version 12 would list before the migration
    gone = ObjectId()
    await db.collection_items.insert_one({"_id": ObjectId(), "collection_id": object_id(coll["id"]), "asset_id": gone})
    monkeypatch.setattr(v012, "BATCH", 2)
    for _ in range(2):  # idempotent
        await v012.forward(db)
        created = {a["_id"]: a["created_at"] async for a in db.assets.find({}, {"created_at": 1})}
        keys = {i["asset_id"]: i.get(v012.KEY) async for i in db.collection_items.find()}
        assert keys == {**{a: created[a] for a in keys if a != gone}, gone: None} and len(keys) == 6
    assert await listed("DESC") == [f"a{i}" for i in reversed(range(5))]
    assert await listed("ASC") == [f"a{i}" for i in range(5)]


async def test_v013_pins_the_masks_of_versions_built_before_and_counts_those_lost(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A version built before its masks were pinned (its mask pins taken away) let a contributor
    delete a mask once its record was gone. Forward pins each mask its copies name (a batch at a
    time) as a build does now, and clears the mask's flag for the collector; run again it adds
    nothing. A mask deleted already (or whose upload failed) is pinned too and counted as lost. A dead build is left alone, and
    so is a version whose delete committed; one whose delete died before is not."""
    db = state.db
    ds = await factories.dataset(api, contributor)
    datums = await factories.datums(api, contributor, 2, roles=("image",))
    masks = [await factories.image_asset(api, contributor, f"mask-{i}.png") for i in range(3)]
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])

    def masked(datum: dict, mask: dict) -> dict:
        return {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "MASK", "label": "dent",
                "geometry": {"mask": {"assetId": mask["id"]}}}
    records = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        masked(datums[0], masks[0]), masked(datums[1], masks[1]), masked(datums[1], masks[0]), masked(datums[0], masks[2]),
        {"assetId": datums[0]["roles"][0]["asset"]["id"], "datumId": datums[0]["id"], "kind": "CLASSIFICATION",
         "label": "dent"}]}, token=contributor))["addAnnotations"]["records"]
    built, dead = [await factories.version(api, contributor, ds["id"], name, addDatums=[d["id"] for d in datums],
                                           addAnnotationSets=[labels["id"]]) for name in ("v1", "dead")]
    mask_ids = [object_id(m["id"]) for m in masks]
    version_id = object_id(built["id"])
    role_pin = await db.retentions.find_one({"owner_id": version_id, "asset_id": object_id(datums[0]["roles"][0]["asset"]["id"])})

    # As a version built before the build pinned masks: none of its masks pinned. The second build died.
    await db.retentions.delete_many({"asset_id": {"$in": mask_ids}})
    await db.dataset_versions.update_one({"_id": object_id(dead["id"])}, {"$set": {"status": "BUILDING"}})
    for r in records[:3]:
        await api.data("DeleteAnnotationRecord", {"id": r["id"]}, token=contributor)
    assert (await api.data("DeleteAsset", {"id": masks[1]["id"]}, token=contributor))["deleteAsset"]["deleted"]
    await db.assets.update_one({"_id": mask_ids[2]}, {"$set": {"status": "FAILED"}})  # frozen PENDING, then expired
    await db.assets.update_one({"_id": mask_ids[0]}, {"$set": {"unpinned_at": datetime.now(UTC)}})

    monkeypatch.setattr(v013, "BATCH", 1)
    with caplog.at_level("INFO", logger="graphlake.migrations"):
        await v013.forward(db)
    assert "3 mask pin(s) added to 1 of the 1 dataset version(s)" in caplog.text, caplog.text
    assert "2 mask asset(s) named by 1 dataset version(s) were lost already and cannot be restored " \
           "(1 DELETED, 1 FAILED; verifyVersion reports them)" in caplog.text, caplog.text
    assert str(mask_ids[1]) in caplog.text and str(mask_ids[2]) in caplog.text
    pins = await db.retentions.find({"asset_id": {"$in": mask_ids}}, {"_id": 0}).to_list()
    assert sorted(p["asset_id"] for p in pins) == mask_ids  # once each, though the first is named twice
    for p in pins:  # as the build writes a pin
        assert p.keys() == role_pin.keys() - {"_id"}
        assert (p["owner_type"], p["owner_id"], p["created_by"]) == (
            role_pin["owner_type"], version_id, role_pin["created_by"])
    assert "unpinned_at" not in await db.assets.find_one({"_id": mask_ids[0]})

    again = await v013.pin_masks(db)  # idempotent
    assert (again.versions, again.pins, again.pinned_versions) == (1, 0, 0)
    assert again.lost == {mask_ids[1]: "DELETED", mask_ids[2]: "FAILED"} and again.lost_versions == 1
    assert await db.retentions.count_documents({"asset_id": {"$in": mask_ids}}) == 3

    error = await api.error("DeleteAsset", {"id": masks[0]["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and built["id"] in error["extensions"]["holders"], error
    checked = (await api.data("VerifyVersion", {"id": built["id"]}, token=contributor))["datasetVersion"]["verification"]
    assert not checked["ok"], checked  # lost for good, each named: the DELETED mask, and the one whose upload FAILED
    assert any(masks[1]["id"] in p and "DELETED" in p for p in checked["problems"]), checked
    assert any(masks[2]["id"] in p and "FAILED" in p for p in checked["problems"]), checked

    # A delete that died before it committed: refused by a holder, it shows the version READY again, whole.
    await db.dataset_versions.update_one({"_id": object_id(dead["id"])},
                                         {"$set": {"status": "DELETING", "delete_token": ObjectId(), "delete_committed": True}})
    assert (await v013.pin_masks(db)).pins == 0  # committed: its retry releases its pins
    await db.dataset_versions.update_one({"_id": object_id(dead["id"])}, {"$unset": {"delete_committed": ""}})
    assert (await v013.pin_masks(db)).pins == 3
    await v013.backward(db)  # the pins stay: version 12 writes the same ones
    assert await db.retentions.count_documents({"asset_id": {"$in": mask_ids}}) == 6
