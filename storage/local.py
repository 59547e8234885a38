"""The local-filesystem mount: objects are files under one root, served by Graphlake's signed routes.

A multipart upload writes each part straight into place in one file under `.multipart/<upload id>/`
(beside one small marker per part that arrived whole), so completion is a rename, not a copy.
Every key is checked to stay inside the root, although only the server ever makes keys.

Direct writers (below) may put links, FIFOs or hard links anywhere under the root, or swap a name
for one between the server's check of it and an open. So nothing is opened by its path: directories
through _open_directory (each part relative to the one above, O_NOFOLLOW), files to read through
open_object (a regular file, judged by its descriptor), files to write through StagedFile (O_EXCL
under an unpredictable name, then renamed or linked relative to the same directory). A link met on
the way is refused (UnsafeKey), never followed, even one that stays inside the root. `path` names
a key's file for checks at signing time and messages, never to open it.

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
import secrets
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from graphlake_client.direct import MARKER, copy_hashing, is_direct_temp_name, on_local_disk, stream_digest
from storage.concurrency import in_file_thread
from storage.ownership import OWNER_FILE, Ownership
from storage.protocol import LIST_PAGE, STRAY_DIR, ObjectInfo, SignedRequest, StoredPart, StoreUnavailable
from storage.signing import UrlSigner

SHA256_ATTR = "user.graphlake.sha256"
_XATTRS = hasattr(os, "setxattr")  # Linux; elsewhere (macOS) completion reads objects back
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}\Z")
READ_CHUNK = 1024 * 1024
_PART_DATA = "data"  # a multipart upload's file, in its folder under .multipart
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
    """A key that would reach outside the mount's root, or whose way there holds a symbolic link."""


