"""Inputs of the collection mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.common import METADATA_LIMIT, Split
from resolvers.inputs import batch_input
from resolvers.scalars import JSON


@strawberry.input(description="A collection to create; its name is unique.")
class CreateCollectionInput:
    name: str = strawberry.field(description=(
        "Its name: 1 to 500 characters without control characters, unique in the lake (CONFLICT if taken)."))
    description: str | None = strawberry.field(default=None, description="Free text; null for none.")
    metadata: JSON | None = strawberry.field(default=None, description=(
        f"A JSON object describing it; null stores {{}}. {METADATA_LIMIT}"))


@strawberry.input(description="Changes to a collection; fields left out stay as they are.")
class UpdateCollectionInput:
    id: strawberry.ID = strawberry.field(description="The collection to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "A new unique name (CONFLICT if taken); null or empty is refused."))
    description: str | None = strawberry.field(default=strawberry.UNSET, description="New free text; null clears it.")
    metadata: JSON | None = strawberry.field(default=strawberry.UNSET, description=(
        f"A new JSON object, replacing the old one whole; null makes it {{}}. {METADATA_LIMIT}"))
    expected_edited_at: datetime | None = strawberry.field(default=None, description=(
        "The collection's `editedAt` as you read it: the change is made only while it still is (CONFLICT on "
        "expectedEditedAt otherwise, nothing changed), so that a read-modify-write of `metadata` never silently "
        "undoes another writer's change. Null: change it whatever it holds now."))


@batch_input
@strawberry.input(description="One asset to put into a collection (again: its path and split are updated).")
class CollectionItemInput:
    asset_id: strawberry.ID = strawberry.field(description="The asset to file (not a DELETED one).")
    path: str | None = strawberry.field(default=None, description=(
        "Relative path like `a/b/c.png`: no `..`, no leading `/`, at most 1024 characters; null for none."))
    split: Split | None = strawberry.field(default=None, description="The training split to file it under; null for none.")


@strawberry.input(description="Assets to put into a collection.")
class AddToCollectionInput:
    collection_id: strawberry.ID = strawberry.field(description="The collection to add to.")
    items: list[CollectionItemInput] = strawberry.field(description=(
        "The assets, with their paths and splits: at most GRAPHLAKE_MAX_BATCH_ITEMS (10,000 by default). All are "
        "checked before any is added."))
