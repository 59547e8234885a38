"""Reading annotation schemas, sets and records."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents import annotation as docs
from documents.lean import lean
from resolvers.annotations.inputs import AnnotationFilter, annotation_query
from resolvers.annotations.types import AnnotationRecord, AnnotationSchema, AnnotationSet
from resolvers.context import Info
from resolvers.pagination import DESCENDING, paginate
from resolvers.permissions import CanRead
from resolvers.relay import After, Before, Connection, First, Last


@strawberry.type
class AnnotationQueries:
    @strawberry.field(permission_classes=[CanRead], description="Annotation schemas, newest first.")
    async def annotation_schemas(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[AnnotationSchema]:
        return await paginate(
            docs.AnnotationSchema.get_pymongo_collection(), query={}, sort=[("created_at", DESCENDING)],
            page=info.context.page(first, after, last, before),
            to_node=lambda raw: AnnotationSchema.from_document(lean(docs.AnnotationSchema).model_validate(raw)),
        )

    @strawberry.field(permission_classes=[CanRead], description="Annotation sets, newest first.")
    async def annotation_sets(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[AnnotationSet]:
        return await paginate(
            docs.AnnotationSet.get_pymongo_collection(), query={}, sort=[("created_at", DESCENDING)],
            page=info.context.page(first, after, last, before),
            to_node=lambda raw: AnnotationSet.from_document(lean(docs.AnnotationSet).model_validate(raw)),
        )

    @strawberry.field(permission_classes=[CanRead], description="Annotation records across all sets, newest first.")
    async def annotations(
        self, info: Info,
        filter: Annotated[AnnotationFilter | None, strawberry.argument(description=(
            "Which records; null lists all current (not superseded) ones."))] = None,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[AnnotationRecord]:
        return await paginate(
            docs.AnnotationRecord.get_pymongo_collection(), query=annotation_query(filter), sort=[("_id", DESCENDING)],
            page=info.context.page(first, after, last, before),
            to_node=lambda raw: AnnotationRecord.from_document(lean(docs.AnnotationRecord).model_validate(raw)),
        )
