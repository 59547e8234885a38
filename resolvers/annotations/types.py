"""GraphQL types of annotation schemas, sets, records and their geometry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from bson import ObjectId

from documents import annotation as docs
from documents.asset import Asset as AssetDocument
from documents.dataset import Datum as DatumDocument
from resolvers.assets.types import Asset
from resolvers.common import who_did
from resolvers.context import Context, Info
from resolvers.enums import described_enum
from resolvers.lookahead import node_now_or_later, now_or_later, selected
from resolvers.pagination import child_connection
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import JSON
from services.node_ids import NodeType, encode_id

if TYPE_CHECKING:
    from strawberry.types.nodes import SelectedField, Selection

    from resolvers.annotations.inputs import AnnotationFilter
    from resolvers.datums.types import Datum

AnnotationKind = described_enum(docs.AnnotationKind, "What a record says: a class, a number, or a shape.", {
    "CLASSIFICATION": "A class of the whole asset: `label`, no geometry.",
    "REGRESSION": "A number about the whole asset: `value` (finite), no geometry.",
    "BBOX": "An axis-aligned box around one object: `label` and a `bbox` geometry.",
    "ROTATED_BBOX": "A rotated box around one object: `label` and a `rotatedBbox` geometry.",
    "POLYGON": "A closed outline of one object: `label` and a `polygon` geometry (3 points or more).",
    "POLYLINE": "An open line, e.g. a crack or a lane: `label` and a `polyline` geometry (2 points or more).",
    "KEYPOINTS": "Named points of one object, e.g. a pose: `label` and a `keypoints` geometry (1 point or more).",
    "MASK": "A per-pixel segmentation: `label` and a `mask` geometry naming an image asset.",
})
AnnotationPurpose = described_enum(docs.AnnotationPurpose, "GROUND_TRUTH labels, model PREDICTIONs, or REVIEW notes.", {
    "GROUND_TRUTH": "Labels taken as true, to train and evaluate on (`trainingSplit(verifiedOnly:)` checks these).",
    "PREDICTION": "A model's output, usually with scores, to compare with ground truth.",
    "REVIEW": "Notes from reviewing other records, e.g. flagged errors.",
})
SourceKind = described_enum(docs.SourceKind, "Who made a record: a HUMAN annotator, a MODEL, or DERIVED by a program.", {
    "HUMAN": "A person: `name` is the annotator's id.",
    "MODEL": "A model: `name` is the model's name, `version` its version.",
    "DERIVED": "A program that computed it from other data (a conversion, a heuristic): `name` says which.",
})


@strawberry.type(description="One class a schema allows.")
class LabelClass:
    name: str = strawberry.field(description="The label records carry (`AnnotationRecord.label`), unique in the schema.")
    display_name: str | None = strawberry.field(description="A name to show people; null to show `name`.")
    color: str | None = strawberry.field(description="A CSS colour to draw it in, e.g. `#ff8800`; null for any.")


@strawberry.type(description="Who made a record: an annotator id, or a model name and version.")
class AnnotationSource:
    kind: SourceKind = strawberry.field(description="A person, a model, or a program.")
    name: str = strawberry.field(description="The annotator's id, or the model's or program's name.")
    version: str | None = strawberry.field(description="The model's or program's version; null if not given.")

    @classmethod
    def from_value(cls, value: docs.AnnotationSource) -> AnnotationSource:
        return cls(kind=value.kind, name=value.name, version=value.version)


@strawberry.type(description="The rules records of a set follow: labels, kinds, scores, required attributes.")
class AnnotationSchema(Node):
    name: str = strawberry.field(description="Its name; a name has numbered versions.")
    version: int = strawberry.field(description="Its version number under `name`, 1 or more (name and version are unique together).")
    kinds: list[AnnotationKind] = strawberry.field(description="The kinds of record it allows.")
    labels: list[LabelClass] = strawberry.field(description=(
        "The classes records may carry as `label`; empty means any label is allowed."))
    allow_scores: bool = strawberry.field(description="Whether records may carry a `score`.")
    required_attributes: list[str] = strawberry.field(description="Keys every record's `attributes` must hold.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")

    @classmethod
    def from_document(cls, doc: docs.AnnotationSchema) -> AnnotationSchema:
        return cls(
            id=encode_id(NodeType.ANNOTATION_SCHEMA, doc.id), name=doc.name, version=doc.version, kinds=doc.kinds,
            labels=[LabelClass(name=c.name, display_name=c.display_name, color=c.color) for c in doc.labels],
            allow_scores=doc.allow_scores, required_attributes=doc.required_attributes, created_at=doc.created_at,
        )


@strawberry.type(description="Records from one source for one purpose, following one schema.")
class AnnotationSet(Node):
    name: str = strawberry.field(description="Its name (free text).")
    purpose: AnnotationPurpose = strawberry.field(description="What its records are for; every record carries it.")
    source: AnnotationSource | None = strawberry.field(description=(
        "Who made its records by default; null when each record names its own source."))
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    doc: strawberry.Private[docs.AnnotationSet]

    @strawberry.field(description="The schema its records are checked against.")
    def schema(self, info: Info) -> AnnotationSchema:  # or an awaitable of it (resolvers/lookahead.py)
        return node_now_or_later(info.context.loaders.by_id(docs.AnnotationSchema), self.doc.schema_id,
                                 AnnotationSchema.from_document)

    @strawberry.field(description="How many records it holds, superseded ones included.")
    async def record_count(self, info: Info) -> int:
        return await info.context.loaders.counts(docs.AnnotationRecord, "set_id", {}).load(self.doc.id)

    @strawberry.field(description="Its records, oldest first (current ones only, unless the filter asks).")
    async def records(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        filter: Annotated[Annotated[AnnotationFilter, strawberry.lazy("resolvers.annotations.inputs")] | None,
                          strawberry.argument(description="Only records matching this; null for all current ones.")] = None,
    ) -> Connection[AnnotationRecord]:
        from resolvers.annotations.inputs import annotation_query

        return await child_connection(
            info.context.loaders, docs.AnnotationRecord, field="set_id", parent_id=self.doc.id,
            query=annotation_query(filter), page=info.context.page(first, after, last, before), to_node=AnnotationRecord.from_document,
        )

    @classmethod
    def from_document(cls, doc: docs.AnnotationSet) -> AnnotationSet:
        return cls(id=encode_id(NodeType.ANNOTATION_SET, doc.id), name=doc.name, purpose=doc.purpose,
                   source=AnnotationSource.from_value(doc.source) if doc.source else None,
                   created_at=doc.created_at, doc=doc)


# Coordinates are pixels of the annotated asset, x rightwards and y downwards from its top-left corner.
X = "Pixels from the asset's left edge."
Y = "Pixels from the asset's top edge."


@strawberry.type(description="A point in pixels of the annotated asset.")
class Point:
    x: float = strawberry.field(description=X)
    y: float = strawberry.field(description=Y)


@strawberry.type(description="Axis-aligned box: top-left corner and size, in pixels.")
class BBox:
    x: float = strawberry.field(description="The left edge, in pixels from the asset's left edge.")
    y: float = strawberry.field(description="The top edge, in pixels from the asset's top edge.")
    width: float = strawberry.field(description="Width in pixels, more than 0.")
    height: float = strawberry.field(description="Height in pixels, more than 0.")


@strawberry.type(description="Box rotated by `angle` degrees around its centre.")
class RotatedBBox:
    cx: float = strawberry.field(description="The centre's x, in pixels.")
    cy: float = strawberry.field(description="The centre's y, in pixels.")
    width: float = strawberry.field(description="Width in pixels before rotation, more than 0.")
    height: float = strawberry.field(description="Height in pixels before rotation, more than 0.")
    angle: float = strawberry.field(description="Rotation in degrees around the centre.")


@strawberry.type(description="Closed outline of at least 3 points.")
class Polygon:
    points: list[Point] = strawberry.field(description="The vertices in order; the last joins the first.")


@strawberry.type(description="Open line of at least 2 points.")
class Polyline:
    points: list[Point] = strawberry.field(description="The points in order along the line.")


@strawberry.type(description="One named point of an object, e.g. a joint of a pose.")
class Keypoint:
    name: str | None = strawberry.field(description="What the point is, e.g. left_wrist; null if unnamed.")
    x: float = strawberry.field(description=X)
    y: float = strawberry.field(description=Y)
    visible: bool | None = strawberry.field(description="Whether it is visible (false: occluded); null if not said.")


@strawberry.type(description="The keypoints of one object, at least 1.")
class Keypoints:
    points: list[Keypoint] = strawberry.field(description="The points, in the order given.")


@strawberry.type(description="A segmentation mask stored as an image asset.")
class Mask:
    asset_id: strawberry.Private[object]

    @strawberry.field(description="The image asset holding the mask.")
    def asset(self, info: Info) -> Asset:  # or an awaitable of it (resolvers/lookahead.py)
        return node_now_or_later(info.context.loaders.by_id(AssetDocument), self.asset_id, Asset.from_document)


Geometry = Annotated[BBox | RotatedBBox | Polygon | Polyline | Keypoints | Mask, strawberry.union(
    "Geometry", description="The shape of a record: which one follows from its kind (none for CLASSIFICATION and REGRESSION).")]


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
    kind: AnnotationKind = strawberry.field(description="What it says: a class, a number, or a shape.")
    label: str | None = strawberry.field(description="Its class (one of the schema's labels); null for REGRESSION records.")
    score: float | None = strawberry.field(description="Model confidence, 0 to 1; null if none was given.")
    value: float | None = strawberry.field(description="Regression target (REGRESSION records); null for other kinds.")
    geometry: Geometry | None = strawberry.field(description="Its shape; null for CLASSIFICATION and REGRESSION records.")
    source: AnnotationSource = strawberry.field(description="Who made it: its own source, or its set's.")
    verified: bool = strawberry.field(description="Whether someone confirmed it (`verifyAnnotations`).")
    verified_by: str | None = strawberry.field(description=who_did("verified", "while unverified"))
    verified_at: datetime | None = strawberry.field(description="When it was verified (UTC); null while unverified.")
    created_at: datetime = strawberry.field(description="When it was added (UTC).")
    created_by: str | None = strawberry.field(description=(
        who_did("added", "for records written by the lake itself (a migration)") + " Unlike `source`, which the "
        "writer states (a model, or the annotator an import names), this is who was signed in."))
    doc: strawberry.Private[docs.AnnotationRecord]

    @strawberry.field(description="Any JSON object: the schema's required attributes and more.")
    def attributes(self) -> JSON:
        return self.doc.attributes.decode()

    @strawberry.field(description="Its name in the source it came from (e.g. `coco:42`), unique within its set; null for none.")
    def key(self) -> str | None:
        return self.doc.key

    @strawberry.field(description="The set it belongs to.")
    def set(self, info: Info) -> AnnotationSet:  # or an awaitable of it (resolvers/lookahead.py)
        return node_now_or_later(info.context.loaders.by_id(docs.AnnotationSet), self.doc.set_id, AnnotationSet.from_document)

    @strawberry.field(description="The asset it annotates.")
    def asset(self, info: Info) -> Asset:  # or an awaitable of it (resolvers/lookahead.py)
        return node_now_or_later(info.context.loaders.by_id(AssetDocument), self.doc.asset_id, Asset.from_document)

    @strawberry.field(description="The record this one corrected (supersedeAnnotation), if any.")
    def supersedes(self, info: Info) -> AnnotationRecord | None:  # or an awaitable of it (resolvers/lookahead.py)
        return self._record(info, self.doc.supersedes)

    @strawberry.field(description="Why this record replaced the one it supersedes.")
    def supersede_reason(self) -> str | None:
        return self.doc.supersede_reason

    @strawberry.field(description="The record that corrected this one, if any: then lists leave this one out.")
    def superseded_by(self, info: Info) -> AnnotationRecord | None:  # or an awaitable of it (resolvers/lookahead.py)
        return self._record(info, self.doc.superseded_by)

    @strawberry.field(description="When a correction replaced this record.")
    def superseded_at(self) -> datetime | None:
        return self.doc.superseded_at

    def _record(self, info: Info, record_id: object) -> AnnotationRecord | Awaitable[AnnotationRecord | None] | None:
        if record_id is None:
            return None
        return node_now_or_later(info.context.loaders.by_id(docs.AnnotationRecord), record_id,
                                 lambda found: AnnotationRecord.from_document(found) if found else None)

    @strawberry.field(description="The datum it was made for; null if it annotates the asset alone (or the datum is "
                                  "gone). Reached through a dataset version, the datum as that version holds it.")
    def datum(self, info: Info) -> Annotated[Datum, strawberry.lazy("resolvers.datums.types")] | None:
        # or an awaitable of it (resolvers/lookahead.py)
        from resolvers.datums.types import Datum

        if self.doc.datum_id is None:
            return None
        version_id = getattr(self.doc, "version_id", None)
        if version_id is not None:  # a version's copy: its datum as that version holds it, not as it is now
            return now_or_later(info.context.loaders.version_members(), (version_id, self.doc.datum_id),
                                lambda member: Datum.from_member(member) if member else None)
        return node_now_or_later(info.context.loaders.by_id(DatumDocument), self.doc.datum_id,
                                 lambda found: Datum.from_document(found) if found else None)

    @classmethod
    async def look_ahead(cls, context: Context, records: Sequence[docs.AnnotationRecord], selections: list[Selection]) -> None:
        """Load the sets (and their schemas), assets, mask assets, datums and the records they corrected
        or were corrected by that `selections` ask of these records, for all of them at once
        (resolvers/lookahead.py): a list of versions' pages reaches this at once, and what is left to the
        records' own resolvers comes in batches split by the turns the executor gives (resolvers/loop_slices.py)."""
        loads: list[Awaitable[Any]] = []
        if sets := selected(selections, "set"):
            loads.append(cls._look_ahead_sets(context, list(dict.fromkeys(r.set_id for r in records)), sets))
        # The records these corrected or were corrected by: by id, as `set` (a version's copies name the live ones).
        linked = [getattr(r, name) for field, name in (("supersedes", "supersedes"), ("supersededBy", "superseded_by"))
                  if selected(selections, field) for r in records if getattr(r, name) is not None]
        if linked:
            loads.append(context.loaders.by_id(docs.AnnotationRecord).load_many(list(dict.fromkeys(linked))))
        asset_ids = [r.asset_id for r in records] if selected(selections, "asset") else []
        if any(selected(geometry.selections, "asset") for geometry in selected(selections, "geometry")):
            asset_ids += [r.geometry.asset_id for r in records if isinstance(r.geometry, docs.MaskShape)]
        if asset_ids:
            loads.append(context.loaders.by_id(AssetDocument).load_many(list(dict.fromkeys(asset_ids))))
        if selected(selections, "datum"):  # a version's copies name their datums as it holds them
            held = [(r.version_id, r.datum_id) for r in records if r.datum_id is not None and getattr(r, "version_id", None)]
            current = [r.datum_id for r in records if r.datum_id is not None and not getattr(r, "version_id", None)]
            if held:
                loads.append(context.loaders.version_members().load_many(list(dict.fromkeys(held))))
            if current:
                loads.append(context.loaders.by_id(DatumDocument).load_many(list(dict.fromkeys(current))))
        await asyncio.gather(*loads)

    @staticmethod
    async def _look_ahead_sets(context: Context, set_ids: list[ObjectId], fields: list[SelectedField]) -> None:
        found = await context.loaders.by_id(docs.AnnotationSet).load_many(set_ids)
        if any(selected(field.selections, "schema") for field in fields):
            schema_ids = dict.fromkeys(doc.schema_id for doc in found if doc is not None)
            await context.loaders.by_id(docs.AnnotationSchema).load_many(list(schema_ids))

    @classmethod
    def from_document(cls, doc: docs.AnnotationRecord, record_id: ObjectId | None = None) -> AnnotationRecord:
        """`record_id`: the id it shows, when not its own (a version's copy shows its original's)."""
        return cls(
            id=encode_id(NodeType.ANNOTATION_RECORD, doc.id if record_id is None else record_id), kind=doc.kind, label=doc.label, score=doc.score, value=doc.value,
            geometry=_geometry(doc.geometry), source=AnnotationSource.from_value(doc.source), verified=doc.verified,
            verified_by=doc.verified_by, verified_at=doc.verified_at, created_at=doc.created_at,
            created_by=doc.created_by, doc=doc,
        )
