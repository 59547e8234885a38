"""GraphQL types of datums."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from bson import ObjectId

from documents.annotation import AnnotationRecord as RecordDocument
from documents.asset import Asset as AssetDocument
from documents.dataset import Datum as DatumDocument
from documents.dataset import VersionMember, VersionRecord
from documents.lean import lean
from resolvers.assets.types import Asset
from resolvers.common import Split
from resolvers.context import Context, Info
from resolvers.lookahead import first_page_size, node_now_or_later, node_selections, now_or_later, selected
from resolvers.loop_slices import validate_all
from resolvers.pagination import child_connection_now_or_later, first_children, held_list_connection
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import JSON
from services.node_ids import NodeType, encode_id

if TYPE_CHECKING:
    from strawberry.types.nodes import Selection

    from resolvers.annotations.inputs import AnnotationFilter
    from resolvers.annotations.types import AnnotationRecord


@strawberry.type(description="The asset playing one role in a datum.")
class DatumRole:
    role: str = strawberry.field(description="The role's name, e.g. image, mask, depth; unique within its datum.")
    asset_id: strawberry.Private[object]

    @strawberry.field(description="The asset playing the role (shown DELETED if a forced delete took it).")
    def asset(self, info: Info) -> Asset:  # or an awaitable of it (resolvers/lookahead.py)
        return node_now_or_later(info.context.loaders.by_id(AssetDocument), self.asset_id, Asset.from_document)


@strawberry.type(description="One example: assets by role, a split, metadata, and the annotations on it. Reached "
                             "through a dataset version, it is the datum as that version holds it (frozen when the "
                             "version was built), with that version's annotations only.")
class Datum(Node):
    split: Split = strawberry.field(description=(
        "Its split: the current one, or, reached through a dataset version, the one it had in that version."))
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    updated_at: datetime = strawberry.field(description=(
        "When its split or metadata last changed (UTC, milliseconds; its createdAt until then): pass it as "
        "updateDatum's expectedUpdatedAt. Reached through a dataset version, its createdAt."))
    doc: strawberry.Private[DatumDocument]
    version_id: strawberry.Private[ObjectId | None] = None  # set: the datum as this version froze it

    @strawberry.field(description="Its assets, each in its role, in the order they were given (at most 20: a whole list).")
    def roles(self) -> list[DatumRole]:
        return [DatumRole(role=r.role, asset_id=r.asset_id) for r in self.doc.roles]

    @strawberry.field(description="The asset in `role`, or null.")
    def asset(
        self, info: Info, role: Annotated[str, strawberry.argument(description="The role's exact name, e.g. image.")],
    ) -> Asset | None:  # or an awaitable of it (resolvers/lookahead.py)
        ref = next((r for r in self.doc.roles if r.role == role), None)
        if ref is None:
            return None
        return node_now_or_later(info.context.loaders.by_id(AssetDocument), ref.asset_id, Asset.from_document)

    @strawberry.field(description="A JSON object describing the datum ({} if none was given).")
    def metadata(self) -> JSON:
        return self.doc.metadata.decode()

    @strawberry.field(description=(
        "Annotation records on this datum, oldest first; through a dataset version, only the records that version "
        "froze."))
    def annotations(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        filter: Annotated[Annotated[AnnotationFilter, strawberry.lazy("resolvers.annotations.inputs")] | None,
                          strawberry.argument(description="Only records matching this; null for all.")] = None,
    ) -> Connection[Annotated[AnnotationRecord, strawberry.lazy("resolvers.annotations.types")]]:
        # or an awaitable of it (resolvers/lookahead.py)
        from resolvers.annotations.inputs import annotation_query
        from resolvers.annotations.types import AnnotationRecord

        page, query = info.context.page(first, after, last, before), annotation_query(filter)
        if self.version_id is not None:  # the version's copies, packed a datum's to a document: read whole
            return now_or_later(info.context.loaders.version_copies(query), (self.version_id, self.doc.id),
                                lambda copies: held_list_connection(
                                    copies, page, _frozen, scope=f"records of {self.doc.id} in {self.version_id}"))
        return child_connection_now_or_later(info.context.loaders, RecordDocument, field="datum_id", parent_id=self.doc.id,
                                             query=query, page=page, to_node=AnnotationRecord.from_document)

    @classmethod
    async def look_ahead(cls, context: Context, datums: Sequence[Datum], selections: list[Selection]) -> None:
        """Load what `selections` ask of these datums (role assets, first pages of annotations and what
        those ask in turn) for all of them at once: resolvers/lookahead.py."""
        asset_ids = [r.asset_id for roles in selected(selections, "roles") if selected(roles.selections, "asset")
                     for datum in datums for r in datum.doc.roles]
        asset_ids += [r.asset_id for field in selected(selections, "asset") for datum in datums
                      for r in datum.doc.roles if r.role == field.arguments.get("role")]
        loads: list[Awaitable[Any]] = []
        if asset_ids:
            loads.append(context.loaders.by_id(AssetDocument).load_many(list(dict.fromkeys(asset_ids))))
        for field in selected(selections, "annotations"):
            first = first_page_size(field, context.page)
            if first is not None:
                loads.append(cls._look_ahead_records(context, datums, first, node_selections([field])))
        await asyncio.gather(*loads)

    @staticmethod
    async def _look_ahead_records(context: Context, datums: Sequence[Datum], first: int,
                                  selections: list[Selection]) -> None:
        from resolvers.annotations.inputs import annotation_query
        from resolvers.annotations.types import AnnotationRecord

        by_source: dict[ObjectId | None, list[Datum]] = defaultdict(list)  # a page's datums share one version
        for datum in datums:
            by_source[datum.version_id].append(datum)

        async def records(group: list[Datum]) -> None:
            datum_ids, version_id = [datum.doc.id for datum in group], group[0].version_id
            if version_id is not None:
                held = await context.loaders.version_copies(annotation_query(None)).load_many(
                    [(version_id, datum_id) for datum_id in datum_ids])
                docs = await validate_all(lean(VersionRecord), [copy for copies in held for copy in copies[:first]])
            else:
                pages = await first_children(context.loaders, RecordDocument, field="datum_id",
                                             query=annotation_query(None), first=first).load_many(datum_ids)
                docs = [doc for page in pages for doc in page.docs]
            await AnnotationRecord.look_ahead(context, docs, selections)

        await asyncio.gather(*(records(group) for group in by_source.values()))

    @classmethod
    def from_document(cls, doc: DatumDocument) -> Datum:
        return cls(id=encode_id(NodeType.DATUM, doc.id), split=doc.split, created_at=doc.created_at,
                   updated_at=doc.updated_at or doc.created_at, doc=doc)

    @classmethod
    def from_member(cls, member: VersionMember) -> Datum:
        """The datum as its version holds it."""
        doc = member.as_datum()
        return cls(id=encode_id(NodeType.DATUM, doc.id), split=doc.split, created_at=doc.created_at,
                   updated_at=doc.created_at, doc=doc, version_id=member.version_id)


def _frozen(raw: Mapping[str, Any]) -> AnnotationRecord:
    """A version's copy of a record (as stored), shown under its original's id."""
    from resolvers.annotations.types import AnnotationRecord

    copy = lean(VersionRecord).model_validate(raw)
    return AnnotationRecord.from_document(copy, record_id=copy.record_id)
