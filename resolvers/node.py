"""`node(id:)` and `nodes(ids:)`: any object by its global ID, authorized per type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry
from beanie import Document
from bson import ObjectId

from documents import annotation, asset, collection, dataset, event, retention
from documents.api_token import ApiToken as ApiTokenDocument
from documents.api_token import Role
from resolvers.annotations.types import AnnotationRecord, AnnotationSchema, AnnotationSet
from resolvers.assets.types import Asset, AssetRetention
from resolvers.auth.types import ApiToken
from resolvers.collections.types import Collection
from resolvers.context import Info
from resolvers.datasets.types import Dataset, DatasetVersion
from resolvers.datums.types import Datum
from resolvers.events.types import Event
from resolvers.permissions import CanRead, require_role
from resolvers.relay import Node
from services.errors import BadUserInput
from services.node_ids import NodeType, split_id


@dataclass(frozen=True)
class NodeKind:
    """What reading one type of node takes: a role, and a batch fetch by raw ids."""

    role: Role
    fetch: Callable[[Sequence[str]], Awaitable[dict[str, Any]]]


def _fetch(model: type[Document], to_node: Callable[[Any], Any], query: dict[str, Any] | None = None):
    """A batch fetch of `model` documents by raw id: one `$in` query."""

    async def fetch(raw_ids: Sequence[str]) -> dict[str, Any]:
        ids = [ObjectId(raw) for raw in raw_ids if ObjectId.is_valid(raw)]
        raw = await model.get_pymongo_collection().find({"_id": {"$in": ids}, **(query or {})}).to_list()
        return {str(doc["_id"]): to_node(model.model_validate(doc)) for doc in raw}

    return fetch


# Every type that implements Node has a row here; a test checks that against the schema.
NODE_KINDS: dict[NodeType, NodeKind] = {
    NodeType.API_TOKEN: NodeKind(Role.ADMIN, _fetch(ApiTokenDocument, ApiToken.from_document)),
    NodeType.ASSET: NodeKind(Role.VIEWER, _fetch(asset.Asset, Asset.from_document)),
    NodeType.ASSET_RETENTION: NodeKind(Role.VIEWER, _fetch(retention.AssetRetention, AssetRetention.from_document)),
    NodeType.COLLECTION: NodeKind(Role.VIEWER, _fetch(collection.Collection, Collection.from_document)),
    NodeType.DATUM: NodeKind(Role.VIEWER, _fetch(dataset.Datum, Datum.from_document)),
    NodeType.DATASET: NodeKind(Role.VIEWER, _fetch(dataset.Dataset, Dataset.from_document)),
    NodeType.DATASET_VERSION: NodeKind(Role.VIEWER, _fetch(dataset.DatasetVersion, DatasetVersion.from_document,
                                                   {"status": dataset.VersionStatus.READY.value})),
    NodeType.ANNOTATION_SCHEMA: NodeKind(Role.VIEWER, _fetch(annotation.AnnotationSchema, AnnotationSchema.from_document)),
    NodeType.ANNOTATION_SET: NodeKind(Role.VIEWER, _fetch(annotation.AnnotationSet, AnnotationSet.from_document)),
    NodeType.ANNOTATION_RECORD: NodeKind(Role.VIEWER, _fetch(annotation.AnnotationRecord, AnnotationRecord.from_document)),
    NodeType.EVENT: NodeKind(Role.VIEWER, _fetch(event.Event, Event.from_document)),
}


def _kind(type_name: str, global_id: str, field: str) -> NodeKind:
    try:
        return NODE_KINDS[type_name]
    except KeyError:
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field) from None


@strawberry.type
class NodeQueries:
    @strawberry.field(permission_classes=[CanRead], description="Any object by its global ID; null if it does not exist.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, raw_id = split_id(id)
        kind = _kind(type_name, id, "id")
        require_role(info.context, kind.role)
        return (await kind.fetch([raw_id])).get(raw_id)

    @strawberry.field(permission_classes=[CanRead], description="Objects by global ID, in the order asked; null where missing.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > info.context.settings.max_page_size:
            raise BadUserInput(f"at most {info.context.settings.max_page_size} ids at once", field="ids")
        wanted: dict[str, list[str]] = defaultdict(list)
        parsed = []
        for position, global_id in enumerate(ids):
            type_name, raw_id = split_id(global_id, field=f"ids[{position}]")
            _kind(type_name, global_id, f"ids[{position}]")
            wanted[type_name].append(raw_id)
            parsed.append((type_name, raw_id))
        for type_name in wanted:  # authorize every type before reading any
            require_role(info.context, NODE_KINDS[type_name].role)
        found = {type_name: await NODE_KINDS[type_name].fetch(raw_ids) for type_name, raw_ids in wanted.items()}
        return [found[type_name].get(raw_id) for type_name, raw_id in parsed]
