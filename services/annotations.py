"""Annotation business steps: schemas, sets, validated all-or-nothing record batches, verification."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from documents import annotation as docs
from documents.asset import Asset
from documents.clock import utcnow
from documents.common import AssetStatus
from documents.dataset import DatasetVersion, Datum
from documents.json_value import JsonText
from documents.lean import lean
from documents.object_ids import new_object_ids
from documents.sparse import cleared, setting
from services import batches, bulk_deletes, delete_marks, record_keys, retention, use_fields, use_removal
from services.assets import in_use_despite_delete
from services.availability import no_time_limit
from services.checks import (
    HOLDERS_NAMED,
    MAX_LABEL_LENGTH,
    check_client_keys,
    check_name,
    check_no_controls,
    get_or_not_found,
    refuse_if_held,
)
from services.errors import BadUserInput, Conflict, NotFound, Unavailable
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, encode_id

Kind = docs.AnnotationKind
# The shape each geometric kind carries; CLASSIFICATION and REGRESSION carry none.
SHAPE_OF_KIND: dict[Kind, type] = {
    Kind.BBOX: docs.BBoxShape, Kind.ROTATED_BBOX: docs.RotatedBBoxShape, Kind.POLYGON: docs.PolygonShape,
    Kind.POLYLINE: docs.PolylineShape, Kind.KEYPOINTS: docs.KeypointsShape, Kind.MASK: docs.MaskShape,
}
RECORDS = docs.AnnotationRecord.Settings.name  # the collection's name, as services/use_fields.py knows it
MIN_POINTS = {docs.PolygonShape: 3, docs.PolylineShape: 2, docs.KeypointsShape: 1}
# Shapes of numbers alone (and their `type`): checked, and dumped, as their fields stand.
_FLAT_SHAPES = (docs.BBoxShape, docs.RotatedBBoxShape)


@dataclass
class NewRecord:
    """One record as the client sent it, ids decoded and attributes encoded, not yet checked."""

    asset_id: ObjectId
    kind: Kind
    datum_id: ObjectId | None = None
    label: str | None = None
    score: float | None = None
    value: float | None = None
    geometry: Any = None  # a docs shape model
    attributes: JsonText | None = None
    attribute_keys: Sequence[str] = ()
    source: docs.AnnotationSource | None = None
    key: str | None = None  # services/record_keys.py


@dataclass
class Added:
    """What add_records did: each record's document, in the order given (stored now, or held already
    under its key), and how many were held already."""

    documents: list[dict[str, Any]]
    existing: int


MAX_VERSION = 2**31 - 1  # GraphQL's Int is 32-bit signed
# What the web app and other viewers draw labels in: a colour, not any text a style could hold.
# Spaces and tabs only inside the parentheses: `\s` let line breaks, U+001C to U+001F and U+0085 in.
_CSS_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})|[a-zA-Z]{3,30}"
                         r"|(?:rgba?|hsla?)\([0-9.,% \t/a-z]{1,60}\)")


MAX_SOURCE_TEXT = 500  # characters of a source's name or version, as of any name (check_name)


def _check_word(text: str, field: str) -> None:
    """A label or an attribute's name: what records are grouped, filtered and exported by (a COCO
    category), so never blank (a CLASSIFICATION record labelled "" says nothing), and short, as an
    asset's labels are, and free of control characters, as names are."""
    if not text.strip() or len(text) > MAX_LABEL_LENGTH:
        raise BadUserInput(f"must be 1 to {MAX_LABEL_LENGTH} characters, not all blank", field=field)
    check_no_controls(text, field)


def _check_source(source: docs.AnnotationSource | None, field: str) -> None:
    """A set's or a record's source: a name (1 to MAX_SOURCE_TEXT characters), and a version if any,
    each without control characters: a name's rule, as exports and audit lines carry them."""
    if source is None:
        return
    if not source.name.strip() or len(source.name) > MAX_SOURCE_TEXT:
        raise BadUserInput(f"a source needs a name of 1 to {MAX_SOURCE_TEXT} characters, not all blank",
                           field=f"{field}.name")
    check_no_controls(source.name, f"{field}.name")
    if source.version is not None:
        if not source.version.strip() or len(source.version) > MAX_SOURCE_TEXT:
            raise BadUserInput(f"a version has 1 to {MAX_SOURCE_TEXT} characters, not all blank (null for none)",
                               field=f"{field}.version")
        check_no_controls(source.version, f"{field}.version")


