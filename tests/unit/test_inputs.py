"""Planned input conversion (resolvers/inputs.py) builds exactly what Strawberry's own does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from strawberry.types.arguments import convert_argument

from resolvers.common import OwnershipInput
from resolvers.events.types import EventInput, LogLevel
from resolvers.schema import build_schema

VALUES = [
    {"eventType": "A"},  # everything else omitted: defaults
    {"eventType": "B", "level": LogLevel.ERROR, "message": None, "data": {"x": [1, {"y": None}]},
     "source": {"nodeId": "n1", "userId": None}, "timestamp": datetime(2026, 1, 2, tzinfo=UTC), "alert": True,
     "traceId": "t", "spanId": "s"},
    {"eventType": "C", "source": None, "data": None, "level": None},  # explicit nulls
]


@pytest.mark.parametrize("value", VALUES)
def test_planned_conversion_matches_strawberrys(value: dict) -> None:
    schema = build_schema()
    registry, config = schema.schema_converter.scalar_registry, schema.config
    planned = convert_argument(value, EventInput, registry, config)
    hooks = [t.__strawberry_definition__ for t in (EventInput, OwnershipInput)]
    saved = [d.from_input for d in hooks]
    try:
        for d in hooks:
            d.from_input = None  # Strawberry's field-by-field conversion
        general = convert_argument(value, EventInput, registry, config)
    finally:
        for d, hook in zip(hooks, saved, strict=True):
            d.from_input = hook
    assert saved[0] is not None and saved[1] is not None
    assert type(planned) is EventInput
    assert vars(planned) == vars(general)  # nested inputs too: dataclass equality checks their class


# The inputs that arrive by the thousand in imports (addAnnotations, createDatums, createUploads,
# addToCollection), as graphql-core hands them over: enums as members, IDs as text, JSON decoded.
def _batch_values() -> list[tuple[type, dict]]:
    from resolvers.annotations.inputs import AnnotationRecordInput
    from resolvers.annotations.types import AnnotationKind, SourceKind
    from resolvers.collections.inputs import CollectionItemInput
    from resolvers.common import Split
    from resolvers.datums.inputs import CreateDatumInput
    from resolvers.uploads.inputs import CreateUploadInput

    record = {"assetId": "QXNzZXQ6MQ", "kind": AnnotationKind.BBOX}
    return [
        (AnnotationRecordInput, record),  # the rest omitted: defaults
        (AnnotationRecordInput, {**record, "datumId": "RGF0dW06MQ", "label": "cat", "score": 0.5, "value": None,
                                 "geometry": {"bbox": {"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0}},
                                 "attributes": {"coco_id": 7, "tags": ["a", None]},
                                 "source": {"kind": SourceKind.MODEL, "name": "yolo", "version": None}}),
        (AnnotationRecordInput, {**record, "kind": AnnotationKind.ROTATED_BBOX,
                                 "geometry": {"rotatedBbox": {"cx": 1.0, "cy": 2.0, "width": 3.0, "height": 4.0, "angle": 5.0}}}),
        (AnnotationRecordInput, {**record, "kind": AnnotationKind.POLYGON,
                                 "geometry": {"polygon": {"points": [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 1.0}]}}}),
        (AnnotationRecordInput, {**record, "kind": AnnotationKind.KEYPOINTS, "geometry": {"keypoints": {"points": [
            {"name": "nose", "x": 1.0, "y": 2.0, "visible": True}, {"x": 3.0, "y": 4.0, "name": None}]}}}),
        (AnnotationRecordInput, {**record, "kind": AnnotationKind.MASK, "geometry": {"mask": {"assetId": "QXNzZXQ6Mg"}}}),
        (AnnotationRecordInput, {**record, "geometry": None, "attributes": None, "source": None, "label": None}),  # explicit nulls
        (CreateDatumInput, {"roles": [{"role": "image", "assetId": "QXNzZXQ6MQ"}], "split": Split.TRAIN, "metadata": {"a": 1}}),
        (CreateDatumInput, {"roles": [{"role": "image", "assetId": "QXNzZXQ6MQ"}]}),
        (CreateUploadInput, {"name": "a.png", "sizeBytes": 12, "mediaType": "image/png", "sha256": "ab" * 32,
                             "metadata": {"k": "v"}, "labels": ["x"], "owner": {"userId": "u"},
                             "dataTimestamp": datetime(2026, 1, 2, tzinfo=UTC), "collectionId": "Q29sbGVjdGlvbjox",
                             "path": "a/b.png", "direct": True}),
        (CreateUploadInput, {"name": "b", "sizeBytes": 0}),
        (CollectionItemInput, {"assetId": "QXNzZXQ6MQ", "path": "x/y.png", "split": Split.VALIDATION}),
        (CollectionItemInput, {"assetId": "QXNzZXQ6MQ", "split": None}),
    ]


def _planned_types() -> list[type]:
    """Every input class of the schema that has a planned conversion."""
    from strawberry.types.base import has_object_definition

    schema = build_schema()
    found = []
    for graphql_type in schema._schema.type_map.values():
        definition = getattr(graphql_type, "extensions", {}).get("strawberry-definition")
        origin = getattr(definition, "origin", None)
        if origin is not None and has_object_definition(origin) and definition.is_input and definition.from_input:
            found.append(origin)
    return found


@pytest.mark.parametrize(("cls", "value"), _batch_values(), ids=lambda v: getattr(v, "__name__", ""))
def test_planned_batch_inputs_match_strawberrys(cls: type, value: dict) -> None:
    schema = build_schema()
    registry, config = schema.schema_converter.scalar_registry, schema.config
    planned_types = _planned_types()
    assert cls in planned_types
    planned = convert_argument(value, cls, registry, config)
    hooks = [t.__strawberry_definition__ for t in planned_types]
    saved = [d.from_input for d in hooks]
    try:
        for d in hooks:
            d.from_input = None
        general = convert_argument(value, cls, registry, config)
    finally:
        for d, hook in zip(hooks, saved, strict=True):
            d.from_input = hook
    assert type(planned) is cls
    assert planned == general  # dataclass equality, nested inputs included
