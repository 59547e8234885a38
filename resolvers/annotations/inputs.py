"""Inputs of the annotation mutations, and the AnnotationFilter every annotation list takes."""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers.annotations.types import AnnotationKind, AnnotationPurpose, SourceKind
from resolvers.inputs import batch_input
from resolvers.list_filters import list_filter, refuse_empty_lists
from resolvers.scalars import JSON
from services.node_ids import NodeType, decode_object_ids


@strawberry.input(description="Which annotation records to list; every given field must match.")
class AnnotationFilter:
    kinds: list[AnnotationKind] | None = list_filter("Only records of one of these kinds.")
    labels: list[str] | None = list_filter("Only records with one of these labels (exact).")
    set_ids: list[strawberry.ID] | None = list_filter("Only records in one of these sets.")
    purposes: list[AnnotationPurpose] | None = list_filter("Only records whose set has one of these purposes.")
    source_kinds: list[SourceKind] | None = list_filter("Only records made by one of these kinds of source.")
    min_score: float | None = strawberry.field(default=None, description=(
        "Only records with a score at least this (records without a score never match)."))
    max_score: float | None = strawberry.field(default=None, description=(
        "Only records with a score below this (records without a score never match): with `minScore`, the "
        "half-open range [minScore, maxScore)."))
    verified: bool | None = strawberry.field(default=None, description=(
        "Only verified records (true) or unverified ones (false); null for both."))
    include_superseded: bool = strawberry.field(default=False, description="Also records a correction replaced "
                                                "(supersedeAnnotation); by default lists show the current ones.")
    superseded: bool | None = strawberry.field(default=None, description=(
        "Only records a correction replaced (true: e.g. the predictions people corrected, with `purposes: "
        "[PREDICTION]`), or only current ones (false); null leaves it to `includeSuperseded`."))


def annotation_query(filter: AnnotationFilter | None) -> dict[str, Any]:
    """The MongoDB filter for an AnnotationFilter (purpose and source are copied onto each record)."""
    if filter is None:
        return {"superseded_by": None}
    refuse_empty_lists(filter, "filter")
    query: dict[str, Any] = {} if filter.include_superseded else {"superseded_by": None}
    if filter.superseded is not None:
        query["superseded_by"] = {"$ne": None} if filter.superseded else None
    if filter.kinds:
        query["kind"] = {"$in": [k.value for k in filter.kinds]}
    if filter.labels:
        query["label"] = {"$in": filter.labels}
    if filter.set_ids:
        query["set_id"] = {"$in": decode_object_ids(filter.set_ids, NodeType.ANNOTATION_SET, field="filter.setIds")}
    if filter.purposes:
        query["purpose"] = {"$in": [p.value for p in filter.purposes]}
    if filter.source_kinds:
        query["source.kind"] = {"$in": [k.value for k in filter.source_kinds]}
    if filter.min_score is not None or filter.max_score is not None:
        query["score"] = {**({"$gte": filter.min_score} if filter.min_score is not None else {}),
                          **({"$lt": filter.max_score} if filter.max_score is not None else {})}
    if filter.verified is not None:
        query["verified"] = filter.verified
    return query


@strawberry.input(description="One class a schema allows.")
class LabelClassInput:
    name: str = strawberry.field(description=(
        "The label records will carry: 1 to 200 characters, not all blank, no control characters, once per schema."))
    display_name: str | None = strawberry.field(default=None, description=(
        "A name to show people, up to 500 characters without control characters; null for none."))
    color: str | None = strawberry.field(default=None, description=(
        "A CSS colour: `#rgb`, `#rrggbb` (or with alpha), a name such as `teal`, or `rgb()` / `hsl()`; other text is refused."))


@strawberry.input(description="A schema to create. `version` defaults to one above the newest of that name.")
class CreateAnnotationSchemaInput:
    name: str = strawberry.field(description=(
        "Its name, 1 to 500 characters without control characters (a name has numbered versions)."))
    kinds: list[AnnotationKind] = strawberry.field(description="The kinds of record it allows: at least one.")
    labels: list[LabelClassInput] = strawberry.field(description="The classes records may carry; empty allows any label.")
    version: int | None = strawberry.field(default=None, description=(
        "Its version number, 1 or more (CONFLICT if taken); null is one above the newest of this name, or 1."))
    allow_scores: bool = strawberry.field(default=True, description="Whether records may carry a score (default true).")
    required_attributes: list[str] | None = strawberry.field(default=None, description=(
        "Keys every record's `attributes` must hold (each 1 to 200 characters, not all blank, no control characters); "
        "null for none."))


@batch_input
@strawberry.input(description="Who made records: a person, a model, or a program.")
class AnnotationSourceInput:
    kind: SourceKind = strawberry.field(description="A person, a model, or a program.")
    name: str = strawberry.field(description="Annotator id, or model name: 1 to 500 characters, not all blank, no control characters.")
    version: str | None = strawberry.field(default=None, description=(
        "Model version: 1 to 500 characters, not all blank, no control characters; null for none."))


@strawberry.input(description="A set to create: one purpose, one schema, and usually one source.")
class CreateAnnotationSetInput:
    name: str = strawberry.field(description="Its name, 1 to 500 characters without control characters.")
    purpose: AnnotationPurpose = strawberry.field(description="What its records are for.")
    schema_id: strawberry.ID = strawberry.field(description="The schema its records are checked against.")
    source: AnnotationSourceInput | None = strawberry.field(default=None, description=(
        "Who makes its records by default; null makes each record name its own source."))


