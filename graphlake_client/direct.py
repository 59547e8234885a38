"""The direct-write protocol, shared by the client and the server's local mount (storage/local.py).

A client that shares a local mount's filesystem with the server (the same machine, a cluster's
shared disk) writes an upload's file into the mount itself, a kernel copy instead of an HTTP
round trip. Both sides must agree on three things, so they live here, once, and the server imports
them from the client library (never the other way round):
- the MARKER file in the mount's root, whose content is the id the server reports: a client that
  reads that id there sees the same directory as the server;
- the temporary name a writer copies to before renaming into place, which the server's sweep
  recognises and removes when a writer died halfway;
- how a file is hashed (the client declares the SHA-256 the server checks), and how it is copied
  and hashed (`copy_hashing`), which the copies that hash on either side use.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import io
import mmap
import os
import shutil
import stat
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: this client still uploads and downloads there, through the loop alone
    fcntl = None  # type: ignore[assignment]

MARKER = ".graphlake-mount"  # holds the mount's id, for clients to recognise a directory they share
DIRECT_TEMP_SUFFIX = ".part"  # a direct writer's temp file: `.<name>.<anything>.part` beside directPath
COPY_CHUNK = 8 * 1024 * 1024  # bytes copy_hashing reads at a time (_user_copy says why)
WRITE_SLICE = 1024 * 1024  # bytes it writes at a time (_kernel_copy says why)
COPY_CALL = 1 << 30  # bytes one copy_file_range may copy (the kernel copies at most about 2 GiB a call)
# Writes that bypass the page cache (`_direct_copy`): offsets and lengths in whole blocks of this
# size (the largest logical block of common disks; COPY_CHUNK is a multiple, the buffers page-aligned),
# and only for files of at least DIRECT_MIN_BYTES (below it they measured no faster).
DIRECT_BLOCK = 4096
DIRECT_MIN_BYTES = 1 << 20
FICLONE = 0x40049409  # Linux's ioctl sharing a whole file's blocks (fcntl.FICLONE from Python 3.12 on)
# File systems of a local disk, where a write past the page cache goes straight to the device, by
# their statfs(2) magic numbers (linux/magic.h). Not a network one (NFS, SMB: each direct write a
# synchronous round trip to the server), FUSE, overlay or memory (tmpfs: nothing to bypass): those
# keep the copies through the cache (`on_local_disk`).
LOCAL_DISK_FILE_SYSTEMS = {"ext2/3/4": 0xEF53, "xfs": 0x58465342, "btrfs": 0x9123683E, "f2fs": 0xF2F52010,
                           "zfs": 0x2FC12FC1, "bcachefs": 0xCA451A4E, "jfs": 0x3153464A}


def shares_directory(root: str | Path | None, mount_id: str | None) -> bool:
    """Whether this machine sees the mount directory `root` the server reports: its MARKER file
    holds the server's `mount_id`. Any failure to read it means no (not shared, not readable)."""
    if not root or not mount_id:
        return False
    try:
        return (Path(root) / MARKER).read_text().strip() == mount_id
    except OSError:
        return False


def direct_temp_path(target: Path) -> Path:
    """Where a direct writer writes `target`'s file before renaming it into place."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}{DIRECT_TEMP_SUFFIX}")


def is_direct_temp_name(name: str) -> bool:
    """Whether a file name is a direct writer's before its rename into place (`direct_temp_path`,
    or any name following the convention directPath's description gives)."""
    return name.startswith(".") and name.endswith(DIRECT_TEMP_SUFFIX)


