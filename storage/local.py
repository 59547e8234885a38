"""The local-filesystem mount: objects are files under one root, served by Graphlake's signed routes.

A multipart upload writes each part straight into place in one file under `.multipart/<upload id>/`
(beside one small marker per part that arrived whole), so completion is a rename, not a copy.
Every key is checked to stay inside the root, although only the server ever makes keys.

Direct writes: a client that shares the root's filesystem (the same machine, or a cluster's
shared filesystem) may write an upload's file into place itself, a kernel copy instead of an
HTTP round trip through this process. It knows it sees the same directory when the root's
MARKER file holds the id the server reports (`mount_id`). Such a file is trusted for nothing:
completion requires a regular file (no symlink), checks its size and reads it back for a declared
SHA-256, and never believes a digest recorded on it, since its writer could have set that too.
What writer and server must agree on (MARKER, the temp names, the hashing) lives in the client
library, graphlake_client/direct.py: the server may depend on the client, never the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from graphlake_client.direct import MARKER, copy_hashing, file_sha256, is_direct_temp_name, on_local_disk, stream_digest
from storage.concurrency import in_file_thread
from storage.protocol import STRAY_DIR, ObjectInfo, SignedRequest, StoredPart, StoreUnavailable
from storage.signing import UrlSigner

SHA256_ATTR = "user.graphlake.sha256"
_XATTRS = hasattr(os, "setxattr")  # Linux; elsewhere (macOS) completion reads objects back
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
READ_CHUNK = 1024 * 1024
PUT_TEMP_PREFIX = ".upload-"  # a signed PUT's file until it is renamed into place
# A file the server makes, until `write` renames it into place: named as an upload's temp file, so
# the hourly temp sweep removes one whose writer died (remove_stale_temp_files).
STAGED_PREFIX = f"{PUT_TEMP_PREFIX}staged-"


def is_temp_name(name: str) -> bool:
    """Whether a file name is an upload's before its rename into place (a signed PUT's, or a direct
    writer's that follows the convention directPath's description gives)."""
    return name.startswith(PUT_TEMP_PREFIX) or is_direct_temp_name(name)


def is_stored_object_name(name: str) -> bool:
    """Whether a file in a mount's tree holds a stored object. Keys are made by the server
    (`assets/<id>`) and never start with a dot; temp files, probes and the mount marker all do."""
    return not name.startswith(".")


class UnsafeKey(ValueError):
    """A key that would reach outside the mount's root."""