async def create_schema(name: str, kinds: Sequence[Kind], labels: Sequence[docs.LabelClass], version: int | None,
                        allow_scores: bool, required_attributes: Sequence[str], actor: str | None) -> docs.AnnotationSchema:
    name = check_name(name)
    if not kinds:
        raise BadUserInput("give at least one kind", field="kinds")
    seen: set[str] = set()
    for i, label in enumerate(labels):
        _check_word(label.name, f"labels[{i}].name")
        if label.display_name is not None:
            if len(label.display_name) > MAX_SOURCE_TEXT:
                raise BadUserInput(f"at most {MAX_SOURCE_TEXT} characters", field=f"labels[{i}].displayName")
            check_no_controls(label.display_name, f"labels[{i}].displayName")
        if label.name in seen:
            raise BadUserInput(f"label {label.name!r} appears twice", field=f"labels[{i}].name")
        if label.color is not None and not _CSS_COLOUR.fullmatch(label.color):
            raise BadUserInput("a CSS colour: #rgb, #rrggbb (with alpha: #rgba, #rrggbbaa), a name such as teal, or "
                               "rgb(), rgba(), hsl(), hsla()", field=f"labels[{i}].color")
        seen.add(label.name)
    for i, attribute in enumerate(required_attributes):
        _check_word(attribute, f"requiredAttributes[{i}]")
    if version is None:
        newest = await docs.AnnotationSchema.find({"name": name}).sort([("version", -1)]).first_or_none()
        version = newest.version + 1 if newest else 1
        if version > MAX_VERSION:  # the API's Int could not show it: every list of schemas would fail
            raise BadUserInput(f"schema {name!r} is at version {MAX_VERSION}, the last there is: give the new one "
                               "another name", field="version")
    elif version < 1:
        raise BadUserInput("must be 1 or more", field="version")
    schema = docs.AnnotationSchema(
        name=name, version=version, kinds=list(dict.fromkeys(kinds)), labels=list(labels), allow_scores=allow_scores,
        required_attributes=list(dict.fromkeys(required_attributes)), created_by=actor,
    )
    try:
        await schema.insert()
    except DuplicateKeyError:
        raise Conflict(f"schema {name!r} version {version} exists already", field="version") from None
    return schema


async def create_set(name: str, purpose: docs.AnnotationPurpose, schema_id: ObjectId,
                     source: docs.AnnotationSource | None, actor: str | None) -> docs.AnnotationSet:
    name = check_name(name)
    schemas = docs.AnnotationSchema.get_pymongo_collection()

    async def there() -> bool:
        """Whether the schema is there and no delete has it (one still looking for sets is waited out:
        refused by a set, it takes its mark back)."""
        found = await delete_marks.settled(schemas, [schema_id], "deleting_at", delete_marks.WAIT_SECONDS)
        return found[schema_id] is delete_marks.Found.CLEAR

    if not await there():
        raise delete_marks.gone("annotation schema", NodeType.ANNOTATION_SCHEMA, schema_id, "schemaId")
    _check_source(source, "source")
    annotation_set = docs.AnnotationSet(name=name, purpose=purpose, schema_id=schema_id, source=source, created_by=actor)
    await annotation_set.insert()
    # Looked for again once the set exists: a delete of the schema marks it before it looks for sets
    # (delete_schema), so whichever comes second sees the other. A set whose schema is gone broke
    # every list of sets asking for it.
    if not await there():
        await docs.AnnotationSet.get_pymongo_collection().delete_one({"_id": annotation_set.id})
        raise delete_marks.gone("annotation schema", NodeType.ANNOTATION_SCHEMA, schema_id, "schemaId")
    return annotation_set


def _finite(number: float | None) -> bool:
    return number is None or math.isfinite(number)


_INPUT_FIELD = {"ROTATED_BBOX": "rotatedBbox"}  # a shape's type -> its GeometryInput field, where not its lower case


