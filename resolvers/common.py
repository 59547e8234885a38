"""GraphQL types shared by several domains: ownership, splits, ordering, JSON inputs."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from documents.common import Ownership as OwnershipValue
from documents.common import Split as SplitValue
from documents.json_value import InvalidJson, InvalidPredicate, StoredJson, predicate_filter
from documents.json_value import JsonOp as JsonOpValue
from resolvers.inputs import batch_input
from resolvers.scalars import JSON
from services.errors import BadUserInput

Split = strawberry.enum(SplitValue, description="Which part of training a datum belongs to.")
JsonOp = strawberry.enum(JsonOpValue, description="How a JSON path predicate compares.")


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = 1
    DESC = -1


@strawberry.type(description="Who or what produced a thing.")
class Ownership:
    user_id: str | None = None
    experiment_id: str | None = None
    campaign_id: str | None = None
    project_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    node_id: str | None = None
    lab_id: str | None = None

    @classmethod
    def from_value(cls, value: OwnershipValue) -> Ownership:
        return cls(**value.model_dump())


@batch_input
@strawberry.input(description="Who or what produced a thing; as a filter, every given field must match.")
class OwnershipInput:
    user_id: str | None = None
    experiment_id: str | None = None
    campaign_id: str | None = None
    project_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    node_id: str | None = None
    lab_id: str | None = None

    def to_value(self) -> OwnershipValue:
        return OwnershipValue(**{k: v for k, v in vars(self).items() if v is not None})

    def to_filter(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}.{k}": v for k, v in vars(self).items() if v is not None}


@strawberry.input(description='A predicate on a path inside a JSON field, e.g. {path: "temperature", op: GT, value: 20}. '
                              'Path keys are joined by "."; a "." or "\\\\" inside a key is escaped with "\\\\". '
                              "Array elements match under the array's own path.")
class JsonPredicate:
    path: str
    op: JsonOp
    value: JSON | None = None


def encode_json(value: Any, *, field: str, max_bytes: int | None = None) -> StoredJson:
    """Client JSON in its stored form; BAD_USER_INPUT naming `field` when it cannot be stored."""
    try:
        stored = StoredJson.encode(value)
    except InvalidJson as error:
        raise BadUserInput(str(error), field=field) from None
    if max_bytes is not None and len(stored.json.encode()) > max_bytes:
        raise BadUserInput(f"is {len(stored.json.encode())} bytes of JSON; the limit is {max_bytes}", field=field)
    return stored


def json_filters(field: str, predicates: list[JsonPredicate] | None, *, input_field: str) -> list[dict[str, Any]]:
    """One MongoDB filter per predicate, each answered by the field's attribute index."""
    filters = []
    for i, predicate in enumerate(predicates or []):
        try:
            filters.append(predicate_filter(field, predicate.path, JsonOpValue(predicate.op.value), predicate.value))
        except InvalidPredicate as error:
            raise BadUserInput(str(error), field=f"{input_field}[{i}]") from None
    return filters
