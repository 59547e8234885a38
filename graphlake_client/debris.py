"""The temporary files a download or an export writes beside its results until they are whole,
and removing those a killed run left there (kill -9 runs no cleanup: an export into a directory of
images left a `.download-*` per image in flight, a bundle .tar its `.NAME.partial-*`).

Each is held under an exclusive lock (flock) while it is written. The kernel lets go of a killed
process's locks, so a file of these names that nobody holds is debris, while one that is held
belongs to a run under way (another export into the same place) and is left alone. Only these
names are ever touched, never a user's file. Without flock (Windows) nothing is removed: a file
nobody can be asked about may be another run's.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

# `.download-<16 hex>` beside a download's target; `.<name>.partial-<8 hex>` beside a bundle .tar;
# `.<SHA-256>.partial` and `.manifest.json.partial` in a bundle directory.
OWN = re.compile(r"\.download-[0-9a-f]{16}|\..+\.partial-[0-9a-f]{8}|\.[0-9a-f]{64}\.partial|\.manifest\.json\.partial")


def download_temp(target: Path) -> Path:
    """A new temporary name beside `target` (same file system: the rename is atomic)."""
    return target.parent / f".download-{secrets.token_hex(8)}"


def hold(stream: IO[bytes]) -> None:
    """Mark a temporary file just opened as this process's (for as long as it is open)."""
    if fcntl is not None:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def write_held(temp: Path, data: bytes) -> None:
    """Write `data` to the temporary file `temp`, held while it is written."""
    with temp.open("wb") as out:
        hold(out)
        out.write(data)


def sweep(directory: Path, *, recursive: bool = True) -> int:
    """Remove the temporaries of these names under `directory` (or in it alone) that no running
    process holds; how many. Blocking: run it in a thread."""
    if fcntl is None or not directory.is_dir():
        return 0
    removed = 0
    for folder, subfolders, names in os.walk(directory) if recursive else [(str(directory), [], os.listdir(directory))]:
        for name in names:
            if OWN.fullmatch(name) and _unheld(path := Path(folder) / name):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        subfolders[:] = [s for s in subfolders if not os.path.islink(os.path.join(folder, s))]
    return removed


def _unheld(path: Path) -> bool:
    """Whether `path` is a regular file no process holds (its lock is free), never following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a link, gone meanwhile, not ours to read
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held: a run under way
        return False
    finally:
        os.close(fd)
