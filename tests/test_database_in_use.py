"""A migration (either way) and a restore refuse while a server or a backup uses the database, on any
host, unless forced; and a backup that a forced migration overtook is not kept under a wrong label."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from migrations import SCHEMA_VERSION, InUse, check_schema, migrate, read_state
from resolvers.context import AppState
from services.backups.reader import restore_backup
from services.backups.writer import write_backup
from services.events.feed import WRITERS_COLLECTION
from tests import factories
from tests.operations import Api
from tests.processes import start_server_process
from tests.waiting import wait_for


async def test_a_migration_or_restore_is_refused_while_a_server_serves_the_database(
        state: AppState, api: Api, contributor: str, tmp_path: Path) -> None:
    """The served app of this session beats in `feed_writers`: taking its database to version 10
    would leave it writing version 11's packs, which version 10 never reads. Refused, naming the
    server; a migration with nothing to do, and a dry run, go through all the same."""
    await factories.value_asset(api, contributor)
    backup = tmp_path / "backup"
    await write_backup(state.db, backup, graphlake_version="test")
    before = await read_state(state.db)

    with pytest.raises(InUse, match=rf"a server \(pid {os.getpid()} on {socket.gethostname()}\), seen \d+\.\d s ago"
                                    r".*--force"):
        await migrate(state.db, writer="test", to=10)
    with pytest.raises(InUse, match=r"a restore would change database"):
        await restore_backup(state.db, backup, local_roots={}, replace=True)
    assert await read_state(state.db) == before  # nothing was touched

    assert await migrate(state.db, writer="test") == []  # at its version already: nothing to do, no refusal
    assert len(await migrate(state.db, writer="test", to=10, dry_run=True)) == SCHEMA_VERSION - 10
    await factories.value_asset(api, contributor)  # still serving, on the shapes it started on


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, cwd=env["GRAPHLAKE_DATA_DIR"],
                          capture_output=True, text=True, timeout=120)


async def test_the_commands_refuse_while_a_server_on_another_host_runs_and_one_forced_past_it_stops_its_writes(
        scratch_db: AsyncDatabase, mongodb_url: str, tmp_path: Path) -> None:
    """`graphlake db downgrade` (and `migrate`) run where the server's audit journal is not (another
    host) see it by its heartbeat in the database. Forced past it, the server notices the schema
    changed under it: not ready, and mutations UNAVAILABLE rather than written in the shapes it
    started on. A server that stopped says so as it stops, so the migration `make run` runs before
    its next start goes through at once."""
    server_dir, cli_dir = tmp_path / "server", tmp_path / "elsewhere"
    server_dir.mkdir()
    cli_dir.mkdir()
    process, url = await start_server_process(mongodb_url, scratch_db.name, server_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name, GRAPHLAKE_DATA_DIR=str(cli_dir),
               COLUMNS="2000")
    create = ("CreateCollection", {"input": {"name": "plates"}})
    try:
        (beat,) = [row async for row in scratch_db[WRITERS_COLLECTION].find()]
        refused = await asyncio.to_thread(cli, env, "db", "downgrade", "--to", "10", "--no-backup")
        said = " ".join(refused.stderr.split())
        assert refused.returncode == 1 and "Traceback" not in said, said
        assert f"a server (pid {beat['pid']} on {beat['host']}), seen" in said and "--force" in said
        assert (await read_state(scratch_db)).version == SCHEMA_VERSION
        nothing_to_do = await asyncio.to_thread(cli, env, "db", "migrate")  # as `make run` starts a second server
        assert nothing_to_do.returncode == 0, nothing_to_do.stderr

        made = await asyncio.to_thread(cli, env, "token", "create", "writer", "--role", "contributor")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        async with httpx.AsyncClient(base_url=url) as http:
            api = Api(http)
            await api.data(*create, token=token)  # served as ever
            forced = await asyncio.to_thread(cli, env, "db", "downgrade", "--to", "10", "--no-backup", "--force")
            assert forced.returncode == 0, forced.stderr

            async def not_ready() -> dict | None:
                response = await http.get("/readyz")
                return response.json() if response.status_code == 503 else None

            assert (await wait_for(not_ready, what="the server to see its schema changed"))["failing"] == ["schema"]
            refused_write = await api.error(*create, token=token, status=503)
            assert refused_write["extensions"]["code"] == "UNAVAILABLE"
            assert refused_write["extensions"]["retry"] is False  # a restart mends it, not a retry
            assert "schema changed under it (it holds schema version 10 now)" in refused_write["message"]
            assert "Restart it" in refused_write["message"]
            assert (await http.get("/healthz")).status_code == 200  # alive, only not taking writes
    finally:
        process.terminate()
        await process.wait()
    assert (await scratch_db[WRITERS_COLLECTION].find_one())["alive_at"] is None
    upgraded = await asyncio.to_thread(cli, env, "db", "migrate", "--no-backup")  # `make run` once more
    assert upgraded.returncode == 0, upgraded.stderr
    assert (await read_state(scratch_db)).current


HELD_BACKUP = """
import asyncio, sys
from pathlib import Path
from pymongo import AsyncMongoClient
from services.backups.writer import write_backup

