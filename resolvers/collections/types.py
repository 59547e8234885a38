"""GraphQL types of collections and their items."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from documents.asset import Asset as AssetDocument
from documents.collection import Collection as CollectionDocument
from documents.collection import CollectionItem as ItemDocument
from resolvers.assets.types import Asset
from resolvers.common import Split, who_did
from resolvers.context import Info
from resolvers.pagination import child_connection
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import JSON
from services.checks import text_starts_with
from services.node_ids import NodeType, encode_id


@strawberry.type(description="An asset's place in a collection.")
class CollectionItem(Node):
    path: str | None = strawberry.field(description="Place in a hierarchical upload, e.g. `images/cam1/0001.png`.")
    split: Split | None = strawberry.field(description="The training split the item was filed under; null if none was given.")
    added_at: datetime = strawberry.field(description="When the asset was first put into the collection (UTC); adding it again keeps this time.")
    added_by: str | None = strawberry.field(description=who_did("added", "for system writes"))
    doc: strawberry.Private[ItemDocument]

    @strawberry.field(description="The collection the item belongs to.")
    async def collection(self, info: Info) -> Collection:
        return Collection.from_document(await info.context.loaders.by_id(CollectionDocument).load(self.doc.collection_id))

    @strawberry.field(description="The asset the item files (a delete, forced or not, takes it out of its collections).")
    async def asset(self, info: Info) -> Asset:
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(self.doc.asset_id))

    @classmethod
    def from_document(cls, doc: ItemDocument) -> CollectionItem:
        return cls(id=encode_id(NodeType.COLLECTION_ITEM, doc.id), path=doc.path, split=doc.split, added_at=doc.added_at,
                   added_by=doc.added_by, doc=doc)


@strawberry.type(description="A named group of assets. It pins every asset it holds.")
class Collection(Node):
    name: str = strawberry.field(description="Its name, unique in the lake (1 to 500 characters).")
    description: str | None = strawberry.field(description="Free text; null if none was given.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    updated_at: datetime = strawberry.field(description="When its name, description, metadata or items last changed (UTC).")
    edited_at: datetime = strawberry.field(description=(
        "When its name, description or metadata last changed (UTC, milliseconds; its createdAt until then), not "
        "its items: pass it as updateCollection's expectedEditedAt."))
    doc: strawberry.Private[CollectionDocument]

    @strawberry.field(description="Any JSON object describing the collection.")
    def metadata(self) -> JSON:
        return self.doc.metadata.decode()

    @strawberry.field(description="How many assets it holds.")
    async def item_count(self, info: Info) -> int:
        return await info.context.loaders.counts(ItemDocument, "collection_id", {}).load(self.doc.id)

    @strawberry.field(description="Its items in the order they were added; `pathPrefix` and `split` narrow them.")
    async def items(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        path_prefix: Annotated[str | None, strawberry.argument(description=(
            'Only items whose path starts with this (case-sensitive), e.g. "images/cam1/"; null for all.'))] = None,
        split: Annotated[Split | None, strawberry.argument(description="Only items filed under this split; null for all.")] = None,
    ) -> Connection[CollectionItem]:
        query: dict = {}
        if path_prefix:
            query |= text_starts_with("path", path_prefix)
        if split:
            query["split"] = split.value
        return await child_connection(
            info.context.loaders, ItemDocument, field="collection_id", parent_id=self.doc.id, query=query,
            page=info.context.page(first, after, last, before), to_node=CollectionItem.from_document,
        )

    @classmethod
    def from_document(cls, doc: CollectionDocument) -> Collection:
        return cls(id=encode_id(NodeType.COLLECTION, doc.id), name=doc.name, description=doc.description,
                   created_at=doc.created_at, updated_at=doc.updated_at, edited_at=doc.edited_at or doc.created_at,
                   doc=doc)
