"""A dataset version's copies of the annotation records on one datum, packed into one document.

Why packed: a version freezes every record of its sets, and the embedded FerretDB spends its time
on each stored field, not on each document or byte: a COCO version of 2,000 images and 20,000
boxes cost it 0.9 s of CPU to insert as 20,000 copies, against 0.09 s as 2,000 packs, and reading
them back a page of 100 datums at a time 0.45 s against 0.07 s (docs/performance-history.md,
session 51). Nothing queries a version's copies by their fields inside the database: a version's
datum lists its own, filtered in Python (services/query_match.py), and its counts are kept on the version.

A pack holds its datum's copies in the order the version lists them (the originals', which the copies'
`_id`s follow), as one zlib-compressed BSON array. The people the copies name (who made or verified a
record, a HUMAN source) are not in it: they are listed in `people`, each copy naming them by their
place in that list, so a privacy request finds and rewrites them as any other document's names
(services/privacy/places.py). A datum whose copies pack to more than PART_BYTES gets several
parts (a document holds 16 MiB at most).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import bson
from beanie import Document, PydanticObjectId
from bson import ObjectId
from bson.codec_options import CodecOptions
from pydantic import Field
from pymongo import ASCENDING

from documents.clock import utcnow
from documents.indexes import Index

FORMAT = 1  # of `records`; a reader refuses a pack of another
PART_BYTES = 4 << 20  # packed records a part holds at most (before they are split in two)
_IDENTITY = ("created_by", "verified_by")  # the copies' fields naming a person (and a HUMAN source's name)
_ON_THE_PACK = ("version_id", "datum_id")  # every copy's, kept once on the pack
_CODEC = CodecOptions(tz_aware=True)  # times come back as the database gives them (UTC, aware)


class VersionRecordPack(Document):
    """The records one version froze on one datum (or a part of them)."""

    version_id: PydanticObjectId
    datum_id: PydanticObjectId
    part: int = 0
    held: int  # copies in it
    format: int = FORMAT
    records: bytes  # zlib(BSON {"r": [copy, ...]}), people named by their place in `people`
    people: list[str] = Field(default_factory=list)
    # The oldest copy's creation time: an automatic anonymization (services/privacy/aging.py) rewrites
    # its people once that is past its cutoff, as it does each original record.
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "version_record_packs"
        indexes = [
            # A page of a version's datums reads their packs by this (services/field_pages.py): a datum's
            # parts in `_id` order, which is theirs (written in one insert, in order).
            Index([("version_id", ASCENDING), ("datum_id", ASCENDING), ("_id", ASCENDING)], name="version_datum"),
        ]


def pack(version_id: ObjectId, datum_id: ObjectId, copies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pack documents (one, or parts) holding `copies`, the version's copies on the datum in order."""
    return [{"version_id": version_id, "datum_id": datum_id, "part": n, "held": len(part), "format": FORMAT,
             "records": records, "people": people, "created_at": _oldest(part)}
            for n, (part, records, people) in enumerate(_parts(list(copies)))]


def _parts(copies: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], bytes, list[str]]]:
    """The copies packed, halved until each part packs to PART_BYTES at most (a copy alone always fits:
    its original fit in a document)."""
    stored, people = _naming_by_place(copies)
    records = zlib.compress(bson.encode({"r": stored}), 1)  # level 1: a tenth of the time of the default, 10% larger
    if len(records) <= PART_BYTES or len(copies) == 1:
        return [(copies, records, people)]
    middle = len(copies) // 2
    return _parts(copies[:middle]) + _parts(copies[middle:])


def _naming_by_place(copies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The copies with each person they name replaced by their place in the list returned beside them."""
    people: dict[str, int] = {}

    def place(name: Any) -> Any:
        return people.setdefault(name, len(people)) if isinstance(name, str) else name

    stored = []
    for copy in copies:
        copy = {key: value for key, value in copy.items() if key not in _ON_THE_PACK}
        for field in _IDENTITY:
            if field in copy:
                copy[field] = place(copy[field])
        source = copy.get("source")
        if isinstance(source, dict) and source.get("kind") == "HUMAN" and "name" in source:
            copy["source"] = {**source, "name": place(source["name"])}
        stored.append(copy)
    return stored, list(people)


def _oldest(copies: list[dict[str, Any]]) -> datetime:
    times = [c["created_at"] for c in copies if isinstance(c.get("created_at"), datetime)]
    return min(times) if times else utcnow()


def unpack(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The copies a pack document holds, each naming its people again."""
    if document.get("format", FORMAT) != FORMAT:
        raise ValueError(f"a record pack of format {document.get('format')}: this release reads format {FORMAT}")
    people = document.get("people") or []
    copies = bson.decode(zlib.decompress(document["records"]), _CODEC)["r"]
    for copy in copies:
        copy["version_id"], copy["datum_id"] = document["version_id"], document["datum_id"]
        for field in _IDENTITY:
            if isinstance(copy.get(field), int):
                copy[field] = people[copy[field]]
        source = copy.get("source")
        if isinstance(source, dict) and isinstance(source.get("name"), int):
            source["name"] = people[source["name"]]
    return copies


def unpack_all(documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The copies of these packs in order (sorted by datum and part, as they were read)."""
    return [copy for document in documents for copy in unpack(document)]
