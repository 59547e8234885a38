"""Inputs of the datum mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.common import METADATA_LIMIT, Split
from resolvers.inputs import batch_input
from resolvers.scalars import JSON


@batch_input
@strawberry.input(description="One asset and the role it plays in a datum.")
class DatumRoleInput:
    role: str = strawberry.field(description="The role's name, e.g. image, mask, depth: not blank, no control characters, once per datum.")
    asset_id: strawberry.ID = strawberry.field(description="The asset playing it; it must exist.")


@batch_input
@strawberry.input(description="A datum to create.")
class CreateDatumInput:
    roles: list[DatumRoleInput] = strawberry.field(description="Its assets by role: 1 to 20, each role named once.")
    split: Split = strawberry.field(default=Split.UNASSIGNED, description="Its split (default UNASSIGNED).")
    metadata: JSON | None = strawberry.field(default=None, description=(
        f"A JSON object describing it; null stores {{}}. {METADATA_LIMIT}"))


@strawberry.input(description="Changes to a datum; dataset versions keep the split it had when they were built.")
class UpdateDatumInput:
    id: strawberry.ID = strawberry.field(description="The datum to change.")
    split: Split | None = strawberry.field(default=strawberry.UNSET, description=(
        "A new split; null is refused (a datum always has one, UNASSIGNED at least)."))
    metadata: JSON | None = strawberry.field(default=strawberry.UNSET, description=(
        f"A new JSON object, replacing the old one whole; null makes it {{}}. {METADATA_LIMIT}"))
    expected_updated_at: datetime | None = strawberry.field(default=None, description=(
        "The datum's `updatedAt` as you read it: the change is made only while it still is (CONFLICT on "
        "expectedUpdatedAt otherwise, nothing changed), so that a read-modify-write of `metadata` never "
        "silently undoes another writer's change. Null: change it whatever it holds now."))
