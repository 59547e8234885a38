"""Inputs of the datum mutations."""

from __future__ import annotations

import strawberry

from resolvers.common import Split
from resolvers.scalars import JSON


@strawberry.input
class DatumRoleInput:
    role: str = strawberry.field(description="e.g. image, mask, depth.")
    asset_id: strawberry.ID


@strawberry.input(description="A datum to create.")
class CreateDatumInput:
    roles: list[DatumRoleInput]
    split: Split = Split.UNASSIGNED
    metadata: JSON | None = None


@strawberry.input(description="Changes to a datum; dataset versions keep the split it had when they were built.")
class UpdateDatumInput:
    id: strawberry.ID
    split: Split | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
