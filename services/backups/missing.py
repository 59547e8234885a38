"""The stored files a backup's documents name and its payloads lack.

A backup reads the documents first and the objects after (for hours, on a large lake), while the
lake goes on: an asset deleted meanwhile, or collected, is ACTIVE in the backup and its object gone
by the time the copy reaches it; an object may also have been missing from the mount already. The
backup cannot tell which (the live lake has moved on), so it says which ones, and `backup verify`
and a restore repeat it: a restored lake serves those as ACTIVE with no bytes behind them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from bson import decode_file_iter

from services.backups.layout import MissingPayload, PayloadEntry

# Where each kind of stored file names its object: (collection, field).
_NAMED_BY = (("assets", "storage"), ("dataset_versions", "content"))


def missing_payloads(directory: Path, mounts: Sequence[str], payloads: Sequence[PayloadEntry]) -> list[MissingPayload]:
    """The ACTIVE FILE assets and READY dataset versions in the backup at `directory` whose object is
    on one of `mounts` (those whose objects the backup copied) and is not among `payloads`. Read from
    the backup's own collection files, streamed: what the backup holds, not what the lake holds now.
    Blocking: a thread's work."""
    if not mounts:
        return []
    held = {(p.mount, p.key) for p in payloads}
    missing = []
    for collection, field in _NAMED_BY:
        for document in _documents(directory / "collections" / f"{collection}.bson"):
            if not _stored_file(collection, document):
                continue
            where = document.get(field) or {}
            mount, key = where.get("mount"), where.get("key")
            if mount in mounts and isinstance(key, str) and (mount, key) not in held:
                missing.append(MissingPayload(collection=collection, id=str(document["_id"]), mount=mount, key=key))
    return missing


def _stored_file(collection: str, document: dict) -> bool:
    """Whether the document names an object the lake stores and serves (an external one is not ours)."""
    if collection == "assets":
        storage = document.get("storage") or {}
        return document.get("kind") == "FILE" and document.get("status") == "ACTIVE" and not storage.get("external")
    return document.get("status") == "READY"


def _documents(path: Path) -> Iterator[dict]:
    if not path.exists():  # a lake that never held any
        return
    with path.open("rb") as file:
        yield from decode_file_iter(file)
