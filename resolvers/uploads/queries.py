"""Upload sessions (re-signed on each read, so an interrupted upload resumes) and live asset status."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from documents.api_token import Role
from documents.asset import Asset as AssetDocument
from documents.event import ASSET_STATUS
from documents.upload import UploadSession as SessionDocument
from resolvers.assets.types import Asset
from resolvers.context import Info
from resolvers.events.types import Event
from resolvers.loaders import Loaders
from resolvers.permissions import CanRead, has_role
from resolvers.uploads.types import UploadSession
from services.node_ids import NodeType, decode_object_id, decode_object_ids, encode_id
from services.uploads import sessions


@strawberry.type
class UploadQueries:
    @strawberry.field(permission_classes=[CanRead], description="An upload session with fresh URLs for the parts still missing; null if none. The URLs and the direct-write path go only to whoever created the session, or an ADMIN: they let the bearer write the upload's bytes.")
    async def upload_session(self, info: Info, id: strawberry.ID) -> UploadSession | None:
        found = await SessionDocument.get(decode_object_id(id, NodeType.UPLOAD_SESSION))
        if found is None:
            return None
        if has_role(info.context, Role.ADMIN) or (info.context.actor is not None and info.context.actor == found.created_by):
            return UploadSession.from_signed(await sessions.sign_session(found, info.context.stores))
        return UploadSession.from_signed(sessions.SignedSession(session=found, single=None, parts=[]))


@strawberry.type
class UploadSubscriptions:
    @strawberry.subscription(permission_classes=[CanRead], description="Assets (all, or those in `ids`) as they turn ACTIVE or FAILED, "
                                                                        "on any server process (each change is an ASSET_STATUS event).")
    async def asset_status_changed(self, info: Info, ids: list[strawberry.ID] | None = None) -> AsyncGenerator[Asset, None]:
        wanted = {encode_id(NodeType.ASSET, i) for i in decode_object_ids(ids, NodeType.ASSET, field="ids")} if ids else None

        def accept(event: Event) -> bool:
            return event.event_type == ASSET_STATUS and (wanted is None or event.doc.data.decode()["assetId"] in wanted)

        async for event in info.context.state.events.subscribe(accept):
            # A WebSocket's context lives as long as the connection: fresh loaders for each event,
            # so nested fields never come from an earlier event's cache.
            info.context.loaders = Loaders(info.context.state.metrics)
            doc = await info.context.loaders.by_id(AssetDocument).load(decode_object_id(event.doc.data.decode()["assetId"], NodeType.ASSET))
            if doc is not None:  # deleted since
                yield Asset.from_document(doc)
