"""`node(id:)` and `nodes(ids:)`: any object by its global ID, authorized per type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import strawberry
from beanie import Document
from bson import ObjectId

from documents import annotation, asset, collection, dataset, event, retention, upload
from documents.api_token import ApiToken as ApiTokenDocument
from documents.roles import Role
from resolvers.annotations.types import AnnotationRecord, AnnotationSchema, AnnotationSet
from resolvers.assets.types import Asset, AssetRetention
from resolvers.auth.types import ApiToken
from resolvers.collections.types import Collection, CollectionItem
from resolvers.context import Context, Info
from resolvers.datasets.types import Dataset, DatasetVersion
from resolvers.datums.types import Datum
from resolvers.events.types import Event
from resolvers.permissions import CanRead, require_role
from resolvers.relay import Node
from resolvers.uploads.queries import visible_session
from services.errors import BadUserInput
from services.node_ids import NodeType, split_id


@dataclass(frozen=True)
class NodeKind:
    """What reading one type of node takes: a role, and a fetch by raw ids (for the caller: what an
    upload session shows depends on who asks)."""

    role: Role
    fetch: Callable[[Context, Sequence[str]], Awaitable[dict[str, Any]]]


def _object_ids(raw_ids: Sequence[str]) -> list[ObjectId]:
    """The raw ids that are ObjectIds (any other finds nothing)."""
    return [ObjectId(raw) for raw in raw_ids if ObjectId.is_valid(raw)]


def _fetch(model: type[Document], to_node: Callable[[Any], Any], keep: Callable[[Any], bool] = lambda doc: True):
    """A fetch of `model` documents by raw id, each made a node, through the request's loader of them by
    id (lean twins: documents/lean.py). That loader is the one typed roots (`asset(id:)`) and nested
    references use: the ids every `node`, `nodes` and by-id root of an operation asks of one type, its
    root fields running together, are read in one `$in` query."""

    async def fetch(context: Context, raw_ids: Sequence[str]) -> dict[str, Any]:
        docs = await context.loaders.by_id(model).load_many(_object_ids(raw_ids))
        return {str(doc.id): to_node(doc) for doc in docs if doc is not None and keep(doc)}

    return fetch


async def _fetch_upload_sessions(context: Context, raw_ids: Sequence[str]) -> dict[str, Any]:
    # Beanie documents: signing a session's URLs is a service's business (services/uploads/sessions.py),
    # done when a field asks for them (a session past the request's part URLs: its `parts` error alone).
    docs = await context.loaders.documents(upload.UploadSession).load_many(_object_ids(raw_ids))
    return {str(doc.id): await visible_session(context, doc) for doc in docs if doc is not None}


# Every type that implements Node has a row here; a test checks that against the schema.
NODE_KINDS: dict[NodeType, NodeKind] = {
    NodeType.API_TOKEN: NodeKind(Role.ADMIN, _fetch(ApiTokenDocument, ApiToken.from_document)),
    NodeType.ASSET: NodeKind(Role.VIEWER, _fetch(asset.Asset, Asset.from_document)),
    NodeType.ASSET_RETENTION: NodeKind(Role.VIEWER, _fetch(retention.AssetRetention, AssetRetention.from_document)),
    NodeType.COLLECTION: NodeKind(Role.VIEWER, _fetch(collection.Collection, Collection.from_document)),
    NodeType.COLLECTION_ITEM: NodeKind(Role.VIEWER, _fetch(collection.CollectionItem, CollectionItem.from_document)),
    NodeType.DATUM: NodeKind(Role.VIEWER, _fetch(dataset.Datum, Datum.from_document)),
    NodeType.DATASET: NodeKind(Role.VIEWER, _fetch(dataset.Dataset, Dataset.from_document)),
    NodeType.DATASET_VERSION: NodeKind(Role.VIEWER, _fetch(dataset.DatasetVersion, DatasetVersion.from_document,
                                                   lambda doc: doc.status is dataset.VersionStatus.READY)),
    NodeType.ANNOTATION_SCHEMA: NodeKind(Role.VIEWER, _fetch(annotation.AnnotationSchema, AnnotationSchema.from_document)),
    NodeType.ANNOTATION_SET: NodeKind(Role.VIEWER, _fetch(annotation.AnnotationSet, AnnotationSet.from_document)),
    NodeType.ANNOTATION_RECORD: NodeKind(Role.VIEWER, _fetch(annotation.AnnotationRecord, AnnotationRecord.from_document)),
    NodeType.EVENT: NodeKind(Role.VIEWER, _fetch(event.Event, Event.from_document)),
    NodeType.UPLOAD_SESSION: NodeKind(Role.VIEWER, _fetch_upload_sessions),
}


def _parse(global_id: str, field: str) -> tuple[str, str]:
    """(type name, raw id) of the global ID of a node type; BAD_USER_INPUT naming `field` otherwise."""
    type_name, raw_id = split_id(global_id, field=field)
    if type_name not in NODE_KINDS:
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field)
    return type_name, raw_id


@strawberry.type
class NodeQueries:
    @strawberry.field(permission_classes=[CanRead], description=(
        "Any object by its global ID (any type that implements Node); null if it does not exist. Needs the role "
        "that reading its type needs (VIEWER; ADMIN for an ApiToken). An ID that is not a Graphlake ID: "
        "BAD_USER_INPUT."))
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global ID, as any `id` field gives it.")],
    ) -> Node | None:
        type_name, raw_id = _parse(id, "id")
        kind = NODE_KINDS[type_name]
        require_role(info.context, kind.role)
        return (await kind.fetch(info.context, [raw_id])).get(raw_id)

    @strawberry.field(permission_classes=[CanRead], description=(
        "Objects by global ID, in the order asked, one query per type; null where missing. An ID that is not a "
        "Graphlake ID gives null in its place and an error (BAD_USER_INPUT, its `path` ending at that entry); the "
        "others are still answered. Needs the role each asked type needs (FORBIDDEN for the whole call otherwise)."))
    async def nodes(
        self, info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description=(
            "Global IDs of any node types, at most the maximum page size (GRAPHLAKE_MAX_PAGE_SIZE, 500 by default)."))],
    ) -> list[Node | None]:
        if len(ids) > info.context.settings.max_page_size:
            raise BadUserInput(f"at most {info.context.settings.max_page_size} ids at once", field="ids")
        wanted: dict[str, list[str]] = defaultdict(list)
        parsed: list[tuple[str, str] | BadUserInput] = []
        for position, global_id in enumerate(ids):
            try:
                type_name, raw_id = _parse(global_id, f"ids[{position}]")
            except BadUserInput as error:
                # Returned, not raised: graphql-core reports an exception in a list at its own entry's path and
                # nulls that entry alone (the list's items are nullable), so one bad ID fails one entry.
                parsed.append(error)
                continue
            wanted[type_name].append(raw_id)
            parsed.append((type_name, raw_id))
        for type_name in wanted:  # authorize every type before reading any
            require_role(info.context, NODE_KINDS[type_name].role)
        found = {type_name: await NODE_KINDS[type_name].fetch(info.context, raw_ids) for type_name, raw_ids in wanted.items()}
        return [entry if isinstance(entry, BadUserInput) else found[entry[0]].get(entry[1]) for entry in parsed]
