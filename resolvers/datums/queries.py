"""Reading datums."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents.dataset import Datum as DatumDocument
from documents.lean import lean
from resolvers.common import JsonPredicate, Split, json_filters
from resolvers.context import Info
from resolvers.datums.types import Datum
from resolvers.list_filters import EMPTY_LIST, refuse_empty
from resolvers.lookahead import node_selections
from resolvers.pagination import DESCENDING, paginate
from resolvers.permissions import CanRead
from resolvers.relay import After, Before, Connection, First, Last
from services.node_ids import NodeType, decode_object_id


@strawberry.type
class DatumQueries:
    @strawberry.field(permission_classes=[CanRead], description="A datum by ID; null if none.")
    async def datum(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The datum's ID.")],
    ) -> Datum | None:
        doc = await info.context.loaders.by_id(DatumDocument).load(decode_object_id(id, NodeType.DATUM))
        return Datum.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="Datums, newest first, by split, by a role they have, by metadata.")
    async def datums(
        self, info: Info,
        split: Annotated[Split | None, strawberry.argument(description="Only datums in this split; null for all.")] = None,
        role: Annotated[str | None, strawberry.argument(description=(
            "Only datums that have an asset in this role (exact name, e.g. mask); null for all."))] = None,
        metadata: Annotated[list[JsonPredicate] | None, strawberry.argument(description=(
            f"Predicates on the datum's metadata, all of which must hold; null for none. {EMPTY_LIST}"))] = None,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[Datum]:
        refuse_empty(metadata, "metadata")
        clauses: list[dict] = []
        if split:
            clauses.append({"split": split.value})
        if role is not None:  # "" too: no datum has a role of no name (read as no filter, it listed them all)
            clauses.append({"roles.role": role})
        clauses += json_filters("metadata", metadata, input_field="metadata")
        datums = await paginate(
            DatumDocument.get_pymongo_collection(), query={"$and": clauses} if clauses else {},
            sort=[("_id", DESCENDING)], page=info.context.page(first, after, last, before),
            to_node=lambda raw: Datum.from_document(lean(DatumDocument).model_validate(raw)),
        )
        await Datum.look_ahead(info.context, [edge.node for edge in datums.edges], node_selections(info.selected_fields))
        return datums
