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
