"""The content hash of a dataset version: portable, computed from what the version holds.

It covers what a consumer of the version sees and never a database id:
- each datum: its split, each role's name with the digest of its asset, and its metadata;
- each annotation on it: its set's name and purpose, its source's kind (and name, for a model or
  a program; a human annotator is provenance, and may be anonymized), kind, label, score, value,
  geometry (a mask by its asset's digest), attributes, whether it is verified, and the digest of
  the asset it annotates.
An asset's digest is `sha256:<hex>` (files, values, texts), `uri:<uri>` for an external object
whose bytes were never read, or `pending` for a file whose digest was not known yet.

Datums have no identity across lakes, so each datum's entry is hashed and the entries' hashes are
sorted: the same content built in two lakes, or twice from separately uploaded copies of the same
files, gets the same hash. Pure functions over stored (raw) documents: the version builder, `verify`
and migration 4 share them. FORMAT names this recipe: a change to it is a new format (and function),
never an edit of this one, or versions hashed before could no longer be verified.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

FORMAT = "graphlake-manifest-2"
PENDING = "pending"


def asset_digest(asset: Mapping[str, Any] | None) -> str:
    """How the hash names an asset's content (`asset` as stored; None: not found)."""
    if asset is None:
        return PENDING
    if asset.get("sha256"):
        return f"sha256:{asset['sha256']}"
    storage = asset.get("storage") or {}
    return f"uri:{storage['uri']}" if storage.get("external") and storage.get("uri") else PENDING


def _json_value(stored: Mapping[str, Any] | None) -> Any:
    return orjson.loads(stored["json"]) if stored else {}


def record_entry(record: Mapping[str, Any], set_doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """One annotation as the hash sees it (`record` a version's copy, with its digests)."""
    source = record.get("source") or {}
    geometry = dict(record["geometry"]) if record.get("geometry") else None
    if geometry and geometry.get("type") == "MASK":
        geometry = {"type": "MASK", "asset": record.get("mask_digest", PENDING)}
    return {
        "set": (set_doc or {}).get("name"), "purpose": record.get("purpose"),
        "source": {"kind": source.get("kind"), "version": source.get("version"),
                   **({"name": source.get("name")} if source.get("kind") != "HUMAN" else {})},
        "kind": record.get("kind"), "label": record.get("label"), "score": record.get("score"),
        "value": record.get("value"), "geometry": geometry, "attributes": _json_value(record.get("attributes")),
        "verified": bool(record.get("verified")), "asset": record.get("asset_digest", PENDING),
    }


def datum_entry(member: Mapping[str, Any], records: Iterable[Mapping[str, Any]],
                sets: Mapping[Any, Mapping[str, Any]]) -> bytes:
    """The SHA-256 of one datum's entry (`member` with its role digests, `records` its copies)."""
    digests = member.get("digests") or {}
    entry = {
        "split": member["split"],
        "roles": sorted([role["role"], digests.get(role["role"], PENDING)] for role in member.get("roles", [])),
        "metadata": _json_value(member.get("metadata")),
        "annotations": sorted(orjson.dumps(record_entry(r, sets.get(r["set_id"])), option=orjson.OPT_SORT_KEYS).decode()
                              for r in records),
    }
    return hashlib.sha256(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)).digest()


def manifest_hash(entries: Iterable[bytes], sets: Iterable[Mapping[str, Any]]) -> str:
    """The version's hash from its datums' entry hashes (any order) and its sets (name, purpose)."""
    digest = hashlib.sha256(FORMAT.encode() + b"\n")
    for entry in sorted(entries):
        digest.update(entry)
    for line in sorted(orjson.dumps({"set": s.get("name"), "purpose": s.get("purpose")}, option=orjson.OPT_SORT_KEYS)
                       for s in sets):
        digest.update(b"\n" + line)
    return digest.hexdigest()
