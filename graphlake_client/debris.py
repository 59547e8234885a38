"""The temporary files a download or an export writes beside its results until they are whole,
and removing those a killed run left there (kill -9 runs no cleanup: an export into a directory of
images left a `.download-*` per image in flight, a bundle .tar its `.NAME.partial-*`).

Each is held under an exclusive lock (flock) from just after it is created until it has been
renamed to its result's name (`writing`). The kernel lets go of a killed process's locks, so a
file of these names that nobody holds is debris, while one that is held belongs to a run under way
(another download into the same folder, another export) and is left alone. Two more guards, since
a sweep and a writer run at once (downloads in parallel into one folder each sweep it):
- a file younger than GRACE_SECONDS is never removed: between its creation and its lock, a writer
  has not taken it yet (and waits for the lock, never fails, should a sweep be looking at it);
- a sweep removes a file while holding its lock, and only if the name still names the file it
  locked (a writer renames its file away while holding it, so the name may have moved on).
Only these names are ever touched, never a user's file. Without flock (Windows, or a file system
that refuses it: NFS without its lock manager, some FUSE or SMB mounts) nothing is removed, and
writes go on unheld: a file nobody can be asked about may be another run's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

# `.download-<16 hex>` beside a download's target; `.<name>.partial-<8 hex>` beside a bundle .tar and its files;
# `.<SHA-256>.partial` and `.manifest.json.partial` in a bundle directory.
OWN = re.compile(r"\.download-[0-9a-f]{16}|\..+\.partial-[0-9a-f]{8}|\.[0-9a-f]{64}\.partial|\.manifest\.json\.partial")
# A bundle export's scratch folder (a .tar's members, an S3 upload's files, on their way), beside the .tar
# or in the temp folder: mkdtemp's 8 characters. Held through the `.held` file in it.
SCRATCH = re.compile(r"\.graphlake-scratch-[a-z0-9_]{8}")
SCRATCH_LOCK = ".held"
GRACE_SECONDS = 60.0  # a temporary this young is never debris (a rerun a minute later removes it)
# What flock says on a file system that does not do it: writes go on unheld (and sweeps remove nothing there).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def download_temp(target: Path) -> Path:
    """A new temporary name beside `target` (same file system: the rename is atomic)."""
    return target.parent / f".download-{secrets.token_hex(8)}"


def partial_temp(target: Path) -> Path:
    """A new temporary name for `target` beside it, of its name (`.NAME.partial-<8 hex>`): never one
    another export into the same folder, or a killed run's leftover, could hold."""
    return target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")


@contextlib.contextmanager
def writing(temp: Path, mode: str = "xb") -> Iterator[BinaryIO]:
    """The temporary file `temp`, created (`mode`: "xb", or "x+b" to read it back) and held until
    the block ends: rename it to its result's name inside the block, so no sweep ever finds it
    unheld under its temporary name. An exception removes it."""
    out = temp.open(mode)  # created here, or FileExistsError: then it is not this call's to remove
    try:
        with out:
            hold(out)
            yield out  # type: ignore[misc]
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def hold(stream: IO[bytes]) -> None:
    """Hold a temporary file just created that stays open longer than a block (a bundle's .tar):
    close it only once it is renamed."""
    if fcntl is None:
        return
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)  # blocking: a sweep may be looking at it this instant
    except OSError as error:
        if error.errno not in _NO_LOCKS:
            raise


def write_held(temp: Path, data: bytes, target: Path,
               place: Callable[[Path, Path], None] = os.replace) -> None:
    """Write `data` to `target` through the temporary file `temp`, held until `place` puts it there
    (renames it, by default)."""
    with writing(temp) as out:
        out.write(data)
        out.flush()
        place(temp, target)


def sweep(directory: Path, *, recursive: bool = True) -> int:
    """Remove the temporaries of these names under `directory` (or in it alone) that no running
    process holds and that are older than GRACE_SECONDS; how many. Blocking: run it in a thread."""
    if fcntl is None or not directory.is_dir():
        return 0
    removed = 0
    old_before = time.time() - GRACE_SECONDS
    for folder, subfolders, names in os.walk(directory) if recursive else [(str(directory), [], os.listdir(directory))]:
        for name in names:
            if OWN.fullmatch(name):
                removed += _remove_if_debris(Path(folder) / name, old_before)
        subfolders[:] = [s for s in subfolders if not os.path.islink(os.path.join(folder, s))]
    return removed


def sweep_export(dest: Path, folders: Iterable[str]) -> int:
    """`sweep` where an export writes: `dest` itself, and the `folders` it writes its files into,
    with what they hold; never the rest of the tree (an export into a home directory must not walk
    it, nor touch files of these names another program left there). Blocking: run it in a thread."""
    return sweep(dest, recursive=False) + sum(sweep(dest / folder) for folder in folders)


def scratch(parent: Path) -> tuple[Path, BinaryIO]:
    """A new scratch folder in `parent` and its `.held` file, held until `drop_scratch`: the whole
    files an export holds there on their way (a killed tar or S3 export left them in $TMPDIR for
    good) are then removed by the next export's `sweep_scratch` once their run is gone."""
    folder = Path(tempfile.mkdtemp(prefix=".graphlake-scratch-", dir=parent))
    lock = (folder / SCRATCH_LOCK).open("xb")
    try:
        hold(lock)
    except BaseException:
        lock.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, lock


def drop_scratch(folder: Path, lock: IO[bytes]) -> None:
    """Remove a scratch folder of `scratch`, then let go of it."""
    shutil.rmtree(folder, ignore_errors=True)
    lock.close()


def sweep_scratch(directory: Path) -> int:
    """Remove the scratch folders in `directory` (not below) that no running process holds and that
    are older than GRACE_SECONDS, with what they hold; how many. Blocking: run it in a thread."""
    if fcntl is None or not directory.is_dir():
        return 0
    old_before = time.time() - GRACE_SECONDS
    return sum(_remove_scratch_if_debris(directory / name, old_before)
               for name in os.listdir(directory) if SCRATCH.fullmatch(name))


def _remove_scratch_if_debris(folder: Path, old_before: float) -> bool:
    try:
        made = os.lstat(folder)
        if not stat.S_ISDIR(made.st_mode) or made.st_mtime >= old_before:  # young: its run may not hold it yet
            return False
        fd = os.open(folder / SCRATCH_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:  # its run was killed before it made its `.held`: nobody ever held it
        shutil.rmtree(folder, ignore_errors=True)
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(folder, ignore_errors=True)
        return True
    except OSError:  # held: an export under way (or a file system without locks)
        return False
    finally:
        os.close(fd)


def _remove_if_debris(path: Path, old_before: float) -> bool:
    """Remove `path` if it is a regular file no process holds, last written before `old_before`;
    under its lock, and only while the name still names that file. Never follows a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a link, gone meanwhile, not ours to read
        return False
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_mtime >= old_before:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        named = os.lstat(path)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            return False  # renamed away meanwhile, and another file took the name
        os.unlink(path)
        return True
    except OSError:  # held: a run under way (or gone meanwhile)
        return False
    finally:
        os.close(fd)
