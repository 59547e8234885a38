"""Collections of assets, and their items (an asset's place in one collection)."""

from __future__ import annotations

from datetime import datetime

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.common import Split
from documents.indexes import Index, On
from documents.json_value import StoredJson


class Collection(Document):
    name: str
    description: str | None = None
    metadata: StoredJson = Field(default_factory=lambda: StoredJson.encode({}))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Moved by updateCollection alone (services/collections.update_collection), not by its items: what its
    # compare-and-set looks at, which every add would otherwise fail. Its created_at until the first.
    edited_at: datetime | None = None
    created_by: str | None = None
    # Set as a delete starts (services/collections.delete_collection): adds refuse the collection from then on.
    deleting_at: datetime | None = None

    class Settings:
        name = "collections"
        indexes = [
            IndexModel("name", name="name_unique", unique=True),
            # `collections(name:)` on the embedded default, where a unique index serves no query: a search
            # of the name, in the list's order (without it, the read walked every collection newest first).
            Index([("name", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="name", on=On.EMBEDDED),
            Index([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at"),
        ]


class CollectionItem(Document):
    collection_id: PydanticObjectId
    asset_id: PydanticObjectId
    path: str | None = None
    split: Split | None = None
    added_at: datetime = Field(default_factory=utcnow)
    added_by: str | None = None
    # The asset's `created_at`, which never changes: the key `assets(filter: {collectionId})` pages a
    # collection's assets by, newest first, through the items (services/collections.assets_by_items).
    # None only on an item whose asset was gone when schema version 12 gave the items theirs.
    asset_created_at: datetime | None = None

    class Settings:
        name = "collection_items"
        indexes = [
            IndexModel([("collection_id", ASCENDING), ("asset_id", ASCENDING)], name="collection_asset_unique", unique=True),
            Index([("collection_id", ASCENDING), ("path", ASCENDING), ("_id", ASCENDING)], name="collection_path"),
            # A page of a collection's items in the order they were added (the loaders, keyset pages).
            Index([("collection_id", ASCENDING), ("_id", ASCENDING)], name="collection_added"),
            Index([("asset_id", ASCENDING), ("_id", ASCENDING)], name="asset"),
            # A collection's assets in the assets list's default order (created_at, then `_id`), either way.
            Index([("collection_id", ASCENDING), ("asset_created_at", DESCENDING), ("asset_id", DESCENDING)],
                  name="collection_created"),
        ]
