"""Claims on sessions being completed: of two requests completing one upload at once, one does it and the other is told so.
And leases on the sessions an ingest is filing: of two requests ingesting one file at once, the
second waits for what the first leaves (services/uploads/ingest.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.errors import BulkWriteError

from documents.clock import utcnow
from documents.duplicates import duplicates_only
from documents.upload import UploadClaim, UploadSession
from services.id_reads import fields_by_ids

log = logging.getLogger("graphlake.uploads")

# A completion renews its claims every CLAIM_RENEW_SECONDS while it works (reading a huge object
# back can take minutes); a claim not renewed for CLAIM_SECONDS is from a request that died, and a
# retry of its upload may take it over. Short, so a crashed server holds up a retry briefly; three
# renewals long, so a busy one is not overtaken.
CLAIM_SECONDS = 30


CLAIM_RENEW_SECONDS = 10
# How long a request waits for another one filing the same files (filing_ended): past the longest a
# dead writer's lease can still look fresh, so a rerun right after a crash still files what the
# crash left; a writer still renewing its lease after that is alive and slow, and the caller is told.
FILING_WAIT_SECONDS = CLAIM_SECONDS + CLAIM_RENEW_SECONDS


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


def leased(to_file: bool | None, filing_at: datetime | None) -> bool:
    """Whether an ingest still files a session of these fields: `to_file`, with a lease
    (`filing_at`) renewed within CLAIM_SECONDS."""
    return bool(to_file and filing_at and filing_at >= utcnow() - timedelta(seconds=CLAIM_SECONDS))


async def filing(session_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Those of these sessions an ingest is still filing (leased). One read by _id alone (see
    services/id_reads.py); none for no ids."""
    if not session_ids:
        return set()
    return {id for id, s in (await fields_by_ids(UploadSession, session_ids, ["to_file", "filing_at"])).items()
            if leased(s.get("to_file"), s.get("filing_at"))}


async def filing_ended(session_ids: set[ObjectId]) -> set[ObjectId]:
    """Wait until no request is filing these sessions any more (it filed them, removed them, or died
    and its lease ran out), for at most FILING_WAIT_SECONDS; those still being filed then. A
    filing takes a few round trips, so the first looks come soon after each other."""
    log.info("waiting: another request is filing %d of the files asked for (an ingest storing them)", len(session_ids))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FILING_WAIT_SECONDS
    pause = 0.05
    while session_ids and loop.time() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        session_ids = await filing(list(session_ids))
        pause = min(pause * 2, 1.0)
    return session_ids


def filing_token() -> str:
    """A new owner for an ingest's lease (UploadSession.filing_owner): one per call."""
    return secrets.token_hex(12)


async def keep_filing(session_ids: list[ObjectId], owner: str) -> None:
    """Keep an ingest's lease on the sessions it is filing fresh until it is cancelled: a filing that
    takes longer than CLAIM_SECONDS (a big batch) is not taken for a dead one's. Only those still
    bearing `owner`: a writer that was frozen past its lease and taken over must not make the new
    owner's lease look like its own again."""
    while session_ids:
        await asyncio.sleep(CLAIM_RENEW_SECONDS)
        # The ids at the top of the filter: our FerretDB build reads them through the `_id` index
        # whatever else it says (tests/test_import_reads.py); a lease left on a session filed
        # meanwhile counts for nothing, as only `to_file` ones are leased (filing).
        try:
            await UploadSession.get_pymongo_collection().update_many(
                {"_id": {"$in": session_ids}, "filing_owner": owner}, {"$set": {"filing_at": utcnow()}})
        except Exception:  # tried again next time: a task that ended here would let the lease lapse unsaid
            log.warning("renewing the lease of an ingest's %d sessions failed; trying again in %d s",
                        len(session_ids), CLAIM_RENEW_SECONDS, exc_info=True)


async def take_over(session_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Take the lapsed leases on these unfiled sessions (their ingest's writer died, or is frozen)
    before filing them: a new owner and a fresh lease, so a frozen writer waking and failing leaves
    them alone (it removes only sessions bearing its own token, ingest._undo). Returns those this
    call got: not one whose lease was renewed meanwhile, nor one its writer removed first. A write
    and a read by id, on the crash path only; none for no ids."""
    if not session_ids:
        return set()
    owner, now = filing_token(), utcnow()
    await UploadSession.get_pymongo_collection().update_many(
        {"_id": {"$in": list(session_ids)}, "to_file": True, "filing_at": {"$lt": now - timedelta(seconds=CLAIM_SECONDS)}},
        {"$set": {"filing_at": now, "filing_owner": owner}})
    # Read back: a write racing this one (the writer's removal, another takeover) has the last word.
    return {id for id, s in (await fields_by_ids(UploadSession, session_ids, ["filing_owner"])).items()
            if s.get("filing_owner") == owner}
