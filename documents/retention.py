"""Retention pins: each keeps one asset alive on behalf of one owner."""

from __future__ import annotations

from datetime import datetime

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from documents.clock import utcnow
from documents.common import RetentionOwnerType
from documents.indexes import Index, On


class AssetRetention(Document):
    asset_id: PydanticObjectId
    owner_type: RetentionOwnerType
    # A collection or dataset version id; for MANUAL_PIN the pin's own id (one pin per call).
    owner_id: PydanticObjectId
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # When an addToCollection made this pin, until its item is written (services/collections.add_items):
    # one still set long after marks an add cut short between the two, which the maintenance settles
    # (settle_cut_short_adds). Missing or null otherwise (a range on it passes over both).
    adding_at: datetime | None = None

    class Settings:
        name = "retentions"
        indexes = [
            IndexModel([("asset_id", ASCENDING), ("owner_type", ASCENDING), ("owner_id", ASCENDING)],
                       name="asset_owner_unique", unique=True),
            # An owner's pins, in `_id` order: a release reads them a round at a time (services/bulk_deletes.py).
            Index([("owner_type", ASCENDING), ("owner_id", ASCENDING), ("_id", ASCENDING)], name="owner"),
            # An asset's pins, and which of some assets are pinned, on the embedded default (MongoDB
            # reads them from the unique index above; on our FerretDB build a unique index serves no query).
            Index([("asset_id", ASCENDING), ("_id", ASCENDING)], name="asset", on=On.EMBEDDED),
            # The marks of adds cut short, oldest first (services/collections.settle_cut_short_adds), read as a
            # range: partial on the embedded default (documents/indexes.py), as a pin has no mark once written.
            Index([("adding_at", ASCENDING), ("_id", ASCENDING)], name="adding_at", embedded_partial=True),
        ]
