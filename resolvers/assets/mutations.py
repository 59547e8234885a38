"""Writing assets: store, update, alias, pin and delete (CONTRIBUTOR)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents.common import AssetKind
from documents.roles import Role
from resolvers.assets.inputs import StoreTextInput, StoreValueInput, UpdateAssetInput
from resolvers.assets.types import Asset, AssetRetention
from resolvers.common import encode_json, encode_metadata
from resolvers.context import Info, ServerSettings
from resolvers.payloads import DeletePayload
from resolvers.permissions import CanWrite, require_role
from services import assets as service
from services.errors import BadUserInput
from services.node_ids import NodeType, decode_object_id, decode_object_ids


def _shared_fields(input: StoreValueInput | StoreTextInput, settings: ServerSettings) -> dict:
    """What storeValue and storeText take alike, decoded and checked."""
    return {
        "name": input.name, "description": input.description, "labels": input.labels, "aliases": input.aliases,
        "metadata": encode_metadata(input.metadata, settings, field="metadata"),
        "owner": input.owner.to_value() if input.owner else None, "data_timestamp": input.data_timestamp,
        "derived_from": decode_object_ids(input.derived_from or [], NodeType.ASSET, field="derivedFrom"),
    }


@strawberry.type
class AssetMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Store a JSON value as an ACTIVE VALUE asset.")
    async def store_value(self, info: Info, input: Annotated[StoreValueInput, strawberry.argument(description="The value and its description.")]) -> Asset:
        settings = info.context.settings
        if input.value is strawberry.UNSET:
            raise BadUserInput("is required (send null to store null)", field="value")
        doc = await service.create_asset(
            kind=AssetKind.VALUE, actor=info.context.actor, media_type="application/json",
            value=encode_json(input.value, field="value", max_bytes=settings.max_value_bytes),
            **_shared_fields(input, settings),
        )
        return Asset.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Store a text as an ACTIVE TEXT asset.")
    async def store_text(self, info: Info, input: Annotated[StoreTextInput, strawberry.argument(description="The text and its description.")]) -> Asset:
        settings = info.context.settings
        limit = settings.max_text_bytes
        if len(input.text.encode()) > limit:
            raise BadUserInput(f"is {len(input.text.encode())} bytes; the limit is {limit}", field="text")
        doc = await service.create_asset(
            kind=AssetKind.TEXT, actor=info.context.actor, text=input.text, media_type=input.media_type,
            **_shared_fields(input, settings),
        )
        return Asset.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Change an asset's name, description, labels, metadata, dataTimestamp, owner or lineage.")
    async def update_asset(self, info: Info, input: Annotated[UpdateAssetInput, strawberry.argument(description="Which asset, and what to change.")]) -> Asset:
        changes = {
            name: getattr(input, name)
            for name in ("name", "description", "labels", "metadata", "data_timestamp", "derived_from", "owner")
            if getattr(input, name) is not strawberry.UNSET
        }
        if "owner" in changes:
            changes["owner"] = changes["owner"].to_value() if changes["owner"] is not None else None
        if "metadata" in changes:
            changes["metadata"] = encode_metadata(changes["metadata"], info.context.settings, field="metadata")
        if "derived_from" in changes:
            changes["derived_from"] = decode_object_ids(changes["derived_from"] or [], NodeType.ASSET, field="derivedFrom")
        return Asset.from_document(await service.update_asset(decode_object_id(input.id, NodeType.ASSET), changes,
                                                              expected_updated_at=input.expected_updated_at))

    @strawberry.mutation(permission_classes=[CanWrite], description="Mark an asset DELETED. Refused (CONFLICT, naming the holders) while something pins it, unless `force`, which needs ADMIN.")
    async def delete_asset(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The asset to delete.")],
        force: Annotated[bool, strawberry.argument(description=(
            "Delete even while collections, pins, datums or annotation records hold it (ADMIN only): it leaves its "
            "collections and manual pins; dataset versions, datums and records keep it, shown DELETED, and "
            "`DeletePayload.broken` names the first 100 and `brokenCount` counts them. Default false."))] = False,
    ) -> DeletePayload:
        if force:
            require_role(info.context, Role.ADMIN)
        _, broken = await service.delete_asset(decode_object_id(id, NodeType.ASSET), force, info.context.stores)
        return DeletePayload(id=id, deleted=True, broken=broken.named, broken_count=broken.count)

    @strawberry.mutation(permission_classes=[CanWrite], description="Give an asset lake-wide unique names (CONFLICT if one is taken).")
    async def add_aliases(
        self, info: Info, asset_id: Annotated[strawberry.ID, strawberry.argument(description="The asset.")],
        aliases: Annotated[list[str], strawberry.argument(description=(
            "Names to add: 1 to 200 characters, no spaces or control characters, not starting with '/'; ones it already has "
            "are kept."))],
    ) -> Asset:
        return Asset.from_document(await service.add_aliases(decode_object_id(asset_id, NodeType.ASSET, field="assetId"), aliases))

    @strawberry.mutation(permission_classes=[CanWrite], description=(
        "Point an alias at this asset in one write, creating it if new, taking it from the asset it named "
        "before: readers see the old asset or the new one, never none (a save under a name). With "
        "expectedAssetId, only while the alias names that asset (CONFLICT otherwise)."))
    async def move_alias(
        self, info: Info, alias: Annotated[str, strawberry.argument(description="The alias to point at the asset.")],
        asset_id: Annotated[strawberry.ID, strawberry.argument(description="The asset the alias names from now on.")],
        expected_asset_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="The asset the alias must name now for the move to happen; null: any, or none.")] = None,
    ) -> Asset:
        expected = (decode_object_id(expected_asset_id, NodeType.ASSET, field="expectedAssetId")
                    if expected_asset_id is not None else None)
        moved = await service.move_alias(alias, decode_object_id(asset_id, NodeType.ASSET, field="assetId"), expected)
        return Asset.from_document(moved)

    @strawberry.mutation(permission_classes=[CanWrite], description="Free some of an asset's aliases.")
    async def remove_aliases(
        self, info: Info, asset_id: Annotated[strawberry.ID, strawberry.argument(description="The asset.")],
        aliases: Annotated[list[str], strawberry.argument(description="Names to free; ones it does not have are ignored.")],
    ) -> Asset:
        return Asset.from_document(await service.remove_aliases(decode_object_id(asset_id, NodeType.ASSET, field="assetId"), aliases))

    @strawberry.mutation(permission_classes=[CanWrite], description="Pin an asset by hand, so no collection or version deletion lets it go.")
    async def pin_asset(self, info: Info, asset_id: Annotated[strawberry.ID, strawberry.argument(description="The asset to keep.")]) -> AssetRetention:
        pin = await service.pin_asset(decode_object_id(asset_id, NodeType.ASSET, field="assetId"), info.context.actor)
        return AssetRetention.from_document(pin)

    @strawberry.mutation(permission_classes=[CanWrite], description=(
        "Remove a manual pin. CONFLICT for a collection's or a dataset version's pin. A pin gone already "
        "(unpinned before, or released by a forced deleteAsset) answers `deleted: true`, as every delete does for "
        "what is gone, so a retry whose first answer was lost succeeds; removed pins leave no trace, so a "
        "well-formed ID no pin ever had answers the same."))
    async def unpin_asset(
        self, info: Info,
        retention_id: Annotated[strawberry.ID, strawberry.argument(description="The manual pin (`pinAsset`'s answer) to remove.")],
    ) -> DeletePayload:
        await service.unpin_asset(decode_object_id(retention_id, NodeType.ASSET_RETENTION, field="retentionId"))
        return DeletePayload(id=retention_id, deleted=True)



