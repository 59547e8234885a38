"""The embedded database of `make run`: FerretDB on SQLite under the data dir, shared, persistent,
and the indexes Graphlake keeps on it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from documents.annotation import AnnotationRecord
from documents.api_token import ApiToken
from documents.asset import Asset
from documents.dataset import Datum
from documents.event import Event
from documents.indexes import On, servers_of
from documents.retention import AssetRetention
from graphlake.database import PARTIAL_BUILD, ensure_indexes, index_choice, served_build
from graphlake.local_services import GO_RUNTIME, embedded_database, find_binary, free_port, start_ferretdb
from resolvers.context import AppState
from tests.waiting import wait_for


def test_data_survives_a_restart_and_a_running_instance_is_shared(tmp_path: Path) -> None:
    first = embedded_database(None, tmp_path)
    assert first.service is not None and first.service.process is not None
    shared = embedded_database(None, tmp_path)  # a CLI command next to a running server
    try:
        assert shared.service is None and shared.url == first.url
        with MongoClient(first.url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1", "text": "kept"})
        # The process that started it leaves first: it keeps running for the one still using it ...
        first.stop()
        with MongoClient(shared.url, serverSelectionTimeoutMS=5000) as client:
            assert client.lake.notes.find_one({"_id": "n1"}) == {"_id": "n1", "text": "kept"}
    finally:
        shared.stop()  # ... which, the last to leave, stops it
        first.stop()  # (twice is harmless)
    assert first.service.process.wait(timeout=10) is not None  # stopped by the other user, reaped here
    assert not (tmp_path / "ferretdb" / "ferretdb.pid").exists() and not shared.socket.exists()
    assert (tmp_path / "ferretdb" / "sqlite").is_dir()

    # Restarted fsyncing every commit (GRAPHLAKE_FERRETDB_SYNC_EVERY_COMMIT): the same files, the same data.
    second = embedded_database(None, tmp_path, sync_every_commit=True)
    assert second.service is not None and any("synchronous(full)" in arg for arg in second.service.args)
    assert any("synchronous(normal)" in arg for arg in first.service.args)
    try:
        with MongoClient(second.url, serverSelectionTimeoutMS=5000) as client:
            assert client.lake.notes.find_one({"_id": "n1"}) == {"_id": "n1", "text": "kept"}
    finally:
        second.stop()


def _environment(pid: int) -> dict[str, str]:
    """What a running process was started with (Linux)."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def test_ferretdb_runs_with_graphlakes_collector_settings_unless_the_operator_sets_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    ours = start_ferretdb(find_binary("ferretdb"), tmp_path / "ours")
    try:
        assert ours.process is not None
        seen = _environment(ours.process.pid)
        assert {name: seen.get(name) for name in GO_RUNTIME} == {"GOGC": "400", "GOMEMLIMIT": "1GiB"}
    finally:
        ours.stop()
    monkeypatch.setenv("GOGC", "150")  # the operator's, in Graphlake's environment
    theirs = start_ferretdb(find_binary("ferretdb"), tmp_path / "theirs")
    try:
        assert theirs.process is not None
        seen = _environment(theirs.process.pid)
        assert (seen.get("GOGC"), seen.get("GOMEMLIMIT")) == ("150", "1GiB")
    finally:
        theirs.stop()


