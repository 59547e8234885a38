"""Inputs of the collection mutations."""

from __future__ import annotations

import strawberry

from resolvers.common import Split
from resolvers.scalars import JSON


@strawberry.input(description="A collection to create; its name is unique.")
class CreateCollectionInput:
    name: str
    description: str | None = None
    metadata: JSON | None = None


@strawberry.input(description="Changes to a collection; fields left out stay as they are.")
class UpdateCollectionInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


@strawberry.input(description="One asset to put into a collection (again: its path and split are updated).")
class CollectionItemInput:
    asset_id: strawberry.ID
    path: str | None = strawberry.field(default=None, description="Relative path like `a/b/c.png`: no `..`, no leading `/`.")
    split: Split | None = None


@strawberry.input(description="Assets to put into a collection.")
class AddToCollectionInput:
    collection_id: strawberry.ID
    items: list[CollectionItemInput]
