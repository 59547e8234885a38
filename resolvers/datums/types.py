"""GraphQL types of datums."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId

from documents.annotation import AnnotationRecord as RecordDocument
from documents.asset import Asset as AssetDocument
from documents.dataset import Datum as DatumDocument
from documents.dataset import VersionMember, VersionRecord
from resolvers.assets.types import Asset
from resolvers.common import Split
from resolvers.context import Info
from resolvers.pagination import child_connection
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import JSON
from services.node_ids import NodeType, encode_id

if TYPE_CHECKING:
    from resolvers.annotations.inputs import AnnotationFilter
    from resolvers.annotations.types import AnnotationRecord


@strawberry.type(description="The asset playing one role in a datum.")
class DatumRole:
    role: str = strawberry.field(description="The role's name, e.g. image, mask, depth; unique within its datum.")
    asset_id: strawberry.Private[object]

    @strawberry.field(description="The asset playing the role (shown DELETED if a forced delete took it).")
    async def asset(self, info: Info) -> Asset:
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(self.asset_id))


@strawberry.type(description="One example: assets by role, a split, metadata, and the annotations on it. Reached "
                             "through a dataset version, it is the datum as that version holds it (frozen when the "
                             "version was built), with that version's annotations only.")
class Datum(Node):
    split: Split = strawberry.field(description=(
        "Its split: the current one, or, reached through a dataset version, the one it had in that version."))
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    doc: strawberry.Private[DatumDocument]
    version_id: strawberry.Private[ObjectId | None] = None  # set: the datum as this version froze it

    @strawberry.field(description="Its assets, each in its role, in the order they were given (at most 20: a whole list).")
    def roles(self) -> list[DatumRole]:
        return [DatumRole(role=r.role, asset_id=r.asset_id) for r in self.doc.roles]

    @strawberry.field(description="The asset in `role`, or null.")
    async def asset(
        self, info: Info, role: Annotated[str, strawberry.argument(description="The role's exact name, e.g. image.")],
    ) -> Asset | None:
        ref = next((r for r in self.doc.roles if r.role == role), None)
        if ref is None:
            return None
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(ref.asset_id))

    @strawberry.field(description="A JSON object describing the datum ({} if none was given).")
    def metadata(self) -> JSON:
        return self.doc.metadata.decode()

    @strawberry.field(description=(
        "Annotation records on this datum, oldest first; through a dataset version, only the records that version "
        "froze."))
    async def annotations(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        filter: Annotated[Annotated[AnnotationFilter, strawberry.lazy("resolvers.annotations.inputs")] | None,
                          strawberry.argument(description="Only records matching this; null for all.")] = None,
    ) -> Connection[Annotated[AnnotationRecord, strawberry.lazy("resolvers.annotations.types")]]:
        from resolvers.annotations.inputs import annotation_query
        from resolvers.annotations.types import AnnotationRecord

        page = info.context.page(first, after, last, before)
        if self.version_id is not None:
            return await child_connection(
                info.context.loaders, VersionRecord, field="datum_id", parent_id=self.doc.id,
                query={"version_id": self.version_id, **annotation_query(filter)}, page=page,
                to_node=lambda copy: AnnotationRecord.from_document(copy.as_record()),
            )
        return await child_connection(
            info.context.loaders, RecordDocument, field="datum_id", parent_id=self.doc.id,
            query=annotation_query(filter), page=page, to_node=AnnotationRecord.from_document,
        )

    @classmethod
    def from_document(cls, doc: DatumDocument) -> Datum:
        return cls(id=encode_id(NodeType.DATUM, doc.id), split=doc.split, created_at=doc.created_at, doc=doc)

    @classmethod
    def from_member(cls, member: VersionMember) -> Datum:
        """The datum as its version holds it."""
        doc = member.as_datum()
        return cls(id=encode_id(NodeType.DATUM, doc.id), split=doc.split, created_at=doc.created_at, doc=doc,
                   version_id=member.version_id)
