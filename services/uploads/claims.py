"""Claims on sessions being completed: of two requests completing one upload at once, one does it and the other is told so."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from bson import ObjectId
from pymongo.errors import BulkWriteError

from documents.clock import utcnow
from documents.duplicates import duplicates_only
from documents.upload import UploadClaim

# A completion renews its claims every CLAIM_RENEW_SECONDS while it works (reading a huge object
# back can take minutes); a claim not renewed for CLAIM_SECONDS is from a request that died, and a
# retry of its upload may take it over. Short, so a crashed server holds up a retry briefly; three
# renewals long, so a busy one is not overtaken.
CLAIM_SECONDS = 30


CLAIM_RENEW_SECONDS = 10


async def claim(session_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Claim sessions for completion: of two requests completing the same upload at once, one
    verifies and finishes it and the other is told so (CONFLICT). Returns the ones this call got.
    A claim not renewed for CLAIM_SECONDS is from a request that died: it is taken over."""
    claims = UploadClaim.get_pymongo_collection()

    async def insert(ids: list[ObjectId]) -> list[ObjectId]:  # -> the ones someone else holds
        try:
            await claims.insert_many([{"_id": i, "claimed_at": utcnow()} for i in ids], ordered=False)
        except BulkWriteError as error:  # a duplicate key each
            return [ids[i] for i in duplicates_only(error)]
        return []

    held = await insert(list(session_ids))
    if held:  # take over the claims of requests that died, then try those once more
        await claims.delete_many({"_id": {"$in": held}, "claimed_at": {"$lt": utcnow() - timedelta(seconds=CLAIM_SECONDS)}})
        held = await insert(held)
    return set(session_ids) - set(held)


async def release(session_ids: Sequence[ObjectId]) -> None:
    """Drop this call's claims on these sessions."""
    if session_ids:
        await UploadClaim.get_pymongo_collection().delete_many({"_id": {"$in": list(session_ids)}})


async def renew(session_ids: list[ObjectId]) -> None:
    """Keep this call's claims fresh until it is cancelled."""
    while session_ids:
        await asyncio.sleep(CLAIM_RENEW_SECONDS)
        await UploadClaim.get_pymongo_collection().update_many({"_id": {"$in": session_ids}},
                                                               {"$set": {"claimed_at": utcnow()}})