def _check_geometry(record: NewRecord, field: str, masks: Mapping[ObjectId, dict[str, Any]]) -> None:
    expected = SHAPE_OF_KIND.get(record.kind)
    shape = record.geometry
    if expected is None:
        if shape is not None:
            raise BadUserInput(f"a {record.kind.value} record carries no geometry", field=f"{field}.geometry")
        return
    if shape is None:
        raise BadUserInput(f"a {record.kind.value} record needs a geometry", field=f"{field}.geometry")
    if not isinstance(shape, expected):
        raise BadUserInput(f"a {record.kind.value} record needs a {record.kind.value.lower()} geometry, "
                           f"got {shape.type.lower()}", field=f"{field}.geometry")
    if expected in _FLAT_SHAPES:
        # A box's numbers, its fields as they stand (without dumping it): all finite and both sides
        # positive, the common case, told by one test before any is looked at on its own (with the
        # field names made only for an error, a COCO box's checks took 1.7 us against 5.7).
        numbers = shape.__dict__
        if all(map(math.isfinite, [v for v in numbers.values() if isinstance(v, float)])) and shape.width > 0 and shape.height > 0:
            return
        at = _geometry_field(field, shape)
        if (bad := next((k for k, v in numbers.items() if isinstance(v, float) and not math.isfinite(v)), None)) is not None:
            raise BadUserInput("coordinates must be finite numbers", field=f"{at}.{bad}")
        for side in ("width", "height"):
            if not getattr(shape, side) > 0:
                raise BadUserInput(f"{side} must be positive", field=f"{at}.{side}")
        return
    at = _geometry_field(field, shape)
    points = getattr(shape, "points", [])
    if (bad := next((i for i, p in enumerate(points) if not (math.isfinite(p.x) and math.isfinite(p.y))), None)) is not None:
        raise BadUserInput("coordinates must be finite numbers", field=f"{at}.points[{bad}]")
    if expected in MIN_POINTS and len(points) < MIN_POINTS[expected]:
        raise BadUserInput(f"needs at least {MIN_POINTS[expected]} points, got {len(points)}", field=f"{at}.points")
    if isinstance(shape, docs.KeypointsShape):
        _check_keypoint_names(shape.points, at)
    if isinstance(shape, docs.MaskShape):
        mask = masks.get(shape.asset_id)
        if mask is None:
            raise NotFound(f"no asset {encode_id(NodeType.ASSET, shape.asset_id)}", field=f"{field}.geometry.mask.assetId")
        if not (mask.get("media_type") or "").startswith("image/"):
            raise BadUserInput(f"the mask asset must be an image, it is {mask.get('media_type') or 'untyped'}",
                               field=f"{field}.geometry.mask.assetId")


def _geometry_field(field: str, shape: Any) -> str:
    """Where a record's shape is, named as the input names it: GeometryInput's one field (bbox,
    rotatedBbox, polygon, ...), then its own."""
    return f"{field}.geometry.{_INPUT_FIELD.get(shape.type, shape.type.lower())}"


def _check_keypoint_names(points: Sequence[docs.Keypoint], at: str) -> None:
    """A pose's points are told apart by their names (an export's keypoint list and skeleton name
    them): a name is a label's kind of word, once per record; null leaves a point unnamed."""
    seen: dict[str, int] = {}
    for i, point in enumerate(points):
        if point.name is None:
            continue
        _check_word(point.name, f"{at}.points[{i}].name")
        if point.name in seen:
            raise BadUserInput(f"{point.name!r} names two points of this record (also points[{seen[point.name]}])",
                               field=f"{at}.points[{i}].name")
        seen[point.name] = i


@dataclass(frozen=True)
class _Rules:
    """What every record of one addAnnotations call is checked against, read from the schema and the
    datums once: a call of thousands of records asked the same documents the same questions per record."""

    schema: str  # "name vN", for messages
    kinds: tuple[Kind, ...]  # in the schema's order, for the message naming them
    labels: frozenset[str]
    allow_scores: bool
    required_attributes: tuple[str, ...]
    set_source: docs.AnnotationSource | None
    datum_assets: dict[ObjectId, frozenset[ObjectId]]  # each datum's role assets

    @classmethod
    def of(cls, schema: docs.AnnotationSchema, set_source: docs.AnnotationSource | None,
           datums: Iterable[dict[str, Any]]) -> _Rules:
        return cls(schema=f"{schema.name} v{schema.version}", kinds=tuple(schema.kinds), labels=frozenset(c.name for c in schema.labels),
                   allow_scores=schema.allow_scores, required_attributes=tuple(schema.required_attributes),
                   set_source=set_source,
                   datum_assets={d["_id"]: frozenset(r["asset_id"] for r in d.get("roles") or ()) for d in datums})


