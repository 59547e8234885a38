"""Where each part of a backup lives, its manifest, and checking a backup against the manifest."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from graphlake_client.direct import stream_digest
from services.errors import BadUserInput

FORMAT = "graphlake-backup"
# 2 added what the backup lacks (missing_payloads) and the batches under way while it ran
# (open_batches): an earlier Graphlake would not read those, and says so by the number.
FORMAT_VERSION = 2
READS_FORMATS = frozenset({1, 2})
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
# A backup is input: its manifest may have been edited. Names and keys it gives must stay inside the
# backup and the mount, and name no system collection.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,119}")
KEY_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.=-]{0,254}")


@dataclass
class CollectionEntry:
    """One collection's documents: concatenated BSON, in the order the database gave them."""

    name: str
    file: str
    documents: int = 0
    bytes: int = 0
    sha256: str = ""


@dataclass
class PayloadEntry:
    """One stored object of a local mount, copied under `payloads/<mount>/<key>`."""

    mount: str
    key: str
    size: int
    sha256: str

    @property
    def file(self) -> str:
        return f"payloads/{self.mount}/{self.key}"


@dataclass
class MissingPayload:
    """A stored file the backup's documents name (an ACTIVE FILE asset, a READY dataset version's
    content file) on a mount whose objects it copied, and whose object it does not hold: deleted
    from the live lake while the backup ran, or missing from the mount already."""

    collection: str  # "assets" or "dataset_versions"
    id: str
    mount: str
    key: str

    def describe(self) -> str:
        what = "asset" if self.collection == "assets" else "dataset version"
        return f"{what} {self.id}: its object {self.mount}/{self.key} is not in the backup"


@dataclass
class OpenBatch:
    """A batch write (services/batches.py) seen under way while the backup ran, or held in part by it
    (services/backups/open_batches.py): its documents may be in the backup in part. `documents` says
    how many it writes into each of its `collections`; None when that cannot be counted on (its
    writer, an earlier Graphlake, did not say, a reaper took the batch back, or the backup holds
    a part of a batch it never saw under way), so that a restore keeps none of it."""

    id: str
    collections: list[str]
    documents: dict[str, int] | None


@dataclass
class Manifest:
    """What a backup holds and how to check it."""

    graphlake_version: str
    schema_version: int
    database: str
    started_at: str
    finished_at: str = ""
    collections: list[CollectionEntry] = field(default_factory=list)
    payloads: list[PayloadEntry] = field(default_factory=list)
    referenced_mounts: list[str] = field(default_factory=list)  # objects left where they are (not copied)
    schema_history: list[dict[str, Any]] = field(default_factory=list)
    missing_payloads: list[MissingPayload] = field(default_factory=list)
    open_batches: list[OpenBatch] = field(default_factory=list)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def documents(self) -> int:
        return sum(entry.documents for entry in self.collections)

    @property
    def payload_bytes(self) -> int:
        return sum(entry.size for entry in self.payloads)

    def write(self, directory: Path) -> None:
        with (directory / MANIFEST).open("w") as file:
            file.write(json.dumps(asdict(self), indent=1, default=str) + "\n")
            file.flush()
            os.fsync(file.fileno())

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise BadUserInput(f"{directory} is not a Graphlake backup: it has no {MANIFEST}", field="source") from None
        except (OSError, ValueError) as error:
            raise BadUserInput(f"{path} cannot be read: {error}", field="source") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise BadUserInput(f"{path} is not a Graphlake backup manifest", field="source")
        if raw.get("format_version") not in READS_FORMATS:
            raise BadUserInput(f"{path} has backup format {raw.get('format_version')}; this Graphlake reads "
                               f"formats {', '.join(map(str, sorted(READS_FORMATS)))}", field="source")
        try:
            manifest = cls(**{**raw, "collections": [CollectionEntry(**c) for c in raw["collections"]],
                              "payloads": [PayloadEntry(**p) for p in raw["payloads"]],
                              "missing_payloads": [MissingPayload(**m) for m in raw.get("missing_payloads", [])],
                              "open_batches": [OpenBatch(**b) for b in raw.get("open_batches", [])]})
            typed = (isinstance(manifest.schema_version, int) and manifest.schema_version >= 1
                     and all(isinstance(c.name, str) and isinstance(c.file, str) and isinstance(c.sha256, str)
                             and isinstance(c.bytes, int) for c in manifest.collections)
                     and all(isinstance(p.mount, str) and isinstance(p.key, str) and isinstance(p.sha256, str)
                             and isinstance(p.size, int) for p in manifest.payloads)
                     and all(isinstance(m.collection, str) and isinstance(m.id, str) and isinstance(m.mount, str)
                             and isinstance(m.key, str) for m in manifest.missing_payloads)
                     and all(isinstance(b.id, str) and isinstance(b.collections, list)
                             and all(isinstance(n, str) for n in b.collections) and (b.documents is None or (
                         isinstance(b.documents, dict) and all(isinstance(n, str) and isinstance(c, int)
                                                               for n, c in b.documents.items())))
                             for b in manifest.open_batches))
        except (KeyError, TypeError, AttributeError) as error:
            raise BadUserInput(f"{path} is malformed: {error}", field="source") from None
        if not typed:
            raise BadUserInput(f"{path} is malformed: a field has the wrong type", field="source")
        for entry in manifest.collections:
            if (not COLLECTION_NAME.fullmatch(entry.name) or entry.name.startswith("system.")
                    or entry.file != f"collections/{entry.name}.bson"):
                raise BadUserInput(f"{path} names collection {entry.name!r} ({entry.file!r}), which no backup holds",
                                   field="source")
        for batch in manifest.open_batches:  # a restore removes documents from these collections
            named = [*batch.collections, *(batch.documents or {})]
            if not all(COLLECTION_NAME.fullmatch(n) and not n.startswith("system.") for n in named):
                raise BadUserInput(f"{path} names a batch's collection among {named!r}, which no batch writes",
                                   field="source")
        for payload in manifest.payloads:
            if not (COLLECTION_NAME.fullmatch(payload.mount) and all(map(KEY_PART.fullmatch, payload.key.split("/")))):
                raise BadUserInput(f"{path} names object {payload.mount}/{payload.key!r}, which is not a stored "
                                   "object's key", field="source")
        return manifest


