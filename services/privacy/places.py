"""Where a user's identity is stored, the pseudonym that replaces it, and replacing it inside a document."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from documents.json_value import StoredJson

# The fields that name whoever made, owns, verified or logged a document, by collection. A new
# document field that names a user belongs here (tests/test_privacy.py seeds every one of them).
IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "api_tokens": ("user_id", "created_by"),
    "assets": ("owner.user_id", "created_by"),
    "collections": ("created_by",),
    "collection_items": ("added_by",),
    "datums": ("created_by",),
    "datasets": ("created_by",),
    "dataset_versions": ("created_by",),
    "annotation_schemas": ("created_by",),
    "annotation_sets": ("created_by", "source.name"),
    "annotation_records": ("created_by", "verified_by", "source.name"),
    "version_records": ("created_by", "verified_by", "source.name"),  # a version's copies of them
    "retentions": ("created_by",),
    "upload_sessions": ("created_by",),
    "events": ("source.user_id",),
}
PSEUDONYM_PREFIX = "anon-"
BATCH = 500
STORED_JSON_KEYS = frozenset(StoredJson.model_fields) - {"truncated", "leaves"}


KEYS = "graphlake_keys"


async def pseudonym_key(db: AsyncDatabase) -> bytes:
    """The lake's key for pseudonyms: made once, kept in the database (so every process of a
    cluster, and a restore from a backup, gives a user the same pseudonym)."""
    await db[KEYS].update_one({"_id": "pseudonyms"}, {"$setOnInsert": {"key": secrets.token_bytes(32)}}, upsert=True)
    record = await db[KEYS].find_one({"_id": "pseudonyms"})
    assert record is not None
    return bytes(record["key"])


def pseudonym(user_id: str, key: bytes) -> str:
    """The stable stand-in for `user_id`: the same user always gets the same one (so what they did
    stays linked), and without `key` nobody can tell whose it is."""
    return PSEUDONYM_PREFIX + hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:20]


def mention_pattern(user_id: str) -> re.Pattern[str]:
    """`user_id` as a whole word: inside `alice.smith` or `malice`, `alice` is not the user.
    Built from the escaped id (never a client's pattern), so Python's engine is safe here."""
    return re.compile(rf"(?<![\w@.-]){re.escape(user_id)}(?![\w@-])(?!\.\w)")


def identity_filter(collection: str, user_id: str) -> dict[str, Any]:
    return {"$or": [{field: user_id} for field in IDENTITY_FIELDS[collection]]}


async def documents_naming(db: AsyncDatabase, user_id: str, *, limit: int = 0) -> AsyncIterator[tuple[str, dict]]:
    """Every document whose identity fields name `user_id`, collection by collection (at most
    `limit` per collection when given)."""
    for collection in IDENTITY_FIELDS:
        async for document in db[collection].find(identity_filter(collection, user_id), limit=limit):
            yield collection, document


def replaced(value: Any, pattern: re.Pattern[str], replacement: str) -> Any:
    """`value` with every mention `pattern` finds replaced, in strings, keys and lists at any depth. A
    stored JSON value is decoded, replaced and encoded again, so its query copies stay true."""
    if isinstance(value, str):
        return pattern.sub(replacement, value)
    if isinstance(value, list):
        return [replaced(item, pattern, replacement) for item in value]
    if isinstance(value, dict):
        if STORED_JSON_KEYS <= value.keys() and isinstance(value.get("json"), str):
            decoded = StoredJson.model_validate(value).decode()
            again = replaced(decoded, pattern, replacement)
            return value if again == decoded else StoredJson.encode(again).model_dump()
        return {replaced(k, pattern, replacement) if k != "_id" else k: replaced(v, pattern, replacement)
                for k, v in value.items()}
    return value


async def rewrite(db: AsyncDatabase, collection: str, query: dict[str, Any], change: Callable[[dict], dict]) -> int:
    """Apply `change` to every document `query` finds, writing back the top-level fields it changed,
    a batch at a time; how many documents changed."""
    changed, updates = 0, []
    async for document in db[collection].find(query):
        new = change(document)
        fields = {k: v for k, v in new.items() if document.get(k) != v}
        if fields:
            updates.append(UpdateOne({"_id": document["_id"]}, {"$set": fields}))
        if len(updates) >= BATCH:
            changed += (await db[collection].bulk_write(updates)).modified_count
            updates = []
    if updates:
        changed += (await db[collection].bulk_write(updates)).modified_count
    return changed
