"""Start and stop the local services: FerretDB on SQLite (embedded default, tests) and MinIO (tests).

The binaries are built once by `scripts/build-services.sh` into a cache outside the repo; this
module only finds and runs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

FERRETDB_VERSION = "v1.24.2"  # built with our changes: scripts/build-services.sh
# Our changes to FerretDB, whose hash names a build in the cache (as scripts/build-services.sh names it).
FERRETDB_SOURCES = Path(__file__).resolve().parent.parent / "scripts" / "ferretdb"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"  # see scripts/build-services.sh


class ServiceError(RuntimeError):
    """A local service could not be found or started; the message says what to do."""


def binary_cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "graphlake" / "bin"
    return Path(os.environ.get("GRAPHLAKE_BIN_CACHE", default))


def ferretdb_build() -> str:
    """The name of the FerretDB build these sources make: the version and a hash of our changes."""
    sources = sorted(p for p in FERRETDB_SOURCES.iterdir() if p.suffix in (".go", ".py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    return f"{FERRETDB_VERSION}-graphlake-{digest}"


def find_binary(kind: str, configured: Path | None = None) -> Path:
    """The ferretdb or minio binary: the configured path, the build cache, or the PATH."""
    version = ferretdb_build() if kind == "ferretdb" else MINIO_VERSION
    candidates = [configured, binary_cache() / f"{kind}-{version}"]
    on_path = shutil.which(kind)
    candidates.append(Path(on_path) if on_path else None)
    for candidate in candidates:
        if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(
        f"no {kind} binary found (looked in {binary_cache()}). Build it with "
        f"`scripts/build-services.sh {kind}` (needs Go; `make run` / `make test` do this)"
        + (", or set GRAPHLAKE_MONGODB_URL to use a running MongoDB instead." if kind == "ferretdb" else ".")
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class Service:
    """A child process serving on a loopback port."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self, ready: callable, timeout: float = 30.0) -> None:  # type: ignore[valid-type]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it in order
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"{self.name} did not become ready within {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_ferretdb(binary: Path, data_dir: Path, port: int | None = None, *, sync_every_commit: bool = False,
                   extra_args: Sequence[str] = ()) -> Service:
    """FerretDB with its SQLite backend, all its files under `data_dir`.

    SQLite's WAL is fsynced at checkpoints, not on every commit (`synchronous=NORMAL`), unless
    `sync_every_commit`. That is MongoDB's own default (a write is acknowledged before its journal
    is flushed): an acknowledged write survives Graphlake or FerretDB crashing, and a power cut can
    lose the last moments of writes, never the database's consistency. It makes every write about
    three times faster (0.25 ms instead of 0.7 ms an insert here).
    """
    port = port or free_port()
    db_dir = data_dir / "sqlite"
    state_dir = data_dir / "state"
    db_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    service = Service(
        name="FerretDB",
        args=[
            str(binary), "--handler=sqlite",
            f"--sqlite-url=file:{db_dir}/?_pragma=synchronous({'full' if sync_every_commit else 'normal'})",
            f"--listen-addr=127.0.0.1:{port}", f"--state-dir={state_dir}",
            "--debug-addr=-", "--telemetry=disable", "--log-level=warn", *extra_args,
        ],
        port=port,
        log_path=data_dir / "ferretdb.log",
    )
    service.start(ready=lambda: port_open(port))
    return service


@dataclass
class EmbeddedDatabase:
    """The embedded FerretDB of a data dir, shared by `serve` and the other CLI commands.

    A pid file records a running instance, so `graphlake token create` next to a running
    server talks to the same FerretDB instead of opening the SQLite files a second time.
    """

    url: str
    service: Service | None  # None when another process owns it

    def stop(self) -> None:
        if self.service:
            self.service.stop()
            with contextlib.suppress(FileNotFoundError):
                (self.service.log_path.parent / "ferretdb.pid").unlink()


def embedded_database(binary: Path | None, data_dir: Path, port: int, *, sync_every_commit: bool = False) -> EmbeddedDatabase:
    ferret_dir = data_dir.resolve() / "ferretdb"
    pid_file = ferret_dir / "ferretdb.pid"
    url = f"mongodb://127.0.0.1:{port}/"
    if pid_file.exists():
        pid, _, owned_port = pid_file.read_text().partition(":")
        if pid.isdigit() and _pid_alive(int(pid)) and owned_port == str(port) and port_open(port):
            return EmbeddedDatabase(url=url, service=None)
    if port_open(port):
        raise ServiceError(
            f"port {port} is taken by another program; set GRAPHLAKE_FERRETDB_PORT to a free port"
        )
    service = start_ferretdb(find_binary("ferretdb", binary), ferret_dir, port, sync_every_commit=sync_every_commit)
    assert service.process is not None
    pid_file.write_text(f"{service.process.pid}:{port}")
    return EmbeddedDatabase(url=url, service=service)


def start_minio(binary: Path, data_dir: Path, access_key: str, secret_key: str) -> Service:
    """A single-node MinIO on loopback, its objects under `data_dir`."""
    port, console_port = free_port(), free_port()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/minio/health/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    service = Service(
        name="MinIO",
        args=[str(binary), "server", str(data_dir / "data"), "--address", f"127.0.0.1:{port}",
              "--console-address", f"127.0.0.1:{console_port}", "--quiet"],
        port=port,
        log_path=data_dir / "minio.log",
        env={"MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key,
             "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"},
    )
    service.start(ready=ready, timeout=60)
    return service