def write_in_place(source: Path, target: Path) -> None:
    """A direct write: copy `source` (the kernel copies it) under a temporary name beside
    `target`, then rename it into place, so the server never sees half a file there."""
    temp = direct_temp_path(target)  # the name the server's sweep knows, should this copy die
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def file_digest(path: Path) -> tuple[int, str]:
    """Size and hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as source:
        return stream_digest(source)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    return file_digest(path)[1]


def on_local_disk(path: str | Path) -> bool:
    """Whether `path` (which need not exist yet: its nearest existing parent is asked) lies on one of
    LOCAL_DISK_FILE_SYSTEMS; False where that cannot be told."""
    return file_system_magic(path) in LOCAL_DISK_FILE_SYSTEMS.values()


def file_system_magic(path: str | Path) -> int | None:
    """The type of the file system holding `path`'s nearest existing parent, as statfs(2) gives it
    (its f_type: what `stat -f -c %t` prints, in hex); None where it cannot be read (not Linux).
    Asked of the kernel rather than read from /proc/self/mountinfo: it is the mount that is
    actually seen there, whatever is mounted under, over or beside it."""
    if not sys.platform.startswith("linux") or (libc := _libc()) is None:
        return None  # (another system's struct statfs is laid out otherwise)
    where = os.path.realpath(path)
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    buffer = ctypes.create_string_buffer(512)  # struct statfs (120 bytes on 64-bit Linux); f_type leads it
    if libc.statfs(os.fsencode(where), buffer) != 0:
        return None
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):
        return None


def stream_digest(reader: BinaryIO) -> tuple[int, str]:
    """Size and hex SHA-256 of what is left to read in `reader` (a binary file, or a tar member)."""
    return copy_hashing(reader, None)


def copy_hashing(reader: BinaryIO, writer: BinaryIO | None, *, bypass_cache: bool = False) -> tuple[int, str]:
    """Copy what is left in `reader` into `writer` (None: only hash it); its size and hex SHA-256.
    Blocking: a thread's work.

    Between two regular files opened as plain files (`open(..., "rb")`, and `"x+b"` or `"w+b"`:
    the writer must read too), the kernel copies (`_kernel_copy`), and what was written is hashed.
    Otherwise, and for a writer opened write-only (how a caller asks for bytes copied here, not
    blocks shared by the file system), the bytes are read, hashed and written (`_user_copy`).

    `bypass_cache`: bytes that will not be read again soon (a store's objects, a backup's). Between
    two plain files from the start of each, a file system that can shares the source's blocks (XFS,
    btrfs: `_clone`, then the copy is hashed), unless the writer is write-only; else a copy of at
    least DIRECT_MIN_BYTES is read, hashed and written past the page cache (`_direct_copy`), where
    the file system takes such writes. Callers ask it where `on_local_disk` says the writer is."""
    files = _plain_files(reader, writer) if writer is not None else None
    if writer is None or files is None:
        return _user_copy(reader, writer)
    shares = writer.readable()  # a write-only writer: bytes copied here, never blocks shared
    if bypass_cache:
        copied = (_clone(reader, writer, *files) if shares else None) or _direct_copy(reader, writer, *files)
        if copied is not None:
            return copied
    if shares and (copied := _kernel_copy(reader, writer, *files)) is not None:
        return copied
    return _user_copy(reader, writer)


def _plain_files(reader: BinaryIO, writer: BinaryIO) -> tuple[int, int] | None:
    """The descriptors of `reader` and `writer` if both are regular files opened with `open` (a
    buffered file over the descriptor itself, not a wrapper such as a tar member or a gzip stream,
    whose descriptor holds other bytes, nor a subclass whose reads do more than read), `writer`
    not appending (a positioned write would append all the same); else None."""
    plain = all(type(f) in (io.BufferedReader, io.BufferedWriter, io.BufferedRandom)
                and type(getattr(f, "raw", None)) is io.FileIO for f in (reader, writer))
    if not plain or "a" in writer.mode or fcntl is None:  # type: ignore[attr-defined]
        return None
    source, target = reader.fileno(), writer.fileno()
    if fcntl.fcntl(target, fcntl.F_GETFL) & os.O_APPEND:  # opened appending through os.open: its mode hides it
        return None
    if not (stat.S_ISREG(os.fstat(source).st_mode) and stat.S_ISREG(os.fstat(target).st_mode)):
        return None
    return source, target


# Errors of a first copy_file_range saying the kernel cannot copy between these two files (another
# filesystem on an older kernel, one without it): nothing was copied, the bytes go through here.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF, errno.EPERM}


def _kernel_copy(reader: BinaryIO, writer: BinaryIO, source: int, target: int) -> tuple[int, str] | None:
    """The kernel copies from `reader`'s position to `writer`'s (copy_file_range), then the bytes
    written are read back and hashed; both files are left after what was copied. None when the
    kernel cannot copy between them (nothing written).

    Why not read, hash and write them here: a write of a few MiB into a new file lets the kernel
    fill it with large page-cache folios, and on this project's VMs (Linux 6.18 under a
    hypervisor that takes back freed memory) those cost several times the system time of the small
    ones a kernel copy fills. 100 files of 8 MiB, 4 threads, medians of 6 interleaved rounds: 0.95 s
    read, hashed and written 8 MiB at a time, 0.57 s written 1 MiB at a time, 0.47 s copied by the
    kernel and hashed. It is also one system call per file where a read, a hash and a write each
    let go of the GIL and wait to take it back. And the digest is of the bytes that were stored."""
    writer.flush()
    start, at = writer.tell(), reader.tell()
    size = 0
    try:
        while count := os.copy_file_range(source, target, COPY_CALL, at + size, start + size):
            size += count
    except OSError as error:
        if size or error.errno not in _NO_KERNEL_COPY:
            raise
        return None
    if size == 0 and os.fstat(source).st_size > at:
        return None  # a file system whose files say they are empty to the kernel copy (procfs, some FUSE)
    reader.seek(at + size)
    writer.seek(start + size)
    return size, _hash_written(target, start, size)


# Errors of FICLONE saying the file system cannot share blocks between these two files: nothing was done.
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF, errno.ENOSYS,
             errno.EPERM}


def _clone(reader: BinaryIO, writer: BinaryIO, source: int, target: int) -> tuple[int, str] | None:
    """The source's blocks shared with the writer's empty file (FICLONE: copy-on-write, so neither
    sees the other's later writes), then the copy hashed; None (nothing done) unless both stand at
    their start and the file system shares blocks between them (ext4 does not)."""
    writer.flush()
    if reader.tell() != 0 or writer.tell() != 0 or os.fstat(target).st_size != 0:
        return None
    try:
        fcntl.ioctl(target, FICLONE, source)
    except OSError as error:  # not a file system that shares blocks, another one, or not this pair of files
        if error.errno not in _NO_CLONE or os.fstat(target).st_size != 0:
            raise  # a clone that failed on the way (no space, a disk error), or left part of itself
        return None
    size = os.fstat(target).st_size
    reader.seek(size)
    writer.seek(size)
    return size, _hash_written(target, 0, size)


def _direct_copy(reader: BinaryIO, writer: BinaryIO, source: int, target: int) -> tuple[int, str] | None:
    """copy_hashing read into a buffer, hashed there, and written from it with O_DIRECT: past the
    page cache, straight to the disk; None (nothing written) for a copy under DIRECT_MIN_BYTES, a
    writer not at a block's start, or a file system that refuses O_DIRECT (tmpfs did before Linux
    6.6; since, it takes such writes as plain ones). The part of a block at the file's end, and
    everything after a short read, is written through the cache.

    Why: a store's objects are seldom read again soon, and on this project's VMs (a hypervisor
    that takes back memory freed for a few seconds) a kernel copy into new page-cache pages ran
    at a third of the disk's speed: 128 files of 8 MiB, written a moment before and just hashed
    (as a bundle's are when a lake imports them), 4 threads, medians of 6 interleaved rounds:
    2.17 s copied by the kernel and hashed (3.3 s of system time), 0.68 s this way (0.2 s); files
    of 1 MiB 0.62 against 0.27 s; of 100 KB no faster (hence DIRECT_MIN_BYTES). It also leaves the
    cache to what is read: the database's pages, not a dataset copied in. The digest is of the
    buffer the disk was given."""
    writer.flush()
    start, at = writer.tell(), reader.tell()
    if start % DIRECT_BLOCK or os.fstat(source).st_size - at < DIRECT_MIN_BYTES:
        return None
    flags = fcntl.fcntl(target, fcntl.F_GETFL)
    try:
        fcntl.fcntl(target, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:  # a file system without direct I/O
        return None
    direct, size = True, 0
    digest = hashlib.sha256()
    try:
        with _BUFFERS.lent() as buffer, memoryview(buffer) as view:
            while count := os.preadv(source, [view], at + size):
                with view[:count] as piece:
                    digest.update(piece)
                    # Whole blocks directly; the part of a block after them (the file's end, or a
                    # short read) through the cache, and everything after it.
                    aligned = count - count % DIRECT_BLOCK if direct else 0
                    if aligned:
                        with piece[:aligned] as blocks:
                            direct = _write_at(target, blocks, start + size, direct, flags)
                    if aligned < count:
                        if direct:
                            fcntl.fcntl(target, fcntl.F_SETFL, flags)
                            direct = False
                        with piece[aligned:] as rest:
                            _write_at(target, rest, start + size + aligned, False, flags)
                size += count
    finally:
        if direct:
            fcntl.fcntl(target, fcntl.F_SETFL, flags)
    reader.seek(at + size)
    writer.seek(start + size)
    return size, digest.hexdigest()


def _write_at(target: int, piece: memoryview, offset: int, direct: bool, flags: int) -> bool:
    """`piece` written whole at `offset`; whether the descriptor still writes directly. A direct
    write refused as misaligned (EINVAL: a disk of larger blocks) is written again through the cache,
    as is the rest of a direct write the disk took part of."""
    done = 0
    while done < len(piece):
        try:
            with piece[done:] as rest:  # released at once, as in _user_copy
                count = os.pwrite(target, rest, offset + done)
        except OSError as error:
            if not direct or error.errno != errno.EINVAL:
                raise
            fcntl.fcntl(target, fcntl.F_SETFL, flags)
            direct = False
            continue
        if count <= 0:
            raise OSError(f"a write took none of {len(piece) - done} bytes: nothing is copied whole")
        done += count
        if direct and done < len(piece):
            fcntl.fcntl(target, fcntl.F_SETFL, flags)
            direct = False
    return direct


def _hash_written(target: int, start: int, size: int) -> str:
    """The hex SHA-256 of `size` bytes of `target` from `start`, read back."""
    digest, done = hashlib.sha256(), 0
    with _BUFFERS.lent() as buffer, memoryview(buffer) as view:
        while done < size:
            count = os.preadv(target, [view[:min(COPY_CHUNK, size - done)]], start + done)
            if count == 0:
                raise OSError(f"the copy has {done} bytes, {size} were written: it changed while it was read back")
            with view[:count] as piece:  # released at once: a buffer with views left cannot be closed
                digest.update(piece)
            done += count
    return digest.hexdigest()


def _user_copy(reader: BinaryIO, writer: BinaryIO | None) -> tuple[int, str]:
    """copy_hashing through this process: COPY_CHUNK read at a time into a buffer reused across
    calls (`_Buffers`), hashed, and written WRITE_SLICE at a time.

    Each read, hash and write lets go of the GIL and must take it back, and in a busy server that
    wait is most of a copy: 1 GiB in 128 files, copied and hashed by 4 threads beside a thread
    running Python, took 3.8 s in 1 MiB chunks and 1.7 s in 8 MiB ones. A new buffer per call (or
    per chunk, as `read(n)` makes) is memory mapped and faulted in each time: 2.3 s of CPU for that
    gigabyte against 1.4 s with none idle. Writes are smaller (see _kernel_copy on large folios)."""
    digest, size = hashlib.sha256(), 0
    with _BUFFERS.lent() as buffer, memoryview(buffer) as view:
        while count := reader.readinto(view):  # type: ignore[attr-defined]  # every binary file has it; typeshed's BinaryIO does not say so
            with view[:count] as piece:  # released at once: a buffer with views left cannot be closed
                digest.update(piece)
                if writer is not None:
                    _write_all(writer, piece)
            size += count
        if count is None:  # a non-blocking reader with nothing ready: not the end of its bytes
            raise BlockingIOError(errno.EAGAIN, "the reader has no bytes ready (non-blocking): nothing is read whole")
    return size, digest.hexdigest()


def _write_all(writer: BinaryIO, piece: memoryview) -> None:
    """`piece` written WRITE_SLICE at a time; OSError if a write takes part of one."""
    for start in range(0, len(piece), WRITE_SLICE):
        with piece[start:start + WRITE_SLICE] as part:
            if writer.write(part) not in (len(part), None):
                raise OSError(f"a write took part of {len(part)} bytes (an unbuffered writer): nothing is copied whole")


class _Buffers:
    """COPY_CHUNK buffers lent to one copy at a time (never two: a copy writes into it until it
    ends) and kept for the next, at most KEPT of them. Anonymous memory maps, so a page is only
    memory once a read fills it: a 100 KB file takes 100 KB of a buffer, not 8 MiB."""

    KEPT = 8  # as many as copy at once in a server on a small machine (asyncio's default threads: CPUs + 4)

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lent(self) -> Iterator[mmap.mmap]:
        with self._lock:
            buffer = self._free.pop() if self._free else None
        if buffer is None:
            buffer = mmap.mmap(-1, COPY_CHUNK)
        try:
            yield buffer
        finally:
            with self._lock:
                if len(self._free) < self.KEPT:
                    self._free.append(buffer)
                    buffer = None
            if buffer is not None:
                buffer.close()


_BUFFERS = _Buffers()
