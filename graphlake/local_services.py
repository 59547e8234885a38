"""Start and stop the local services: FerretDB on SQLite (embedded default, tests) and MinIO (tests).

The binaries are built once by `scripts/build-services.sh` into a cache outside the repo; this
module only finds and runs them. Every file they write is their owner's alone (umask 077).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from graphlake.data_dir import owner_only_dir, tighten, tighten_tree

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
    """The ferretdb or minio binary: the configured path, else the build cache, else the PATH."""
    if configured is not None:
        # Only it: one missing (a typo, an unmounted volume) or not executable was passed over for
        # the build cache's, and the lake ran on another FerretDB than the one configured, unsaid.
        if configured.is_file() and os.access(configured, os.X_OK):
            return configured
        raise ServiceError(f"GRAPHLAKE_{kind.upper()}_BIN: {configured} is not an executable file")
    version = ferretdb_build() if kind == "ferretdb" else MINIO_VERSION
    candidates = [binary_cache() / f"{kind}-{version}"]
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


def socket_open(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket at `path`."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(0.2)
        try:
            sock.connect(str(path))
        except OSError:  # none there, or a file left by a process that was killed
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _write_owner_only(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@dataclass
class Service:
    """A child process serving on a loopback port or a Unix socket."""

    name: str
    args: list[str]
    port: int | None
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    socket: Path | None = None

    def start(self, ready: callable, timeout: float = 30.0) -> None:  # type: ignore[valid-type]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it in order
            umask=0o077,  # its database files, state and socket: for their owner only
        )
        os.close(log)
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


def start_ferretdb(binary: Path, data_dir: Path, port: int | None = None, *, unix_socket: Path | None = None,
                   sync_every_commit: bool = False, extra_args: Sequence[str] = ()) -> Service:
    """FerretDB with its SQLite backend, all its files under `data_dir`, listening on `unix_socket`
    alone when one is given (nothing on TCP), else on a loopback port (`port` or a free one).

    SQLite's WAL is fsynced at checkpoints, not on every commit (`synchronous=NORMAL`), unless
    `sync_every_commit`. That is MongoDB's own default (a write is acknowledged before its journal
    is flushed): an acknowledged write survives Graphlake or FerretDB crashing, and a power cut can
    lose the last moments of writes, never the database's consistency. It makes every write about
    three times faster (0.25 ms instead of 0.7 ms an insert here).
    """
    if unix_socket is None:
        port = port or free_port()
    db_dir = data_dir / "sqlite"
    state_dir = data_dir / "state"
    db_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # An empty --listen-addr opens no TCP listener at all.
    listen = [f"--listen-addr=127.0.0.1:{port}"] if unix_socket is None else ["--listen-addr=", f"--listen-unix={unix_socket}"]
    service = Service(
        name="FerretDB",
        args=[
            str(binary), "--handler=sqlite",
            f"--sqlite-url=file:{db_dir}/?_pragma=synchronous({'full' if sync_every_commit else 'normal'})",
            *listen, f"--state-dir={state_dir}",
            "--debug-addr=-", "--telemetry=disable", "--log-level=warn", *extra_args,
        ],
        port=port,
        socket=unix_socket,
        log_path=data_dir / "ferretdb.log",
        env=go_runtime_env(),
    )
    service.start(ready=lambda: socket_open(unix_socket) if unix_socket else port_open(port))
    return service


# Go's collector, for FerretDB: a collection when the heap has grown 400% since the last, not 100%
# (Go's default), under a soft cap. FerretDB makes short-lived garbage for every document it
# decodes or encodes, and with the default a quarter of its CPU went to collecting it while a
# version was built. Three interleaved pairs of `bench/exchange.py --skip-bundle --runs 1`: COCO
# import 6.77 -> 6.26 s, export 3.93 -> 3.45 s; its peak memory 93 -> 172 MB (GOGC=1000: 245 MB
# for little more). The cap makes the collector work harder as the heap nears it rather than grow
# past it. An operator's own GOGC or GOMEMLIMIT, in Graphlake's environment, wins.
GO_RUNTIME = {"GOGC": "400", "GOMEMLIMIT": "1GiB"}


def go_runtime_env() -> dict[str, str]:
    """GO_RUNTIME, but for the variables the environment sets already."""
    return {name: value for name, value in GO_RUNTIME.items() if name not in os.environ}


SOCKET_NAME = "db.sock"
# A socket's address holds at most 108 bytes on Linux and 104 on macOS, its final NUL included.
SOCKET_PATH_MAX = 100


@dataclass
class EmbeddedDatabase:
    """The embedded FerretDB of a data dir, shared by `serve` and the other CLI commands.

    It listens on a Unix socket in a directory only the data dir's owner may enter, and on no TCP
    port: FerretDB v1 has no authentication of its own worth the name (anyone who reaches it may
    read the lake or mint an ADMIN token), so reaching it is the permission. Whatever runs as the
    owner (`graphlake token create` next to a running server, a second server on the same data dir)
    connects to the same socket instead of opening the SQLite files a second time.

    Each process using it holds a shared lock on `users.lock` until it stops; the last one to stop
    stops FerretDB, whichever process started it, so a server that began using it while a CLI
    command ran keeps it when that command ends. (A process that dies releases its lock with it.)
    """

    url: str
    service: Service | None  # the FerretDB this process started; None when another process did
    ferret_dir: Path
    socket: Path
    binary: Path | None = None  # as configured (GRAPHLAKE_FERRETDB_BIN), for starting it again
    sync_every_commit: bool = False
    user: int | None = None  # the descriptor holding this process's shared lock while it uses the database

    def stop(self) -> None:
        """Stop using the database; stop FerretDB too if no other process uses it."""
        if self.user is None:
            return
        with _locked(self.ferret_dir / "start.lock"):  # no process joins while the last one leaves
            os.close(self.user)
            self.user = None
            if not _no_users(self.ferret_dir):
                return  # a FerretDB this process started outlives it (it runs in a session of its own)
            if self.service and self.service.process and self.service.process.poll() is None:
                self.service.stop()
            else:  # another process's, or one started after ours died: the pid file names the one running
                _stop_ferretdb(self.ferret_dir / "ferretdb.pid", self.socket)
            with contextlib.suppress(FileNotFoundError):
                (self.ferret_dir / "ferretdb.pid").unlink()

    def revive(self) -> int | None:
        """Start FerretDB again if its socket no longer answers (it crashed, or was killed): the exit
        status of the one this process had started (-9 for SIGKILL), or 0 for one it had not; None
        when it runs. The server calls this every few seconds (graphlake/runtime.py): without it, a
        FerretDB that died left the lake UNAVAILABLE until some command happened to start one."""
        with _locked(self.ferret_dir / "start.lock"):
            if self.user is None or socket_open(self.socket):
                return None
            ours = self.service.process if self.service else None
            if ours is not None and ours.poll() is None:
                return None  # alive, only slow to accept: never a second FerretDB over the same files
            if _ferretdb_running(self.ferret_dir / "ferretdb.pid"):
                return None  # one another process started (after ours died, maybe) is there, slow to accept
            self._start()
            return ours.returncode if ours is not None else 0

    def _start(self) -> None:
        """Start FerretDB on the socket (start.lock held) and record its pid for the other processes."""
        _refuse_an_older_tcp_instance(self.ferret_dir / "ferretdb.pid")
        self.socket.unlink(missing_ok=True)  # left by a FerretDB that was killed: it would refuse to listen
        self.service = start_ferretdb(find_binary("ferretdb", self.binary), self.ferret_dir, unix_socket=self.socket,
                                      sync_every_commit=self.sync_every_commit)
        assert self.service.process is not None
        _write_owner_only(self.ferret_dir / "ferretdb.pid", str(self.service.process.pid))


def embedded_database(binary: Path | None, data_dir: Path, *, sync_every_commit: bool = False) -> EmbeddedDatabase:
    """The data dir's FerretDB: the one running (started by another process of its owner), or one
    started now; `stop` it when done. The data dir and the database's files are made owner-only
    first (tightened, and logged, where an older version or a copy left them open)."""
    ferret_dir = owner_only_dir(owner_only_dir(data_dir) / "ferretdb")
    tighten_tree(ferret_dir)
    sock = socket_dir(ferret_dir) / SOCKET_NAME
    db = EmbeddedDatabase(url="mongodb://" + quote(str(sock), safe=""), service=None, ferret_dir=ferret_dir, socket=sock,
                          binary=binary, sync_every_commit=sync_every_commit)
    # One process at a time decides whether to start it: two starting together would both find no
    # socket, and the second would remove the first one's to listen on it over the same files.
    with _locked(ferret_dir / "start.lock"):
        if not socket_open(sock):  # one there was made by a process of its owner: only it can enter that directory
            db._start()
        db.user = os.open(ferret_dir / "users.lock", os.O_RDONLY | os.O_CREAT, 0o600)
        fcntl.flock(db.user, fcntl.LOCK_SH)
    return db


def _no_users(ferret_dir: Path) -> bool:
    """Whether no process holds its shared lock on the database (taken only while holding start.lock)."""
    fd = os.open(ferret_dir / "users.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _stop_ferretdb(pid_file: Path, sock: Path, timeout: float = 10.0) -> None:
    """Stop the FerretDB another process started (it may have exited since) and wait until it is gone.
    Only while its socket answers: otherwise it stopped already, and the pid may be another program's by now."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text().partition(":")[0])
        if not socket_open(sock):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _ferretdb_running(pid_file: Path) -> bool:
    """Whether the process a pid file names still runs, and is a FerretDB (not a process that took
    its pid since; without /proc, any process of that pid counts)."""
    try:
        pid = int(pid_file.read_text().partition(":")[0])
    except (FileNotFoundError, ValueError):
        return False
    if not _running(pid):
        return False
    try:
        return b"ferretdb" in Path(f"/proc/{pid}/cmdline").read_bytes().lower()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True