class LocalStore:
    backend = "local"

    def __init__(self, name: str, root: Path, signer: UrlSigner, fallback: str | None = None, *,
                 direct_writes: bool = False) -> None:
        self.name = name
        self.root = root.resolve()
        self.signer = signer
        self.fallback = fallback
        self.direct_writes = direct_writes
        self.mount_id: str | None = None  # read from MARKER as the store opens, when direct writes are on
        # Copies in skip the page cache only on a local disk's file system (LOCAL_DISK_FILE_SYSTEMS says
        # why), as the root's is when the store opens (a mount made there later is not seen).
        self.bypass_cache = on_local_disk(self.root)

    # --- paths
    def path(self, key: str) -> Path:
        """The file of `key`; UnsafeKey unless it (and anything a link there points to) lies strictly inside the root."""
        _check_key(key)
        if not self._stays_inside(key, entry_too=True):
            raise UnsafeKey(f"unsafe object key {key!r}")
        return self.root / key

    def _entry(self, key: str) -> Path:
        """The directory entry of `key` inside the root, whatever it is: `stat` and `delete` act on
        the entry itself, so a symlink a direct writer left is refused and removed, never followed."""
        _check_key(key)
        if not self._stays_inside(key, entry_too=False):
            raise UnsafeKey(f"unsafe object key {key!r}")
        return self.root / key

    def _stays_inside(self, key: str, *, entry_too: bool) -> bool:
        """Whether the directories of `key` (and its entry, with `entry_too`) stay inside the root,
        wherever a link among them leads. The root was resolved when the store was made and is the
        operator's, so only the parts below it can be links (a direct writer can make one): each is
        lstat-ed, and only a link found costs the full resolution. Path.resolve on every call lstat-ed
        each part of the root too, twice per object; completing uploads spent a fifth of the server's
        time there."""
        parts = key.split("/")
        current = str(self.root)
        for part in parts if entry_too else parts[:-1]:
            current = os.path.join(current, part)
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return True  # nothing below a missing entry (or a file) is a link: the rest is as written
            if stat.S_ISLNK(mode):
                target = self.root / key if entry_too else (self.root / key).parent
                resolved = target.resolve()
                return resolved.is_relative_to(self.root) and not (entry_too and resolved == self.root)
        return True

    def upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise UnsafeKey("unknown multipart upload")
        return self.root / ".multipart" / upload_id

    def data_path(self, upload_id: str) -> Path:
        """The file a multipart upload's parts are written into, each at its offset."""
        return self.upload_dir(upload_id) / "data"

    def part_path(self, upload_id: str, number: int) -> Path:
        """The marker saying part `number` arrived whole (it holds the part's size)."""
        if not 1 <= number <= 10_000:
            raise UnsafeKey("unknown part")
        return self.upload_dir(upload_id) / f"{number:05d}"

    def uri(self, key: str) -> str:
        # Where the key's file is named to be, by its text alone: a URI describes, it never opens
        # anything (reads go through `path`), and resolving links here cost a file-system call per
        # part on the event loop for every asset recorded.
        _check_key(key)
        return (self.root / key).as_uri()

    # --- lifecycle
    async def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.direct_writes:
            marker = self.root / MARKER
            with contextlib.suppress(FileExistsError):  # made once; every process serving the mount reads it
                with marker.open("x") as out:
                    out.write(uuid.uuid4().hex)
            self.mount_id = marker.read_text().strip()

    def direct_path(self, key: str) -> Path:
        """Where a direct writer puts `key`'s file (its directory made here, so the writer need
        not create anything but the file). The entry itself: whatever a writer left there so far
        is for completion to judge, not a reason to refuse the session."""
        path = self._entry(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        # Writing a probe file catches a read-only or full disk, which `exists()` would not.
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as error:
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: {error.strerror}") from error

    # --- signed URLs (served by graphlake.blob_routes)
    async def sign_put(self, key: str, *, size: int, content_type: str, sha256: str | None,
                       expires_in: int) -> SignedRequest:
        self.path(key)
        url = self.signer.sign("PUT", self.name, key, expires_in, size=str(size))
        return SignedRequest(url=url, headers={"Content-Type": content_type})

    async def sign_get(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                       bucket: str | None = None) -> str:
        return self.sign_get_now(key, filename=filename, content_type=content_type, expires_in=expires_in)

    def sign_get_now(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                     bucket: str | None = None) -> str:
        # Checked by its text alone: the route that serves the URL resolves the path (`path`) before it
        # reads a byte, and a page of a version's images signs hundreds of keys, each resolve a few
        # system calls per directory level.
        _check_key(key)
        return self.signer.sign("GET", self.name, key, expires_in, name=filename, type=content_type or "")

    # --- multipart
    async def start_multipart(self, key: str, *, content_type: str) -> str:
        self.path(key)
        upload_id = uuid.uuid4().hex
        self.upload_dir(upload_id).mkdir(parents=True)
        self.data_path(upload_id).touch()
        return upload_id

    async def sign_part(self, key: str, upload_id: str, number: int, *, size: int, offset: int,
                        expires_in: int) -> SignedRequest:
        self.part_path(upload_id, number)
        url = self.signer.sign("PUT", self.name, key, expires_in, upload=upload_id, part=str(number), size=str(size),
                               offset=str(offset))
        return SignedRequest(url=url)

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        # In a thread: a part's record is a file of its own, and reading 10,000 of them held the loop.
        return await asyncio.to_thread(self._list_parts, upload_id)

    def _list_parts(self, upload_id: str) -> list[StoredPart]:
        folder = self.upload_dir(upload_id)
        if not self.data_path(upload_id).is_file():
            # Gone, or begun by a version that kept each part in its own file: not resumable here
            # (its parts' URLs are refused too); the reconciler removes it when its session expires.
            return []
        return [StoredPart(number=int(p.name), etag=p.name, size=int(p.read_text() or 0))
                for p in sorted(folder.iterdir()) if p.name.isdigit()]

    async def open_part_file(self, upload_id: str) -> int:
        """A descriptor to write a part into the upload's data file, shared-locked until it is closed;
        FileNotFoundError once the upload is completed or aborted. The lock lets completion wait for
        part writes under way, and the inode check refuses a writer that opened the file before
        completion moved it into place: so a completed object never changes after it was verified."""
        path = self.data_path(upload_id)
        fd = os.open(path, os.O_WRONLY)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
            if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None:
        """Move the upload's data file, its parts written in place, to `key` (a rename: atomic, no
        copy), then remove what is left of the upload. A crash leaves either the parts or the whole
        object at `key` (and maybe the part markers), never a part of it: the object's presence with
        the parts gone tells a later completion this one got that far."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.data_path(upload_id)
        fd = os.open(data, os.O_RDONLY)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # part writes under way finish first
            os.replace(data, target)
        finally:
            os.close(fd)
        await self.abort_multipart(key, upload_id)  # the part markers; safe to repeat

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.upload_dir(upload_id), True)

    # --- objects
    async def stat(self, key: str) -> ObjectInfo | None:
        """What `key` holds; None for nothing, or for anything but a regular file (a direct writer's symlink)."""
        path = self._entry(key)
        try:
            found = path.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        size = found.st_size
        try:
            recorded = os.getxattr(path, SHA256_ATTR).decode() if _XATTRS else None
        except OSError:  # not recorded (a multipart object), or no user xattrs on this filesystem
            recorded = None
        return ObjectInfo(size=size, sha256=recorded)

    def remove_stale_temp_files(self, older_than: float) -> int:
        """Delete upload temp files (`is_temp_name`) nobody has written to for `older_than` seconds:
        what a PUT or a direct writer that died left behind. With `older_than` at least the upload
        expiry, no open session can still own one. Blocking (a thread's work); returns how many went."""
        cutoff = time.time() - older_than
        removed = 0
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # .multipart goes with its sessions
            for name in filter(is_temp_name, files):
                path = Path(folder, name)
                with contextlib.suppress(FileNotFoundError):  # renamed into place or removed meanwhile
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        return removed

    def files_older_than(self, prefix: str, seconds: float) -> list[str]:
        """Keys of the regular files directly under `prefix/` nobody has written to for `seconds`.
        Blocking (lists the directory)."""
        cutoff = time.time() - seconds
        try:
            with os.scandir(self.root / prefix) as entries:
                return [f"{prefix}/{e.name}" for e in entries
                        if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < cutoff]
        except FileNotFoundError:
            return []

    def set_aside(self, key: str) -> None:
        """Move `key`'s file under STRAY_DIR, where remove_set_aside deletes it later: a file the
        server found no record of is kept a while, in case the record is what is missing."""
        target = self.root / STRAY_DIR / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(key), target)

    def remove_set_aside(self, seconds: float) -> int:
        """Delete what was set aside more than `seconds` ago (a move sets a file's ctime); returns how
        many files went. Blocking."""
        cutoff = time.time() - seconds
        removed = 0
        for folder, _, files in os.walk(self.root / STRAY_DIR):
            for name in files:
                path = Path(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    if path.lstat().st_ctime < cutoff:
                        path.unlink()
                        removed += 1
        return removed

    @staticmethod
    def record_sha256(path: Path, sha256: str) -> None:
        """Keep the digest computed while the object was written with the file (an extended
        attribute, so it goes wherever the file goes); where the filesystem has none, completion
        reads the object back instead."""
        if _XATTRS:
            with contextlib.suppress(OSError):
                os.setxattr(path, SHA256_ATTR, sha256.encode())

    async def read(self, key: str) -> AsyncIterator[bytes]:
        with self.path(key).open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk

    async def sha256(self, key: str) -> str:
        return await in_file_thread(file_sha256, self.path(key))

    def staging_path(self, key: str) -> Path:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f"{STAGED_PREFIX}{uuid.uuid4().hex}")

    async def write(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._write, self.path(key), path)

    @staticmethod
    def _write(target: Path, source: Path) -> None:
        if source.parent == target.parent and source.name.startswith(STAGED_PREFIX):  # staging_path's: in place
            with source.open("rb") as file:
                os.fsync(file.fileno())  # whole before it is named: never an empty file under the key after a crash
            os.replace(source, target)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{PUT_TEMP_PREFIX}write-{uuid.uuid4().hex}")
        try:
            shutil.copyfile(source, temp)
            with temp.open("rb") as file:
                os.fsync(file.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def copy_in(self, key: str, source: Path, expect: os.stat_result) -> str:
        """Copy `source` to `key` (on a local disk, as copy_hashing's `bypass_cache` says: its blocks
        shared where the file system can, else a file of a MiB or more written past the page cache
        and hashed on the way; otherwise a kernel copy read back and hashed); returns its hex
        SHA-256, also recorded with the file. Blocking (a thread's work): what ingesting a file the
        server reads does. Not synced to disk, as an uploaded file is not: a sync per file took most
        of an ingest's time, and the database the asset is recorded in does not sync each commit
        either (README, "Two commands").

        `expect`: the source as it was found (and judged) before. SourceChanged if what was opened
        is another file (a part of its path swapped for a link since: the caller's checks held for
        the file it found, not for this one), or if the bytes read are not of its size."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written in place, not through a temporary name: the key is new ("x": it must not exist),
        # and nothing names it until the copy is done and its asset recorded.
        # "x+b": readable too, so copy_hashing may read back what the kernel copied or cloned.
        with open_source(source, expect) as reader, target.open("x+b") as writer:
            copied, sha256 = copy_hashing(reader, writer, bypass_cache=self.bypass_cache)  # an object: seldom read soon
        if copied != expect.st_size:
            raise SourceChanged(f"{source} had {expect.st_size} bytes when checked, {copied} when copied")
        self.record_sha256(target, sha256)
        return sha256

    async def delete(self, key: str) -> None:
        path = self._entry(key)
        if path.is_dir() and not path.is_symlink():  # a direct writer's mistake; never a stored object
            await asyncio.to_thread(shutil.rmtree, path, True)
        else:
            path.unlink(missing_ok=True)


class SourceChanged(Exception):
    """A file being copied in is not the one checked before (LocalStore.copy_in)."""


def open_source(source: Path, expect: os.stat_result) -> BinaryIO:
    """`source` opened for reading, if it is still the file `expect` describes (same device and
    inode): SourceChanged if a part of its path was swapped for a link since it was checked. Opened
    without following a last link and without blocking (a FIFO put in its place would hold the
    thread forever), then checked before a byte is read."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:  # the last part is a link now
            raise SourceChanged(f"{source} is no longer the file that was checked") from None
        raise
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (expect.st_dev, expect.st_ino):
        os.close(fd)
        raise SourceChanged(f"{source} is no longer the file that was checked")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def sha256_of_source(source: Path, expect: os.stat_result) -> str:
    """Hex SHA-256 of `source`, read through open_source. Blocking."""
    with open_source(source, expect) as reader:
        return stream_digest(reader)[1]


def _check_key(key: str) -> None:
    """UnsafeKey unless `key`, as text, names an object under the root (no absolute path, no `..`,
    no empty or `.` part, nothing of the store's own): `path` also checks where links lead."""
    if not key or "\x00" in key or key.startswith(("/", ".multipart", STRAY_DIR, MARKER)) \
            or any(p in ("", ".", "..") for p in key.split("/")):
        raise UnsafeKey(f"unsafe object key {key!r}")
