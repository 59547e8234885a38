"""Inputs of the asset mutations and of the `assets` list."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from resolvers.assets.types import AssetKind, AssetStatus
from resolvers.common import METADATA_LIMIT, JsonPredicate, OrderDirection, OwnershipInput
from resolvers.list_filters import list_filter
from resolvers.scalars import JSON

# What storeValue, storeText and createUpload take alike, described once.
NAME = ("A human name, 1 to 500 characters (surrounding spaces trimmed), no control character (a newline, a tab, "
        "NUL); need not be unique.")
DESCRIPTION = "Free text about the asset; null for none."
LABELS = ("Free tags to filter by: at most 100, each 1 to 200 characters without control characters; duplicates "
          "dropped. Null for none.")
METADATA = f"A JSON object describing the asset, queryable by path (`AssetFilter.metadata`); null stores {{}}. {METADATA_LIMIT}"
OWNER = "Who or what produced the data; null records nothing."
DATA_TIMESTAMP = "When the data was produced (not stored), with a time zone; kept to the millisecond. Null if unknown."
ALIASES = ("Lake-wide unique names (1 to 200 characters, no spaces or control characters, not starting with '/'): "
           "CONFLICT if one already names another asset. Null for none.")
DERIVED_FROM = "IDs of the assets this one was made from (lineage; at most 100); each must exist. Null for none."


@strawberry.input(description="A JSON value to store as a VALUE asset.")
class StoreValueInput:
    name: str = strawberry.field(description=NAME)
    # Nullable so that `null` itself can be stored; leaving the field out is an error.
    value: JSON | None = strawberry.field(default=strawberry.UNSET,
                                          description=("Required. Any JSON: nested arrays, keys with '.' or '$', "
                                                       "numbers, strings, null; at most GRAPHLAKE_MAX_VALUE_BYTES "
                                                       "(1 MiB by default) as JSON."))
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    labels: list[str] | None = strawberry.field(default=None, description=LABELS)
    metadata: JSON | None = strawberry.field(default=None, description=METADATA)
    owner: OwnershipInput | None = strawberry.field(default=None, description=OWNER)
    data_timestamp: datetime | None = strawberry.field(default=None, description=DATA_TIMESTAMP)
    aliases: list[str] | None = strawberry.field(default=None, description=ALIASES)
    derived_from: list[strawberry.ID] | None = strawberry.field(default=None, description=DERIVED_FROM)


@strawberry.input(description="A text to store as a TEXT asset.")
class StoreTextInput:
    name: str = strawberry.field(description=NAME)
    text: str = strawberry.field(description="The text: at most GRAPHLAKE_MAX_TEXT_BYTES (10 MiB by default) as UTF-8.")
    media_type: str = strawberry.field(default="text/plain", description=(
        "The text's media type, e.g. text/markdown or text/csv (default text/plain)."))
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    labels: list[str] | None = strawberry.field(default=None, description=LABELS)
    metadata: JSON | None = strawberry.field(default=None, description=METADATA)
    owner: OwnershipInput | None = strawberry.field(default=None, description=OWNER)
    data_timestamp: datetime | None = strawberry.field(default=None, description=DATA_TIMESTAMP)
    aliases: list[str] | None = strawberry.field(default=None, description=ALIASES)
    derived_from: list[strawberry.ID] | None = strawberry.field(default=None, description=DERIVED_FROM)


@strawberry.input(description="Changes to an asset; fields left out stay as they are (null clears optional ones).")
class UpdateAssetInput:
    id: strawberry.ID = strawberry.field(description="The asset to change (not a DELETED one: CONFLICT).")
    name: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "A new name, 1 to 500 characters without control characters; null or empty is refused."))
    description: str | None = strawberry.field(default=strawberry.UNSET, description="New free text; null clears it.")
    labels: list[str] | None = strawberry.field(default=strawberry.UNSET, description=(
        "The new labels, replacing all (at most 100, each 1 to 200 characters without control characters); null clears them."))
    metadata: JSON | None = strawberry.field(default=strawberry.UNSET, description=(
        f"A new JSON object, replacing the old one whole; null makes it {{}}. {METADATA_LIMIT}"))
    data_timestamp: datetime | None = strawberry.field(default=strawberry.UNSET, description=(
        "When the data was produced; null clears it."))
    owner: OwnershipInput | None = strawberry.field(default=strawberry.UNSET, description=(
        "Who or what produced the data, replacing every ownership field (those left out become null); null clears it."))
    derived_from: list[strawberry.ID] | None = strawberry.field(default=strawberry.UNSET, description=(
        "The new lineage, replacing the old: IDs of existing assets (at most 100), not this one nor one derived "
        "from it (a cycle: BAD_USER_INPUT naming the entry); null clears it."))
    expected_updated_at: datetime | None = strawberry.field(default=None, description=(
        "The asset's `updatedAt` as you read it: the change is made only while it still is (CONFLICT on "
        "expectedUpdatedAt otherwise, nothing changed), so that a read-modify-write of `metadata` or `labels` "
        "never silently undoes another writer's change. Null: change it whatever it holds now."))


@strawberry.input(description="Which assets to list; every given field must match. DELETED assets appear only when `statuses` asks.")
class AssetFilter:
    kinds: list[AssetKind] | None = list_filter("Only assets of one of these kinds.")
    statuses: list[AssetStatus] | None = list_filter("Only assets in one of these statuses; null means every status but DELETED.")
    labels_all: list[str] | None = list_filter("Only assets carrying every one of these labels.")
    labels_any: list[str] | None = list_filter("Only assets carrying at least one of these labels.")
    media_type_prefix: str | None = strawberry.field(default=None, description=(
        'Only assets whose media type starts with this, e.g. "image/" (case-sensitive).'))
    name_contains: str | None = strawberry.field(default=None, description="Case-insensitive substring.")
    sha256: str | None = strawberry.field(default=None, description="Only assets with this payload SHA-256 (hex, any case).")
    sha256_in: list[str] | None = list_filter(
        "Only assets whose payload SHA-256 is one of these (hex, any case; at most 500 distinct): what a lake "
        "holds of a batch of files, in one query.")
    created_after: datetime | None = strawberry.field(default=None, description="Only assets created at or after this time.")
    created_before: datetime | None = strawberry.field(default=None, description="Only assets created before this time.")
    data_timestamp_after: datetime | None = strawberry.field(default=None, description=(
        "Only assets whose `dataTimestamp` is at or after this time (assets without one never match)."))
    data_timestamp_before: datetime | None = strawberry.field(default=None, description=(
        "Only assets whose `dataTimestamp` is before this time (assets without one never match)."))
    owner: OwnershipInput | None = strawberry.field(default=None, description=(
        "Only assets whose owner has every given field equal."))
    collection_id: strawberry.ID | None = strawberry.field(default=None, description="Only assets in this collection.")
    metadata: list[JsonPredicate] | None = list_filter("Predicates on `metadata`, all of which must hold.")
    value: list[JsonPredicate] | None = list_filter(
        "Predicates on a VALUE asset's `value`, all of which must hold (other kinds never match).")


@strawberry.enum(description="What to sort assets by.")
class AssetOrderField(Enum):
    CREATED_AT = strawberry.enum_value("created_at", description="When the asset was created in the lake.")
    NAME = strawberry.enum_value("name", description="The asset's name (binary order: uppercase before lowercase).")
    SIZE = strawberry.enum_value("size_bytes", description="`sizeBytes`; assets without a size come first ascending.")
    DATA_TIMESTAMP = strawberry.enum_value("data_timestamp", description=(
        "`dataTimestamp`; assets without one come first ascending."))


@strawberry.input(description="Sort order of assets (default: newest first). Ties are broken by ID.")
class AssetOrder:
    field: AssetOrderField = strawberry.field(description="What to sort by.")
    direction: OrderDirection = strawberry.field(description="Ascending or descending.")