# A directory below a mount's root, opened relative to the one above it and never through a link.
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# A new file: created here or refused (EEXIST also for a link standing at its name, never followed).
_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _open_at(name: str, flags: int, folder: int, mode: int = 0o666) -> int:
    """os.open of the entry `name` of the directory `folder`, `flags` holding O_NOFOLLOW: UnsafeKey
    for a link found there (ELOOP), FileNotFoundError for a file where a directory was asked for
    (ENOTDIR) or a FIFO with no reader (ENXIO): none is anything the server stored."""
    try:
        return os.open(name, flags, mode, dir_fd=folder)
    except OSError as error:
        # Linux says ENOTDIR, not ELOOP, for a link opened with O_DIRECTORY|O_NOFOLLOW.
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and _is_link(name, folder)):
            raise UnsafeKey(f"{name!r} is a symbolic link; the server never follows one in a mount") from None
        if error.errno in (errno.ENOTDIR, errno.ENXIO):
            raise FileNotFoundError(errno.ENOENT, "no file the server stored", name) from None
        raise


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_regular(name: str, flags: int, folder: int) -> int:
    """`name` in `folder` opened with `flags` (through no link), only if it is a regular file, judged
    by the descriptor itself: FileNotFoundError for anything else. Opened without blocking, so a
    FIFO a writer put there cannot hold the thread; blocking again once judged."""
    fd = _open_at(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", name)
    os.set_blocking(fd, True)
    return fd


def open_folder(root: Path, folders: Sequence[str], *, make: bool = False) -> int:
    """A descriptor of the directory `root/folders...` of a mount (the caller closes it), each part
    opened relative to the one above it and never through a link (`root` is the operator's, resolved
    when the mount was configured): a link a direct writer put (or swaps in, at any moment) anywhere
    below the root is refused (UnsafeKey), and what is done through the descriptor stays in that
    directory, wherever its names are moved meanwhile. A check of the path first and an open by name
    after it let a writer swap a part between the two. `make` creates the missing ones;
    FileNotFoundError for one missing (or a file)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        if not make:
            raise
        root.mkdir(parents=True, exist_ok=True)  # `open` makes it; a store used before that, here
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    return descend(fd, folders, make=make)


def descend(fd: int, folders: Sequence[str], *, make: bool = False) -> int:
    """The directory `folders...` below the open directory `fd` (taken: closed here, also on failure),
    each part opened as open_folder says."""
    try:
        for part in folders:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            inner = _open_at(part, _DIRECTORY, fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


class FileSwapped(Exception):
    """A file the server was writing in a mount is no longer the one at its name: a writer sharing the
    mount renamed or linked something in its place meanwhile. Nothing of it was stored."""


class StagedFile:
    """A file the server writes in a mount: made under an unpredictable temporary name beside its
    key's place, then given that place (`store`). Everything goes through the descriptor of the
    key's directory (LocalStore._open_directory), never through a path, so no link or rename a
    direct writer makes meanwhile can send a byte, or the name, outside of that directory: the
    temporary name is created with O_EXCL|O_NOFOLLOW (a link planted there is refused, never
    written through), and once placed, the entry is checked to be the very file written.
    A predictable name and a write that followed links had let a writer aim the server's own
    writes at any file it may write (its signing key). Close it in every case."""

    def __init__(self, folder: int, name: str, prefix: str, mode: int = 0o666, *, write_only: bool = False) -> None:
        """`write_only`: the file is opened for writing alone, which copy_hashing takes as a request
        for the bytes themselves, never blocks shared with the source (a restore's copies)."""
        self._folder = folder  # owned: closed with the file
        self.name = name
        flags = (_NEW_FILE & ~os.O_RDWR) | os.O_WRONLY if write_only else _NEW_FILE
        try:
            for _ in range(100):
                self.temp = f"{prefix}{secrets.token_hex(16)}"
                try:
                    fd = _open_at(self.temp, flags, folder, mode)
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)
        except BaseException:
            os.close(folder)
            raise
        self.file: BinaryIO = os.fdopen(fd, "wb" if write_only else "r+b")

    def taken(self) -> bool:
        """Whether anything (a link too) stands at the key's place now."""
        try:
            os.stat(self.name, dir_fd=self._folder, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def store(self, *, replace: bool, sync: bool = False) -> None:
        """Give the file its key's place: `replace` renames it there over whatever is there, else it
        is linked there only if nothing is (FileExistsError), so no name ever holds half of it.
        `sync`: on disk first. FileSwapped, and nothing left at the place, if the temporary name held
        another file by then (the rename or link moves the entry, never what a link points to)."""
        self.file.flush()
        if sync:
            os.fsync(self.file.fileno())
        folder = self._folder
        if replace:
            os.replace(self.temp, self.name, src_dir_fd=folder, dst_dir_fd=folder)
        else:
            os.link(self.temp, self.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        placed = os.stat(self.name, dir_fd=folder, follow_symlinks=False)
        written = os.fstat(self.file.fileno())
        if (placed.st_dev, placed.st_ino) != (written.st_dev, written.st_ino):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=folder)
            raise FileSwapped(f"the file written for {self.name!r} was replaced while it was written")

    def set_down(self, root: Path, folders: Sequence[str]) -> SetDown:
        """Close the file, written in full, and its folder (`open_folder(root, folders)`'s), keeping its
        temporary name: what a restore stages for thousands of objects before it places any, where
        holding two descriptors each would exhaust the process's."""
        self.file.flush()
        written = os.fstat(self.file.fileno())
        self.file.close()
        os.close(self._folder)
        self._folder = -1
        return SetDown(root, tuple(folders), self.temp, self.name, (written.st_dev, written.st_ino))

    def close(self) -> None:
        """Close the file and remove its temporary name (gone already where `store` renamed it).
        Safe to repeat."""
        if self._folder < 0:
            return
        try:
            self.file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp, dir_fd=self._folder)
        finally:
            os.close(self._folder)
            self._folder = -1


@dataclass(frozen=True)
class SetDown:
    """A file StagedFile wrote, closed under its temporary name, to be given its place (`place`) or
    removed (`discard`) later, through its folder opened again through no link: either one acts
    only on the very file written (`file`: device, inode), never on what a direct writer put at
    the temporary name since."""

    root: Path
    folders: tuple[str, ...]
    temp: str
    name: str
    file: tuple[int, int]

    def place(self) -> tuple[int, int]:
        """Rename it over whatever is at its place; the folder's (device, inode), to sync once
        (sync_folder). FileSwapped, and nothing left there, if another file was at the temporary name."""
        folder = open_folder(self.root, self.folders)
        try:
            os.replace(self.temp, self.name, src_dir_fd=folder, dst_dir_fd=folder)
            placed = os.stat(self.name, dir_fd=folder, follow_symlinks=False)
            if (placed.st_dev, placed.st_ino) != self.file:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.name, dir_fd=folder)
                raise FileSwapped(f"the file written for {self.name!r} was replaced before it was placed")
            found = os.fstat(folder)
            return found.st_dev, found.st_ino
        finally:
            os.close(folder)

    def sync_folder(self) -> None:
        """Make the folder's entries (the name `place` gave) durable."""
        folder = open_folder(self.root, self.folders)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def discard(self) -> None:
        """Remove the temporary name, if it still holds the file written (placed, it is gone)."""
        with contextlib.suppress(FileNotFoundError, UnsafeKey):
            folder = open_folder(self.root, self.folders)
            try:
                found = os.stat(self.temp, dir_fd=folder, follow_symlinks=False)
                if (found.st_dev, found.st_ino) == self.file:
                    os.unlink(self.temp, dir_fd=folder)
            finally:
                os.close(folder)


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
        # Whether the lake has used this root before (services/mount_owners.noted_roots), told before
        # `open`: a root it has used and finds missing is a file system not mounted, never made anew.
        self.used_before = False
        # The root directory (device, inode) this lake's owner file was last read in (`note_root`):
        # every file-system call of the store goes through it or is refused. A mount's file system
        # gone while the server ran (unmounted, the folder replaced) left the path naming another
        # directory, and uploads, ingests and thumbnails went there until the next maintenance round.
        self._root_id: tuple[int, int] | None = None
        self.ownership = Ownership(name)  # every write and delete below asks it first (storage/ownership.py)
        # Copies in skip the page cache only on a local disk's file system (LOCAL_DISK_FILE_SYSTEMS says
        # why), as the root's is when the store opens (a mount made there later is not seen).
        self.bypass_cache = on_local_disk(self.root)

    # --- paths
    def path(self, key: str) -> Path:
        """The file of `key`; UnsafeKey unless it (and anything a link there points to) lies strictly
        inside the root. A name to check a key by, never to open it by (see the module's docstring)."""
        _check_key(key)
        if not self._stays_inside(key, entry_too=True):
            raise UnsafeKey(f"unsafe object key {key!r}")
        return self.root / key

    def _entry(self, key: str) -> Path:
        """The directory entry of `key` inside the root, whatever it is: the path a direct writer is
        told to write (direct_path), never one the server opens (stat, delete and reads go through
        folder descriptors)."""
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

    def _open_directory(self, folders: Sequence[str], *, make: bool = False) -> int:
        """open_folder of this store's root; once the root is noted (`note_root`), of that very
        directory or StoreUnavailable, never of another now at its path (nor one made in its place)."""
        if self._root_id is None:
            return open_folder(self.root, folders, make=make)
        return descend(self._open_noted_root(), folders, make=make)

    def _open_noted_root(self) -> int:
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise self._root_gone("is missing") from None
        except OSError as error:  # a file system gone bad (EIO, a stale NFS handle)
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: {error.strerror}") from None
        found = os.fstat(fd)
        if (found.st_dev, found.st_ino) != self._root_id:
            os.close(fd)
            raise self._root_gone("is not the one this lake's owner file was read in")
        return fd

    def _root_gone(self, what: str) -> StoreUnavailable:
        return StoreUnavailable(f"local mount {self.name!r} at {self.root}: the folder there {what}: is its file system "
                                "not mounted? Nothing is written there until it is back")

    def note_root(self) -> None:
        """Note the root directory holding the mount's owner file now (this lake's, its owner read a
        moment before): what every later call of the store must find at the root's path. Blocking.
        A store used outside of a lake (a restore, a check) notes none, and goes by the path."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.close(_open_regular(OWNER_FILE, os.O_RDONLY, fd))  # FileNotFoundError: gone meanwhile
            found = os.fstat(fd)
        finally:
            os.close(fd)
        self._root_id = found.st_dev, found.st_ino

    def _directory(self, folders: Sequence[str], *, make: bool = False) -> contextlib.AbstractContextManager[int]:
        return _closing(self._open_directory(folders, make=make))

    def upload_dir(self, upload_id: str) -> Path:
        """Where a multipart upload's files are (named for tests and messages: the store opens them
        through _upload_folders)."""
        return self.root.joinpath(*self._upload_folders(upload_id))

    @staticmethod
    def _upload_folders(upload_id: str) -> list[str]:
        if not _UPLOAD_ID.match(upload_id):
            raise UnsafeKey("unknown multipart upload")
        return [".multipart", upload_id]

    def data_path(self, upload_id: str) -> Path:
        """The file a multipart upload's parts are written into, each at its offset."""
        return self.upload_dir(upload_id) / _PART_DATA

    @staticmethod
    def part_name(number: int) -> str:
        """The marker saying part `number` arrived whole (it holds the part's size), in its upload's folder."""
        if not 1 <= number <= 10_000:
            raise UnsafeKey("unknown part")
        return f"{number:05d}"

    def uri(self, key: str) -> str:
        # Where the key's file is named to be, by its text alone: a URI describes, it never opens
        # anything (reads go through open_object), and resolving links here cost a file-system call per
        # part on the event loop for every asset recorded.
        _check_key(key)
        return (self.root / key).as_uri()

    # --- lifecycle
    async def open(self) -> None:
        if not self.used_before:  # a new lake's new mount; one used before is a file system not mounted (yet)
            self.root.mkdir(parents=True, exist_ok=True)
        if self.direct_writes:
            # Read, never made here: the owner is not known yet as a store opens, and the folder may be
            # the empty place of a file system not mounted (yet). A marker made there gave the process
            # an id the mount's own marker does not hold once it is mounted: no direct write matched
            # until a restart. load_marker makes it once the mount is known to be this lake's.
            # Through no link: `mounts { localId }` shows what it holds, and a writer who put a link to
            # the signing key in its place would have had the key shown (UnsafeKey: the server stops).
            self.mount_id = self._read_marker(make=False)

    async def load_marker(self) -> None:
        """Read MARKER again (made first where it is missing and the mount is known to be this lake's:
        its owner file read a moment before), as settle_owners learns the mount's owner: the id a
        process reports is the one of the file system mounted now, not of the folder below it."""
        if self.direct_writes:
            ours = self.ownership.owner is not None and self.ownership.owner == self.ownership.lake
            self.mount_id = await asyncio.to_thread(self._read_marker, make=ours)

    def _read_marker(self, *, make: bool) -> str | None:
        if make:
            with contextlib.suppress(FileExistsError):  # made once; every process serving the mount reads it
                with (self.root / MARKER).open("x") as out:
                    out.write(uuid.uuid4().hex)
        try:  # by the path, as the owner file just read (note_root follows it)
            with _closing(open_folder(self.root, [])) as root, \
                    os.fdopen(_open_regular(MARKER, os.O_RDONLY, root), "rb") as file:
                return file.read(256).decode().strip() or None
        except FileNotFoundError:
            return None

    async def read_owner_file(self) -> bytes | None:
        """What the mount's OWNER_FILE holds (storage/ownership.py), None while it has none. Read
        through no link, as MARKER: a writer sharing the mount could put one in its place.
        StoreUnavailable when it cannot be read, as an S3 store's: callers catch one error for both."""
        try:
            return await asyncio.to_thread(self._read_owner_file)
        except (OSError, ValueError) as error:  # the disk, or a link in the file's place (UnsafeKey)
            raise StoreUnavailable(f"local mount {self.name!r}: reading {OWNER_FILE}: {error}") from None

    def _read_owner_file(self) -> bytes | None:
        try:  # by the path, not through the noted root: what is there now is what settle_owners asks about
            with _closing(open_folder(self.root, [])) as root, \
                    os.fdopen(_open_regular(OWNER_FILE, os.O_RDONLY, root), "rb") as file:
                return file.read(64 * 1024)
        except FileNotFoundError:
            return None

    async def write_owner_file(self, data: bytes, *, replace: bool) -> bool:
        """Write the mount's OWNER_FILE, whole or not at all; unless `replace`, only where there is
        none (False then: another lake, or another process of this one, was first). StoreUnavailable
        when it cannot be written (a read-only or full disk), as an S3 store's."""
        try:
            return await asyncio.to_thread(self._write_owner_file, data, replace)
        except (OSError, ValueError, FileSwapped) as error:  # ValueError: a link in the root's way (UnsafeKey)
            raise StoreUnavailable(f"local mount {self.name!r}: writing {OWNER_FILE}: {error}") from None

    def _write_owner_file(self, data: bytes, replace: bool) -> bool:
        # By the path: a claim or an adoption is what makes the folder there the mount (note_root after it).
        staged = StagedFile(open_folder(self.root, [], make=True), OWNER_FILE, f"{OWNER_FILE}-", 0o644)
        try:
            staged.file.write(data)
            try:
                staged.store(replace=replace, sync=True)
            except FileExistsError:
                return False
            return True
        finally:
            staged.close()

    def direct_path(self, key: str) -> Path:
        """Where a direct writer puts `key`'s file (its directory made here, so the writer need
        not create anything but the file). The entry itself: whatever a writer left there so far
        is for completion to judge, not a reason to refuse the session."""
        self.ownership.require("upload", key)
        path = self._entry(key)
        with self._directory(split_key(key)[0], make=True):  # made through no link
            pass
        return path

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    async def check_root(self) -> None:
        """StoreUnavailable unless the folder at the root's path is still the one noted (note_root): an
        open and a stat, where check() writes a probe file. For callers that remember check()'s answer
        a while (services/uploads/mounts.py): a file system unmounted since is not to be trusted for it."""
        if self._root_id is not None:
            await asyncio.to_thread(lambda: os.close(self._open_noted_root()))

    def _check(self) -> None:
        if self._root_id is not None:  # no probe file written into another folder now at the root's path
            os.close(self._open_noted_root())
        # One this lake used (or another lake's), left missing as it opened: said so, not as the probe's ENOENT.
        if not self.root.exists() and (self.used_before or not self.ownership.owned):
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: the folder is missing: is its file "
                                   "system not mounted?")
        if not self.ownership.owned:  # another lake's (a restored copy's): read, never written, even a probe
            if not (self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)):
                raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: not a folder this server can read")
            return self._check_owner_file()
        # Writing a probe file catches a read-only or full disk, which `exists()` would not: a byte of
        # it, since a full disk still makes an empty file (an inode, no block), and uploads all failed.
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root)
            try:
                try:
                    os.write(fd, b"\0")
                finally:
                    os.close(fd)  # a network file system may say ENOSPC only here
            finally:
                os.unlink(probe)  # even then: left, one more stayed in the root at every probe
        except OSError as error:
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: {error.strerror}") from error
        self._check_owner_file()

    def _check_owner_file(self) -> None:
        """The owner file a lake knows the mount by is still there: gone, the folder is most likely the
        empty place a file system (a NAS, a disk) is mounted on, no longer mounted, where the probe
        above succeeds on the disk below and every stored file is missing. Read (a byte, through no
        link), not only looked at: a file system gone bad (EIO, a stale NFS handle) or permissions
        changed answer a look from what they cached. Any failure to read it makes the mount
        unavailable, with its error: an error other than "not found" escaped the probe, and an
        upload choosing the mount failed whole instead of going to its fallback."""
        if self.ownership.owner is None:
            return
        try:
            with self._directory([]) as root:
                fd = _open_at(OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, root)
                try:
                    os.read(fd, 1)  # a directory in its place: IsADirectoryError
                finally:
                    os.close(fd)
        except FileNotFoundError:
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: its {OWNER_FILE} is gone: is its file "
                                   "system not mounted?") from None
        except (OSError, ValueError) as error:  # ValueError: a link in its place (UnsafeKey)
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: its {OWNER_FILE} cannot be read: "
                                   f"{error}") from None

    # --- signed URLs (served by graphlake.blob_routes)
    async def sign_put(self, key: str, *, size: int, content_type: str, sha256: str | None,
                       expires_in: int) -> SignedRequest:
        await asyncio.to_thread(self.path, key)  # it lstat-s the key's folders (start_multipart says why)
        self.ownership.require("upload", key)
        # The declared digest's tag signed in (UrlSigner.digest_tag), so the route refuses other bytes as
        # S3 does (x-amz-checksum-sha256).
        url = self.signer.sign("PUT", self.name, key, expires_in, size=str(size),
                               **({"digest": self.signer.digest_tag(sha256)} if sha256 else {}))
        return SignedRequest(url=url, headers={"Content-Type": content_type})

    async def sign_get(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                       bucket: str | None = None, sha256: str | None = None) -> str:
        return self.sign_get_now(key, filename=filename, content_type=content_type, expires_in=expires_in,
                                 sha256=sha256)

    def sign_get_now(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                     bucket: str | None = None, sha256: str | None = None) -> str:
        # Checked by its text alone: the route that serves the URL resolves the path (`path`) before it
        # reads a byte, and a page of a version's images signs hundreds of keys, each resolve a few
        # system calls per directory level.
        _check_key(key)
        # The digest as its keyed tag (digest_tag), as a PUT's: the route names the bytes by it in the
        # ETag, and the URL holds nothing of the file's SHA-256 (see digest_tag).
        tagged = {"digest": self.signer.digest_tag(sha256)} if sha256 else {}
        return self.signer.sign("GET", self.name, key, expires_in, name=filename, type=content_type or "", **tagged)

    # --- multipart
    # A direct writer may write in the mount's root, so `.multipart` and everything below it can be
    # a link or a FIFO by the time the server opens it: it is opened through no link (_open_directory,
    # _open_regular), by name only inside a directory it holds open.
    # Every file-system call of an upload's way (createUpload's look at the key's folders and the
    # upload's file made, a part's file opened, completion's stat and rename) is made in a worker
    # thread: on a network file system whose server is away (a hard NFS mount) each waits until it
    # is back, and on the event loop every request of the process waited with it, /healthz too.
    async def start_multipart(self, key: str, *, content_type: str) -> str:
        return await asyncio.to_thread(self._start_multipart, key)

    def _start_multipart(self, key: str) -> str:
        self.path(key)
        self.ownership.require("upload", key)
        upload_id = uuid.uuid4().hex
        with self._directory(self._upload_folders(upload_id), make=True) as folder:
            os.close(_open_at(_PART_DATA, _NEW_FILE, folder))
        return upload_id

    async def sign_part(self, key: str, upload_id: str, number: int, *, size: int, offset: int,
                        expires_in: int) -> SignedRequest:
        self.part_name(number)
        self.ownership.require("upload", key)
        url = self.signer.sign("PUT", self.name, key, expires_in, upload=upload_id, part=str(number), size=str(size),
                               offset=str(offset))
        return SignedRequest(url=url)

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        # In a thread: a part's record is a file of its own, and reading 10,000 of them held the loop.
        return await asyncio.to_thread(self._list_parts, upload_id)

    def _list_parts(self, upload_id: str) -> list[StoredPart]:
        try:
            folder = self._open_directory(self._upload_folders(upload_id))
        except (FileNotFoundError, UnsafeKey):  # gone, or a link in its place: nothing of this upload's
            return []
        try:
            try:
                data = os.stat(_PART_DATA, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                data = None
            if data is None or not stat.S_ISREG(data.st_mode):
                # Gone, or begun by a version that kept each part in its own file: not resumable here
                # (its parts' URLs are refused too); the reconciler removes it when its session expires.
                return []
            parts = []
            for name in sorted(os.listdir(folder)):
                if not name.isdigit():
                    continue
                try:
                    marker = _open_regular(name, os.O_RDONLY, folder)
                except (FileNotFoundError, UnsafeKey):  # a link or a FIFO is no marker the server wrote
                    continue
                with os.fdopen(marker, "rb") as file:
                    parts.append(StoredPart(number=int(name), etag=name, size=int(file.read(32) or 0)))
            return parts
        finally:
            os.close(folder)

    async def open_part_file(self, upload_id: str) -> int:
        """A descriptor to write a part into the upload's data file, shared-locked until it is closed;
        FileNotFoundError once the upload is completed or aborted, UnsafeKey for a link on the way.
        The lock lets completion wait for part writes under way, and the check of the name against
        the descriptor refuses a writer that opened the file before completion moved it into place:
        so a completed object never changes after it was verified. Opened through no link, and only
        a regular file with no other name (a hard link a writer made to another file): a part URL
        writes into the upload's own file or nowhere."""
        self.ownership.require("write_part", upload_id)
        opening = asyncio.ensure_future(asyncio.to_thread(self._open_part_file, upload_id))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread goes on: the descriptor it opens holds a shared lock completion would wait
            # on for ever, so it is closed as soon as the thread ends.
            opening.add_done_callback(_close_opened)
            raise

    def _open_part_file(self, upload_id: str) -> int:
        folder = self._open_directory(self._upload_folders(upload_id))
        try:
            fd = _open_regular(_PART_DATA, os.O_WRONLY, folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                named = os.stat(_PART_DATA, dir_fd=folder, follow_symlinks=False)  # FileNotFoundError once moved
                opened = os.fstat(fd)
                if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
                    raise FileNotFoundError(errno.ENOENT, "the multipart upload is no longer open", upload_id)
                if opened.st_nlink != 1:
                    raise UnsafeKey("the multipart upload's file has another name (a hard link); it is not written")
            except BaseException:
                os.close(fd)
                raise
        finally:
            os.close(folder)
        return fd

    def mark_part(self, upload_id: str, number: int, size: int) -> None:
        """Record that part `number` arrived whole: its marker written under a temporary name and
        renamed into place (StagedFile), so a marker is whole or missing. Blocking (small)."""
        name = self.part_name(number)
        staged = StagedFile(self._open_directory(self._upload_folders(upload_id)), name, prefix=f".{name}-")
        try:
            staged.file.write(str(size).encode())
            staged.store(replace=True)
        finally:
            staged.close()

    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None:
        """Move the upload's data file, its parts written in place, to `key` (a rename: atomic, no
        copy), then remove what is left of the upload. A crash leaves either the parts or the whole
        object at `key` (and maybe the part markers), never a part of it: the object's presence with
        the parts gone tells a later completion this one got that far."""
        self.ownership.require("complete", key)
        await asyncio.to_thread(self._complete_multipart, key, upload_id)
        await self.abort_multipart(key, upload_id)  # the part markers; safe to repeat

    def _complete_multipart(self, key: str, upload_id: str) -> None:
        folders, name = split_key(key)
        with self._directory(self._upload_folders(upload_id)) as upload, self._directory(folders, make=True) as target:
            fd = _open_regular(_PART_DATA, os.O_RDONLY, upload)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # part writes under way finish first
                os.replace(_PART_DATA, name, src_dir_fd=upload, dst_dir_fd=target)
            finally:
                os.close(fd)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        if self.ownership.allows("abort_multipart_upload", key):
            await asyncio.to_thread(self._remove_upload, upload_id)

    def _remove_upload(self, upload_id: str) -> None:
        self._upload_folders(upload_id)
        try:
            with self._directory([".multipart"]) as uploads:
                # rmtree by a directory's descriptor never follows a link, not even at its top.
                shutil.rmtree(upload_id, ignore_errors=True, dir_fd=uploads)
        except (FileNotFoundError, UnsafeKey):  # nothing there, or a writer's link: nothing of ours to remove
            pass

    # --- objects
    async def stat(self, key: str) -> ObjectInfo | None:
        """What `key` holds; None for nothing, or for anything but a regular file (a direct writer's
        symlink or FIFO). Judged, size and digest alike, through the descriptor of the file itself,
        opened through no link (a link among its folders: UnsafeKey): by path, a writer could swap a
        folder for a link between the look at it and the read of its digest. In a worker thread, as
        every call of an upload's way (start_multipart says why)."""
        return await asyncio.to_thread(self._stat, key)

    def _stat(self, key: str) -> ObjectInfo | None:
        folders, name = split_key(key)
        try:
            folder = self._open_directory(folders)  # a link among them: UnsafeKey
        except FileNotFoundError:
            return None
        try:
            fd = _open_regular(name, os.O_RDONLY, folder)
        except (FileNotFoundError, UnsafeKey):  # nothing there, or the entry itself a link: no file stored
            return None
        finally:
            os.close(folder)
        try:
            size = os.fstat(fd).st_size
            try:
                recorded = os.getxattr(fd, SHA256_ATTR).decode() if _XATTRS else None
            except OSError:  # not recorded (a multipart object), or no user xattrs on this filesystem
                recorded = None
        finally:
            os.close(fd)
        return ObjectInfo(size=size, sha256=recorded)

    def remove_stale_temp_files(self, older_than: float) -> int:
        """Delete upload temp files (`is_temp_name`) nobody has written to for `older_than` seconds:
        what a PUT or a direct writer that died left behind. With `older_than` at least the upload
        expiry, no open session can still own one. Blocking (a thread's work); returns how many went."""
        if not self.ownership.allows("sweep_temp_files", ""):
            return 0
        cutoff = time.time() - older_than
        removed = 0
        with self._directory([]) as root:
            for _, dirs, files, folder in os.fwalk(dir_fd=root):  # by descriptors: a link swapped in is not entered
                dirs[:] = [d for d in dirs if not d.startswith(".")]  # .multipart goes with its sessions
                removed += _remove_older(folder, filter(is_temp_name, files), cutoff, "st_mtime")
        return removed

    def files_older_than(self, prefix: str, seconds: float, size: int = LIST_PAGE) -> Iterator[list[str]]:
        """Keys of the regular files directly under `prefix/` nobody has written to for `seconds`, a
        page of at most `size` at a time. Blocking: each page is a thread's work (the directory is
        listed as the pages are taken, opened through no link: a link in `prefix`'s place lists
        nothing, never the folder it points to)."""
        cutoff = time.time() - seconds
        try:
            with self._directory(prefix.split("/")) as folder, os.scandir(folder) as entries:
                page: list[str] = []
                for entry in entries:
                    try:
                        if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                            continue
                    except FileNotFoundError:  # gone since the listing read its name
                        continue
                    page.append(f"{prefix}/{entry.name}")
                    if len(page) == size:
                        yield page
                        page = []
                if page:
                    yield page
        except (FileNotFoundError, UnsafeKey):
            return

    def set_aside(self, key: str) -> None:
        """Move `key`'s file under STRAY_DIR, where remove_set_aside deletes it later: a file the
        server found no record of is kept a while, in case the record is what is missing. Renamed
        between directories opened through no link: a link in place of STRAY_DIR is refused (UnsafeKey),
        never a way to move the lake's files out of it."""
        if not self.ownership.allows("set_aside", key):
            return
        folders, name = split_key(key)
        with self._directory(folders) as source, self._directory([STRAY_DIR, *folders], make=True) as target:
            os.replace(name, name, src_dir_fd=source, dst_dir_fd=target)

    def remove_set_aside(self, seconds: float) -> int:
        """Delete what was set aside more than `seconds` ago (a move sets a file's ctime); returns how
        many files went. Blocking. Walked by descriptors from STRAY_DIR opened through no link: a link
        in its place (or below) must not have the server delete old files wherever it points."""
        if not self.ownership.allows("delete_set_aside", STRAY_DIR):
            return 0
        cutoff = time.time() - seconds
        removed = 0
        try:
            stray = self._open_directory([STRAY_DIR])
        except (FileNotFoundError, UnsafeKey):  # nothing set aside, or nothing of ours there
            return 0
        try:
            for _, _, files, folder in os.fwalk(dir_fd=stray):
                removed += _remove_older(folder, files, cutoff, "st_ctime")
        finally:
            os.close(stray)
        return removed

    @staticmethod
    def record_sha256(path: Path | int, sha256: str) -> None:
        """Keep the digest computed while the object was written with the file (an extended
        attribute, so it goes wherever the file goes); where the filesystem has none, completion
        reads the object back instead. `path` may be the file's descriptor: in a mount, always
        (by name, a writer could have swapped the file for a link to another)."""
        if _XATTRS:
            with contextlib.suppress(OSError):
                os.setxattr(path, SHA256_ATTR, sha256.encode())

    def open_object(self, key: str) -> BinaryIO:
        """`key`'s file opened for reading, through no link anywhere below the root, and only if it
        is a regular file, judged by the descriptor itself: UnsafeKey for a link on the way,
        FileNotFoundError for nothing there or anything else (a FIFO cannot hold the thread). Serve,
        hash or decode what this returns, never the path: a writer sharing the mount can swap a name
        for a link between a check of it and an open by it. Blocking (small)."""
        folders, name = split_key(key)
        with self._directory(folders) as folder:
            return os.fdopen(_open_regular(name, os.O_RDONLY, folder), "rb")

    async def read(self, key: str) -> AsyncIterator[bytes]:
        with await asyncio.to_thread(self.open_object, key) as file:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk

    async def sha256(self, key: str) -> str:
        """What completion checks a declared digest against, and the reconciler records: of the file
        stat judged a moment before, read through no link (a direct writer's swap gets UnsafeKey)."""
        return await in_file_thread(self._sha256, key)

    def _sha256(self, key: str) -> str:
        with self.open_object(key) as file:
            return stream_digest(file)[1]

    def stage(self, key: str, *, prefix: str = STAGED_PREFIX, mode: int = 0o666) -> StagedFile:
        """A new file beside `key`'s place (its folders made), which StagedFile.store then puts there:
        what a signed PUT, a thumbnail or a version's content file is written into. Blocking (small)."""
        self.ownership.require("write", key)
        folders, name = split_key(key)
        return StagedFile(self._open_directory(folders, make=True), name, prefix, mode)

    async def write(self, key: str, path: Path | StagedFile) -> None:
        await asyncio.to_thread(self._write, key, path)

    def _write(self, key: str, source: Path | StagedFile) -> None:
        self.ownership.require("write", key)
        if isinstance(source, StagedFile):  # stage's, for this key: renamed into place, not copied
            if source.name != key.rpartition("/")[2]:
                raise ValueError(f"a file staged for {source.name!r} cannot be stored as {key!r}")
            source.store(replace=True, sync=True)  # whole before it is named: never an empty file under the key after a crash
            return
        staged = self.stage(key)
        try:
            with source.open("rb") as reader:
                shutil.copyfileobj(reader, staged.file)
            self._write(key, staged)
        finally:
            staged.close()

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
        self.ownership.require("write", key)
        folders, name = split_key(key)
        # Written in place, not through a temporary name: the key is new (O_EXCL: it must not exist),
        # and nothing names it until the copy is done and its asset recorded. Its folders are opened
        # through no link, as everything the server writes in a mount (StagedFile says why).
        # Readable too, so copy_hashing may read back what the kernel copied or cloned.
        with open_source(source, expect) as reader:
            with self._directory(folders, make=True) as folder:
                fd = _open_at(name, _NEW_FILE, folder)
            with os.fdopen(fd, "r+b") as writer:
                copied, sha256 = copy_hashing(reader, writer, bypass_cache=self.bypass_cache)  # an object: seldom read soon
                if copied != expect.st_size:
                    raise SourceChanged(f"{source} had {expect.st_size} bytes when checked, {copied} when copied")
                self.record_sha256(fd, sha256)
        return sha256

    async def delete(self, key: str) -> None:
        """Remove `key`'s entry, whatever it is (a link a direct writer left is removed, never
        followed), through the descriptor of its folder opened through no link: by path, a folder
        swapped for a link meanwhile would have the server delete a file outside the mount. A link
        among the folders is UnsafeKey; nothing there, nothing to do."""
        await asyncio.to_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        if not self.ownership.allows("delete", key):
            return
        folders, name = split_key(key)
        try:
            with self._directory(folders) as folder:
                try:
                    os.unlink(name, dir_fd=folder)
                except IsADirectoryError:  # a direct writer's mistake, never a stored object
                    shutil.rmtree(name, ignore_errors=True, dir_fd=folder)  # by descriptors: no link followed
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _close_opened(opening: asyncio.Future[int]) -> None:
    """Close the descriptor `opening` ended with, if it opened one (nobody awaits it any more)."""
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


class SourceChanged(Exception):
    """A file being copied in is not the one checked before (LocalStore.copy_in)."""


def _remove_older(folder: int, names: Iterable[str], cutoff: float, time_field: str) -> int:
    """Unlink the entries `names` of the directory `folder` whose `time_field` (lstat) is before `cutoff`."""
    removed = 0
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # renamed into place or removed meanwhile
            if getattr(os.stat(name, dir_fd=folder, follow_symlinks=False), time_field) < cutoff:
                os.unlink(name, dir_fd=folder)
                removed += 1
    return removed


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


def split_key(key: str) -> tuple[list[str], str]:
    """The folders and the name of `key`'s file, once `key` is checked as text (_check_key)."""
    _check_key(key)
    *folders, name = key.split("/")
    return folders, name


def _check_key(key: str) -> None:
    """UnsafeKey unless `key`, as text, names an object under the root (no absolute path, no `..`,
    no empty or `.` part, nothing of the store's own): `path` also checks where links lead."""
    if not key or "\x00" in key or key.startswith(("/", ".multipart", STRAY_DIR, MARKER, OWNER_FILE)) \
            or any(p in ("", ".", "..") for p in key.split("/")):
        raise UnsafeKey(f"unsafe object key {key!r}")