def _check_record(field: str, record: NewRecord, rules: _Rules, masks: Mapping[ObjectId, dict[str, Any]]) -> None:
    if record.kind not in rules.kinds:
        raise BadUserInput(f"{record.kind.value} is not allowed by schema {rules.schema} (allowed: {', '.join(k.value for k in rules.kinds)})",
                           field=f"{field}.kind")
    if record.kind is Kind.REGRESSION:
        if record.value is None or not math.isfinite(record.value):
            raise BadUserInput("a REGRESSION record needs a finite value", field=f"{field}.value")
        if record.label is not None:
            raise BadUserInput("a REGRESSION record has a value, not a label: leave label out", field=f"{field}.label")
    elif record.label is None:
        raise BadUserInput(f"a {record.kind.value} record needs a label", field=f"{field}.label")
    elif record.value is not None:
        raise BadUserInput(f"a {record.kind.value} record has a label, not a value (REGRESSION records have one): "
                           "leave value out", field=f"{field}.value")
    if record.label is not None and not rules.labels:  # any label: but a label, not blank nor a page of text
        _check_word(record.label, f"{field}.label")
    if record.label is not None and rules.labels and record.label not in rules.labels:
        raise BadUserInput(f"{record.label!r} is not a label of schema {rules.schema}", field=f"{field}.label")
    if record.score is not None:
        if not rules.allow_scores:
            raise BadUserInput(f"schema {rules.schema} allows no scores", field=f"{field}.score")
        if not (_finite(record.score) and 0 <= record.score <= 1):
            raise BadUserInput("must be between 0 and 1", field=f"{field}.score")
    if rules.required_attributes and (missing := [a for a in rules.required_attributes if a not in record.attribute_keys]):
        raise BadUserInput(f"missing required attribute(s): {', '.join(missing)}", field=f"{field}.attributes")
    if record.source is None:
        if rules.set_source is None:
            raise BadUserInput("the set has no source, so each record needs one", field=f"{field}.source")
    else:
        _check_source(record.source, f"{field}.source")
    if record.datum_id is not None:
        assets = rules.datum_assets.get(record.datum_id)
        if assets is None:
            raise delete_marks.gone("datum", NodeType.DATUM, record.datum_id, f"{field}.datumId")
        if record.asset_id not in assets:
            raise BadUserInput("the asset is not one of the datum's roles", field=f"{field}.assetId")
    _check_geometry(record, field, masks)


async def add_records(set_id: ObjectId, records: Sequence[NewRecord], actor: str | None, max_items: int,
                      *, supersedes: docs.AnnotationRecord | None = None, reason: str | None = None) -> Added:
    """Check every record against the set's schema, then write them all, or none (with
    `supersedes`, the one record replacing it, and why). Returns the documents, in order:
    reading them as models (lean(AnnotationRecord)) is left to whoever shows them. A record whose
    key the set holds already with the same content is not stored again: the held one is returned
    in its place (services/record_keys.py)."""
    # A correction names the record it corrects (`id`) and the new one (`record`); a batch, its set and records.
    set_field, records_field = ("id", "record") if supersedes else ("setId", "records")
    annotation_set = await docs.AnnotationSet.get(set_id)
    if annotation_set is None or annotation_set.deleting_at is not None:
        raise delete_marks.gone("annotation set", NodeType.ANNOTATION_SET, set_id, set_field)
    if not records:
        raise BadUserInput("give at least one record", field="records")
    if len(records) > max_items:
        raise BadUserInput(f"at most {max_items} records at once", field="records")
    schema = await _schema(annotation_set.schema_id)

    asset_ids = {r.asset_id for r in records}
    mask_ids = {r.geometry.asset_id for r in records if isinstance(r.geometry, docs.MaskShape)}
    # Raw, the fields checked only: building a model of each asset and datum named was CPU for nothing.
    found = {a: doc for a, doc in (await fields_by_ids(Asset, asset_ids | mask_ids, ["status", "media_type"])).items()
             if doc.get("status") != AssetStatus.DELETED.value}
    datum_ids = {r.datum_id for r in records if r.datum_id is not None}
    datums = await fields_by_ids(Datum, datum_ids, ["roles", "deleting_at"])
    if marked := [d for d, doc in datums.items() if doc.get("deleting_at") is not None]:
        # A delete's mark (services/datums.delete_datum): one still looking for holders is waited out
        # (refused by a record or a version, it takes its mark back); a datum still marked then, or
        # whose delete is past its checks, is as good as gone: left out, it is "no datum".
        settled = await delete_marks.settled(Datum.get_pymongo_collection(), marked, "deleting_at", delete_marks.WAIT_SECONDS)
        datums = {d: doc for d, doc in datums.items() if settled.get(d, delete_marks.Found.CLEAR) is delete_marks.Found.CLEAR}
    rules = _Rules.of(schema, annotation_set.source, datums.values())
    if supersedes and records[0].key is not None:
        raise BadUserInput("a correction carries no key: the record it replaces keeps its own", field="record.key")
    check_client_keys([r.key for r in records], lambda i: f"records[{i}]")
    for i, record in enumerate(records):
        field = "record" if supersedes else f"records[{i}]"
        if record.asset_id not in found:
            raise NotFound(f"no asset {encode_id(NodeType.ASSET, record.asset_id)}", field=f"{field}.assetId")
        _check_record(field, record, rules, found)

    shared = record_fields(annotation_set, actor, supersedes.id if supersedes else None, reason)
    new = record_documents(records, shared)
    collection = docs.AnnotationRecord.get_pymongo_collection()
    if any(r.key is not None for r in records):
        stored = await record_keys.insert_keyed(collection, new)
    else:
        await batches.insert_all(collection, new)
        stored = new
    made = [d for d, n in zip(stored, new, strict=True) if d is n]  # not those the set held already

    async def take_back() -> None:
        # Committed and visible, they may be the uses the collector's last round found: taken back,
        # they restart their assets' grace period (services/use_removal.py).
        if made:
            await use_removal.remove_uses([collection], {}, written={collection.name: made})

    # A delete of the set marked since the check above may have passed these records in its rounds
    # (delete_set): they go, not the delete. Unmarked now, the delete's rounds, which follow its mark, find them.
    if await docs.AnnotationSet.get_pymongo_collection().count_documents({"_id": set_id, "deleting_at": None}) == 0:
        await take_back()
        raise delete_marks.gone("annotation set", NodeType.ANNOTATION_SET, set_id, set_field)
    deleted = await in_use_despite_delete(list(asset_ids | mask_ids))
    if deleted:  # a delete ran between the check and the write: the records go, not the delete
        await take_back()
        raise Conflict(f"asset(s) deleted meanwhile: {', '.join(encode_id(NodeType.ASSET, a) for a in deleted)}",
                       field=records_field)
    # So may a datum's delete: marked since the check above, it may have looked for records before
    # these were written (services/datums.delete_datum). Unmarked now, its look follows this write; one
    # still looking is waited out (it finds these records, is refused and takes its mark back).
    settled = await delete_marks.settled(Datum.get_pymongo_collection(), datum_ids, "deleting_at",
                                         delete_marks.WAIT_SECONDS) if datum_ids else {}
    if gone := sorted(d for d, there in settled.items() if there is not delete_marks.Found.CLEAR):
        await take_back()
        raise Conflict(f"datum(s) deleted meanwhile, or being deleted: {', '.join(encode_id(NodeType.DATUM, d) for d in gone)}",
                       field=records_field)
    return Added(stored, len(stored) - len(made))