class NotAFile(OSError):
    """A path that is not a regular file of its own: `what` it is instead."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}, not a regular file")
        self.what = what


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, only if it is a regular file itself: never through a symbolic link,
    and never a FIFO, socket or device (whose open or read may block for ever, or do something).
    NotAFile otherwise. Looked at before it is opened, and the file opened checked again (it may
    have been swapped in between): opened without following a link and without blocking."""
    found = os.lstat(path)
    if stat.S_ISREG(found.st_mode):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise NotAFile(path, "a symbolic link") from None
        found = os.fstat(fd)
        if stat.S_ISREG(found.st_mode):
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        os.close(fd)
    raise NotAFile(path, _kind(found.st_mode))


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return what
    return "not a regular file"


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks (blocking: a thread's work). A backup writes only
    regular files (open_regular): a link is not followed (it vouched for a file outside the backup
    that happened to match) and a FIFO is not waited on (it held `backup verify` for good)."""
    with open_regular(path) as file:
        return stream_digest(file)


async def verify_backup(directory: Path, *, payloads: bool = True, unlisted: bool = True) -> tuple[Manifest, list[str]]:
    """The manifest, and every way the backup differs from it (none: it is whole). Without
    `payloads`, the objects' files are not read (a restore checks each as it copies it); without
    `unlisted`, files the manifest does not name are not looked for (a restore reads none of them,
    so a checksum file an operator put beside them must not stop a recovery)."""
    manifest = Manifest.read(directory)
    checks = [(c.file, c.bytes, c.sha256) for c in manifest.collections]
    if payloads:
        checks += [(p.file, p.size, p.sha256) for p in manifest.payloads]
    problems = []
    for relative, size, sha256 in checks:
        path = directory / relative
        if not os.path.lexists(path):
            problems.append(f"{relative}: missing")
            continue
        try:
            actual_size, actual = await asyncio.to_thread(file_digest, path)
        except NotAFile as error:
            problems.append(f"{relative}: {error.what}, not a file the backup wrote")
            continue
        if (actual_size, actual) != (size, sha256):
            problems.append(f"{relative}: {actual_size} bytes, SHA-256 {actual}; the manifest says {size} bytes, {sha256}")
    # A file the manifest does not list was put there since: a restore would never read it, but a
    # backup that holds more than it says is not the one that was written.
    if unlisted:
        listed = {MANIFEST} | {c.file for c in manifest.collections} | {p.file for p in manifest.payloads}
        problems += [f"{relative}: not in the manifest" for relative in await asyncio.to_thread(_files_under, directory)
                     if relative not in listed]
    return manifest, problems


def _files_under(directory: Path) -> list[str]:
    """Every file below `directory`, as a path relative to it (as the manifest names them)."""
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if not path.is_dir())
