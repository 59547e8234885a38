"""GraphQL types of assets and their retention pins."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from documents.annotation import AnnotationRecord as RecordDocument
from documents.asset import Asset as AssetDocument
from documents.asset import AssetLink as LinkDocument
from documents.collection import Collection as CollectionDocument
from documents.collection import CollectionItem as ItemDocument
from documents.common import AssetKind as AssetKindValue
from documents.common import AssetStatus as AssetStatusValue
from documents.common import RetentionOwnerType as RetentionOwnerTypeValue
from documents.dataset import Datum as DatumDocument
from documents.dataset import DatumAsset
from documents.retention import AssetRetention as RetentionDocument
from documents.roles import Role
from resolvers.common import Ownership, who_did
from resolvers.context import Info
from resolvers.enums import described_enum
from resolvers.pagination import LINKS_COUNTED, child_connection, linked_connection, map_nodes
from resolvers.permissions import has_role
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import JSON, BigInt
from services import lineage, retention
from services.node_ids import NodeType, encode_id

if TYPE_CHECKING:
    from resolvers.annotations.inputs import AnnotationFilter
    from resolvers.annotations.types import AnnotationRecord
    from resolvers.collections.types import Collection
    from resolvers.datums.types import Datum

AssetKind = described_enum(AssetKindValue, "VALUE (JSON), TEXT, FILE (uploaded bytes) or EXTERNAL (registered in place).", {
    "FILE": "Bytes uploaded through signed URLs (`createUpload`) into one of the lake's mounts; read with `downloadUrl`.",
    "VALUE": "A JSON value stored in the database (`storeValue`); read with `value`.",
    "TEXT": "A text stored in the database (`storeText`); read with `text`.",
    "EXTERNAL": "An object registered in place (`registerExternal`: an S3 prefix's objects or a URL); never copied "
                "or deleted by Graphlake.",
})
AssetStatus = described_enum(AssetStatusValue, "PENDING until its payload is verified; DELETED ones leave default listings.", {
    "PENDING": "A FILE whose upload is open: no bytes verified yet. Becomes ACTIVE on `completeUpload`, FAILED "
               "when the upload is aborted, expires or fails verification.",
    "ACTIVE": "Its payload is stored and verified (VALUE, TEXT and EXTERNAL assets start ACTIVE).",
    "FAILED": "Its upload was aborted, expired, or its bytes did not match the declared size or SHA-256.",
    "DELETED": "Deleted (`deleteAsset`): kept as a record, its uploaded bytes removed (never an EXTERNAL object) "
               "and its aliases freed; listed only when a filter's `statuses` asks for it.",
})
RetentionOwnerType = described_enum(RetentionOwnerTypeValue, "What holds a retention pin.", {
    "COLLECTION": "A collection holding the asset: `ownerId` is the collection's ID.",
    "DATASET_VERSION": "A dataset version whose datums use the asset: `ownerId` is the version's ID.",
    "MANUAL_PIN": "A pin set by hand with `pinAsset`: `ownerId` is the pin's own ID; `unpinAsset` removes it.",
})

# What the owner id of a pin names, per owner type.
@strawberry.type(description="Where a FILE or EXTERNAL asset's bytes live.")
class StorageRef:
    mount: str = strawberry.field(description="The name of the mount (see `mounts`) holding the bytes.")
    key: str = strawberry.field(description="The object's key inside the mount; made by the server, never by a client.")
    external: bool = strawberry.field(description="Registered in place: never copied or deleted by Graphlake.")
    etag: str | None = strawberry.field(default=None, description="An external S3 object's ETag when it was registered.")
    stored_uri: strawberry.Private[str]

    @strawberry.field(description=(
        "s3://bucket/key, https://..., or for a local mount's file file:///... (a path on the server's disk, shown "
        "only to tokens that may write, as `mounts { localRoot }` is; others get `mount:key`)."))
    def uri(self, info: Info) -> str:
        if self.stored_uri.startswith("file:") and not has_role(info.context, Role.CONTRIBUTOR):
            return f"{self.mount}:{self.key}"
        return self.stored_uri


def _storage(doc: AssetDocument) -> StorageRef | None:
    if doc.storage is None:
        return None
    stored = doc.storage
    return StorageRef(mount=stored.mount, key=stored.key, external=stored.external, etag=stored.etag, stored_uri=stored.uri)


@strawberry.type(description="A pin that keeps an asset alive. Deleting a collection never deletes an asset another owner still pins.")
class AssetRetention(Node):
    owner_type: RetentionOwnerType = strawberry.field(description="What kind of holder pins the asset.")
    owner_id: strawberry.ID = strawberry.field(description="The collection, dataset version, or (manual pins) the pin itself.")
    created_at: datetime = strawberry.field(description="When the pin was made (UTC).")
    asset_id: strawberry.Private[object]

    @strawberry.field(description="The pinned asset.")
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
    kind: AssetKind = strawberry.field(description="What the asset holds, and so which of its payload fields is set.")
    status: AssetStatus = strawberry.field(description="Where the asset is in its life: PENDING, ACTIVE, FAILED or DELETED.")
    name: str = strawberry.field(description="A human name (a file name for uploads); not unique: use `aliases` for unique names.")
    description: str | None = strawberry.field(description="Free text; null if none was given.")
    media_type: str | None = strawberry.field(description=(
        "The IANA media type, e.g. image/png (application/json for VALUE, text/plain by default for TEXT); null if "
        "unknown."))
    size_bytes: BigInt | None = strawberry.field(description=(
        "Payload size in bytes (a FILE's declared and verified size, a TEXT's UTF-8 length, a VALUE's JSON length); "
        "null when unknown, as for an EXTERNAL URL."))
    sha256: str | None = strawberry.field(description="Hex SHA-256 of the payload.")
    digest_error: str | None = strawberry.field(description=(
        "Why the server could not read this file's SHA-256 after a direct write that declared none (its file "
        "missing, of another size, unreadable); tried again a day later. Null once `sha256` is known, or before "
        "the first try."))
    storage: StorageRef | None = strawberry.field(description="FILE and EXTERNAL assets only.")
    labels: list[str] = strawberry.field(description="Free tags for filtering (`AssetFilter.labelsAll` / `labelsAny`).")
    owner: Ownership = strawberry.field(description="Who or what produced the data (fields not recorded are null).")
    data_timestamp: datetime | None = strawberry.field(description="When the data was produced (not stored).")
    created_at: datetime = strawberry.field(description="When the asset was created in the lake (UTC, milliseconds).")
    updated_at: datetime = strawberry.field(description="When the asset or its status last changed (UTC, milliseconds).")
    created_by: str | None = strawberry.field(description=who_did("created", "for system writes"))
    doc: strawberry.Private[AssetDocument]

    @strawberry.field(description=(
        "A signed, short-lived URL to GET the bytes (FILE and EXTERNAL assets), keeping the file name; null for "
        "VALUE and TEXT assets and for assets with no stored bytes (PENDING, FAILED, DELETED)."))
    def download_url(
        self, info: Info,
        expires_in_seconds: Annotated[int, strawberry.argument(description=(
            "How long the URL stays valid, in seconds: 1 up to GRAPHLAKE_MAX_DOWNLOAD_URL_SECONDS (7 days by "
            "default). Default 900 (15 minutes)."))] = 900,
    ) -> str | None:  # or an awaitable of it: a local mount's URL comes at once
        from services.uploads.downloads import download_url_now_or_later

        settings = info.context.settings
        return download_url_now_or_later(self.doc, info.context.stores, expires_in_seconds,
                                         settings.max_download_url_seconds)

    @strawberry.field(description=(
        "A signed URL (valid for an hour or more) of a WebP thumbnail at most `size` pixels a side, made once by the "
        "server and cached; null for assets that are not stored images (JPEG, PNG, WebP, GIF, BMP or TIFF "
        "uploads that are ACTIVE). The first fetch makes the thumbnail, later ones serve it."))
    def thumbnail_url(
        self, info: Info,
        size: Annotated[int, strawberry.argument(description="The longest side in pixels: 128, 256 or 512.")] = 256,
    ) -> str | None:
        from services.thumbnails import thumbnail_url

        state = info.context.state  # no database read: everything the URL needs is on the asset
        return thumbnail_url(self.doc, size, state.thumbnail_signer, state.stores)

    @strawberry.field(description="The JSON value (VALUE assets), exactly as stored.")
    def value(self) -> JSON | None:
        return self.doc.value.decode() if self.doc.value is not None else None

    @strawberry.field(description="The text (TEXT assets).")
    def text(self) -> str | None:
        return self.doc.text

    @strawberry.field(description="Any JSON object describing the asset.")
    def metadata(self) -> JSON:
        return self.doc.metadata.decode()

    @strawberry.field(description="Lake-wide unique names of this asset, in name order: at most 100 (adding more is CONFLICT).")
    async def aliases(self, info: Info) -> list[str]:
        return await info.context.loaders.aliases().load(self.doc.id)

    @strawberry.field(description="The assets this one was derived from (lineage: at most 100, a whole list).")
    async def derived_from(self, info: Info) -> list[Asset]:
        docs = await info.context.loaders.by_id(AssetDocument).load_many(self.doc.derived_from)
        return [Asset.from_document(d) for d in docs if d is not None]

    @strawberry.field(description="Collections holding this asset.")
    async def collections(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Annotated[Collection, strawberry.lazy("resolvers.collections.types")]]:
        from resolvers.collections.types import Collection

        loaders = info.context.loaders
        items = await child_connection(loaders, ItemDocument, field="asset_id", parent_id=self.doc.id, query={},
                                       page=info.context.page(first, after, last, before), to_node=lambda item: item)

        async def to_collections(items: list[ItemDocument]) -> list[Collection]:
            docs = await loaders.by_id(CollectionDocument).load_many([i.collection_id for i in items])
            return [Collection.from_document(d) for d in docs]

        return await map_nodes(items, to_collections)

    @strawberry.field(description="The pins keeping this asset alive, the oldest first: at most GRAPHLAKE_MAX_PAGE_SIZE "
                                  "of them; `pins` pages through them all.")
    async def retentions(self, info: Info) -> list[AssetRetention]:
        limit = info.context.settings.max_page_size
        page = await info.context.loaders.children(RetentionDocument, "asset_id", {}, limit).load(self.doc.id)
        return [AssetRetention.from_document(d) for d in page.docs]

    @strawberry.field(description="The pins keeping this asset alive (as `retentions`), the oldest first, page by page: "
                                  "an asset a dataset builds versions of every night holds one per version.")
    async def pins(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[AssetRetention]:
        return await child_connection(
            info.context.loaders, RetentionDocument, field="asset_id", parent_id=self.doc.id, query={},
            page=info.context.page(first, after, last, before), to_node=AssetRetention.from_document,
        )

    @strawberry.field(description="Annotations on this asset, oldest first.")
    async def annotations(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        filter: Annotated[Annotated[AnnotationFilter, strawberry.lazy("resolvers.annotations.inputs")] | None,
                          strawberry.argument(description="Only records matching this; null for all.")] = None,
    ) -> Connection[Annotated[AnnotationRecord, strawberry.lazy("resolvers.annotations.types")]]:
        from resolvers.annotations.inputs import annotation_query
        from resolvers.annotations.types import AnnotationRecord

        return await child_connection(
            info.context.loaders, RecordDocument, field="asset_id", parent_id=self.doc.id,
            query=annotation_query(filter), page=info.context.page(first, after, last, before), to_node=AnnotationRecord.from_document,
        )

    @strawberry.field(description=(
        "The assets derived from this one (whose `derivedFrom` names it), in the order they came to name it "
        "(oldest first; what a database upgrade or a restore linked, in the order those assets were made); "
        "DELETED ones left out. Lineage downstream, where `derivedFrom` is upstream. `totalCount` counts what the "
        f"pages list, checking the first {LINKS_COUNTED:,} links; past them, a link a crash left behind may be counted until the "
        "daily maintenance removes it."))
    async def derived_assets(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Asset]:
        # Through the links to it (services/lineage.py); a link alone is not trusted: `backs` says if it stands.
        return await linked_connection(
            info.context.loaders, LinkDocument, field="source_id", target="asset_id", parent_id=self.doc.id,
            page=info.context.page(first, after, last, before), model=AssetDocument, to_node=Asset.from_document,
            keep=lambda doc: lineage.backs(doc, self.doc.id),
        )

    @strawberry.field(description=(
        "The datums that use this asset in one of their roles, oldest first (as they are now; a dataset version "
        "keeps its own copy). `annotations` lists the records on it. `totalCount` counts what the pages list, checking "
        f"the first {LINKS_COUNTED:,} uses; past them, a use a crash left behind may be counted until the daily maintenance removes it."))
    async def datums(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[Annotated[Datum, strawberry.lazy("resolvers.datums.types")]]:
        from resolvers.datums.types import Datum

        # Through its datums' uses of it (documents/dataset.DatumAsset).
        return await linked_connection(
            info.context.loaders, DatumAsset, field="asset_id", target="datum_id", parent_id=self.doc.id,
            page=info.context.page(first, after, last, before), model=DatumDocument, to_node=Datum.from_document,
        )

    @classmethod
    def from_document(cls, doc: AssetDocument) -> Asset:
        return cls(
            id=encode_id(NodeType.ASSET, doc.id), kind=doc.kind, status=doc.status, name=doc.name,
            description=doc.description, media_type=doc.media_type, size_bytes=doc.size_bytes, sha256=doc.sha256,
            digest_error=doc.digest_error,
            storage=_storage(doc), labels=doc.labels,
            owner=Ownership.from_value(doc.owner), data_timestamp=doc.data_timestamp, created_at=doc.created_at,
            updated_at=doc.updated_at, created_by=doc.created_by, doc=doc,
        )