SCHEMAS_KEPT = 256
_SCHEMAS: dict[ObjectId, docs.AnnotationSchema] = {}  # see _schema


async def _schema(schema_id: ObjectId) -> docs.AnnotationSchema:
    """A set's schema, read once per process: its rules never change (a new version is a new
    document), and it goes only once no set names it. An import's every addAnnotations read it again."""
    schema = _SCHEMAS.get(schema_id)
    if schema is None:
        # A set is created against an existing schema, which cannot be deleted while sets name it.
        schema = await get_or_not_found(docs.AnnotationSchema, schema_id, field="setId", what="annotation schema")
        if len(_SCHEMAS) >= SCHEMAS_KEPT:
            _SCHEMAS.clear()
        _SCHEMAS[schema_id] = schema
    return schema


def record_fields(annotation_set: docs.AnnotationSet, actor: str | None, supersedes: ObjectId | None,
                  reason: str | None) -> dict[str, Any]:
    """The stored fields every record of one addAnnotations call shares (`record_document`)."""
    return {"set_id": annotation_set.id, "purpose": annotation_set.purpose.value, "verified": False, "created_at": utcnow(),
            "created_by": actor, "supersedes": supersedes, "supersede_reason": reason,
            "source": annotation_set.source.model_dump() if annotation_set.source else None}


def record_document(record: NewRecord, shared: dict[str, Any]) -> dict[str, Any]:
    """The stored document of a new record, as `AnnotationRecord(...).model_dump(by_alias=True)` would
    give it (sparse: documents/sparse.py). tests/test_sparse_documents.py holds the two equal for every kind."""
    return record_documents([record], shared)[0]


