"""Reading collections."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents.collection import Collection as CollectionDocument
from documents.lean import lean
from resolvers.collections.types import Collection
from resolvers.context import Info
from resolvers.pagination import DESCENDING, loaded_connection, paginate
from resolvers.permissions import CanRead
from resolvers.relay import After, Before, Connection, First, Last
from services.checks import text_contains
from services.node_ids import NodeType, decode_object_id


@strawberry.type
class CollectionQueries:
    @strawberry.field(permission_classes=[CanRead], description="A collection by ID; null if none.")
    async def collection(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The collection's ID.")],
    ) -> Collection | None:
        doc = await info.context.loaders.by_id(CollectionDocument).load(decode_object_id(id, NodeType.COLLECTION))
        return Collection.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="Collections, newest first; `nameContains` is case-insensitive.")
    async def collections(
        self, info: Info,
        name_contains: Annotated[str | None, strawberry.argument(description=(
            "Only collections whose name contains this (case-insensitive); null for all."))] = None,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
        name: Annotated[str | None, strawberry.argument(description=(
            "Only the collection of exactly this name (names are unique: at most one); null for all."))] = None,
    ) -> Connection[Collection]:
        page, sort = info.context.page(first, after, last, before), [("created_at", DESCENDING)]
        collection = CollectionDocument.get_pymongo_collection()
        if name is not None and not name_contains and not (page.after or page.before):
            # The list of one name (unique: at most one collection) from a loader, so aliases asking for
            # several names cost one read. A page from a cursor, or a name beside `nameContains` (whose
            # case-insensitive match is the database's to make), is read below.
            found = await info.context.loaders.unique(CollectionDocument, ("name",)).load((name,))
            return loaded_connection([found] if found else [], sort, page, Collection.from_document, scope=collection.name)
        query: dict = text_contains("name", name_contains) if name_contains else {}
        if name is not None:  # a string, compared as one (never an operator)
            query = {"$and": [query, {"name": {"$eq": name}}]} if query else {"name": {"$eq": name}}
        return await paginate(
            collection, query=query, sort=sort, page=page,
            to_node=lambda raw: Collection.from_document(lean(CollectionDocument).model_validate(raw)),
        )