# Coordinates are pixels of the annotated asset, x rightwards and y downwards from its top-left corner;
# every number must be finite.
@batch_input
@strawberry.input(description="A point in pixels of the annotated asset.")
class PointInput:
    x: float = strawberry.field(description="Pixels from the asset's left edge.")
    y: float = strawberry.field(description="Pixels from the asset's top edge.")


@batch_input
@strawberry.input(description="An axis-aligned box: top-left corner and size, in pixels.")
class BBoxInput:
    x: float = strawberry.field(description="The left edge, in pixels.")
    y: float = strawberry.field(description="The top edge, in pixels.")
    width: float = strawberry.field(description="Width in pixels, more than 0.")
    height: float = strawberry.field(description="Height in pixels, more than 0.")


@batch_input
@strawberry.input(description="A box rotated by `angle` degrees around its centre, in pixels.")
class RotatedBBoxInput:
    cx: float = strawberry.field(description="The centre's x, in pixels.")
    cy: float = strawberry.field(description="The centre's y, in pixels.")
    width: float = strawberry.field(description="Width in pixels before rotation, more than 0.")
    height: float = strawberry.field(description="Height in pixels before rotation, more than 0.")
    angle: float = strawberry.field(description="Rotation in degrees around the centre.")


@batch_input
@strawberry.input(description="Points of a polygon (at least 3) or a polyline (at least 2), in order.")
class PointsInput:
    points: list[PointInput] = strawberry.field(description="The points, in order.")


@batch_input
@strawberry.input(description="One named point of an object, in pixels.")
class KeypointInput:
    name: str | None = strawberry.field(default=None, description=(
        "What the point is, e.g. left_wrist: 1 to 200 characters, not all blank, no control characters, once per "
        "record; null if unnamed."))
    x: float = strawberry.field(description="Pixels from the asset's left edge.")
    y: float = strawberry.field(description="Pixels from the asset's top edge.")
    visible: bool | None = strawberry.field(default=None, description="Whether it is visible (false: occluded); null if unknown.")


@batch_input
@strawberry.input(description="The keypoints of one object, at least 1.")
class KeypointsInput:
    points: list[KeypointInput] = strawberry.field(description="The points.")


@batch_input
@strawberry.input(description="A segmentation mask stored as an image asset.")
class MaskInput:
    asset_id: strawberry.ID = strawberry.field(description="An image asset holding the mask.")


@batch_input
@strawberry.input(one_of=True, description="Exactly one shape, matching the record's kind.")
class GeometryInput:
    bbox: BBoxInput | None = strawberry.field(default=strawberry.UNSET, description="For a BBOX record.")
    rotated_bbox: RotatedBBoxInput | None = strawberry.field(default=strawberry.UNSET, description="For a ROTATED_BBOX record.")
    polygon: PointsInput | None = strawberry.field(default=strawberry.UNSET, description="For a POLYGON record (at least 3 points).")
    polyline: PointsInput | None = strawberry.field(default=strawberry.UNSET, description="For a POLYLINE record (at least 2 points).")
    keypoints: KeypointsInput | None = strawberry.field(default=strawberry.UNSET, description="For a KEYPOINTS record.")
    mask: MaskInput | None = strawberry.field(default=strawberry.UNSET, description="For a MASK record.")


@batch_input
@strawberry.input(description="One record to add; checked against the set's schema.")
class AnnotationRecordInput:
    asset_id: strawberry.ID = strawberry.field(description="The asset it annotates (not a DELETED one).")
    kind: AnnotationKind = strawberry.field(description="What it says; one of the kinds the set's schema allows.")
    datum_id: strawberry.ID | None = strawberry.field(default=None, description="If given, the asset must be one of its roles.")
    label: str | None = strawberry.field(default=None, description=(
        "Its class, one of the schema's labels (if the schema lists none, any of 1 to 200 characters, not all "
        "blank, no control characters); required but for REGRESSION."))
    score: float | None = strawberry.field(default=None, description=(
        "Confidence from 0 to 1, if the schema allows scores; null for none."))
    value: float | None = strawberry.field(default=None, description="The regression target: required (finite) for REGRESSION.")
    geometry: GeometryInput | None = strawberry.field(default=None, description=(
        "The shape matching `kind`; null (and only null) for CLASSIFICATION and REGRESSION."))
    attributes: JSON | None = strawberry.field(default=None, description=(
        "A JSON object holding at least the schema's required attributes; null stores {}."))
    source: AnnotationSourceInput | None = strawberry.field(default=None, description="Defaults to the set's source.")
    key: str | None = strawberry.field(default=None, description=(
        "Its name in the source it came from (e.g. `coco:42`), 1 to 200 characters, unique within the set. Sent again "
        "with the same content, the record is not stored twice: the one the set holds is returned in its place "
        "(CONFLICT if its content differs). Null for none; a correction (supersedeAnnotation) takes none."))


@strawberry.input(description="A correction: the record that replaces `id`, and why.")
class SupersedeAnnotationInput:
    id: strawberry.ID = strawberry.field(description="The record to replace (a current one).")
    record: AnnotationRecordInput = strawberry.field(description="The replacement, in the same set.")
    reason: str = strawberry.field(description="Why, 1 to 1000 characters (kept with the new record).")
