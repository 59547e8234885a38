"""Sparse documents: what is written for the high-volume documents (assets, datums, events,
annotation records and a version's copies of them) leaves out their null fields.

On the embedded FerretDB every stored field costs on every write and read: the document is turned
into its JSON form field by field, and SQLite parses that whole text again for the index keys. An
annotation record has eight fields that are usually null (score, value, verification, corrections);
20,000 records written without them took 25% less of FerretDB's CPU, and read back 10% less
(bench: a raw insert_many and find of the same documents both ways). An asset has a dozen such
fields (description, digests, storage or value, timestamps): inserted without them it cost FerretDB
0.73 ms against 0.90 ms.

Only fields at the top level are left out, and only where reading them back needs nothing else:
- a missing field reads as its default, so each field left out must default to None (the tests
  check the models that use this);
- a query for `{field: null}` also matches a missing field, on MongoDB and FerretDB alike, as does
  a sort (missing and null sort together);
- the content hash of a version (documents/manifest.py) reads fields with `.get`, so a record
  hashes the same with or without them. Nested values keep their nulls: a keypoint's `name: null`
  is part of the geometry that hash covers.

A field of these documents is cleared with `cleared(...)` or `setting(...)` (`$unset`), never
`$set` to null: that writes a null into a document that had none, a change the database stores by
rewriting the whole document, where an `$unset` of a field that is not there changes nothing.
Pinning 2,000 fresh assets for a version (`unpinned_at: null`) rewrote every one of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def stored(document: BaseModel) -> dict[str, Any]:
    """What is written for a document built as a model: its dump (by alias: `_id`), sparse."""
    return sparse(document.model_dump(by_alias=True))


def sparse(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without its top-level fields that are None."""
    return {key: value for key, value in document.items() if value is not None}


def cleared(*fields: str) -> dict[str, dict[str, str]]:
    """The update operator that sets `fields` back to their null default: left out, as stored sparse."""
    return {"$unset": dict.fromkeys(fields, "")}


def setting(changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The update that writes `changes` (top-level fields) to a sparse document: a None clears its
    field, anything else is set."""
    kept = {key: value for key, value in changes.items() if value is not None}
    gone = [key for key, value in changes.items() if value is None]
    return ({"$set": kept} if kept else {}) | (cleared(*gone) if gone else {})
