"""Server-side ingest: when the server reads the files itself (they sit under one of its
`ingestRoots`, as this machine names them, e.g. a dataset on the lab's NAS mounted on both), a batch
goes up as one `ingestFiles` naming their paths: the server copies and hashes them into its local
mount, with no upload to open, signed URL or completion (services/uploads/ingest.py). Uploader
.upload_batch takes this path on its own when it applies, batch by batch, and uploads a batch the
server turns away (it sees other files at those paths: another machine that happens to mount the
same path) as before.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import to_thread
from graphlake_client.transport import Progress

if TYPE_CHECKING:
    from graphlake_client.uploads import Uploader

# createUpload fields an ingest takes as they are (the mount goes once per call). A `sha256` known
# beforehand (a bundle's manifest) is checked by the server against what it copies.
FIELDS = ("name", "mediaType", "sha256", "description", "metadata", "labels", "owner", "dataTimestamp", "collectionId",
          "path")
# Where ingestFiles says it sees other files than this machine does (none there, not a file, not
# under a root once its links are followed, not readable, another size or modification time,
# changed while copied): upload them instead.
REFUSED = (".source", ".sizeBytes", ".modifiedNs")
BATCH_BYTES = 1 << 30  # see batches()


class Plan:
    """Where the server ingests from, and which mounts take ingests (the local ones)."""

    def __init__(self, roots: list[Path], local: set[str | None]) -> None:
        self.roots = roots
        self.local = local  # mount names (None: the default) that take ingests

    @classmethod
    def of(cls, facts: dict[str, Any]) -> Plan:
        """From the answer to operations.STORAGE_FACTS."""
        local: set[str | None] = {m["name"] for m in facts["mounts"] if m["backend"] == "local"}
        if any(m["isDefault"] and m["backend"] == "local" for m in facts["mounts"]):
            local.add(None)
        return cls([Path(root) for root in facts["ingestRoots"]], local)

    def takes(self, files: list[tuple[Path, dict[str, Any]]]) -> bool:
        """Whether the server may ingest into these files' mount: one mount for all, a local one."""
        mounts = {fields.get("mount") for _, fields in files}
        return bool(self.roots) and len(mounts) == 1 and mounts <= self.local

    def covers(self, found: Found) -> bool:
        """Whether every file lies under a root, as this machine names it."""
        return all(any(path.is_relative_to(root) for root in self.roots) for path in found.paths)


@dataclass(frozen=True)
class Found:
    """Files (with their createUpload fields) as this machine sees them: where their links lead and
    what stat says, read once per upload (find)."""

    files: list[tuple[Path, dict[str, Any]]]
    paths: list[Path]
    stats: list[Any]  # os.stat_result; None for a file this machine cannot stat (gone since the walk)

    def part(self, indices: range | list[int]) -> Found:
        return Found([self.files[i] for i in indices], [self.paths[i] for i in indices], [self.stats[i] for i in indices])


def _found(files: list[tuple[Path, dict[str, Any]]]) -> tuple[list[Path], list[os.stat_result | None]]:
    paths = [path.resolve() for path, _ in files]
    return paths, [stat_or_none(path) for path in paths]


def stat_or_none(path: Path) -> os.stat_result | None:
    """None for a file gone since the walk listed it (or that cannot be stat'ed): here it goes the
    upload way instead, and counts 0 in a batch's progress total (uploads.py); either way it fails
    alone when its turn comes, coded (Uploader._upload_chunk), and the rest of the upload goes on."""
    try:
        return path.stat()
    except OSError:
        return None


async def find(files: list[tuple[Path, dict[str, Any]]]) -> Found:
    return Found(files, *await to_thread(_found, files))  # one thread for every file-system call


def batches(found: Found) -> list[Found]:
    """The files in ingestFiles calls of at most BATCH_BYTES (a file bigger than that alone): the
    server copies a call's files before it answers, and a call must end well within the client's
    timeout however big the files are. Files that could not be stat'ed go in groups of their own
    (ingest_chunk turns them away), so the files around them are ingested all the same."""
    groups: list[list[int]] = [[]]
    size = 0
    for i, seen in enumerate(found.stats):
        bytes_ = seen.st_size if seen is not None else 0
        if groups[-1] and ((seen is None) != (found.stats[groups[-1][0]] is None) or size + bytes_ > BATCH_BYTES):
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += bytes_
    return [found.part(group) for group in groups]


async def ingest_chunk(lake: Uploader, found: Found, progress: Progress | None) -> list[dict[str, Any]] | None:
    """One ingestFiles for these files: their assets, each marked `unchanged` if it was filed
    already; or None if the server sees other files there, or this machine none (gone since the walk)."""
    files = found.files
    if any(seen is None for seen in found.stats):
        return None
    inputs = [{"source": str(path), "sizeBytes": seen.st_size, "modifiedNs": seen.st_mtime_ns,
               **{k: fields[k] for k in FIELDS if fields.get(k) is not None}}
              for path, seen, (_, fields) in zip(found.paths, found.stats, files, strict=True)]
    try:
        done = (await lake.execute(ops.INGEST_FILES, {"inputs": inputs, "mount": files[0][1].get("mount")}))["ingestFiles"]
    except GraphlakeClientError as error:
        if (error.field or "").endswith(REFUSED):
            return None
        which = re.match(r"inputs\[(\d+)\]", error.field or "")  # "inputs[7].sha256: ..." -> which file that is
        if which and int(which.group(1)) < len(files):
            raise error.restated(f"{files[int(which.group(1))][0]}: {error}") from None
        raise
    if progress:
        progress(sum(seen.st_size for seen in found.stats))
    return [{**d["asset"], "unchanged": True} if d["unchanged"] else d["asset"] for d in done]
