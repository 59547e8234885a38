"""Resume state: the upload sessions a run opened, kept on disk so that a rerun after an
interruption resumes them (only the missing parts or files go) instead of starting over.

The file holds an entry per open session, `{key: {"id", "expires", "file", "host"}}`, and stays as
small as the uploads that can still be resumed: an entry goes when its upload completes, when its
session expires (`expires`, the server's `expiresAt`: an expired session cannot be resumed), and
when its file is gone or changed (its key holds the size and time it had: it can never be asked
for again), which the first write of each ResumeState checks. An interrupted upload never rerun
stayed in it for good.

Only the files of entries made on this machine (`host`) are checked: a home directory shared
between machines (NFS on a cluster) shares the file, and a run on one machine, which cannot see
another's local disk, dropped that machine's interrupted uploads. Another machine's entries go by
their expiry alone. An entry written before hosts were kept is taken for this machine's."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


# How long an entry lives that came without the server's expiresAt (put by its ID alone, or written
# by a client from before expiries were kept): the server's default GRAPHLAKE_UPLOAD_EXPIRY_SECONDS.
DEFAULT_LIFETIME_SECONDS = 86_400

Session = Mapping[str, Any] | str  # createUpload's answer (its `id` and `expiresAt`), or its ID alone


def _entry(session: Session, file: Path | None, now: float) -> dict[str, Any]:
    """What the file keeps of an open session: its ID, when it expires, its file (absolute:
    checked by a later run, which may run elsewhere) and the machine whose file that is."""
    where = os.path.abspath(file) if file else None
    if isinstance(session, str):
        return {"id": session, "expires": now + DEFAULT_LIFETIME_SECONDS, "file": where, "host": socket.gethostname()}
    expires = datetime.fromisoformat(session["expiresAt"]).timestamp() if session.get("expiresAt") else \
        now + DEFAULT_LIFETIME_SECONDS
    return {"id": session["id"], "expires": expires, "file": where, "host": socket.gethostname()}


def _read_entry(found: object, now: float) -> dict[str, Any] | None:
    """An entry as the file holds it (the earlier format: the session's ID alone), or None when it is
    no entry (a file edited by hand, say: left out, as a corrupt file is)."""
    if isinstance(found, str):
        return _entry(found, None, now)
    if isinstance(found, dict) and isinstance(found.get("id"), str) and isinstance(found.get("expires"), int | float):
        file, host = found.get("file"), found.get("host")
        return {"id": found["id"], "expires": found["expires"], "file": file if isinstance(file, str) else None,
                "host": host if isinstance(host, str) else None}
    return None


def _file_unchanged(key: str, file: str | None) -> bool:
    """Whether `file` is still there as its key says it was (size and modification time); an entry
    of the earlier format, which names no file, is left to expire."""
    if file is None:
        return True
    parts = key.rsplit("|", 3)
    if len(parts) != 4:  # no key key_and_size makes (a file edited by hand): never asked for
        return False
    try:
        stat = os.stat(file)
    except OSError:
        return False
    return f"{stat.st_size}|{stat.st_mtime_ns}" == f"{parts[1]}|{parts[2]}"


def _default_path() -> Path:
    # The user's cache, not the data's directory: a read-only source tree still resumes.
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "graphlake" / "uploads.json"


def request_digest(request: Mapping[str, Any]) -> str:
    """A short digest of what an upload asks for (name, metadata, labels, collection, path, mount,
    owner, time...): equal requests give equal digests, in whatever order their keys came."""
    def canonical(item: Any) -> Any:  # keys as the request sends them, text: sort_keys fails on str and int keys mixed
        if isinstance(item, Mapping):
            return {json.dumps(k) if not isinstance(k, str) else k: canonical(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [canonical(v) for v in item]
        return item

    text = json.dumps(canonical(request), default=str, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class ResumeState:
    """Open upload sessions by file (path, size, mtime) and request, so a rerun resumes instead of restarting."""

    path: Path = field(default_factory=_default_path)
    # Said once per state: a cache that cannot be read or written does not stop an upload.
    _warned: bool = field(default=False, init=False, repr=False, compare=False)
    _said_corrupt: bool = field(default=False, init=False, repr=False, compare=False)
    # Whether this state's writes have checked every entry's file yet (once: a stat per entry).
    _swept: bool = field(default=False, init=False, repr=False, compare=False)

    def _load(self) -> dict[str, dict[str, Any]]:
        """The entries whose sessions have not expired. A file that is no state (cut short, bytes
        that are no UTF-8, JSON that is no object) is read as none, said once; the next write
        replaces it. It raised out of every upload (UnicodeDecodeError, AttributeError)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:  # a directory in the way, no permission: resume nothing
            self._cannot(error)
            return {}
        try:
            found = json.loads(raw) if raw else {}
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            found = None
        if not isinstance(found, dict):
            self._corrupt("the file")
            return {}
        now = time.time()
        entries = {key: entry for key, item in found.items() if (entry := _read_entry(item, now)) is not None}
        if len(entries) < len(found):
            self._corrupt(f"{len(found) - len(entries)} of its entries")
        return {key: entry for key, entry in entries.items() if entry["expires"] > now}

    def _corrupt(self, what: str) -> None:
        if not self._said_corrupt:
            self._said_corrupt = True
            sys.stderr.write(f"graphlake_client: in {self.path}, {what} is no upload state (cut short, or edited by "
                             "hand): left out, and started anew; an upload it named starts over\n")

    def _cannot(self, error: OSError) -> None:
        """The sessions cannot be kept (XDG_CACHE_HOME read-only, a home that is no directory: a
        container, the user nobody). Every upload failed there with a bare FileNotFoundError after
        its session was created, leaving it open; uploads now go on without resuming, said once."""
        if not self._warned:
            self._warned = True
            sys.stderr.write(f"graphlake_client: cannot keep upload sessions in {self.path} ({error}): uploads go "
                             "on, but one interrupted will start over; set XDG_CACHE_HOME to a writable directory, "
                             "or pass resume=ResumeState(path)\n")

    @staticmethod
    def key_and_size(server: str, file: Path, request: Mapping[str, Any]) -> tuple[str, int]:
        """The entry of `file` uploaded to `server` as `request` asks (its createUpload fields but
        those taken from the bytes), and the file's size from the same stat. A file changed since,
        in size or mtime, is a new upload; so is the same file asked for otherwise: keyed by the file
        alone, a rerun named "for-project-B" resumed the session an interrupted "for-project-A" had
        left, and came back with A's name, metadata and collection. That session is left to expire
        (the server's reconciler removes it): another run may still be sending it."""
        stat = file.stat()
        return f"{server}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{request_digest(request)}", stat.st_size

    def get(self, key: str) -> str | None:
        """The ID of `key`'s session, unless none was kept or it has expired."""
        return self.get_many([key])[0]

    def get_many(self, keys: list[str]) -> list[str | None]:
        """`get` of several keys with one read of the file."""
        state = self._load()
        return [entry["id"] if (entry := state.get(key)) else None for key in keys]

    def put(self, key: str, session: Session | None, file: Path | None = None) -> None:
        """Remember `key`'s session (createUpload's answer, kept until its `expiresAt`; or its ID,
        kept DEFAULT_LIFETIME_SECONDS) for `file`, or forget it (None) once its upload is complete."""
        self.put_many({key: session}, {key: file} if file else None)

    def put_many(self, sessions: Mapping[str, Session | None], files: Mapping[str, Path] | None = None) -> None:
        """`put` of several keys with one read and one write of the file (a batch of uploads);
        `files` names the file of each (an entry is dropped once its file is gone or changed).

        Two runs at once (two `graphlake upload`s share the default file) each read, changed and
        wrote the whole file: one wrote over the other's entries, and a read of a file half written
        was taken for none at all (600 entries written by two processes, 51 kept). So the change is
        made under an exclusive lock on a file beside it (where the system has flock), and the file
        replaced whole (a reader sees the old one or the new one). A file that cannot be written
        is said once on stderr, and the upload goes on without it (`_cannot`)."""
        if not sessions:
            return
        try:
            self._put_many(sessions, files or {})
        except OSError as error:
            self._cannot(error)

    def _put_many(self, sessions: Mapping[str, Session | None], files: Mapping[str, Path]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._load()
            if not self._swept:
                here = socket.gethostname()  # another machine's files are not to be seen from here
                state = {key: entry for key, entry in state.items()
                         if entry["host"] not in (None, here) or _file_unchanged(key, entry["file"])}
                self._swept = True
            now = time.time()
            for key, session in sessions.items():
                if session is None:
                    state.pop(key, None)
                else:
                    state[key] = _entry(session, files.get(key), now)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(json.dumps(state))
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # Windows: replaced whole all the same, but two runs at once may each drop the other's
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield  # the lock goes with the file's closing
