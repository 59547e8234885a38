"""Who am I, and which tokens exist."""

from __future__ import annotations

import strawberry

from documents.api_token import ApiToken as ApiTokenDocument
from resolvers.auth.types import ApiToken, Principal
from resolvers.context import Info
from resolvers.pagination import DESCENDING, Page, paginate
from resolvers.permissions import IsAdmin
from resolvers.relay import Connection
from services.errors import Unauthenticated


@strawberry.type
class AuthQueries:
    @strawberry.field(description="The caller, or null without a token. Needs no role.")
    def me(self, info: Info) -> Principal | None:
        if info.context.auth_error:
            raise Unauthenticated(info.context.auth_error)
        principal = info.context.principal
        return Principal.from_value(principal) if principal else None

    @strawberry.field(permission_classes=[IsAdmin], description="API tokens, newest first. ADMIN.")
    async def api_tokens(
        self, info: Info, first: int | None = None, after: str | None = None, include_revoked: bool = False
    ) -> Connection[ApiToken]:
        settings = info.context.settings
        query = {} if include_revoked else {"revoked_at": None}
        return await paginate(
            ApiTokenDocument.get_pymongo_collection(),
            query=query,
            sort=[("created_at", DESCENDING)],
            page=Page.of(first, after, default_size=settings.default_page_size, max_size=settings.max_page_size),
            to_node=lambda raw: ApiToken.from_document(ApiTokenDocument.model_validate(raw)),
        )