def wait_for_a_line(line):  # after each collection: held open until the test says go on
    print(line, flush=True)
    sys.stdin.readline()

client = AsyncMongoClient(sys.argv[1], tz_aware=True)
try:
    asyncio.run(write_backup(client[sys.argv[2]], Path(sys.argv[3]), graphlake_version="test", progress=wait_for_a_line))
except Exception as error:
    print(f"failed: {error}", flush=True)
    sys.exit(1)
print("done", flush=True)
"""


async def test_a_migration_waits_for_a_running_backup_and_one_forced_under_it_fails_the_backup(
        scratch_db: AsyncDatabase, mongodb_url: str, tmp_path: Path) -> None:
    """A backup reads the schema record and the list of collections as it starts: a downgrade
    under it moved version 11's packs into a collection it never copied, under a manifest still
    saying 11. Its lease keeps migrations and restores off while it runs; a migration forced past
    it fails the backup at its end, leaving nothing behind."""
    await check_schema(scratch_db, "test")
    for name in ("assets", "events"):
        await scratch_db[name].insert_one({"name": f"one of {name}"})
    earlier = tmp_path / "earlier"
    await write_backup(scratch_db, earlier, graphlake_version="test")
    destination = tmp_path / "backup"
    backup = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HELD_BACKUP, mongodb_url, scratch_db.name, str(destination),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert backup.stdin is not None and backup.stdout is not None
    try:
        assert (await asyncio.wait_for(backup.stdout.readline(), 60)).startswith(b"assets:")
        with pytest.raises(InUse, match=rf"a backup into {destination} \(pid {backup.pid} on {socket.gethostname()}\), "
                                        r"running for \d+ s"):
            await migrate(scratch_db, writer="test", to=10)
        with pytest.raises(InUse, match=rf"a restore would change .* a backup into {destination}"):
            await restore_backup(scratch_db, earlier, local_roots={}, replace=True)
        assert (await read_state(scratch_db)).version == SCHEMA_VERSION

        await migrate(scratch_db, writer="test", to=10, force=True)  # what a migration did before it looked
        for _ in range(2):
            backup.stdin.write(b"\n")
        await backup.stdin.drain()
        lines = (await asyncio.wait_for(backup.stdout.read(), 60)).decode()
        assert await backup.wait() == 1, lines
        assert f"database {scratch_db.name!r} changed while it was backed up (schema version " \
               f"{SCHEMA_VERSION} when it started, 10 now)" in lines
        assert [p.name for p in tmp_path.iterdir()] == ["earlier"]  # neither the backup nor its partial
        assert await scratch_db.graphlake_schema.count_documents({"_id": {"$regex": "^lease: "}}) == 0
    finally:
        if backup.returncode is None:
            backup.kill()
            await backup.wait()
