"""Inputs of the annotation mutations, and the AnnotationFilter every annotation list takes."""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers.annotations.types import AnnotationKind, AnnotationPurpose, SourceKind
from resolvers.scalars import JSON
from services.node_ids import NodeType, decode_object_ids


@strawberry.input(description="Which annotation records to list; every given field must match.")
class AnnotationFilter:
    kinds: list[AnnotationKind] | None = None
    labels: list[str] | None = None
    set_ids: list[strawberry.ID] | None = None
    purposes: list[AnnotationPurpose] | None = None
    source_kinds: list[SourceKind] | None = None
    min_score: float | None = None
    verified: bool | None = None
    include_superseded: bool = strawberry.field(default=False, description="Also records a correction replaced "
                                                "(supersedeAnnotation); by default lists show the current ones.")


def annotation_query(filter: AnnotationFilter | None) -> dict[str, Any]:
    """The MongoDB filter for an AnnotationFilter (purpose and source are copied onto each record)."""
    if filter is None:
        return {"superseded_by": None}
    query: dict[str, Any] = {} if filter.include_superseded else {"superseded_by": None}
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
    if filter.min_score is not None:
        query["score"] = {"$gte": filter.min_score}
    if filter.verified is not None:
        query["verified"] = filter.verified
    return query


@strawberry.input
class LabelClassInput:
    name: str
    display_name: str | None = None
    color: str | None = strawberry.field(default=None, description="CSS colour, e.g. `#ff8800`.")


@strawberry.input(description="A schema to create. `version` defaults to one above the newest of that name.")
class CreateAnnotationSchemaInput:
    name: str
    kinds: list[AnnotationKind]
    labels: list[LabelClassInput]
    version: int | None = None
    allow_scores: bool = True
    required_attributes: list[str] | None = None


@strawberry.input
class AnnotationSourceInput:
    kind: SourceKind
    name: str = strawberry.field(description="Annotator id, or model name.")
    version: str | None = strawberry.field(default=None, description="Model version.")


@strawberry.input(description="A set to create: one purpose, one schema, and usually one source.")
class CreateAnnotationSetInput:
    name: str
    purpose: AnnotationPurpose
    schema_id: strawberry.ID
    source: AnnotationSourceInput | None = None


@strawberry.input
class PointInput:
    x: float
    y: float


@strawberry.input
class BBoxInput:
    x: float
    y: float
    width: float
    height: float


@strawberry.input
class RotatedBBoxInput:
    cx: float
    cy: float
    width: float
    height: float
    angle: float


@strawberry.input
class PointsInput:
    points: list[PointInput]


@strawberry.input
class KeypointInput:
    name: str | None = None
    x: float
    y: float
    visible: bool | None = None


@strawberry.input
class KeypointsInput:
    points: list[KeypointInput]


@strawberry.input
class MaskInput:
    asset_id: strawberry.ID = strawberry.field(description="An image asset holding the mask.")


@strawberry.input(one_of=True, description="Exactly one shape, matching the record's kind.")
class GeometryInput:
    bbox: BBoxInput | None = strawberry.UNSET
    rotated_bbox: RotatedBBoxInput | None = strawberry.UNSET
    polygon: PointsInput | None = strawberry.UNSET
    polyline: PointsInput | None = strawberry.UNSET
    keypoints: KeypointsInput | None = strawberry.UNSET
    mask: MaskInput | None = strawberry.UNSET


@strawberry.input(description="One record to add; checked against the set's schema.")
class AnnotationRecordInput:
    asset_id: strawberry.ID
    kind: AnnotationKind
    datum_id: strawberry.ID | None = strawberry.field(default=None, description="If given, the asset must be one of its roles.")
    label: str | None = None
    score: float | None = None
    value: float | None = None
    geometry: GeometryInput | None = None
    attributes: JSON | None = None
    source: AnnotationSourceInput | None = strawberry.field(default=None, description="Defaults to the set's source.")


@strawberry.input(description="A correction: the record that replaces `id`, and why.")
class SupersedeAnnotationInput:
    id: strawberry.ID = strawberry.field(description="The record to replace (a current one).")
    record: AnnotationRecordInput = strawberry.field(description="The replacement, in the same set.")
    reason: str = strawberry.field(description="Why, 1 to 1000 characters (kept with the new record).")
