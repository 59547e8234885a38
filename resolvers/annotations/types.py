"""GraphQL types of annotation schemas, sets, records and their geometry."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from documents import annotation as docs
from documents.asset import Asset as AssetDocument
from documents.dataset import Datum as DatumDocument
from resolvers.assets.types import Asset
from resolvers.context import Info
from resolvers.pagination import child_connection
from resolvers.relay import After, Connection, First, Node
from resolvers.scalars import JSON
from services.node_ids import NodeType, encode_id

if TYPE_CHECKING:
    from resolvers.annotations.inputs import AnnotationFilter
    from resolvers.datums.types import Datum

AnnotationKind = strawberry.enum(docs.AnnotationKind, description="What a record says: a class, a number, or a shape.")
AnnotationPurpose = strawberry.enum(docs.AnnotationPurpose, description="GROUND_TRUTH labels, model PREDICTIONs, or REVIEW notes.")
SourceKind = strawberry.enum(docs.SourceKind, description="Who made a record: a HUMAN annotator, a MODEL, or DERIVED by a program.")


@strawberry.type(description="One class a schema allows.")
class LabelClass:
    name: str
    display_name: str | None
    color: str | None


@strawberry.type(description="Who made a record: an annotator id, or a model name and version.")
class AnnotationSource:
    kind: SourceKind
    name: str
    version: str | None

    @classmethod
    def from_value(cls, value: docs.AnnotationSource) -> AnnotationSource:
        return cls(kind=value.kind, name=value.name, version=value.version)


@strawberry.type(description="The rules records of a set follow: labels, kinds, scores, required attributes.")
class AnnotationSchema(Node):
    name: str
    version: int
    kinds: list[AnnotationKind]
    labels: list[LabelClass]
    allow_scores: bool
    required_attributes: list[str]
    created_at: datetime

    @classmethod
    def from_document(cls, doc: docs.AnnotationSchema) -> AnnotationSchema:
        return cls(
            id=encode_id(NodeType.ANNOTATION_SCHEMA, doc.id), name=doc.name, version=doc.version, kinds=doc.kinds,
            labels=[LabelClass(name=c.name, display_name=c.display_name, color=c.color) for c in doc.labels],
            allow_scores=doc.allow_scores, required_attributes=doc.required_attributes, created_at=doc.created_at,
        )


@strawberry.type(description="Records from one source for one purpose, following one schema.")
class AnnotationSet(Node):
    name: str
    purpose: AnnotationPurpose
    source: AnnotationSource | None
    created_at: datetime
    doc: strawberry.Private[docs.AnnotationSet]

    @strawberry.field
    async def schema(self, info: Info) -> AnnotationSchema:
        return AnnotationSchema.from_document(await info.context.loaders.by_id(docs.AnnotationSchema).load(self.doc.schema_id))

    @strawberry.field
    async def record_count(self, info: Info) -> int:
        return await info.context.loaders.counts(docs.AnnotationRecord, "set_id", {}).load(self.doc.id)

    @strawberry.field
    async def records(
        self, info: Info, first: First = None, after: After = None,
        filter: Annotated[AnnotationFilter, strawberry.lazy("resolvers.annotations.inputs")] | None = None,
    ) -> Connection[AnnotationRecord]:
        from resolvers.annotations.inputs import annotation_query

        return await child_connection(
            info.context.loaders, docs.AnnotationRecord, field="set_id", parent_id=self.doc.id,
            query=annotation_query(filter), page=info.context.page(first, after), to_node=AnnotationRecord.from_document,
        )

    @classmethod
    def from_document(cls, doc: docs.AnnotationSet) -> AnnotationSet:
        return cls(id=encode_id(NodeType.ANNOTATION_SET, doc.id), name=doc.name, purpose=doc.purpose,
                   source=AnnotationSource.from_value(doc.source) if doc.source else None,
                   created_at=doc.created_at, doc=doc)


@strawberry.type
class Point:
    x: float
    y: float


@strawberry.type(description="Axis-aligned box: top-left corner and size, in pixels.")
class BBox:
    x: float
    y: float
    width: float
    height: float


@strawberry.type(description="Box rotated by `angle` degrees around its centre.")
class RotatedBBox:
    cx: float
    cy: float
    width: float
    height: float
    angle: float


@strawberry.type(description="Closed outline of at least 3 points.")
class Polygon:
    points: list[Point]


@strawberry.type(description="Open line of at least 2 points.")
class Polyline:
    points: list[Point]


@strawberry.type
class Keypoint:
    name: str | None
    x: float
    y: float
    visible: bool | None


@strawberry.type
class Keypoints:
    points: list[Keypoint]


@strawberry.type(description="A segmentation mask stored as an image asset.")
class Mask:
    asset_id: strawberry.Private[object]

    @strawberry.field
    async def asset(self, info: Info) -> Asset:
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(self.asset_id))


Geometry = Annotated[BBox | RotatedBBox | Polygon | Polyline | Keypoints | Mask, strawberry.union("Geometry")]


def _geometry(shape: docs.BBoxShape | docs.RotatedBBoxShape | docs.PolygonShape | docs.PolylineShape
              | docs.KeypointsShape | docs.MaskShape | None) -> Geometry | None:
    if shape is None:
        return None
    if isinstance(shape, docs.BBoxShape):
        return BBox(x=shape.x, y=shape.y, width=shape.width, height=shape.height)
    if isinstance(shape, docs.RotatedBBoxShape):
        return RotatedBBox(cx=shape.cx, cy=shape.cy, width=shape.width, height=shape.height, angle=shape.angle)
    if isinstance(shape, docs.PolygonShape):
        return Polygon(points=[Point(x=p.x, y=p.y) for p in shape.points])
    if isinstance(shape, docs.PolylineShape):
        return Polyline(points=[Point(x=p.x, y=p.y) for p in shape.points])
    if isinstance(shape, docs.KeypointsShape):
        return Keypoints(points=[Keypoint(name=p.name, x=p.x, y=p.y, visible=p.visible) for p in shape.points])
    return Mask(asset_id=shape.asset_id)


@strawberry.type(description="One label, value or shape on an asset (and optionally a datum), with its provenance.")
class AnnotationRecord(Node):
    kind: AnnotationKind
    label: str | None
    score: float | None = strawberry.field(description="Model confidence, 0 to 1.")
    value: float | None = strawberry.field(description="Regression target.")
    geometry: Geometry | None
    source: AnnotationSource
    verified: bool
    verified_by: str | None
    verified_at: datetime | None
    created_at: datetime
    doc: strawberry.Private[docs.AnnotationRecord]

    @strawberry.field(description="Any JSON object: the schema's required attributes and more.")
    def attributes(self) -> JSON:
        return self.doc.attributes.decode()

    @strawberry.field
    async def set(self, info: Info) -> AnnotationSet:
        return AnnotationSet.from_document(await info.context.loaders.by_id(docs.AnnotationSet).load(self.doc.set_id))

    @strawberry.field
    async def asset(self, info: Info) -> Asset:
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(self.doc.asset_id))

    @strawberry.field(description="The record this one corrected (supersedeAnnotation), if any.")
    async def supersedes(self, info: Info) -> AnnotationRecord | None:
        return await self._record(info, self.doc.supersedes)

    @strawberry.field(description="Why this record replaced the one it supersedes.")
    def supersede_reason(self) -> str | None:
        return self.doc.supersede_reason

    @strawberry.field(description="The record that corrected this one, if any: then lists leave this one out.")
    async def superseded_by(self, info: Info) -> AnnotationRecord | None:
        return await self._record(info, self.doc.superseded_by)

    @strawberry.field(description="When a correction replaced this record.")
    def superseded_at(self) -> datetime | None:
        return self.doc.superseded_at

    async def _record(self, info: Info, record_id: object) -> AnnotationRecord | None:
        if record_id is None:
            return None
        found = await info.context.loaders.by_id(docs.AnnotationRecord).load(record_id)
        return AnnotationRecord.from_document(found) if found else None

    @strawberry.field
    async def datum(self, info: Info) -> Annotated[Datum, strawberry.lazy("resolvers.datums.types")] | None:
        from resolvers.datums.types import Datum

        if self.doc.datum_id is None:
            return None
        found = await info.context.loaders.by_id(DatumDocument).load(self.doc.datum_id)
        return Datum.from_document(found) if found else None

    @classmethod
    def from_document(cls, doc: docs.AnnotationRecord) -> AnnotationRecord:
        return cls(
            id=encode_id(NodeType.ANNOTATION_RECORD, doc.id), kind=doc.kind, label=doc.label, score=doc.score, value=doc.value,
            geometry=_geometry(doc.geometry), source=AnnotationSource.from_value(doc.source), verified=doc.verified,
            verified_by=doc.verified_by, verified_at=doc.verified_at, created_at=doc.created_at, doc=doc,
        )
