"""Writing collections (CONTRIBUTOR)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.collections.inputs import AddToCollectionInput, CreateCollectionInput, UpdateCollectionInput
from resolvers.collections.types import Collection
from resolvers.common import encode_metadata
from resolvers.context import Info
from resolvers.payloads import DeletePayload
from resolvers.permissions import CanWrite
from services import collections as service
from services.node_ids import NodeType, decode_object_id, decode_object_ids


@strawberry.type
class CollectionMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Create a collection (its name is unique).")
    async def create_collection(
        self, info: Info, input: Annotated[CreateCollectionInput, strawberry.argument(description="Its name, description and metadata.")],
    ) -> Collection:
        metadata = encode_metadata(input.metadata, info.context.settings, field="metadata")
        doc = await service.create_collection(input.name, input.description, metadata, info.context.actor)
        return Collection.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Rename a collection or change its description or metadata.")
    async def update_collection(
        self, info: Info, input: Annotated[UpdateCollectionInput, strawberry.argument(description="Which collection, and what to change.")],
    ) -> Collection:
        changes = {k: getattr(input, k) for k in ("name", "description", "metadata") if getattr(input, k) is not strawberry.UNSET}
        if "metadata" in changes:
            changes["metadata"] = encode_metadata(changes["metadata"], info.context.settings, field="metadata")
        return Collection.from_document(await service.update_collection(decode_object_id(input.id, NodeType.COLLECTION), changes,
                                                                        expected_edited_at=input.expected_edited_at))

    @strawberry.mutation(permission_classes=[CanWrite], description="Delete a collection and its pins; assets no one else pins are flagged for garbage collection, never deleted here.")
    async def delete_collection(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The collection to delete.")],
    ) -> DeletePayload:
        await service.delete_collection(decode_object_id(id, NodeType.COLLECTION))
        return DeletePayload(id=id, deleted=True)

    @strawberry.mutation(permission_classes=[CanWrite], description="Put assets into a collection (pinning them), each with an optional path and split.")
    async def add_to_collection(
        self, info: Info, input: Annotated[AddToCollectionInput, strawberry.argument(description="The collection and the items to add.")],
    ) -> Collection:
        items = [
            service.NewItem(
                asset_id=decode_object_id(item.asset_id, NodeType.ASSET, field=f"items[{i}].assetId"),
                path=service.check_path(item.path, f"items[{i}].path"),
                split=item.split,
            )
            for i, item in enumerate(input.items)
        ]
        collection_id = decode_object_id(input.collection_id, NodeType.COLLECTION, field="collectionId")
        doc = await service.add_items(collection_id, items, info.context.actor, info.context.settings.max_batch_items)
        return Collection.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Take assets out of a collection (releasing its pins on them).")
    async def remove_from_collection(
        self, info: Info,
        collection_id: Annotated[strawberry.ID, strawberry.argument(description="The collection.")],
        asset_ids: Annotated[list[strawberry.ID], strawberry.argument(description=(
            "The assets to take out; ones the collection does not hold are ignored."))],
    ) -> Collection:
        doc = await service.remove_items(
            decode_object_id(collection_id, NodeType.COLLECTION, field="collectionId"),
            decode_object_ids(asset_ids, NodeType.ASSET, field="assetIds"),
        )
        return Collection.from_document(doc)
