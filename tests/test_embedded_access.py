"""Only the owner of the data dir reaches the embedded database: FerretDB listens on a Unix socket in
a 0700 directory and on no TCP port, and the data dir, the database's files and the signing secret
are owner-only, made so again at every start when something left them open (graphlake/data_dir.py).
Every process of the owner still shares the one database: the CLI next to a running server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from graphlake.local_services import SOCKET_NAME, embedded_database, find_binary, free_port, start_ferretdb
from graphlake.mounts import signing_secret
from graphlake.settings import Settings
from tests.operations import Api
from tests.waiting import wait_for


@pytest.fixture
def shared_parent() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is its owner's alone): only Graphlake's
    own permissions then stand between another user and what it stores."""
    parent = Path(tempfile.mkdtemp(prefix="graphlake-access-"))
    parent.chmod(0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def open_to_others(*roots: Path) -> list[str]:
    """The entries at and below `roots` that give group or others any permission."""
    found = [entry for root in roots for entry in (root, *root.rglob("*"))]
    return [f"{entry} {stat.filemode(entry.lstat().st_mode)}" for entry in found
            if not entry.is_symlink() and entry.lstat().st_mode & 0o077]


def tcp_listeners(pid: int) -> list[str]:
    """The local addresses (hex, as /proc shows them) of the TCP sockets process `pid` listens on."""
    mine = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a descriptor the process closed since the listing
            target = os.readlink(fd)
            if target.startswith("socket:["):
                mine.add(target[len("socket:["):-1])
    listening = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in mine:  # 0A: LISTEN; field 9 is the socket's inode
                listening.append(fields[1])
    return listening


def leave_open(data_dir: Path) -> None:
    """The data dir as an earlier version, or a copy made with the usual umask, left it: open to all."""
    sqlite = data_dir / "ferretdb" / "sqlite"
    sqlite.mkdir(parents=True)
    (data_dir / "ferretdb" / "ferretdb.log").write_text("")
    (data_dir / "signing.key").write_text("ab" * 32)
    for entry in (data_dir, data_dir / "ferretdb", sqlite):
        entry.chmod(0o755)
    for entry in (data_dir / "ferretdb" / "ferretdb.log", data_dir / "signing.key"):
        entry.chmod(0o644)


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads the listening sockets from Linux's /proc")
def test_the_database_listens_on_an_owner_only_socket_and_no_tcp_port(shared_parent: Path, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    data_dir = shared_parent / "lake"
    leave_open(data_dir)
    with caplog.at_level(logging.WARNING, logger="graphlake"):
        db = embedded_database(None, data_dir)
        try:
            with MongoClient(db.url, serverSelectionTimeoutMS=5000) as client:
                client.lake.notes.insert_one({"_id": "n1"})  # its SQLite files exist now
            assert signing_secret(Settings(_env_file=None, data_dir=data_dir)) == b"ab" * 32  # kept, tightened
            assert db.service is not None and db.service.process is not None
            socket = db.service.socket
            assert socket == data_dir.resolve() / "ferretdb" / "run" / SOCKET_NAME and socket.is_socket()
            assert db.url == "mongodb://" + str(socket).replace("/", "%2F")
            assert tcp_listeners(db.service.process.pid) == []
            assert {p.name for p in (data_dir / "ferretdb" / "sqlite").iterdir()} >= {"lake.sqlite"}
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700 and stat.S_IMODE(socket.parent.stat().st_mode) == 0o700
            assert open_to_others(data_dir) == []
        finally:
            db.stop()
    tightened = [r.getMessage() for r in caplog.records if "owner-only" in r.getMessage()]
    assert any(str(data_dir.resolve()) in m and "mode 755" in m for m in tightened), tightened
    assert any(f"2 entries under {data_dir.resolve() / 'ferretdb'}" in m for m in tightened), tightened  # sqlite/, the log
    assert any("signing.key" in m and "mode 644" in m for m in tightened), tightened
    assert not socket.exists()  # FerretDB removed it as it stopped

    # The probe is not blind: a FerretDB on TCP (as the suite's own) is seen listening.
    on_tcp = start_ferretdb(find_binary("ferretdb"), tmp_path / "tcp")
    try:
        assert on_tcp.process is not None and len(tcp_listeners(on_tcp.process.pid)) == 1
    finally:
        on_tcp.stop()


PROBE = """
import os, socket, sys
def attempt(what, action):
    try:
        action()
        print(what, "ok")
    except OSError as error:
        print(what, type(error).__name__)
attempt("list", lambda: os.listdir(sys.argv[1]))
attempt("connect", lambda: socket.socket(socket.AF_UNIX).connect(sys.argv[2]))
for path in sys.argv[3:]:
    attempt("read " + os.path.basename(path), lambda: open(path, "rb").read(1))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_another_local_user_can_neither_connect_nor_read(shared_parent: Path) -> None:
    data_dir = shared_parent / "lake"
    db = embedded_database(None, data_dir)
    try:
        with MongoClient(db.url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1"})
        signing_secret(Settings(_env_file=None, data_dir=data_dir))
        assert db.service is not None and db.service.socket is not None
        python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")  # one `nobody` may run
        if python is None:
            pytest.skip("no system python3 for the other user to run")
        files = [data_dir / "ferretdb" / "sqlite" / "lake.sqlite", data_dir / "signing.key"]
        probe = subprocess.run([python, "-I", "-c", PROBE, str(shared_parent), str(db.service.socket), *map(str, files)],
                               user=65534, group=65534, extra_groups=[], cwd="/", capture_output=True, text=True, timeout=30)
    finally:
        db.stop()
    assert probe.stdout.splitlines() == ["list ok", "connect PermissionError", "read lake.sqlite PermissionError",
                                         "read signing.key PermissionError"], probe.stderr


async def test_the_cli_and_a_running_server_share_the_embedded_database(tmp_path: Path) -> None:
    """One FerretDB for every process of the owner, whichever started it: it runs until the last one leaves."""
    data_dir, port = tmp_path / "lake", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_DATA_DIR=str(data_dir), GRAPHLAKE_PORT=str(port), GRAPHLAKE_BOOTSTRAP_ADMIN_TOKEN="false",
               GRAPHLAKE_LOG_LEVEL="WARNING", COLUMNS="2000")

    def graphlake(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    first = embedded_database(None, data_dir)  # as a long CLI command (a backup, say) started before the server
    assert first.service is not None and first.service.process is not None
    with (tmp_path / "server.log").open("w") as log:
        server = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", "serve", env=env, cwd=tmp_path,
                                                      stdout=log, stderr=log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            async def ready() -> bool:
                assert server.returncode is None, (tmp_path / "server.log").read_text()
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=60, interval=0.1, what="graphlake serve on the embedded default")
            first.stop()  # the command that started FerretDB ends: the server still uses it

            created = await asyncio.to_thread(graphlake, "token", "create", "lab-bot", "--role", "admin")
            assert created.returncode == 0, created.stderr
            secret = created.stdout.strip().splitlines()[-1]
            # The server finds the token the CLI wrote: one database, reached through its socket.
            me = (await Api(http).data("Me", token=secret))["me"]
            assert me["tokenName"] == "lab-bot" and me["role"] == "ADMIN"
            assert "lab-bot" in (await asyncio.to_thread(graphlake, "token", "list")).stdout
            assert first.service.process.poll() is None and await ready()  # still the first FerretDB
    finally:
        server.send_signal(signal.SIGTERM)
        await stopped_or_explained(server, tmp_path / "server.log")
        first.stop()
    # The server, the last to leave, stopped it.
    assert await asyncio.to_thread(first.service.process.wait, 10) is not None
    assert not (data_dir / "ferretdb" / "ferretdb.pid").exists() and not first.socket.exists()


async def stopped_or_explained(server: asyncio.subprocess.Process, log: Path) -> None:
    """Wait for the server to exit after SIGTERM; if it does not, fail with its log and its threads' stacks."""
    try:
        await asyncio.wait_for(server.wait(), timeout=30)
    except TimeoutError:
        server.send_signal(signal.SIGUSR1)  # `graphlake serve` dumps every thread's stack to its stderr
        await asyncio.sleep(1)
        server.kill()
        await server.wait()
        pytest.fail(f"the server did not stop within 30 s of SIGTERM; its log:\n{log.read_text()}")


def test_a_data_dir_too_deep_for_a_socket_address_gets_its_socket_in_the_runtime_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="run-"))  # short, as XDG_RUNTIME_DIR is (/run/user/UID)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # a socket's address holds about 100 bytes
    db = embedded_database(None, deep)
    try:
        assert db.service is not None and db.service.socket is not None and db.service.process is not None
        ferret = db.service.process
        assert db.service.socket.parent.parent == runtime.resolve()
        assert stat.S_IMODE(db.service.socket.parent.stat().st_mode) == 0o700
        with MongoClient(db.url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1"})
        again = embedded_database(None, deep)  # as another process would: it finds the one running by its name
        assert again.service is None
        again.stop()  # a user left holding its lock would keep FerretDB running after this test
    finally:
        db.stop()
        shutil.rmtree(runtime)
    assert ferret.poll() is not None  # the last user stopped it
