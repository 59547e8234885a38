"""Writing annotations (CONTRIBUTOR)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from bson import ObjectId

from documents import annotation as docs
from documents.json_value import InvalidJson, JsonText
from documents.lean import lean
from resolvers.annotations.inputs import (
    AnnotationRecordInput,
    AnnotationSourceInput,
    CreateAnnotationSchemaInput,
    CreateAnnotationSetInput,
    GeometryInput,
    SupersedeAnnotationInput,
)
from resolvers.annotations.types import AnnotationRecord, AnnotationSchema, AnnotationSet
from resolvers.common import encode_json
from resolvers.context import Info
from resolvers.loop_slices import validate_all
from resolvers.payloads import DeletePayload
from resolvers.permissions import CanWrite
from services import annotations as service
from services.errors import BadUserInput
from services.node_ids import NodeType, decode_object_id, decode_object_ids, encode_id


@strawberry.type(description="The records of an addAnnotations call: those it stored, and those the set held already under their keys.")
class AddAnnotationsPayload:
    count: int = strawberry.field(description=(
        "How many records this call stored: all that were given, less those the set held already under their keys."))
    existing: int = strawberry.field(description=(
        "How many of the records given the set held already under their keys (stored by an earlier call): "
        "not stored again, their IDs returned in their places."))
    # A field of its own (not only inside `records`): the audit entry lists these IDs whatever the
    # client selects, and the records are only built when asked for.
    ids: list[strawberry.ID] = strawberry.field(description="The records' IDs, in the order given.")
    stored: strawberry.Private[list[dict[str, Any]]]

    @strawberry.field(description="The records, in the order given (those held already under their keys as they are).")
    async def records(self) -> list[AnnotationRecord]:
        return [AnnotationRecord.from_document(d) for d in await validate_all(lean(docs.AnnotationRecord), self.stored)]


def _source(value: AnnotationSourceInput | None) -> docs.AnnotationSource | None:
    return docs.AnnotationSource(kind=value.kind, name=value.name, version=value.version) if value else None


def _shape(geometry: GeometryInput | None, field: str) -> object:
    """The shape of the record at `field` (records[3])."""
    if geometry is None:
        return None
    if geometry.bbox:
        box = geometry.bbox
        return docs.BBoxShape(x=box.x, y=box.y, width=box.width, height=box.height)
    if geometry.rotated_bbox:
        return docs.RotatedBBoxShape(**vars(geometry.rotated_bbox))
    if geometry.polygon:
        return docs.PolygonShape(points=[docs.Point(**vars(p)) for p in geometry.polygon.points])
    if geometry.polyline:
        return docs.PolylineShape(points=[docs.Point(**vars(p)) for p in geometry.polyline.points])
    if geometry.keypoints:
        return docs.KeypointsShape(points=[docs.Keypoint(**vars(p)) for p in geometry.keypoints.points])
    if geometry.mask:
        return docs.MaskShape(asset_id=decode_object_id(geometry.mask.asset_id, NodeType.ASSET, field=f"{field}.geometry.mask.assetId"))
    raise BadUserInput("give exactly one shape", field=f"{field}.geometry")


def _record(field: str, record: AnnotationRecordInput) -> service.NewRecord:
    """`field`: where the record is in the call (records[3]), for errors; the names under it are made
    only for an error, as most records have none (a batch's thousand records made four each)."""
    attributes = record.attributes if record.attributes is not None else {}
    if not isinstance(attributes, dict):
        raise BadUserInput("must be a JSON object", field=f"{field}.attributes")
    return service.NewRecord(
        asset_id=_object_id(record.asset_id, NodeType.ASSET, field, "assetId"),
        datum_id=_object_id(record.datum_id, NodeType.DATUM, field, "datumId") if record.datum_id else None,
        kind=record.kind, label=record.label, score=record.score, value=record.value,
        geometry=_shape(record.geometry, field) if record.geometry is not None else None,
        attributes=_attributes(attributes, field) if attributes else _NO_ATTRIBUTES,
        attribute_keys=list(attributes), source=_source(record.source), key=record.key,
    )


# What `encode_json({})` gives, made once: JsonText is never changed in place (NewRecord is read only).
_NO_ATTRIBUTES = JsonText.encode({})


def _attributes(attributes: dict[str, Any], field: str) -> JsonText:
    try:
        return JsonText.encode(attributes)
    except InvalidJson:  # encoded again to say why, naming the field
        return encode_json(attributes, field=f"{field}.attributes", form=JsonText)


def _object_id(global_id: str, type_name: NodeType, field: str, name: str) -> ObjectId:
    try:
        return decode_object_id(global_id, type_name)
    except BadUserInput:  # decoded again to say why, naming the field
        return decode_object_id(global_id, type_name, field=f"{field}.{name}")


@strawberry.type
class AnnotationMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Create an annotation schema (name + version unique).")
    async def create_annotation_schema(
        self, info: Info, input: Annotated[CreateAnnotationSchemaInput, strawberry.argument(description="The schema's rules.")],
    ) -> AnnotationSchema:
        doc = await service.create_schema(
            input.name, input.kinds,
            [docs.LabelClass(name=c.name, display_name=c.display_name, color=c.color) for c in input.labels],
            input.version, input.allow_scores, input.required_attributes or [], info.context.actor,
        )
        return AnnotationSchema.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Create an annotation set.")
    async def create_annotation_set(
        self, info: Info,
        input: Annotated[CreateAnnotationSetInput, strawberry.argument(description="Its name, purpose, schema and source.")],
    ) -> AnnotationSet:
        doc = await service.create_set(input.name, input.purpose, decode_object_id(input.schema_id, NodeType.ANNOTATION_SCHEMA, field="schemaId"),
                                       _source(input.source), info.context.actor)
        return AnnotationSet.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Add records to a set: all are checked against its schema, then all are stored, or none.")
    async def add_annotations(
        self, info: Info,
        set_id: Annotated[strawberry.ID, strawberry.argument(description="The set to add to.")],
        records: Annotated[list[AnnotationRecordInput], strawberry.argument(description=(
            "The records: 1 to GRAPHLAKE_MAX_BATCH_ITEMS (10,000 by default)."))],
    ) -> AddAnnotationsPayload:
        new = [_record(f"records[{i}]", r) for i, r in enumerate(records)]
        added = await service.add_records(decode_object_id(set_id, NodeType.ANNOTATION_SET, field="setId"), new,
                                          info.context.actor, info.context.settings.max_batch_items)
        return AddAnnotationsPayload(count=len(added.documents) - added.existing, existing=added.existing,
                                     ids=[encode_id(NodeType.ANNOTATION_RECORD, d["_id"]) for d in added.documents],
                                     stored=added.documents)

    @strawberry.mutation(permission_classes=[CanWrite], description="Mark records verified (or not), recording who and when.")
    async def verify_annotations(
        self, info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description=(
            "The records; NOT_FOUND (nothing changed) if one does not exist. Answered in this order."))],
        verified: Annotated[bool, strawberry.argument(description=(
            "True marks them verified by the caller, now; false clears that."))],
    ) -> list[AnnotationRecord]:
        docs_ = await service.verify(decode_object_ids(ids, NodeType.ANNOTATION_RECORD, field="ids"), verified, info.context.actor)
        return [AnnotationRecord.from_document(d) for d in docs_]

    @strawberry.mutation(permission_classes=[CanWrite], description="Correct a record without losing it: a new record "
                         "in the same set replaces it (checked against the set's schema), keeping what it supersedes "
                         "and why; the old one keeps which record superseded it and when. Lists show the new one; "
                         "dataset versions built before keep showing the old one.")
    async def supersede_annotation(
        self, info: Info,
        input: Annotated[SupersedeAnnotationInput, strawberry.argument(description="The record, its replacement, and why.")],
    ) -> AnnotationRecord:
        principal = info.context.principal
        new = await service.supersede(decode_object_id(input.id, NodeType.ANNOTATION_RECORD), _record("record", input.record),
                                      input.reason, info.context.actor, principal.user_id if principal else None)
        return AnnotationRecord.from_document(new)

    @strawberry.mutation(permission_classes=[CanWrite], description="Delete one annotation record. The dataset versions "
                         "built with it keep showing their copy.")
    async def delete_annotation_record(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The annotation record to delete.")],
    ) -> DeletePayload:
        await service.delete_record(decode_object_id(id, NodeType.ANNOTATION_RECORD))
        return DeletePayload(id=id, deleted=True)

    @strawberry.mutation(permission_classes=[CanWrite], description="Delete an annotation set and its records, unless "
                         "a dataset version includes it (CONFLICT names them).")
    async def delete_annotation_set(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The annotation set to delete.")],
    ) -> DeletePayload:
        await service.delete_set(decode_object_id(id, NodeType.ANNOTATION_SET))
        return DeletePayload(id=id, deleted=True)

    @strawberry.mutation(permission_classes=[CanWrite], description="Delete an annotation schema no set uses "
                         "(CONFLICT names them).")
    async def delete_annotation_schema(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The annotation schema to delete.")],
    ) -> DeletePayload:
        await service.delete_schema(decode_object_id(id, NodeType.ANNOTATION_SCHEMA))
        return DeletePayload(id=id, deleted=True)
