"""The bundle format: one dataset version, self-contained, to move between lakes.

A bundle is a directory (or the same tree in a .tar): `manifest.json` and `payloads/<sha256>`, one
file per distinct payload, named by the SHA-256 of its bytes. The manifest holds:

- `format` ("graphlake-bundle") and `format_version` (FORMAT_VERSION): a reader refuses a newer one;
- `dataset` {name, description} and `version` {name, description, manifest_sha256 (the source's
  portable hash, documents/manifest.py on the server), datum_count, splits {SPLIT: count},
  record_counts {set ref: count} (from bundles written after it was added)}: the counts are checked
  against `datums`, so an entry removed from them is refused before anything is written (the hash
  alone would say so only once the version was built from what is left);
- `assets` {ref: {kind, name, description, media_type, size, sha256, labels, metadata, payload,
  uri}}: `sha256` is the lake's digest of the asset, `payload` {path, size, sha256} the file holding
  its bytes (a FILE's bytes, a TEXT's UTF-8, a VALUE's JSON), null for an EXTERNAL object (`uri`);
- `schemas` {ref: {name, version, kinds, labels [{name, display_name, color}], allow_scores,
  required_attributes}} and `sets` {ref: {name, purpose, source, schema}};
- `datums` [{ref, split, metadata, roles [{role, asset}], records [{set, asset, kind, label, score,
  value, geometry, attributes, verified, source, key?}]}] with geometry as GraphQL's GeometryInput takes it
  (a mask's `{"mask": {"asset": ref}}`), and `key` the record's name in its source, where it has one
  (kept by the import: a rerun then adds none twice).
Refs are the source lake's ids: opaque, only ever looked up inside the manifest.

`check_manifest` validates a manifest read from disk (it is input: it may have been edited) and
names the first field that is wrong; the client's importer reads bundles through it, and so may
a server-side one.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from graphlake_client.errors import GraphlakeClientError

FORMAT = "graphlake-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAYLOADS = "payloads"
ASSET_KINDS = ("FILE", "VALUE", "TEXT", "EXTERNAL")
SPLITS = ("TRAIN", "VALIDATION", "TEST", "UNASSIGNED")
PURPOSES = ("GROUND_TRUTH", "PREDICTION", "REVIEW")
GEOMETRIES = ("bbox", "rotatedBbox", "polygon", "polyline", "keypoints", "mask")
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
MAX_KEY = 200  # a record key's length, as the server allows (services/record_keys.py)
# A version's name as the server takes it (services/datasets.py's _VERSION; tests/unit/test_bundle_manifest.py
# keeps the two equal): checked before anything is written, not by createDatasetVersion at the commit's end.
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\Z")
RECORD_FIELDS = ("label", "score", "value", "attributes", "source")  # each present, null for none


def payload_path(sha256: str) -> str:
    """Where the payload whose bytes hash to `sha256` lives in a bundle."""
    return f"{PAYLOADS}/{sha256}"


def named_payloads(manifest: dict[str, Any]) -> set[str]:
    """The paths of the payloads a (checked) manifest's assets name: EXTERNAL ones name none."""
    return {asset["payload"]["path"] for asset in manifest["assets"].values() if asset.get("payload")}


def bad(field: str, message: str) -> GraphlakeClientError:
    """The error for a manifest field that is wrong: it names the field."""
    return GraphlakeClientError(f"{MANIFEST}: {field}: {message}", "BAD_USER_INPUT", field)


def _need(value: Any, kind: type, field: str, what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):  # JSON true is no size
        raise bad(field, f"must be {what}")
    return value


