"""GraphQL types shared by several domains: ownership, splits, ordering, JSON inputs."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry

from documents.common import Ownership as OwnershipValue
from documents.common import Split as SplitValue
from documents.json_value import InvalidJson, InvalidPredicate, JsonText, StoredJson, predicate_filter
from documents.json_value import JsonOp as JsonOpValue
from resolvers.enums import described_enum
from resolvers.inputs import batch_input
from resolvers.scalars import JSON
from services.errors import BadUserInput

if TYPE_CHECKING:
    from resolvers.context import ServerSettings


def who_did(what: str, otherwise: str) -> str:
    """The description of an audit field (createdBy, addedBy, ...): how services.auth names the caller."""
    return (f"Who {what} it: the caller's user (its token's `--user` / `userId`), else `token:<the token's name>`; "
            f"null {otherwise}.")

Split = described_enum(SplitValue, "Which part of training a datum belongs to.", {
    "TRAIN": "Used to fit a model.",
    "VALIDATION": "Held out to tune and choose a model while training.",
    "TEST": "Held out for the final evaluation only.",
    "UNASSIGNED": "In no split yet (the default for a new datum); `trainingSplit` can assign these by ratio.",
})
JsonOp = described_enum(JsonOpValue, (
    "How a JSON path predicate compares `value` with the leaves at its path; a predicate holds when some leaf "
    "at the path (any element, under an array) satisfies it, except NE and NIN, which hold when none does."), {
    "EQ": ("Equal to `value` (a scalar: string, number, boolean or null). EQ null matches an explicit null only, "
           "not a missing path (unlike MongoDB's {a: null}), as NE and EXISTS read it: for \"missing or null\", "
           "ask twice, once with EQ null and once with EXISTS false."),
    "NE": "No leaf at the path equals `value`; documents without the path match too.",
    "GT": "Greater than `value` (a number or a string; numbers compare with numbers, strings with strings).",
    "GTE": "Greater than or equal to `value` (a number or a string).",
    "LT": "Less than `value` (a number or a string).",
    "LTE": "Less than or equal to `value` (a number or a string).",
    "IN": "Equal to one of `value`, a non-empty list of scalars.",
    "NIN": "Equal to none of `value`, a non-empty list of scalars; documents without the path match too.",
    "EXISTS": "The path exists (`value` true or null) or does not (`value` false).",
    "CONTAINS": "A string leaf contains `value` as a substring (case-sensitive); a non-string `value` tests equality.",
    "REGEX": ("A string leaf matches the pattern `value` (RE2 syntax: no lookaround or backreferences; at most 500 "
              "characters)."),
})


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value(1, description="Smallest (or earliest, or A) first.")
    DESC = strawberry.enum_value(-1, description="Largest (or latest, or Z) first.")


# The ids are the producer's own (free strings, as MADSci's OwnershipInfo); null means not recorded.
OWNERSHIP_DESCRIPTIONS = {
    "user_id": "The person who produced it (a free string, not a token name); null if not recorded.",
    "experiment_id": "The experiment it belongs to; null if not recorded.",
    "campaign_id": "The campaign (a series of experiments) it belongs to; null if not recorded.",
    "project_id": "The project it belongs to; null if not recorded.",
    "workflow_id": "The workflow run that produced it; null if not recorded.",
    "step_id": "The workflow step that produced it; null if not recorded.",
    "node_id": "The instrument or node (a lab device or service) that produced it; null if not recorded.",
    "lab_id": "The lab it comes from; null if not recorded.",
    "workcell_id": "The workcell (a group of nodes run together) it comes from; null if not recorded.",
    "manager_id": "The manager (a lab service, such as a workcell or experiment manager) that produced it; "
                  "null if not recorded.",
}


@strawberry.type(description="Who or what produced a thing.")
class Ownership:
    user_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["user_id"])
    experiment_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["experiment_id"])
    campaign_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["campaign_id"])
    project_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["project_id"])
    workflow_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["workflow_id"])
    step_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["step_id"])
    node_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["node_id"])
    lab_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["lab_id"])
    workcell_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["workcell_id"])
    manager_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["manager_id"])

    @classmethod
    def from_value(cls, value: OwnershipValue) -> Ownership:
        return cls(**value.model_dump())


@batch_input
@strawberry.input(description="Who or what produced a thing; as a filter, every given field must match.")
class OwnershipInput:
    user_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["user_id"])
    experiment_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["experiment_id"])
    campaign_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["campaign_id"])
    project_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["project_id"])
    workflow_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["workflow_id"])
    step_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["step_id"])
    node_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["node_id"])
    lab_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["lab_id"])
    workcell_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["workcell_id"])
    manager_id: str | None = strawberry.field(default=None, description=OWNERSHIP_DESCRIPTIONS["manager_id"])

    def to_value(self) -> OwnershipValue:
        return OwnershipValue(**{k: v for k, v in vars(self).items() if v is not None})

    def to_filter(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}.{k}": v for k, v in vars(self).items() if v is not None}


@strawberry.input(description='A predicate on a path inside a JSON field, e.g. {path: "temperature", op: GT, value: 20}. '
                              'Path keys are joined by "."; a "." or "\\\\" inside a key is escaped with "\\\\". '
                              "Array elements match under the array's own path. A path that is missing is not null: EQ null matches an "
                              "explicit null only (EXISTS false, a missing path). Predicates given together must all hold, so "
                              "\"missing or null\" takes two queries, one with each.")
class JsonPredicate:
    path: str = strawberry.field(description='Where in the JSON to look: keys joined by ".", e.g. "sensor.temperature".')
    op: JsonOp = strawberry.field(description="How to compare.")
    value: JSON | None = strawberry.field(default=None, description=(
        "What to compare with: a scalar, a list of scalars for IN and NIN, a pattern for REGEX, a boolean or null "
        "for EXISTS."))


J = TypeVar("J", bound=JsonText)

# Said in the description of every metadata input (encode_metadata applies it).
METADATA_LIMIT = "At most GRAPHLAKE_MAX_METADATA_BYTES (1 MiB by default) as JSON."


def encode_json(value: Any, *, field: str, max_bytes: int | None = None, form: type[J] = StoredJson) -> J:  # type: ignore[assignment]
    """Client JSON in its stored `form` (StoredJson, or JsonText for what is never queried by path);
    BAD_USER_INPUT naming `field` when it cannot be stored, or is more than `max_bytes` of JSON (refused
    before its query views are built)."""
    try:
        return form.encode(value, max_bytes=max_bytes)
    except InvalidJson as error:
        raise BadUserInput(str(error), field=field) from None


def encode_metadata(value: Any, settings: ServerSettings, *, field: str) -> StoredJson:
    """A client's `metadata` of an asset, a datum, a collection or an upload (null stores {}), at most
    GRAPHLAKE_MAX_METADATA_BYTES of JSON."""
    return encode_json(value if value is not None else {}, field=field, max_bytes=settings.max_metadata_bytes)


def json_filters(field: str, predicates: list[JsonPredicate] | None, *, input_field: str) -> list[dict[str, Any]]:
    """One MongoDB filter per predicate, each answered by the field's attribute index."""
    filters = []
    for i, predicate in enumerate(predicates or []):
        try:
            filters.append(predicate_filter(field, predicate.path, JsonOpValue(predicate.op.value), predicate.value))
        except InvalidPredicate as error:
            raise BadUserInput(str(error), field=f"{input_field}[{i}]") from None
    return filters
