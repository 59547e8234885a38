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
from services.privacy.places import IDENTITY_FIELDS, PSEUDONYM_PREFIX, mention_pattern, pseudonym, replaced, rewrite
from services.schedules import claim_due

EVERY = timedelta(days=1)
TIME_FIELDS = {"events": "timestamp", "collection_items": "added_at"}  # the rest: created_at
AGED = tuple(c for c in IDENTITY_FIELDS if c != "api_tokens")
# A string sorts before the pseudonyms, or after every one of them ("." follows "-").
_NOT_A_PSEUDONYM = ({"$lt": PSEUDONYM_PREFIX}, {"$gte": PSEUDONYM_PREFIX[:-1] + "."})


class AgingSettings(EventSettings, Protocol):
    anonymize_after_days: float | None


def _naming_someone(collection: str) -> dict:
    return {"$or": [{name: bound} for name in IDENTITY_FIELDS[collection] for bound in _NOT_A_PSEUDONYM]}


def _pseudonymized(document: dict, *, paths: tuple[str, ...], key: bytes) -> dict:
    """`document` with each person its identity fields name replaced by their pseudonym, wherever they appear in it."""
    for name in {_named(document, path) for path in paths}:
        if isinstance(name, str) and name and not name.startswith(PSEUDONYM_PREFIX):
            document = replaced(document, mention_pattern(name), pseudonym(name, key))
    return document


def _named(document: dict, path: str) -> object:
    for part in path.split("."):
        document = document.get(part) if isinstance(document, dict) else None  # type: ignore[assignment]
    return document


async def anonymize_older_than(db: AsyncDatabase, cutoff: datetime, key: bytes) -> dict[str, int]:
    """Replace every name in documents older than `cutoff` by its pseudonym; how many changed, by collection."""
    changed = {}
    for collection in AGED:
        query = {TIME_FIELDS.get(collection, "created_at"): {"$lt": cutoff}, **_naming_someone(collection)}
        changed[collection] = await rewrite(db, collection, query,
                                            partial(_pseudonymized, paths=IDENTITY_FIELDS[collection], key=key))
    return {k: v for k, v in changed.items() if v}


async def scheduled_anonymization(db: AsyncDatabase, feed: FeedWriter, settings: AgingSettings, key: bytes) -> dict[str, int] | None:
    """Run the day's anonymization if it is due here, and log it in the audit trail; None when not due."""
    days = settings.anonymize_after_days
    if days is None or not await claim_due(db, "anonymize", EVERY):
        return None
    changed = await anonymize_older_than(db, utcnow() - timedelta(days=days), key)
    await audit.record(feed, settings, f"anonymized personal fields older than {days:g} days (automatic)", user_id=None,
                       ids=[], command="anonymize-after-days", changed=str(sum(changed.values())),
                       byCollection=", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
    return changed
