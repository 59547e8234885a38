"""A dataset version's content as one file in the object store, written when the version is built.

One JSON line per datum, in the order `DatasetVersion.datums` lists them: the datum as the version
froze it (id, split, metadata, roles) with the version's copies of its records, in the shape and
with the ids that `datasetVersion.datums` answers (GraphQL's field names; a geometry carries its
`__typename`; an asset is named by `{"id": ...}` alone, since its name, status and URL may change).

Why a file: a version never changes, and an exporter reads all of it. Through GraphQL pages the
server completed every field of every record for every export: a COCO version of 2,000 images and
20,000 boxes cost it about 1.9 s of CPU and the database 0.7 s each time (bench/exchange.py). The
file is written once, from the copies the build holds in memory anyway, and is then downloaded
through a signed URL (or read from a shared mount) like any stored file: no page, no field, no
database read per export. Clients fall back to the pages where a version has no file (built before
this, or its write failed) or the file is not the one recorded (its size and SHA-256).

Who made or verified a record, and a person's name as a record's source, are left out: a privacy
erase rewrites them in the version's copies (services/privacy/places.py), and would have to rewrite
the file. Nothing an exporter reads is among them. A record's kind of source (human or model) is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from bson import ObjectId

from documents.dataset import DatasetVersion, VersionContentFile, VersionStatus
from services.node_ids import NodeType, encode_id
from services.uploads.downloads import check_expiry
from storage import ObjectStore

if TYPE_CHECKING:
    from storage.local import StagedFile

log = logging.getLogger("graphlake.versions")

FORMAT = "graphlake-version-content-1"
MEDIA_TYPE = "application/x-ndjson"

# The GraphQL type of each stored geometry, and its number fields (GraphQL Floats: written as floats,
# as the API gives them, even where a client stored a whole number).
_TYPENAMES = {"BBOX": "BBox", "ROTATED_BBOX": "RotatedBBox", "POLYGON": "Polygon", "POLYLINE": "Polyline",
              "KEYPOINTS": "Keypoints", "MASK": "Mask"}
_NUMBERS = {"BBOX": ("x", "y", "width", "height"), "ROTATED_BBOX": ("cx", "cy", "width", "height", "angle")}
_EMPTY_JSON = orjson.Fragment(b"{}")


def content_key(version_id: ObjectId) -> str:
    return f"versions/{version_id}.jsonl"  # no folder per version: a local mount would keep each one emptied


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _json(stored: Mapping[str, Any] | None) -> orjson.Fragment:
    """A stored JSON value's text, written as it is (never parsed and dumped again)."""
    return orjson.Fragment(stored["json"]) if stored and stored.get("json") else _EMPTY_JSON


@functools.lru_cache(maxsize=4096)
def _named(kind: NodeType, raw_id: ObjectId) -> dict[str, str]:
    """`{"id": ...}` of a set or an asset: the records of a datum name the same few, and each id
    costs half a microsecond to encode (rendering 2,000 COCO datums of 10 boxes: 76 -> 63 ms)."""
    return {"id": encode_id(kind, raw_id)}


def _asset(asset_id: ObjectId) -> dict[str, str]:
    return _named(NodeType.ASSET, asset_id)


