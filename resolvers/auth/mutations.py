"""Creating and revoking API tokens (ADMIN)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.auth.types import ApiToken, CreateApiTokenInput, CreatedApiToken
from resolvers.context import Info
from resolvers.payloads import DeletePayload
from resolvers.permissions import IsAdmin
from services import auth as service
from services.node_ids import NodeType, decode_id


@strawberry.type
class AuthMutations:
    @strawberry.mutation(permission_classes=[IsAdmin], description="Create a token; its secret is returned once. ADMIN.")
    async def create_api_token(
        self, info: Info, input: Annotated[CreateApiTokenInput, strawberry.argument(description="Its name, role, user and expiry.")],
    ) -> CreatedApiToken:
        principal = info.context.principal
        token, secret = await service.create_token(
            input.name, input.role, user_id=input.user_id, expires_at=input.expires_at,
            created_by=principal.actor if principal else None,
        )
        return CreatedApiToken(token=ApiToken.from_document(token), secret=secret)

    @strawberry.mutation(permission_classes=[IsAdmin], description="Revoke a token at once. ADMIN.")
    async def revoke_api_token(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The token to revoke.")],
    ) -> DeletePayload:
        token = await service.find_token(decode_id(id, NodeType.API_TOKEN))
        await service.revoke_token(token)
        info.context.state.tokens.forget(str(token.id))
        return DeletePayload(id=id, deleted=True)
