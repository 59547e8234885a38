"""The direct-write protocol, shared by the client and the server's local mount (storage/local.py).

A client that shares a local mount's filesystem with the server (the same machine, a cluster's
shared disk) writes an upload's file into the mount itself, a kernel copy instead of an HTTP
round trip. Both sides must agree on three things, so they live here, once, and the server imports
them from the client library (never the other way round):
- the MARKER file in the mount's root, whose content is the id the server reports: a client that
  reads that id there sees the same directory as the server;
- the temporary name a writer copies to before renaming into place, which the server's sweep
  recognises and removes when a writer died halfway;
- how a file is hashed (the client declares the SHA-256 the server checks).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

MARKER = ".graphlake-mount"  # holds the mount's id, for clients to recognise a directory they share
DIRECT_TEMP_SUFFIX = ".part"  # a direct writer's temp file: `.<name>.<anything>.part` beside directPath
CHUNK = 1024 * 1024  # bytes read at a time while hashing: memory stays flat whatever the file's size


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


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
