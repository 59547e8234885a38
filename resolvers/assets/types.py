"""GraphQL types of assets and their retention pins."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from documents.annotation import AnnotationRecord as RecordDocument
from documents.asset import Asset as AssetDocument
from documents.collection import Collection as CollectionDocument
from documents.collection import CollectionItem as ItemDocument
from documents.common import AssetKind as AssetKindValue
from documents.common import AssetStatus as AssetStatusValue
from documents.common import RetentionOwnerType as RetentionOwnerTypeValue
from documents.retention import AssetRetention as RetentionDocument
from resolvers.common import Ownership
from resolvers.context import Info
from resolvers.pagination import child_connection, map_nodes
from resolvers.relay import After, Connection, First, Node
from resolvers.scalars import JSON, BigInt
from services import retention
from services.node_ids import NodeType, encode_id

if TYPE_CHECKING:
    from resolvers.annotations.inputs import AnnotationFilter
    from resolvers.annotations.types import AnnotationRecord
    from resolvers.collections.types import Collection

AssetKind = strawberry.enum(AssetKindValue, description="VALUE (JSON), TEXT, FILE (uploaded bytes) or EXTERNAL (registered in place).")
AssetStatus = strawberry.enum(AssetStatusValue, description="PENDING until its payload is verified; DELETED ones leave default listings.")
RetentionOwnerType = strawberry.enum(RetentionOwnerTypeValue, description="What holds a retention pin.")

# What the owner id of a pin names, per owner type.
@strawberry.type(description="Where a FILE or EXTERNAL asset's bytes live.")
class StorageRef:
    mount: str
    key: str
    uri: str = strawberry.field(description="s3://bucket/key, file://..., https://...")
    external: bool = strawberry.field(description="Registered in place: never copied or deleted by Graphlake.")
    etag: str | None = strawberry.field(default=None, description="An external S3 object's ETag when it was registered.")


@strawberry.type(description="A pin that keeps an asset alive. Deleting a collection never deletes an asset another owner still pins.")
class AssetRetention(Node):
    owner_type: RetentionOwnerType
    owner_id: strawberry.ID = strawberry.field(description="The collection, dataset version, or (manual pins) the pin itself.")
    created_at: datetime
    asset_id: strawberry.Private[object]

    @strawberry.field
    async def asset(self, info: Info) -> Asset:
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(self.asset_id))

    @classmethod
    def from_document(cls, doc: RetentionDocument) -> AssetRetention:
        return cls(
            id=encode_id(NodeType.ASSET_RETENTION, doc.id), owner_type=doc.owner_type,
            owner_id=retention.holder_id(doc.owner_type, doc.owner_id),
            created_at=doc.created_at, asset_id=doc.asset_id,
        )


@strawberry.type(description="One stored thing: a JSON value, a text, a file or an external object, with its metadata.")
class Asset(Node):
    kind: AssetKind
    status: AssetStatus
    name: str
    description: str | None
    media_type: str | None
    size_bytes: BigInt | None
    sha256: str | None = strawberry.field(description="Hex SHA-256 of the payload.")
    digest_error: str | None = strawberry.field(description=(
        "Why the server could not read this file's SHA-256 after a direct write that declared none (its file "
        "missing, of another size, unreadable); tried again a day later. Null once `sha256` is known, or before "
        "the first try."))
    storage: StorageRef | None = strawberry.field(description="FILE and EXTERNAL assets only.")
    labels: list[str]
    owner: Ownership
    data_timestamp: datetime | None = strawberry.field(description="When the data was produced (not stored).")
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    doc: strawberry.Private[AssetDocument]

    @strawberry.field(description="A signed, short-lived URL to GET the bytes (FILE and EXTERNAL assets), keeping the file name.")
    async def download_url(self, info: Info, expires_in_seconds: int = 900) -> str | None:
        from services.uploads.downloads import download_url

        settings = info.context.settings
        return await download_url(self.doc, info.context.stores, expires_in_seconds, settings.max_download_url_seconds)

    @strawberry.field(description="The JSON value (VALUE assets), exactly as stored.")
    def value(self) -> JSON | None:
        return self.doc.value.decode() if self.doc.value is not None else None

    @strawberry.field(description="The text (TEXT assets).")
    def text(self) -> str | None:
        return self.doc.text

    @strawberry.field(description="Any JSON object describing the asset.")
    def metadata(self) -> JSON:
        return self.doc.metadata.decode()

    @strawberry.field(description="Lake-wide unique names of this asset.")
    async def aliases(self, info: Info) -> list[str]:
        return await info.context.loaders.aliases().load(self.doc.id)

    @strawberry.field(description="The assets this one was derived from (lineage).")
    async def derived_from(self, info: Info) -> list[Asset]:
        docs = await info.context.loaders.by_id(AssetDocument).load_many(self.doc.derived_from)
        return [Asset.from_document(d) for d in docs if d is not None]

    @strawberry.field(description="Collections holding this asset.")
    async def collections(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[Annotated[Collection, strawberry.lazy("resolvers.collections.types")]]:
        from resolvers.collections.types import Collection

        loaders = info.context.loaders
        items = await child_connection(loaders, ItemDocument, field="asset_id", parent_id=self.doc.id, query={},
                                       page=info.context.page(first, after), to_node=lambda item: item)

        async def to_collections(items: list[ItemDocument]) -> list[Collection]:
            docs = await loaders.by_id(CollectionDocument).load_many([i.collection_id for i in items])
            return [Collection.from_document(d) for d in docs]

        return await map_nodes(items, to_collections)

    @strawberry.field(description="The pins keeping this asset alive (at most the page-size limit).")
    async def retentions(self, info: Info) -> list[AssetRetention]:
        limit = info.context.settings.max_page_size
        page = await info.context.loaders.children(RetentionDocument, "asset_id", {}, limit).load(self.doc.id)
        return [AssetRetention.from_document(d) for d in page.docs]

    @strawberry.field(description="Annotations on this asset.")
    async def annotations(
        self, info: Info, first: First = None, after: After = None,
        filter: Annotated[AnnotationFilter, strawberry.lazy("resolvers.annotations.inputs")] | None = None,
    ) -> Connection[Annotated[AnnotationRecord, strawberry.lazy("resolvers.annotations.types")]]:
        from resolvers.annotations.inputs import annotation_query
        from resolvers.annotations.types import AnnotationRecord

        return await child_connection(
            info.context.loaders, RecordDocument, field="asset_id", parent_id=self.doc.id,
            query=annotation_query(filter), page=info.context.page(first, after), to_node=AnnotationRecord.from_document,
        )

    @classmethod
    def from_document(cls, doc: AssetDocument) -> Asset:
        return cls(
            id=encode_id(NodeType.ASSET, doc.id), kind=doc.kind, status=doc.status, name=doc.name,
            description=doc.description, media_type=doc.media_type, size_bytes=doc.size_bytes, sha256=doc.sha256,
            digest_error=doc.digest_error,
            storage=StorageRef(**doc.storage.model_dump()) if doc.storage else None, labels=doc.labels,
            owner=Ownership.from_value(doc.owner), data_timestamp=doc.data_timestamp, created_at=doc.created_at,
            updated_at=doc.updated_at, created_by=doc.created_by, doc=doc,
        )