def _running(pid: int) -> bool:
    """Alive and not a zombie: a FerretDB that stopped but that its parent (the process that started
    it, still running) has not reaped yet has closed its files already."""
    if not Path("/proc/self/stat").exists():  # no /proc (macOS): a zombie counts as running there
        return _pid_alive(pid)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def socket_dir(ferret_dir: Path) -> Path:
    """The directory of the embedded FerretDB's socket, entered by its owner alone (0700): `run/`
    beside its files, or, when that path is too long for a socket's address, a directory named
    after the data dir in the owner's runtime directory (or the temp directory)."""
    inside = ferret_dir / "run"
    if len(os.fsencode(inside / SOCKET_NAME)) <= SOCKET_PATH_MAX:
        return owner_only_dir(inside)
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    outside = base / f"graphlake-{os.getuid()}-{hashlib.sha256(os.fsencode(ferret_dir)).hexdigest()[:16]}"
    with contextlib.suppress(FileExistsError):
        outside.mkdir(mode=0o700)
    # In a shared temp directory another user may have taken the name first: only our own directory will do.
    found = outside.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise ServiceError(f"{outside} (where the embedded database's socket goes, as {inside} is too long a path "
                           "for a socket) is not a directory of yours: remove it, or use a shorter GRAPHLAKE_DATA_DIR")
    tighten(outside)
    if len(os.fsencode(outside / SOCKET_NAME)) > SOCKET_PATH_MAX:
        raise ServiceError("no socket path short enough for the embedded database: use a shorter GRAPHLAKE_DATA_DIR "
                           "or XDG_RUNTIME_DIR")
    return outside


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes, also if this process dies
        yield
    finally:
        os.close(fd)


def _refuse_an_older_tcp_instance(pid_file: Path) -> None:
    """ServiceError while a FerretDB started by an earlier Graphlake (its pid file reads PID:PORT)
    still serves these files on a TCP port: a second FerretDB must not open them beside it."""
    with contextlib.suppress(FileNotFoundError):
        pid, _, port = pid_file.read_text().partition(":")
        if pid.isdigit() and port.isdigit() and _pid_alive(int(pid)) and port_open(int(port)):
            raise ServiceError(f"the embedded database is served on port {port} by process {pid}, started by an earlier "
                               "Graphlake: stop that Graphlake first (this one serves it on a Unix socket only)")


def start_minio(binary: Path, data_dir: Path, access_key: str, secret_key: str,
                cors_allow_origin: str | None = None) -> Service:
    """A single-node MinIO on loopback, its objects under `data_dir`; with `cors_allow_origin`, it lets
    the pages of those origins only (comma-separated) read its answers, else any (MinIO's default)."""
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
             "MINIO_BROWSER": "off", "MINIO_UPDATE": "off",
             **({"MINIO_API_CORS_ALLOW_ORIGIN": cors_allow_origin} if cors_allow_origin else {})},
    )
    service.start(ready=ready, timeout=60)
    return service
