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

from documents.json_value import JsonText, StoredJson, is_stored_json

# The fields that name whoever made, owns, verified or logged a document, by collection. A new
# document field that names a user belongs here (tests/test_privacy.py seeds every one of them).
# `source.name` names a person only when `source.kind` is HUMAN: a model's or a program's name is content.
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
    # A version's copies of records, packed a datum's to a document, list the people they name there
    # (documents/record_pack.py): a list of names, each rewritten as a field of its own would be.
    "version_record_packs": ("people",),
    "retentions": ("created_by",),
    "upload_sessions": ("created_by",),
    "events": ("source.user_id",),
}
SOURCE_NAME = "source.name"
# Free text and JSON written about a document, where a mention of the user is replaced too. Nothing
# else is ever rewritten: not keys, paths, URIs or names that find things, not the content of values,
# texts or files (their SHA-256 is recorded), and not the copies a dataset version holds beyond who
# made or verified them (its hash covers their content).
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "assets": ("description", "metadata"),
    "datums": ("metadata",),
    "events": ("message", "data"),
}
PSEUDONYM_PREFIX = "anon-"
BATCH = 500


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


async def person(db: AsyncDatabase, user_id: str) -> Any:
    """What names the user in an identity field: their id, and their pseudonym once the lake has a
    key (its first privacy request made it; looked up, never made here). After `privacy anonymize`
    their documents name the pseudonym, and an erase or an export must still reach them there."""
    record = await db[KEYS].find_one({"_id": "pseudonyms"})
    return {"$in": [user_id, pseudonym(user_id, bytes(record["key"]))]} if record else user_id


def mention_pattern(user_id: str) -> re.Pattern[str]:
    """`user_id` as a whole word: inside `alice.smith` or `malice`, `alice` is not the user.
    Built from the escaped id (never a client's pattern), so Python's engine is safe here."""
    return re.compile(rf"(?<![\w@.-]){re.escape(user_id)}(?![\w@-])(?!\.\w)")


def identity_clause(field: str, value: Any) -> dict[str, Any]:
    """The filter for `field` holding `value` (a person)."""
    return {SOURCE_NAME: value, "source.kind": "HUMAN"} if field == SOURCE_NAME else {field: value}


def identity_filter(collection: str, user_id: str) -> dict[str, Any]:
    return {"$or": [identity_clause(field, user_id) for field in IDENTITY_FIELDS[collection]]}


def persons_in(document: dict[str, Any], path: str) -> list[str]:
    """The people `path` names in `document`: none or one, or each name of a list of them."""
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if path == SOURCE_NAME and (document.get("source") or {}).get("kind") != "HUMAN":
        return []
    named = value if isinstance(value, list) else [value]
    return [who for who in named if isinstance(who, str) and who]


def pseudonymized(document: dict[str, Any], collection: str, names: dict[str, str]) -> dict[str, Any]:
    """The top-level fields of `document` that change when each person in `names` (id -> pseudonym)
    is replaced: identity fields that name one of them, and their mentions in free text."""
    changed: dict[str, Any] = {}
    for path in IDENTITY_FIELDS.get(collection, ()):
        if not any(who in names for who in persons_in(document, path)):
            continue
        top, _, rest = path.partition(".")
        value = changed.get(top, document.get(top))
        if isinstance(value, list):  # a list of names (only ever at the top level)
            changed[top] = [names.get(who, who) if isinstance(who, str) else who for who in value]
        else:
            who = persons_in(document, path)[0]
            changed[top] = _set_path(value, rest, names[who]) if rest else names[who]
    for field in FREE_TEXT.get(collection, ()):
        value = changed.get(field, document.get(field))
        new = value
        for who, alias in names.items():
            new = replaced(new, mention_pattern(who), alias)
        if new != value:
            changed[field] = new
    return changed


def _set_path(value: Any, path: str, new: Any) -> Any:
    copy = dict(value or {})
    head, _, rest = path.partition(".")
    copy[head] = _set_path(copy.get(head), rest, new) if rest else new
    return copy


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
        if is_stored_json(value):
            decoded = JsonText.model_validate(value).decode()
            again = replaced(decoded, pattern, replacement)
            if again == decoded:
                return value
            # Written back in the form it has, without a client's limits: the lake holds it already.
            form = StoredJson.encode(again, budget_paths=False) if "attrs" in value else JsonText.encode(again)
            return form.model_dump()
        return {replaced(k, pattern, replacement): replaced(v, pattern, replacement) for k, v in value.items()}
    return value


async def rewrite(db: AsyncDatabase, collection: str, query: dict[str, Any], change: Callable[[dict], dict]) -> int:
    """Write back the top-level fields `change` gives for every document `query` finds, a batch
    at a time; how many documents changed."""
    changed, updates = 0, []
    async for document in db[collection].find(query):
        fields = change(document)
        if fields:
            updates.append(UpdateOne({"_id": document["_id"]}, {"$set": fields}))
        if len(updates) >= BATCH:
            changed += (await db[collection].bulk_write(updates)).modified_count
            updates = []
    if updates:
        changed += (await db[collection].bulk_write(updates)).modified_count
    return changed