def record_documents(records: Sequence[NewRecord], shared: dict[str, Any]) -> list[dict[str, Any]]:
    """`record_document` of each record, written out here without building the model: its validation
    and dump were a quarter of the server's CPU in addAnnotations, for values already checked. Built
    sparse field by field (in the order they always had), not whole and then filtered, with the shared
    fields filtered once and the ids made at once (documents/object_ids.py): 1.0 us a COCO box
    against 4.5 (this step alone, 1,000 boxes)."""
    head = {name: value for name, value in shared.items() if name != "source" and value is not None}
    set_source = shared.get("source")
    documents = []
    for new_id, record in zip(new_object_ids(len(records)), records, strict=True):
        document = {"_id": new_id, **head}
        source = record.source.model_dump() if record.source is not None else set_source
        if source is not None:
            document["source"] = source
        if record.datum_id is not None:
            document["datum_id"] = record.datum_id
        document["asset_id"] = record.asset_id
        document["kind"] = record.kind.value
        if record.label is not None:
            document["label"] = record.label
        if record.score is not None:
            document["score"] = record.score
        if record.value is not None:
            document["value"] = record.value
        if (shape := record.geometry) is not None:
            document["geometry"] = dict(shape.__dict__) if type(shape) in _FLAT_SHAPES else shape.model_dump()
        document["attributes"] = {"json": record.attributes.json if record.attributes is not None else "{}"}
        if record.key is not None:
            document["key"] = record.key
        documents.append(document)
    return documents


async def verify(record_ids: Sequence[ObjectId], verified: bool, actor: str | None) -> list[docs.AnnotationRecord]:
    """Mark records verified (or not); answered in the order given, an id given twice twice. A
    superseded record is refused: a correction replaced it, and it is never edited otherwise."""
    ids = list(dict.fromkeys(record_ids))
    held = {r["_id"]: r for r in await docs.AnnotationRecord.get_pymongo_collection().find(
        {"_id": {"$in": ids}}, {"superseded_by": 1}).to_list()}
    for i, record_id in enumerate(record_ids):
        if record_id not in held:
            raise NotFound(f"no annotation record {encode_id(NodeType.ANNOTATION_RECORD, record_id)}", field=f"ids[{i}]")
        if held[record_id].get("superseded_by") is not None:
            raise Conflict(f"{encode_id(NodeType.ANNOTATION_RECORD, record_id)} was superseded by "
                           f"{encode_id(NodeType.ANNOTATION_RECORD, held[record_id]['superseded_by'])}: "
                           "verify the correction", field=f"ids[{i}]")
    change = {"verified": verified, "verified_by": actor if verified else None, "verified_at": utcnow() if verified else None}
    # The condition again in the write: a correction that lands between the check and here keeps its record as it was.
    await docs.AnnotationRecord.get_pymongo_collection().update_many({"_id": {"$in": ids}, "superseded_by": None},
                                                                     setting(change))
    by_id = {r.id: r for r in await docs.AnnotationRecord.find({"_id": {"$in": ids}}).to_list()}
    for i, record_id in enumerate(record_ids):  # ... and is said so, not answered unchanged
        if by_id[record_id].superseded_by is not None:
            raise Conflict(f"{encode_id(NodeType.ANNOTATION_RECORD, record_id)} was superseded meanwhile: verify the "
                           "correction", field=f"ids[{i}]")
    return [by_id[i] for i in record_ids]


MAX_REASON = 1000


