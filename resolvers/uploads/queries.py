"""Upload sessions (re-signed on each read, so an interrupted upload resumes) and live asset status."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from documents.asset import Asset as AssetDocument
from documents.event import ASSET_STATUS
from documents.roles import Role
from documents.upload import UploadSession as SessionDocument
from resolvers.assets.types import Asset
from resolvers.context import Context, Info
from resolvers.events.types import Event
from resolvers.list_filters import EMPTY_LIST, refuse_empty
from resolvers.loaders import Loaders
from resolvers.permissions import CanRead, has_role
from resolvers.uploads.types import Signing, UploadSession
from services.node_ids import NodeType, decode_object_id, decode_object_ids, encode_id
from services.uploads import sessions


async def visible_session(context: Context, found: SessionDocument, field: str = "id") -> UploadSession:
    """A session as `context`'s caller may see it: signed URLs (and the direct-write path) only for whoever
    created it while they may still write (a VIEWER token of the same user may not), or an ADMIN,
    since they let the bearer write the upload's bytes. Signed when a field
    asks for them; its parts then count against the request's part URLs (BAD_USER_INPUT on `field`
    past them), and a few sessions are signed at a time (each lists its stored parts)."""
    mine = context.actor is not None and context.actor == found.created_by and has_role(context, Role.CONTRIBUTOR)
    if mine or has_role(context, Role.ADMIN):
        part_urls = context.loaders.part_urls

        async def sign() -> sessions.SignedSession:
            async with part_urls.at_once:
                return await sessions.sign_session(found, context.stores, part_urls, field)

        return UploadSession.of(found, Signing(sign=sign))
    return UploadSession.from_signed(sessions.SignedSession(session=found, single=None, parts=[]))


@strawberry.type
class UploadQueries:
    @strawberry.field(permission_classes=[CanRead], description="An upload session with fresh URLs for the parts still missing; null if none. The URLs and the direct-write path go only to whoever created the session (while their token may write), or an ADMIN: they let the bearer write the upload's bytes.")
    async def upload_session(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The session's ID (createUpload's answer).")],
    ) -> UploadSession | None:
        found = await info.context.loaders.documents(SessionDocument).load(decode_object_id(id, NodeType.UPLOAD_SESSION))
        return await visible_session(info.context, found) if found is not None else None


@strawberry.type
class UploadSubscriptions:
    @strawberry.subscription(permission_classes=[CanRead], description="Assets (all, or those in `ids`) as they turn ACTIVE or FAILED, "
                                                                        "on any server process (each change is an ASSET_STATUS event).")
    async def asset_status_changed(
        self, info: Info,
        ids: Annotated[list[strawberry.ID] | None, strawberry.argument(description=(
            f"The assets to watch; null watches every asset. {EMPTY_LIST}"))] = None,
    ) -> AsyncGenerator[Asset, None]:
        refuse_empty(ids, "ids")
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
