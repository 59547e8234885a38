"""Which IDs an AUDIT entry lists (resolvers/events/audit.py): the global IDs among a mutation's
arguments, then its result, each once, in the order first met; not other strings."""

from __future__ import annotations

from resolvers.annotations.inputs import AnnotationRecordInput
from resolvers.annotations.mutations import AddAnnotationsPayload
from resolvers.annotations.types import AnnotationKind
from resolvers.events.audit import audited_ids
from resolvers.schema import build_schema
from services.node_ids import NodeType, encode_id

build_schema()  # the types' lazy references resolved, as in the server


def _id(kind: NodeType, n: int) -> str:
    return encode_id(kind, f"{n:024x}")


def test_a_batchs_ids_are_listed_once_each_in_the_order_first_met() -> None:
    set_id = _id(NodeType.ANNOTATION_SET, 1)
    records = [AnnotationRecordInput(asset_id=_id(NodeType.ASSET, i // 3), datum_id=_id(NodeType.DATUM, i // 3),
                                     kind=AnnotationKind.BBOX, label="cat") for i in range(6)]
    made = [_id(NodeType.ANNOTATION_RECORD, 100 + i) for i in range(6)]
    result = AddAnnotationsPayload(count=6, existing=0, ids=made, stored=[])
    assert audited_ids([set_id, records], result) == [
        set_id, _id(NodeType.ASSET, 0), _id(NodeType.DATUM, 0), _id(NodeType.ASSET, 1), _id(NodeType.DATUM, 1), *made]


def test_strings_that_are_not_global_ids_are_left_out_however_often_they_come() -> None:
    """An ID argument holding something else (a raw ObjectId, a name) is not listed, met once or
    again; a payload's free text is not walked at all (only fields declared to hold IDs are)."""
    asset, in_text = _id(NodeType.ASSET, 7), _id(NodeType.DATUM, 9)
    raw = "64b000000000000000000001"
    records = [AnnotationRecordInput(asset_id=raw, datum_id=asset, kind=AnnotationKind.BBOX, label=in_text),
               AnnotationRecordInput(asset_id=raw, kind=AnnotationKind.BBOX, label="cat")]
    assert audited_ids([records, "not an id", raw], None) == [asset]
