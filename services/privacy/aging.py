"""Anonymizing personal fields once they are old enough (GRAPHLAKE_ANONYMIZE_AFTER_DAYS).

Once a day (one process of a cluster), every document older than the cutoff that still names
someone has each name replaced by that person's pseudonym, in the document's free text and JSON too.
Tokens are left alone: they are credentials, and end by expiry, revocation or an erase.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from services.events import audit
from services.events.feed import FeedWriter
from services.events.log import EventSettings
from services.privacy.places import (
    IDENTITY_FIELDS,
    PSEUDONYM_PREFIX,
    identity_clause,
    persons_in,
    pseudonym,
    pseudonymized,
    rewrite,
)
from services.schedules import run_due

EVERY = timedelta(days=1)
TIME_FIELDS = {"events": "timestamp", "collection_items": "added_at"}  # the rest: created_at
AGED = tuple(c for c in IDENTITY_FIELDS if c != "api_tokens")
# A string sorts before the pseudonyms, or after every one of them ("." follows "-").
_NOT_A_PSEUDONYM = ({"$lt": PSEUDONYM_PREFIX}, {"$gte": PSEUDONYM_PREFIX[:-1] + "."})


class AgingSettings(EventSettings, Protocol):
    anonymize_after_days: float | None


def _naming_someone(collection: str) -> dict:
    return {"$or": [identity_clause(name, bound) for name in IDENTITY_FIELDS[collection] for bound in _NOT_A_PSEUDONYM]}


def _pseudonymized(document: dict, *, collection: str, key: bytes) -> dict:
    """The fields that change when each person the document's identity fields name is replaced by their pseudonym."""
    names = {who: pseudonym(who, key) for path in IDENTITY_FIELDS[collection]
             for who in persons_in(document, path) if not who.startswith(PSEUDONYM_PREFIX)}
    return pseudonymized(document, collection, names) if names else {}


async def anonymize_older_than(db: AsyncDatabase, cutoff: datetime, key: bytes) -> dict[str, int]:
    """Replace every name in documents older than `cutoff` by its pseudonym; how many changed, by collection."""
    changed = {}
    for collection in AGED:
        query = {TIME_FIELDS.get(collection, "created_at"): {"$lt": cutoff}, **_naming_someone(collection)}
        changed[collection] = await rewrite(db, collection, query,
                                            partial(_pseudonymized, collection=collection, key=key))
    return {k: v for k, v in changed.items() if v}


async def scheduled_anonymization(db: AsyncDatabase, feed: FeedWriter, settings: AgingSettings, key: bytes) -> dict[str, int] | None:
    """Run the day's anonymization if it is due here, and log it in the audit trail; None when not due."""
    days = settings.anonymize_after_days
    if days is None:
        return None

    async def run() -> dict[str, int]:
        changed = await anonymize_older_than(db, utcnow() - timedelta(days=days), key)
        await audit.record(feed, settings, f"anonymized personal fields older than {days:g} days (automatic)",
                           user_id=None, ids=[], command="anonymize-after-days", changed=str(sum(changed.values())),
                           byCollection=", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
        return changed

    return await run_due(db, "anonymize", EVERY, run)  # a run that fails is tried again an hour later
