"""Inputs of the asset mutations and of the `assets` list."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from resolvers.assets.types import AssetKind, AssetStatus
from resolvers.common import JsonPredicate, OrderDirection, OwnershipInput
from resolvers.scalars import JSON


@strawberry.input(description="A JSON value to store as a VALUE asset.")
class StoreValueInput:
    name: str
    # Nullable so that `null` itself can be stored; leaving the field out is an error.
    value: JSON | None = strawberry.field(default=strawberry.UNSET,
                                          description="Required. Any JSON: nested arrays, keys with '.' or '$', numbers, strings, null.")
    description: str | None = None
    labels: list[str] | None = None
    metadata: JSON | None = strawberry.field(default=None, description="A JSON object.")
    owner: OwnershipInput | None = None
    data_timestamp: datetime | None = None
    aliases: list[str] | None = strawberry.field(default=None, description="Lake-wide unique names.")
    derived_from: list[strawberry.ID] | None = strawberry.field(default=None, description="Assets this one was made from.")


@strawberry.input(description="A text to store as a TEXT asset.")
class StoreTextInput:
    name: str
    text: str
    media_type: str = "text/plain"
    description: str | None = None
    labels: list[str] | None = None
    metadata: JSON | None = None
    owner: OwnershipInput | None = None
    data_timestamp: datetime | None = None
    aliases: list[str] | None = None
    derived_from: list[strawberry.ID] | None = None


@strawberry.input(description="Changes to an asset; fields left out stay as they are (null clears optional ones).")
class UpdateAssetInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    labels: list[str] | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    data_timestamp: datetime | None = strawberry.UNSET
    derived_from: list[strawberry.ID] | None = strawberry.UNSET


@strawberry.input(description="Which assets to list; every given field must match. DELETED assets appear only when `statuses` asks.")
class AssetFilter:
    kinds: list[AssetKind] | None = None
    statuses: list[AssetStatus] | None = None
    labels_all: list[str] | None = None
    labels_any: list[str] | None = None
    media_type_prefix: str | None = None
    name_contains: str | None = strawberry.field(default=None, description="Case-insensitive substring.")
    sha256: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    data_timestamp_after: datetime | None = None
    data_timestamp_before: datetime | None = None
    owner: OwnershipInput | None = None
    collection_id: strawberry.ID | None = None
    metadata: list[JsonPredicate] | None = None
    value: list[JsonPredicate] | None = None


@strawberry.enum(description="What to sort assets by.")
class AssetOrderField(Enum):
    CREATED_AT = "created_at"
    NAME = "name"
    SIZE = "size_bytes"
    DATA_TIMESTAMP = "data_timestamp"


@strawberry.input(description="Sort order of assets (default: newest first).")
class AssetOrder:
    field: AssetOrderField
    direction: OrderDirection