def _geometry(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not stored:
        return None
    kind = stored["type"]
    shape: dict[str, Any] = {"__typename": _TYPENAMES[kind]}
    if kind == "MASK":
        shape["asset"] = _asset(stored["asset_id"])
    elif kind == "KEYPOINTS":
        shape["points"] = [{"name": p.get("name"), "x": float(p["x"]), "y": float(p["y"]), "visible": p.get("visible")}
                           for p in stored["points"]]
    elif kind in ("POLYGON", "POLYLINE"):
        shape["points"] = [{"x": float(p["x"]), "y": float(p["y"])} for p in stored["points"]]
    else:
        shape.update({name: float(stored[name]) for name in _NUMBERS[kind]})
    return shape


def _record(copy: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": encode_id(NodeType.ANNOTATION_RECORD, copy["record_id"]), "key": copy.get("key"), "kind": copy["kind"],
        "label": copy.get("label"), "score": _number(copy.get("score")), "value": _number(copy.get("value")),
        "attributes": _json(copy.get("attributes")), "verified": bool(copy.get("verified")),
        # Its kind of source only (HUMAN, MODEL, DERIVED), which training code filters on: see above for names.
        "source": {"kind": copy["source"]["kind"]} if copy.get("source") else None,
        "set": _named(NodeType.ANNOTATION_SET, copy["set_id"]), "asset": _asset(copy["asset_id"]),
        "geometry": _geometry(copy.get("geometry")),
    }


def datum_line(member: Mapping[str, Any], copies: list[Mapping[str, Any]]) -> bytes:
    """One datum's line: `member` as the build writes it, `copies` its records' copies in order."""
    return orjson.dumps({
        "id": encode_id(NodeType.DATUM, member["datum_id"]), "split": member["split"],
        "metadata": _json(member.get("metadata")),
        "roles": [{"role": r["role"], "asset": _asset(r["asset_id"])} for r in member.get("roles", [])],
        "annotations": [_record(c) for c in copies],
    }) + b"\n"


class ContentWriter:
    """The file of version `version_id`, written batch by batch where `store` stages it (beside its
    place on a local mount, else in a temporary file: ObjectStore.stage), then stored whole
    (`attach`). Best effort throughout: the version stands without its file (clients then read its
    pages), so nothing here fails a build. A failure is logged, and the rest is skipped. Close it in
    every case."""

    def __init__(self, version_id: ObjectId, store: ObjectStore) -> None:
        self.version_id, self.store, self.key = version_id, store, content_key(version_id)
        self._file: BinaryIO | None = None
        self._staged: StagedFile | None = None  # on a local mount
        self._path: Path | None = None  # elsewhere
        self._digest = hashlib.sha256()
        self.size = 0
        self.broken = False

    def add(self, members: list[Mapping[str, Any]], copies: Mapping[ObjectId, list[Mapping[str, Any]]]) -> None:
        """Write these members' lines (blocking, and some milliseconds of CPU a batch: run it in a thread)."""
        if self.broken:
            return
        try:
            if self._file is None:
                if (staged := self.store.stage(self.key)) is not None:
                    self._staged, self._file = staged, staged.file
                else:
                    handle, name = tempfile.mkstemp(prefix="graphlake-version-", suffix=".jsonl")
                    self._file, self._path = os.fdopen(handle, "wb"), Path(name)
            lines = b"".join(datum_line(m, copies.get(m["datum_id"], [])) for m in members)
            self._file.write(lines)
        except Exception:  # no room for it, or a shape this format does not know: no file for this version
            log.warning("the content file of a version being built could not be written; exporters will read "
                        "its pages", exc_info=True)
            self.broken = True
            return
        self._digest.update(lines)
        self.size += len(lines)

    async def attach(self) -> bool:
        """Store the file and name it on the (READY) version; whether it was."""
        if self._file is None:  # a version of no datums: an empty file
            await asyncio.to_thread(self.add, [], {})
        source = self._staged or self._path
        if self.broken or self._file is None or source is None:
            return False
        version_id, store, key = self.version_id, self.store, self.key
        stored = False
        try:
            if self._staged is None:
                await asyncio.to_thread(self._file.close)
            await store.write(key, source)
            stored = True
            content = VersionContentFile(format=FORMAT, mount=store.name, key=key, size_bytes=self.size,
                                         sha256=self._digest.hexdigest())
            named = await DatasetVersion.get_pymongo_collection().update_one(
                {"_id": version_id, "status": VersionStatus.READY.value}, {"$set": {"content": content.model_dump()}})
            if named.matched_count == 0:  # deleted meanwhile: its file goes too
                await store.delete(key)
            return named.matched_count == 1
        except BaseException as error:
            if stored:  # not named on the version: nothing would ever delete it
                with contextlib.suppress(Exception):
                    await store.delete(key)
            if not isinstance(error, Exception):
                raise
            log.warning("the content file of version %s was not stored; exporters will read its pages", version_id,
                        exc_info=True)
            return False

    def close(self) -> None:
        if self._staged is not None:
            self._staged.close()
        elif self._file is not None:
            self._file.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)


async def remove(content: Mapping[str, Any] | None, stores: Mapping[str, ObjectStore] | None) -> None:
    """Delete a version's file (`content` as stored on the version), if it has one on a mount of this
    lake. Best effort, as `attach`: a store that fails leaves the file behind (logged), not the
    version; the daily stray sweep sets it aside (reconciler.sweep_stray_copies)."""
    if not content or stores is None or content.get("mount") not in stores:
        return
    try:
        await stores[content["mount"]].delete(content["key"])
    except Exception:
        log.warning("the content file %s of a deleted version was left in mount %s", content["key"], content["mount"],
                    exc_info=True)


async def download_url(content: VersionContentFile, stores: Mapping[str, ObjectStore], expires_in: int,
                       max_seconds: int, *, filename: str | None = None) -> str | None:
    """A signed GET of the file, as an asset's download URL is signed, saved as `filename` (default
    `<version id>.jsonl`); null where its mount is not this lake's any more."""
    check_expiry(expires_in, max_seconds)
    store = stores.get(content.mount)
    if store is None:
        return None
    name = filename or content.key.rpartition("/")[2]
    return (store.sign_get_now(content.key, filename=name, content_type=MEDIA_TYPE, expires_in=expires_in,
                               sha256=content.sha256)
            or await store.sign_get(content.key, filename=name, content_type=MEDIA_TYPE, expires_in=expires_in,
                                    sha256=content.sha256))