def test_processes_starting_together_agree_on_one_ferretdb(tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:  # each call locks through descriptors of its own, as processes do
        started = list(pool.map(lambda _: embedded_database(None, tmp_path), range(4)))
    try:
        assert sum(db.service is not None for db in started) == 1
        with MongoClient(started[0].url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1"})
    finally:
        for db in started:
            db.stop()
    assert not started[0].socket.exists()


def test_a_killed_ferretdb_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    killed = embedded_database(None, tmp_path)
    assert killed.service is not None and killed.service.process is not None
    killed.service.process.kill()
    killed.service.process.wait()
    assert killed.socket.exists()  # FerretDB had no chance to remove it
    again = embedded_database(None, tmp_path)
    try:
        assert again.service is not None
        with MongoClient(again.url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1"})
    finally:
        killed.stop()
        again.stop()
    assert not again.socket.exists()


def test_a_dead_ferretdb_is_started_again_by_the_process_using_it(tmp_path: Path) -> None:
    """What the server's watchdog calls (graphlake/runtime.keep_running): a FerretDB killed under a
    running server left the lake UNAVAILABLE until some command happened to start one."""
    database = embedded_database(None, tmp_path)
    try:
        assert database.revive() is None  # it runs: nothing to do
        first = database.service.process  # type: ignore[union-attr]
        first.kill()
        first.wait()
        assert database.revive() == -9  # SIGKILL, said; and a new one serves the same files
        assert database.service.process is not first and database.service.process.poll() is None  # type: ignore[union-attr]
        assert (tmp_path / "ferretdb" / "ferretdb.pid").read_text() == str(database.service.process.pid)  # type: ignore[union-attr]
        with MongoClient(database.url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1"})
        # Another process's FerretDB (this one did not start it) dies: the same.
        other = embedded_database(None, tmp_path)
        assert other.service is None
        database.service.process.kill()  # type: ignore[union-attr]
        database.service.process.wait()  # type: ignore[union-attr]
        assert other.revive() == 0 and other.service is not None
        with MongoClient(other.url, serverSelectionTimeoutMS=5000) as client:
            assert client.lake.notes.find_one({"_id": "n1"}) == {"_id": "n1"}
        other.stop()  # not the last user: the FerretDB it started outlives it
        assert other.service.process.poll() is None
    finally:
        database.stop()  # the last user: stops the FerretDB running now (the pid file's), not the dead one it had started
    assert not database.socket.exists()
    assert other.service.process.wait(10) is not None


async def test_the_server_brings_a_killed_ferretdb_back(tmp_path: Path) -> None:
    """`graphlake serve` on the embedded default: FerretDB killed, the lake is UNAVAILABLE for a
    moment, then ready again without anyone running anything; and stopping the server stops the
    FerretDB it started second."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_") or k == "GRAPHLAKE_BIN_CACHE"},
           "GRAPHLAKE_DATA_DIR": str(tmp_path), "GRAPHLAKE_PORT": str(port), "GRAPHLAKE_BOOTSTRAP_ADMIN_TOKEN": "false"}
    with open(tmp_path / "server.log", "ab") as log:  # noqa: ASYNC230
        server = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", "serve", env=env,
                                                      stdout=asyncio.subprocess.DEVNULL, stderr=log)
    pid_file = tmp_path / "ferretdb" / "ferretdb.pid"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_for(ready, timeout=60, what="the server to be ready")
        first = int(pid_file.read_text())
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: pid_file.read_text() != str(first), timeout=30, what="a new FerretDB")
        await wait_for(ready, timeout=30, what="the lake to be ready again")
        second = int(pid_file.read_text())
        assert "the embedded FerretDB had stopped (exit status -9); started it again" in (tmp_path / "server.log").read_text()
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 30)
        await wait_for(lambda: not _alive(second), timeout=15, what="the second FerretDB to stop with the server")
    finally:
        if server.returncode is None:
            server.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


async def test_id_lookups_use_the_index_and_each_server_gets_its_indexes(state: AppState) -> None:
    """Our FerretDB build answers `_id` lookups from its index (scripts/ferretdb), and each server
    keeps the indexes declared for it (documents/indexes.py): all on MongoDB, the value indexes
    that serve hot reads (and the unique ones) on the embedded default."""
    db = state.db
    on_ferretdb = "ferretdbVersion" in await db.client.admin.command("buildInfo")
    await db.notes.insert_many([{"_id": f"n{i}", "field": i} for i in range(50)])
    if on_ferretdb:
        for by_id in ({"_id": "n7"}, {"_id": {"$in": ["n7", "n9", "missing"]}}):  # DataLoaders use $in
            plan = (await db.command("explain", {"find": "notes", "filter": by_id}))["queryPlanner"]["Plan"]
            assert any("USING INDEX" in step for step in plan), (by_id, plan)
    # FerretDB still applies the whole filter to what the index returns.
    found = await db.notes.find({"_id": {"$in": ["n7", "n9", "missing"]}, "field": {"$gt": 8}}).to_list()
    assert found == [{"_id": "n9", "field": 9}]
    servers, partial = await index_choice(db)
    assert servers == (On.EMBEDDED if on_ferretdb else On.MONGODB)  # the suite runs our FerretDB build, or MongoDB
    assert "graphlake_probe" not in await db.list_collection_names()  # asked of our own collection (migration 2 drops the old probe)
    events = Event.get_pymongo_collection()
    await events.create_index("level", name="level_time")  # as an earlier start would have left it
    await events.drop_index("timeline")
    await events.create_index([("archived", 1), ("timestamp", -1)], name="timeline")  # as an older version made it
    await ensure_indexes(Event, servers=servers, partial=partial)
    timeline = (await events.index_information())["timeline"]["key"]
    assert [key for key, _ in timeline] == ["archived", "timestamp", "_id", "level"]  # made again with today's fields
    for model in (Event, ApiToken):
        names = set(await model.get_pymongo_collection().index_information())
        for index in model.get_settings().indexes:
            assert (index.name in names) == bool(servers_of(index.index) & servers), index.name
    # a FerretDB that is not our build gets the embedded default's unique indexes only (not MongoDB's
    # partial ones, such as events' key_unique_partial)
    try:
        await ensure_indexes(Event, servers=None)
        await ensure_indexes(ApiToken, servers=None)
        for model in (Event, ApiToken):
            names = set(await model.get_pymongo_collection().index_information())
            for index in model.get_settings().indexes:
                unique_here = index.index.document.get("unique", False) and bool(servers_of(index.index) & On.EMBEDDED)
                assert (index.name in names) == unique_here, index.name
    finally:  # the session's database keeps its indexes for the tests after this one
        await ensure_indexes(Event, servers=servers, partial=partial)
        await ensure_indexes(ApiToken, servers=servers, partial=partial)


PARTIAL = {Asset: ["owner_user_created", "unpinned_at", "storage_uri"], Event: ["key_unique", "key"],
           AnnotationRecord: ["mask_asset"], Datum: ["deleting"], AssetRetention: ["adding_at"]}


async def partial_filters(model: type) -> dict[str, object]:
    return {name: info.get("partialFilterExpression")
            for name, info in (await model.get_pymongo_collection().index_information()).items()}


async def test_indexes_declared_partial_hold_only_documents_with_their_field(state: AppState) -> None:
    """On our build that makes partial indexes (documents/indexes.py: embedded_partial), an asset
    without an owner, an event without a key, a record that is not a mask, a datum no delete marks,
    a pin no add marks make no entry in those
    indexes; the others hold every document. A lake whose indexes an older build made full gets them
    partial at its next start, and back full on a build without them."""
    build = await served_build(state.db)
    if build is None:
        pytest.skip("MongoDB gets the full indexes, as declared")
    assert build >= PARTIAL_BUILD
    try:
        for model, names in PARTIAL.items():
            filters = await partial_filters(model)
            for field in model.get_settings().indexes:
                first = next(iter(field.index.document["key"]))
                want = {first: {"$exists": True}} if field.name in names else None
                assert filters.get(field.name) == want or field.name not in filters, field.name
            assert all(name in filters for name in names), filters
            await ensure_indexes(model, servers=On.EMBEDDED, partial=False)  # a build without them
            assert not any((await partial_filters(model)).values())
            await ensure_indexes(model, servers=On.EMBEDDED, partial=True)  # the next start on ours
            assert {name for name, f in (await partial_filters(model)).items() if f} == set(names)
    finally:  # the session's database keeps its indexes for the tests after this one
        for model in PARTIAL:
            await ensure_indexes(model, servers=On.EMBEDDED, partial=True)


async def test_two_processes_starting_at_once_both_make_the_indexes_again(state: AppState) -> None:
    """Two servers on one database, started together after an upgrade that changed an index (here
    its partial filter): both found it to make again and both dropped it; the second's drop found
    nothing there (IndexNotFound) and its start failed. Both now start, and the index is as declared."""
    build = await served_build(state.db)
    if build is None or build < PARTIAL_BUILD:
        pytest.skip("the change raced here is a partial filter, which only our build makes")
    try:
        await ensure_indexes(Asset, servers=On.EMBEDDED, partial=False)  # as an older build left them
        await asyncio.gather(*(ensure_indexes(Asset, servers=On.EMBEDDED, partial=True) for _ in range(2)))
        assert {name for name, f in (await partial_filters(Asset)).items() if f} == set(PARTIAL[Asset])
    finally:
        await ensure_indexes(Asset, servers=On.EMBEDDED, partial=True)
