"""Who am I, and which tokens exist."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents.api_token import ApiToken as ApiTokenDocument
from documents.clock import utcnow
from documents.lean import lean
from resolvers.auth.types import ApiToken, Principal, PrivacyExport, PrivacyPlace
from resolvers.context import Info
from resolvers.pagination import DESCENDING, paginate
from resolvers.permissions import IsAdmin
from resolvers.relay import After, Before, Connection, First, Last
from services.errors import BadUserInput, Unauthenticated
from services.events import audit
from services.privacy.places import pseudonym, pseudonym_key
from services.privacy.requests import export_places


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
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        include_revoked: Annotated[bool, strawberry.argument(description="Also list revoked tokens (default false).")] = False,
    ) -> Connection[ApiToken]:
        query = {} if include_revoked else {"revoked_at": None}
        return await paginate(
            ApiTokenDocument.get_pymongo_collection(),
            query=query,
            sort=[("created_at", DESCENDING)],
            page=info.context.page(first, after, last, before),
            to_node=lambda raw: ApiToken.from_document(lean(ApiTokenDocument).model_validate(raw)),
        )

    @strawberry.field(permission_classes=[IsAdmin], description="Everything that names a user, for a privacy request, "
                      "at most `limitPerCollection` documents per collection (1 to the maximum page size; the "
                      "`graphlake privacy export` command writes all of them, with the user's files). ADMIN.")
    async def privacy_export(
        self, info: Info,
        user_id: Annotated[str, strawberry.argument(description="The user, as `Ownership.userId` and tokens name them.")],
        limit_per_collection: Annotated[int, strawberry.argument(description=(
            "At most this many documents per collection, 1 to the maximum page size (default 100)."))] = 100,
    ) -> PrivacyExport:
        most = info.context.settings.max_page_size
        if not 1 <= limit_per_collection <= most:
            raise BadUserInput(f"must be 1 to {most}", field="limitPerCollection")
        await info.context.state.feed.settled()  # this process's journaled AUDIT events name users too
        found: dict[str, list] = {}
        async for collection, document in export_places(info.context.db, user_id, limit=limit_per_collection + 1):
            found.setdefault(collection, []).append(document)
        # Audited as the CLI's export is (a query is not, as a rule), under the pseudonym, never the id.
        principal = info.context.principal
        await audit.record(info.context.state.feed, info.context.settings,
                           f"privacyExport by {principal.actor if principal else 'anonymous'}",
                           user_id=principal.user_id if principal else None, ids=[], query="privacyExport",
                           token=principal.token_name if principal else None, requestId=info.context.request_id,
                           subject=pseudonym(user_id.strip(), await pseudonym_key(info.context.db)))
        return PrivacyExport(user_id=user_id.strip(), exported_at=utcnow(), places=[
            PrivacyPlace(collection=name, documents=docs[:limit_per_collection], truncated=len(docs) > limit_per_collection)
            for name, docs in found.items()])
