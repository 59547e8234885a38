"""Annotation schemas, sets (one source, one purpose) and records (one label or shape each)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.indexes import Index, On
from documents.json_value import JsonText


class AnnotationKind(str, Enum):
    CLASSIFICATION = "CLASSIFICATION"
    REGRESSION = "REGRESSION"
    BBOX = "BBOX"
    ROTATED_BBOX = "ROTATED_BBOX"
    POLYGON = "POLYGON"
    POLYLINE = "POLYLINE"
    KEYPOINTS = "KEYPOINTS"
    MASK = "MASK"


class AnnotationPurpose(str, Enum):
    GROUND_TRUTH = "GROUND_TRUTH"
    PREDICTION = "PREDICTION"
    REVIEW = "REVIEW"


class SourceKind(str, Enum):
    HUMAN = "HUMAN"
    MODEL = "MODEL"
    DERIVED = "DERIVED"


class LabelClass(BaseModel):
    name: str
    display_name: str | None = None
    color: str | None = None


class AnnotationSource(BaseModel):
    kind: SourceKind
    name: str
    version: str | None = None


class AnnotationSchema(Document):
    name: str
    version: int
    kinds: list[AnnotationKind]
    labels: list[LabelClass]
    allow_scores: bool = True
    required_attributes: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # Set by a deleteAnnotationSchema while it looks for sets (services/delete_marks.py): createAnnotationSet
    # refuses a schema that bears it.
    deleting_at: datetime | None = None

    class Settings:
        name = "annotation_schemas"
        indexes = [
            IndexModel([("name", ASCENDING), ("version", DESCENDING)], name="name_version_unique", unique=True),
            Index([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at"),
        ]


class AnnotationSet(Document):
    name: str
    purpose: AnnotationPurpose
    schema_id: PydanticObjectId
    source: AnnotationSource | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # Set as a delete starts (services/annotations.delete_set): a version build refuses the set from then on.
    deleting_at: datetime | None = None

    class Settings:
        name = "annotation_sets"
        indexes = [Index([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at")]


# --- geometry: one shape per record, tagged by its kind
class Point(BaseModel):
    x: float
    y: float


class Keypoint(BaseModel):
    name: str | None = None
    x: float
    y: float
    visible: bool | None = None


class BBoxShape(BaseModel):
    type: Literal["BBOX"] = "BBOX"
    x: float
    y: float
    width: float
    height: float


class RotatedBBoxShape(BaseModel):
    type: Literal["ROTATED_BBOX"] = "ROTATED_BBOX"
    cx: float
    cy: float
    width: float
    height: float
    angle: float


class PolygonShape(BaseModel):
    type: Literal["POLYGON"] = "POLYGON"
    points: list[Point]


class PolylineShape(BaseModel):
    type: Literal["POLYLINE"] = "POLYLINE"
    points: list[Point]


class KeypointsShape(BaseModel):
    type: Literal["KEYPOINTS"] = "KEYPOINTS"
    points: list[Keypoint]


class MaskShape(BaseModel):
    type: Literal["MASK"] = "MASK"
    asset_id: PydanticObjectId


Shape = Annotated[
    BBoxShape | RotatedBBoxShape | PolygonShape | PolylineShape | KeypointsShape | MaskShape,
    Field(discriminator="type"),
]


class AnnotationRecord(Document):
    set_id: PydanticObjectId
    datum_id: PydanticObjectId | None = None
    asset_id: PydanticObjectId
    kind: AnnotationKind
    label: str | None = None
    score: float | None = None
    value: float | None = None
    geometry: Shape | None = None
    # Text alone: no query reads a record's attributes by path (JsonText says why that matters).
    attributes: JsonText = Field(default_factory=lambda: JsonText.encode({}))
    # Copies of the set's purpose and source (both immutable), so filters on them need no join.
    purpose: AnnotationPurpose
    source: AnnotationSource
    verified: bool = False
    verified_by: str | None = None
    verified_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # Corrections never edit a record: a new one supersedes it (saying why), and it points to its successor.
    supersedes: PydanticObjectId | None = None
    supersede_reason: str | None = None
    superseded_by: PydanticObjectId | None = None
    superseded_at: datetime | None = None
    # Its name in the source it came from (`coco:42`), unique within its set: a record sent again under
    # its key is found, not stored twice (services/record_keys.py). Not part of a version's hash (an id).
    key: str | None = None

    class Settings:
        name = "annotation_records"
        indexes = [
            Index([("set_id", ASCENDING), ("_id", ASCENDING)], name="set"),
            Index([("datum_id", ASCENDING), ("_id", ASCENDING)], name="datum"),
            # A version's build: the records of its sets on a batch of its datums, set by set, without
            # reading the records other sets hold on them (services/snapshots.copy_batch).
            Index([("set_id", ASCENDING), ("datum_id", ASCENDING), ("_id", ASCENDING)], name="set_datum"),
            Index([("asset_id", ASCENDING), ("_id", ASCENDING)], name="asset"),
            # A mask's asset: a delete or the garbage collector asks whether any record still uses it
            # (by `$in`, or in an `$or` branch of its own). Partial on the embedded default
            # (documents/indexes.py): only a MASK record has one.
            Index([("geometry.asset_id", ASCENDING), ("_id", ASCENDING)], name="mask_asset", embedded_partial=True),
            # The `annotations` list in `_id` order on the embedded default (see Datum's id_order).
            Index([("_id", ASCENDING), ("set_id", ASCENDING)], name="id_order", on=On.EMBEDDED),
            IndexModel([("kind", ASCENDING), ("label", ASCENDING)], name="kind_label"),
            IndexModel("label", name="label"),
            IndexModel([("purpose", ASCENDING), ("source.kind", ASCENDING)], name="purpose_source"),
            IndexModel("verified", name="verified"),
            IndexModel("score", name="score"),
            # One record per key in a set. The embedded default lets many records lack a key under a
            # unique index (SQLite's NULLs are distinct) but knows no partial indexes; MongoDB needs the
            # filter, or every record without one would share the key null.
            Index([("set_id", ASCENDING), ("key", ASCENDING)], name="set_key_unique", unique=True, on=On.EMBEDDED),
            Index([("set_id", ASCENDING), ("key", ASCENDING)], name="set_key_unique_partial", unique=True,
                  partialFilterExpression={"key": {"$type": "string"}}, on=On.MONGODB),
        ]
