"""Batch fetches of tokens by id (one `$in` query)."""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId

from documents.api_token import ApiToken as ApiTokenDocument
from resolvers.auth.types import ApiToken


def object_ids(raw_ids: Sequence[str]) -> list[ObjectId]:
    """The valid ObjectIds among `raw_ids`; an id that is not one cannot match anything."""
    return [ObjectId(raw) for raw in raw_ids if ObjectId.is_valid(raw)]


async def fetch_api_tokens(raw_ids: Sequence[str]) -> dict[str, ApiToken]:
    docs = await ApiTokenDocument.find({"_id": {"$in": object_ids(raw_ids)}}).to_list()
    return {str(doc.id): ApiToken.from_document(doc) for doc in docs}