async def supersede(record_id: ObjectId, replacement: NewRecord, reason: str, actor: str | None,
                    author: str | None = None) -> docs.AnnotationRecord:
    """Replace a record with a new one in the same set, keeping both: the new one says what it
    supersedes and why, the old one which record superseded it and when, and lists show the new
    one only. Dataset versions built before keep showing the old one. `author`: the caller's user,
    whose HUMAN source a replacement without its own takes."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise BadUserInput(f"say why, in 1 to {MAX_REASON} characters", field="reason")
    old = await get_or_not_found(docs.AnnotationRecord, record_id, field="id", what="annotation record")
    if old.superseded_by is not None:
        raise Conflict(f"superseded already, by {encode_id(NodeType.ANNOTATION_RECORD, old.superseded_by)}: "
                       "supersede that one", field="id")
    # A correction says what the record says on the same thing: moved to another image, the chain of
    # corrections would no longer be the history of one annotation.
    if old.datum_id is not None and replacement.datum_id != old.datum_id:
        raise BadUserInput(f"a correction stays on the datum of the record it corrects "
                           f"({encode_id(NodeType.DATUM, old.datum_id)}); add a new record for another", field="record.datumId")
    if old.datum_id is None and (replacement.asset_id != old.asset_id or replacement.datum_id is not None):
        raise BadUserInput(f"a correction stays on the asset of the record it corrects "
                           f"({encode_id(NodeType.ASSET, old.asset_id)}), with no datum as it has none; add a new "
                           "record for another", field="record.datumId" if replacement.datum_id else "record.assetId")
    if replacement.source is None and author is not None:
        # The person's, unless it names another source: the set's default (often the model whose
        # prediction is being corrected) would credit the fix to that model. A token without a user
        # may be a pipeline's: its corrections keep the set's source, as its records do.
        replacement = replace(replacement, source=docs.AnnotationSource(kind=docs.SourceKind.HUMAN, name=author))
    stray = await _correction_out_of_place(old)
    if stray is not None:
        return await _finish(old, stray, replacement, reason, actor)
    (stored,) = (await add_records(old.set_id, [replacement], actor, 1, supersedes=old, reason=reason)).documents
    new = lean(docs.AnnotationRecord).model_validate(stored)
    # Marked after the new record exists, and only if no other correction got there first.
    if not await _take_place(old.id, new.id, new.created_at):
        await docs.AnnotationRecord.get_pymongo_collection().delete_one({"_id": new.id})
        raise Conflict("another correction superseded this record meanwhile: supersede that one", field="id")
    return new


async def _take_place(old_id: ObjectId, new_id: ObjectId, at: Any) -> bool:
    """Mark the record `old_id` superseded by `new_id`, unless another correction did first; whether
    `new_id` holds its place. Left unmarked, a correction would stand beside the record it corrects,
    both current (in lists, and in every version built), and a retry would add a third: so the mark
    has no time limit, is made again if its write failed on this side (it may have landed or not),
    and is read back."""
    records = docs.AnnotationRecord.get_pymongo_collection()
    unmarked, mark = {"_id": old_id, "superseded_by": None}, {"$set": {"superseded_by": new_id, "superseded_at": at}}
    with no_time_limit():
        try:
            if (await records.update_one(unmarked, mark)).modified_count:
                return True
        except PyMongoError:
            await records.update_one(unmarked, mark)  # failing again, the call fails: a retry finishes it (_finish)
        now = await records.find_one({"_id": old_id}, {"superseded_by": 1})
    return now is not None and now.get("superseded_by") == new_id


async def _correction_out_of_place(old: docs.AnnotationRecord) -> dict[str, Any] | None:
    """A correction of `old` (a current record) that is not marked as its successor: one whose call
    was cut short between its two writes (a crash, the database lost), or is between them now. Looked
    for among the records on its datum (or asset), where a correction stays: through their index."""
    where = {"datum_id": old.datum_id} if old.datum_id is not None else {"asset_id": old.asset_id}
    return await docs.AnnotationRecord.get_pymongo_collection().find_one({**where, "supersedes": old.id})


async def _finish(old: docs.AnnotationRecord, stray: dict[str, Any], replacement: NewRecord, reason: str,
                  actor: str | None) -> docs.AnnotationRecord:
    """A correction sent again, whose first call stored it but did not mark `old` (_correction_out_of_place):
    the same record for the same reason takes its place now, as the first call would have; another is
    CONFLICT naming it, since two corrections of one record cannot both stand. One whose batch is
    still open may yet be rolled back (services/batches.py): UNAVAILABLE until it is settled."""
    records = docs.AnnotationRecord.get_pymongo_collection()
    if (await batches.still_written(records.database, [stray.get("batch")])
            or await records.find_one({"_id": stray["_id"]}, {"_id": 1}) is None):
        raise Unavailable("another correction of this record is being written; try again shortly", field="id")
    annotation_set = await docs.AnnotationSet.get(old.set_id)
    sent = record_document(replacement, record_fields(annotation_set, actor, old.id, reason)) if annotation_set else {}
    held = encode_id(NodeType.ANNOTATION_RECORD, stray["_id"])
    if not (sent and record_keys.same_content(stray, sent) and stray.get("supersede_reason") == reason):
        raise Conflict(f"correction {held} of this record was stored but has not taken its place (its call was cut "
                       "short, or is still running): send that same correction again to finish it, or delete "
                       f"{held} first", field="id", record=held)
    if not await _take_place(old.id, stray["_id"], stray["created_at"]):
        raise Conflict("another correction superseded this record meanwhile: supersede that one", field="id")
    return lean(docs.AnnotationRecord).model_validate(stray)


async def delete_record(record_id: ObjectId) -> None:
    """Delete one record. The dataset versions built with it keep showing their copy of it. A
    correction's deletion makes the record it corrected current again."""
    record = await docs.AnnotationRecord.get(record_id)
    if record is None:  # gone already: deleting it again is done (DeletePayload.deleted)
        return
    # The history a correction keeps is never lost on its own: a superseded record stays, checked in
    # the write itself, so that a correction landing after the read above keeps it too.
    gone = await docs.AnnotationRecord.get_pymongo_collection().delete_one({"_id": record_id, "superseded_by": None})
    if gone.deleted_count == 0:
        now = await docs.AnnotationRecord.get_pymongo_collection().find_one({"_id": record_id}, {"superseded_by": 1})
        if now is not None and now.get("superseded_by") is not None:
            raise Conflict(f"{encode_id(NodeType.ANNOTATION_RECORD, record_id)} was corrected by "
                           f"{encode_id(NodeType.ANNOTATION_RECORD, now['superseded_by'])}, which keeps it as its "
                           "history: delete that correction first (or the whole set)", field="id")
        return  # deleted meanwhile by another request: done all the same
    if record.supersedes is not None:
        await docs.AnnotationRecord.get_pymongo_collection().update_one(
            {"_id": record.supersedes, "superseded_by": record_id}, cleared("superseded_by", "superseded_at"))
    await retention.flag_anew(use_fields.assets_named(RECORDS, [record.model_dump()]))  # perhaps their last use: a grace period from now


