"""Assets: one stored thing (a JSON value, a text, a file, or an external object)."""

from __future__ import annotations

from datetime import datetime

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.common import AssetKind, AssetStatus, Ownership
from documents.indexes import Index, On
from documents.json_value import StoredJson, json_indexes


class StorageRef(BaseModel):
    """Where a FILE or EXTERNAL asset's bytes live."""

    mount: str
    key: str
    uri: str
    external: bool = False
    etag: str | None = None  # an external S3 object's, when registered: registering it again finds it unchanged


class Asset(Document):
    kind: AssetKind
    status: AssetStatus
    name: str
    description: str | None = None
    media_type: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    value: StoredJson | None = None
    text: str | None = None
    storage: StorageRef | None = None
    metadata: StoredJson = Field(default_factory=lambda: StoredJson.encode({}))
    labels: list[str] = Field(default_factory=list)
    owner: Ownership = Field(default_factory=Ownership)
    data_timestamp: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    derived_from: list[PydanticObjectId] = Field(default_factory=list)
    # Collections holding it (kept beside the items so `collectionId` filters are one indexed match).
    collection_ids: list[PydanticObjectId] = Field(default_factory=list)
    # Set when the last pin went away: a garbage collector may remove it after a grace period.
    unpinned_at: datetime | None = None
    deleted_at: datetime | None = None
    # A file stored without a SHA-256 whose digest the reconciler could not read (its file missing,
    # changed or unreadable): why, and when it last tried; it tries again a day later.
    digest_error: str | None = None
    digest_failed_at: datetime | None = None

    class Settings:
        name = "assets"
        indexes = [
            # MongoDB answers a status $in with a sorted list from these (it merges one run per status).
            IndexModel([("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="status_created"),
            IndexModel([("status", ASCENDING), ("name", ASCENDING), ("_id", ASCENDING)], name="status_name"),
            IndexModel([("status", ASCENDING), ("size_bytes", ASCENDING), ("_id", ASCENDING)], name="status_size"),
            IndexModel([("status", ASCENDING), ("data_timestamp", ASCENDING), ("_id", ASCENDING)], name="status_data_ts"),
            # The embedded default reads the list in its order and applies the status there (nearly every
            # asset passes "not DELETED"), and likewise any other filter without an index of its own.
            # Status and kind ride along in the default order's index: checked there, not in the document.
            Index([("created_at", DESCENDING), ("_id", DESCENDING), ("status", ASCENDING), ("kind", ASCENDING)],
                  name="created", on=On.EMBEDDED),
            Index([("name", ASCENDING), ("_id", ASCENDING)], name="name", on=On.EMBEDDED),
            Index([("size_bytes", ASCENDING), ("_id", ASCENDING)], name="size", on=On.EMBEDDED),
            Index([("data_timestamp", ASCENDING), ("_id", ASCENDING)], name="data_ts", on=On.EMBEDDED),
            # Partial (documents/indexes.py): most assets have no owner. Every read of it pins the owner.
            Index([("owner.user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                  name="owner_user_created", on=On.EMBEDDED, embedded_partial=True),
            IndexModel("kind", name="kind"),
            IndexModel("labels", name="labels"),
            Index("sha256", name="sha256"),
            IndexModel("media_type", name="media_type"),
            IndexModel("collection_ids", name="collection_ids"),
            IndexModel("owner.user_id", name="owner_user"),
            IndexModel("owner.experiment_id", name="owner_experiment"),
            IndexModel("owner.workflow_id", name="owner_workflow"),
            IndexModel("owner.project_id", name="owner_project"),
            # The garbage collector's candidates, a round at a time in this order (services/assets.unpinned_rounds):
            # with the flag alone, each round's read sorted every candidate left to find its 500. Partial on
            # the embedded default (documents/indexes.py): a pinned asset has no flag, and each round reads a range of it.
            Index([("unpinned_at", ASCENDING), ("_id", ASCENDING)], name="unpinned_at", embedded_partial=True),
            # Registering an external prefix or URL again finds what it registered before. The embedded
            # default scanned for it, 1-2 s a call at 50,000 assets; one more index entry per write there
            # measured no slower (1.62 against 1.65 ms an insert). Not led by `kind`: SQLite would take
            # that for a `kinds` filter and sort the list itself. Partial on the embedded default
            # (documents/indexes.py): only FILE and EXTERNAL assets have a URI, and it is read by `$in`.
            Index("storage.uri", name="storage_uri", embedded_partial=True),
            *json_indexes("metadata"),
            *json_indexes("value"),
        ]


LINKS_COLLECTION = "asset_lineage"


class AssetLink(Document):
    """That an asset derives from another (one of its `derived_from`): how the assets derived from
    one are found (services/lineage.py). The embedded default cannot index the `derived_from` array,
    so that read walked every asset. Only assets that are not DELETED have theirs."""

    source_id: PydanticObjectId  # the asset derived from
    asset_id: PydanticObjectId  # the one derived

    class Settings:
        name = LINKS_COLLECTION
        indexes = [
            # The assets derived from one, in the order they were linked, read as a range.
            Index([("source_id", ASCENDING), ("_id", ASCENDING)], name="source_links"),
            # An asset's own links, which services/lineage.relink makes what the asset says.
            Index([("asset_id", ASCENDING), ("source_id", ASCENDING)], name="asset_links"),
        ]


class Alias(Document):
    """A lake-wide unique name for an asset. Its own collection, keyed by the alias itself:
    a unique index on an array field would make every asset with no alias collide."""

    id: str = Field(alias="_id")  # type: ignore[assignment]
    asset_id: PydanticObjectId
    created_at: datetime = Field(default_factory=utcnow)
    # When a move (moveAlias) last pointed it at an asset; None: it names the one it was created for.
    moved_at: datetime | None = None

    @property
    def names_since(self) -> datetime:
        """Since when it names the asset it names."""
        return self.moved_at or self.created_at

    class Settings:
        name = "aliases"
        indexes = [Index("asset_id", name="asset_id")]
