"""GraphQL types of authentication: roles, the caller, API tokens, and a user's privacy export."""

from __future__ import annotations

from datetime import datetime

import strawberry

from documents.api_token import ApiToken as ApiTokenDocument
from documents.clock import utcnow
from documents.roles import Role as RoleValue
from resolvers.enums import described_enum
from resolvers.relay import Node
from resolvers.scalars import JSON
from services.auth import Principal as PrincipalValue
from services.node_ids import NodeType, encode_id

Role = described_enum(RoleValue, "What a token may do: VIEWER reads, CONTRIBUTOR writes, ADMIN manages tokens.", {
    "VIEWER": "Reads everything but tokens and privacy exports; writes nothing.",
    "CONTRIBUTOR": "A VIEWER that also writes data: assets, uploads, collections, datums, datasets, annotations, events.",
    "ADMIN": ("A CONTRIBUTOR that also manages tokens, exports a user's data, force-deletes assets and deletes "
              "dataset versions."),
})


@strawberry.type(description="The caller, as identified by their API token.")
class Principal:
    token_name: str = strawberry.field(description=(
        "The name of the caller's token. `createdBy` and the other audit fields show the token's `userId`, "
        "else `token:` and this name."))
    role: Role = strawberry.field(description="What the caller may do.")
    user_id: str | None = strawberry.field(description="The person or service the token acts for; null if not set.")

    @classmethod
    def from_value(cls, principal: PrincipalValue) -> Principal:
        return cls(token_name=principal.token_name, role=principal.role, user_id=principal.user_id)


@strawberry.type(description="An API token. Its secret is shown once, when it is created, and never stored.")
class ApiToken(Node):
    name: str = strawberry.field(description="Its unique name; `createdBy` fields name the token that wrote.")
    role: Role = strawberry.field(description="What it may do.")
    user_id: str | None = strawberry.field(description="The person or service this token acts for.")
    hint: str = strawberry.field(description="First characters of the secret, to tell tokens apart.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    created_by: str | None = strawberry.field(description=(
        "The token that created it (`cli` for the `graphlake token` command, `bootstrap` for the first admin token); null if not recorded."))
    expires_at: datetime | None = strawberry.field(description="When it stops working; null: never.")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked; null while not revoked.")

    @strawberry.field(description="Neither revoked nor expired.")
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())

    @classmethod
    def from_document(cls, doc: ApiTokenDocument) -> ApiToken:
        return cls(
            id=encode_id(NodeType.API_TOKEN, doc.id), name=doc.name, role=doc.role, user_id=doc.user_id, hint=doc.hint,
            created_at=doc.created_at, created_by=doc.created_by, expires_at=doc.expires_at, revoked_at=doc.revoked_at,
        )


@strawberry.type(description="A new token and its secret. Store the secret now: it is never shown again.")
class CreatedApiToken:
    token: ApiToken = strawberry.field(description="The new token (without its secret).")
    secret: str = strawberry.field(description="Send as `Authorization: Bearer <secret>`.")


@strawberry.input(description="A token to create.")
class CreateApiTokenInput:
    name: str = strawberry.field(description="Unique; 1-64 letters, digits or ._@-.")
    role: Role = strawberry.field(description="What it may do.")
    user_id: str | None = strawberry.field(default=None, description="The person or service it acts for.")
    expires_at: datetime | None = strawberry.field(default=None, description="Unset: never expires.")


@strawberry.type(description="The documents of one collection that name a user.")
class PrivacyPlace:
    collection: str = strawberry.field(description="The collection, e.g. assets, events, annotation_records.")
    documents: list[JSON] = strawberry.field(description="The documents, as stored (ids as strings, times as ISO-8601).")
    truncated: bool = strawberry.field(description="More documents name the user than `limitPerCollection`: "
                                                   "`graphlake privacy export` writes them all.")


@strawberry.type(description="Everything that names a user: what they own, made, verified or logged, their tokens, "
                             "and the audit entries of what they did.")
class PrivacyExport:
    user_id: str = strawberry.field(description="The user asked about.")
    exported_at: datetime = strawberry.field(description="When the export was read.")
    places: list[PrivacyPlace] = strawberry.field(description="By collection; a collection that names them nowhere is left out.")