async def delete_set(set_id: ObjectId) -> int:
    """Delete a set and its records, unless a dataset version includes it (it shows the set); how
    many records went. The records go a round at a time (services/bulk_deletes.py), and the set
    last, so a retry finishes a delete cut short; one gone already is done.

    The set is marked (`deleting_at`) before the versions holding it are looked for, and a version
    build looks for the mark after it has claimed its name with the set in it (services/datasets.py,
    `_what_it_holds`): whichever comes second sees the other, so a build never copies a set
    while its records are being deleted, nor names one that is gone. A refused delete takes its
    mark back (services/delete_marks.py: its own, unless another delete has gone past its checks);
    a delete cut short leaves it, and builds refuse the set until a retry finishes."""
    sets = docs.AnnotationSet.get_pymongo_collection()
    token = await delete_marks.mark(sets, set_id, {"deleting_at": utcnow()})
    if token is None:
        return 0
    try:
        versions = DatasetVersion.get_pymongo_collection().find({"annotation_set_ids": set_id}, {"_id": 1}).limit(HOLDERS_NAMED + 1)
        refuse_if_held("this annotation set", {
            "dataset versions": [encode_id(NodeType.DATASET_VERSION, v["_id"]) async for v in versions]},
            "delete those versions first")
        await delete_marks.commit(sets, set_id, token, "this annotation set")
    except BaseException:
        await delete_marks.take_back(sets, set_id, token, {"$unset": {"deleting_at": ""}})
        raise
    async def flag_anew(records: list[dict[str, Any]]) -> None:  # perhaps their last use: a grace period from now
        await retention.flag_anew(use_fields.assets_named(RECORDS, records))

    removed = await bulk_deletes.delete_all(docs.AnnotationRecord.get_pymongo_collection(), {"set_id": set_id},
                                            fields=use_fields.fields_of(RECORDS), then=flag_anew)
    await docs.AnnotationSet.get_pymongo_collection().delete_one({"_id": set_id})
    return removed


async def delete_schema(schema_id: ObjectId) -> None:
    """Delete a schema no annotation set uses (one gone already is done). Marked first
    (services/delete_marks.py), as a datum's delete is: the schema is marked (`deleting_at`) before
    the sets are looked for, and create_set looks for the mark after it wrote its set, so whichever
    comes second sees the other. Refused, the delete takes its mark back; the schema was never gone
    meanwhile (the delete removed it, looked, and brought it back: a createAnnotationSet in between
    was NOT_FOUND on a schema there a moment later, and a second delete answered it deleted). A
    delete cut short leaves its mark: sets refuse the schema until a retry, or the maintenance, finishes it."""
    schemas = docs.AnnotationSchema.get_pymongo_collection()
    token = await delete_marks.mark(schemas, schema_id, {"deleting_at": utcnow()})
    if token is None:
        return
    try:
        await _refuse_if_used(schema_id)
        await delete_marks.commit(schemas, schema_id, token, "this annotation schema")
    except BaseException:
        await delete_marks.take_back(schemas, schema_id, token, {"$unset": {"deleting_at": ""}})
        raise
    with no_time_limit():  # past its checks: cut short here, the schema would stay marked until a retry
        await schemas.delete_one({"_id": schema_id})


async def _refuse_if_used(schema_id: ObjectId) -> None:
    sets = docs.AnnotationSet.get_pymongo_collection().find({"schema_id": schema_id}, {"_id": 1}).limit(HOLDERS_NAMED + 1)
    refuse_if_held("this annotation schema", {
        "annotation sets": [encode_id(NodeType.ANNOTATION_SET, s["_id"]) async for s in sets]}, "delete those sets first")
