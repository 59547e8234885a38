"""Resume state: the upload sessions a run opened, kept on disk so that a rerun after an
interruption resumes them (only the missing parts or files go) instead of starting over."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


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

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        except OSError as error:  # a directory in the way, no permission: resume nothing
            self._cannot(error)
            return {}

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
        return self._load().get(key)

    def get_many(self, keys: list[str]) -> list[str | None]:
        """`get` of several keys with one read of the file."""
        state = self._load()
        return [state.get(key) for key in keys]

    def put(self, key: str, session_id: str | None) -> None:
        """Remember `key`'s session, or forget it (None) once its upload is complete."""
        self.put_many({key: session_id})

    def put_many(self, sessions: dict[str, str | None]) -> None:
        """`put` of several keys with one read and one write of the file (a batch of uploads).

        Two runs at once (two `graphlake upload`s share the default file) each read, changed and
        wrote the whole file: one wrote over the other's entries, and a read of a file half written
        was taken for none at all (600 entries written by two processes, 51 kept). So the change is
        made under an exclusive lock on a file beside it (where the system has flock), and the file
        replaced whole (a reader sees the old one or the new one). A file that cannot be written
        is said once on stderr, and the upload goes on without it (`_cannot`)."""
        if not sessions:
            return
        try:
            self._put_many(sessions)
        except OSError as error:
            self._cannot(error)

    def _put_many(self, sessions: dict[str, str | None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._load()
            for key, session_id in sessions.items():
                if session_id is None:
                    state.pop(key, None)
                else:
                    state[key] = session_id
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