def _sha(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise bad(field, "must be a lowercase hex SHA-256")
    return value


def _ref(value: Any, table: dict[str, Any], field: str, what: str) -> str:
    """A reference to an entry of the manifest's `table` (its assets, sets, schemas)."""
    if not isinstance(value, str) or value not in table:
        raise bad(field, f"names no {what} of the bundle ({value!r})")
    return value


def parse_manifest(data: bytes | str, where: str) -> dict[str, Any]:
    """The manifest in `data` (read from `where`), parsed and checked. Nesting too deep for the
    parser is refused as not JSON (a RecursionError answered a server-side import with INTERNAL)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise GraphlakeClientError(f"{where}: not JSON ({reason})", "BAD_USER_INPUT") from None
    return check_manifest(raw)


def check_manifest(manifest: Any) -> dict[str, Any]:
    """`manifest` if it is a bundle manifest this reader understands and whose references hold; else
    a BAD_USER_INPUT error naming the field."""
    _need(manifest, dict, "(top)", "a JSON object")
    if manifest.get("format") != FORMAT:
        raise bad("format", f"is {manifest.get('format')!r}, not {FORMAT!r}: this is not a Graphlake bundle")
    version = _need(manifest.get("format_version"), int, "format_version", "an integer")
    if version > FORMAT_VERSION or version < 1:
        raise bad("format_version", f"is {version}; this Graphlake reads bundles of format 1 to {FORMAT_VERSION}")
    _need(_need(manifest.get("dataset"), dict, "dataset", "an object").get("name"), str, "dataset.name", "a string")
    head = _need(manifest.get("version"), dict, "version", "an object")
    if not VERSION_NAME.match(_need(head.get("name"), str, "version.name", "a string")):
        raise bad("version.name", "must be 1-100 letters, digits or ._+- and start with a letter or digit")
    _sha(head.get("manifest_sha256"), "version.manifest_sha256")
    assets = _need(manifest.get("assets"), dict, "assets", "an object")
    for ref, asset in assets.items():
        _check_asset(ref, asset)
    schemas = _need(manifest.get("schemas"), dict, "schemas", "an object")
    for ref, schema in schemas.items():
        _need(schema, dict, f"schemas.{ref}", "an object")
        _need(schema.get("name"), str, f"schemas.{ref}.name", "a string")
        _need(schema.get("kinds"), list, f"schemas.{ref}.kinds", "a list")
        for n, label in enumerate(_need(schema.get("labels"), list, f"schemas.{ref}.labels", "a list")):
            _need(_need(label, dict, f"schemas.{ref}.labels[{n}]", "an object").get("name"), str,
                  f"schemas.{ref}.labels[{n}].name", "a string")
    sets = _need(manifest.get("sets"), dict, "sets", "an object")
    for ref, found in sets.items():
        _need(found, dict, f"sets.{ref}", "an object")
        _need(found.get("name"), str, f"sets.{ref}.name", "a string")
        if found.get("purpose") not in PURPOSES:
            raise bad(f"sets.{ref}.purpose", f"must be one of {', '.join(PURPOSES)}")
        _ref(found.get("schema"), schemas, f"sets.{ref}.schema", "schema")
    keys: dict[tuple[str, str], str] = {}  # (set, key) -> the record holding it
    refs: dict[str, str] = {}  # a datum's ref -> the datum holding it: the commit maps datums by it
    for n, datum in enumerate(_need(manifest.get("datums"), list, "datums", "a list")):
        _check_datum(f"datums[{n}]", datum, assets, sets, keys)
        ref = _need(datum.get("ref"), str, f"datums[{n}].ref", "a string")
        if ref in refs:
            raise bad(f"datums[{n}].ref", f"is also the ref of {refs[ref]}")
        refs[ref] = f"datums[{n}]"
    _check_counts(head, manifest["datums"])
    return manifest


def _check_counts(head: dict[str, Any], datums: list[dict[str, Any]]) -> None:
    """The version's counts (where the manifest has them) against the datums it lists: a datum or
    record removed from the manifest would otherwise be found only by the version hash, once the
    commit had built the version from what is left."""
    lists = "an entry was removed from the manifest, or it was cut short"
    if head.get("datum_count") is not None:
        count = _need(head["datum_count"], int, "version.datum_count", "an integer")
        if count != len(datums):
            raise bad("version.datum_count", f"is {count}, but the manifest lists {len(datums)} datums ({lists})")
    if head.get("splits") is not None:
        splits = _need(head["splits"], dict, "version.splits", "an object")
        listed = Counter(d["split"] for d in datums)
        for split in sorted(set(splits) | set(listed)):
            if splits.get(split, 0) != listed.get(split, 0):
                raise bad(f"version.splits.{split}", f"is {splits.get(split, 0)}, but the manifest lists "
                                                     f"{listed.get(split, 0)} datums of that split ({lists})")
    if head.get("record_counts") is not None:
        counts = _need(head["record_counts"], dict, "version.record_counts", "an object")
        listed = Counter(r["set"] for d in datums for r in d["records"])
        for ref in sorted(set(counts) | set(listed)):
            if counts.get(ref, 0) != listed.get(ref, 0):
                raise bad(f"version.record_counts.{ref}", f"is {counts.get(ref, 0)}, but the manifest lists "
                                                          f"{listed.get(ref, 0)} records of that set ({lists})")


def _check_asset(ref: str, asset: Any) -> None:
    where = f"assets.{ref}"
    _need(asset, dict, where, "an object")
    if asset.get("kind") not in ASSET_KINDS:
        raise bad(f"{where}.kind", f"must be one of {', '.join(ASSET_KINDS)}")
    _need(asset.get("name"), str, f"{where}.name", "a string")
    if asset["kind"] == "EXTERNAL":
        _need(asset.get("uri"), str, f"{where}.uri", "a string (an EXTERNAL object is referenced, never carried)")
        return
    _sha(asset.get("sha256"), f"{where}.sha256")
    payload = _need(asset.get("payload"), dict, f"{where}.payload", "an object")
    sha = _sha(payload.get("sha256"), f"{where}.payload.sha256")
    if payload.get("path") != payload_path(sha):
        raise bad(f"{where}.payload.path", f"must be {payload_path(sha)!r}")
    if _need(payload.get("size"), int, f"{where}.payload.size", "an integer") < 0:
        raise bad(f"{where}.payload.size", "must not be negative")
    if asset["kind"] == "FILE" and sha != asset["sha256"]:
        raise bad(f"{where}.payload.sha256", "a FILE's payload is its bytes: it must equal the asset's sha256")


def _check_datum(where: str, datum: Any, assets: dict[str, Any], sets: dict[str, Any],
                 keys: dict[tuple[str, str], str]) -> None:
    _need(datum, dict, where, "an object")
    if datum.get("split") not in SPLITS:
        raise bad(f"{where}.split", f"must be one of {', '.join(SPLITS)}")
    _need(datum.get("metadata"), dict, f"{where}.metadata", "an object")
    roles = _need(datum.get("roles"), list, f"{where}.roles", "a list")
    if not roles:
        raise bad(f"{where}.roles", "a datum has at least one role")
    for n, role in enumerate(roles):
        _need(_need(role, dict, f"{where}.roles[{n}]", "an object").get("role"), str, f"{where}.roles[{n}].role", "a string")
        _ref(role.get("asset"), assets, f"{where}.roles[{n}].asset", "asset")
    for n, record in enumerate(_need(datum.get("records"), list, f"{where}.records", "a list")):
        field = f"{where}.records[{n}]"
        _check_record_fields(field, _need(record, dict, field, "an object"))
        _ref(record.get("set"), sets, f"{field}.set", "set")
        _ref(record.get("asset"), assets, f"{field}.asset", "asset")
        _need(record.get("kind"), str, f"{field}.kind", "a string")
        if record.get("key") is not None:  # as addAnnotations takes it: refused here, before anything is written
            key = _need(record["key"], str, f"{field}.key", "a string")
            if not key.strip() or len(key) > MAX_KEY:
                raise bad(f"{field}.key", f"must have 1 to {MAX_KEY} characters, not all blank")
            if (record["set"], key) in keys:
                raise bad(f"{field}.key", f"is also the key of {keys[record['set'], key]} in the same set")
            keys[record["set"], key] = field
        geometry = record.get("geometry")
        if geometry is not None:
            if not isinstance(geometry, dict) or len(geometry) != 1 or next(iter(geometry)) not in GEOMETRIES:
                raise bad(f"{field}.geometry", f"must be null or one of {', '.join(GEOMETRIES)}")
            if "mask" in geometry:
                _ref(_need(geometry["mask"], dict, f"{field}.geometry.mask", "an object").get("asset"), assets,
                     f"{field}.geometry.mask.asset", "asset")


def _check_record_fields(field: str, record: dict[str, Any]) -> None:
    """The fields the commit reads of a record, of the types addAnnotations takes (a missing one
    answered a server-side import with INTERNAL)."""
    for name in RECORD_FIELDS:
        if name not in record:
            raise bad(f"{field}.{name}", "is missing (null for none)")
    for name, kind, what in (("label", str, "a string or null"), ("attributes", dict, "an object or null"),
                             ("source", dict, "an object or null")):
        if record[name] is not None:
            _need(record[name], kind, f"{field}.{name}", what)
    if record["score"] is not None and (isinstance(record["score"], bool) or not isinstance(record["score"], int | float)):
        raise bad(f"{field}.score", "must be a number or null")
    _need(record.get("verified"), bool, f"{field}.verified", "true or false")
