"""A user's privacy requests: export everything that names them, anonymize them, or erase them.

Each reads the user's documents through their identity fields (places.py, indexed where the volume
is: assets by owner, events by source), so it costs what the user has, not what the lake has.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.asset import Asset
from documents.common import AssetKind, AssetStatus
from documents.json_value import JsonText, StoredJson, is_stored_json
from documents.record_pack import VersionRecordPack, unpack
from services import asset_users, assets, retention
from services.errors import BadUserInput, Conflict
from services.node_ids import NodeType, encode_id
from services.privacy.places import (
    IDENTITY_FIELDS,
    PSEUDONYM_PREFIX,
    documents_naming,
    identity_filter,
    person,
    persons_in,
    pseudonym,
    pseudonymized,
    rewrite,
)
from services.uploads import erased as erased_uploads
from storage import ObjectStore

PACKS = VersionRecordPack.Settings.name
COPY_IDENTITY_FIELDS = IDENTITY_FIELDS["annotation_records"]  # a version's copy names people as its record does
NEVER_EXPORTED = frozenset({"secret_hash"})  # a token's secret hash identifies a credential, not a person


def check_user(user_id: str) -> str:
    user_id = user_id.strip()
    if not user_id:
        raise BadUserInput("name a user", field="userId")
    if user_id.startswith(PSEUDONYM_PREFIX):
        raise BadUserInput("is a pseudonym already", field="userId")
    return user_id


def plain(value: Any) -> Any:
    """A stored value as plain JSON: ids as strings, times as ISO-8601, stored JSON as its value."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        if is_stored_json(value):
            return JsonText.model_validate(value).decode()
        return {k: plain(v) for k, v in value.items() if k not in NEVER_EXPORTED}
    return value


async def export_places(db: AsyncDatabase, user_id: str, *, limit: int = 0) -> AsyncIterator[tuple[str, dict]]:
    """Every document that names the user, as plain JSON, by collection (at most `limit` per collection).
    A version's packed copies of records (documents/record_pack.py) come as the copies that name
    them, unpacked: what a reader can make sense of."""
    who = await person(db, check_user(user_id))
    async for collection, document in documents_naming(db, who, limit=limit):
        if collection != PACKS:
            yield collection, plain(document)
            continue
        names = set(who["$in"]) if isinstance(who, dict) else {who}
        for copy in unpack(document):
            if any(name in names for path in COPY_IDENTITY_FIELDS for name in persons_in(copy, path)):
                yield PACKS, plain(copy)


async def own_files(db: AsyncDatabase, user_id: str) -> list[Asset]:
    """The user's stored files (owned or created by them, not deleted)."""
    return await Asset.find({**_own(await person(db, user_id)), "kind": AssetKind.FILE.value,
                             "status": {"$ne": AssetStatus.DELETED.value}}).to_list()


def _own(who: Any) -> dict[str, Any]:
    """The filter for the assets of the user `who` names (places.person): owned or made by them."""
    return {"$or": [{"owner.user_id": who}, {"created_by": who}]}


ERASED = "(erased)"  # the name an erased asset keeps
# What a deleted asset's record says of its content: its SHA-256 (anyone holding a copy of the file
# could confirm the person had it), size and media type, and why its digest could not be read (which
# may name a digest). Nothing reads them once the asset is DELETED: `verify` reports a version's
# DELETED asset as such before it compares digests, and the version keeps the digest it froze in its
# own copies (its members' and records' digests), which its hash covers.
ERASED_FACTS = ("sha256", "size_bytes", "media_type", "digest_error", "digest_failed_at")
HOLDERS_DESCRIBED = 200  # kept assets an erase plan names the holders of (a few reads each); the rest in short


def _erasable(who: Any) -> dict[str, Any]:
    """The user's DELETED assets whose content an erase has not cleared yet: any of it is left. Not
    judged by the name alone, which a user may have chosen: a deleted asset they had named `(erased)`
    kept its value, text, description, labels and metadata through an erase."""
    left = [{"name": {"$ne": ERASED}}, {"labels": {"$exists": True, "$ne": []}},
            {"metadata.json": {"$exists": True, "$ne": "{}"}},
            *({field: {"$exists": True}} for field in ("description", "value", "text")),
            *({field: {"$ne": None}} for field in ERASED_FACTS), {"storage.etag": {"$ne": None}}]
    return {"$and": [_own(who), {"$or": left}], "status": AssetStatus.DELETED.value}


async def anonymize_user(db: AsyncDatabase, user_id: str, key: bytes) -> tuple[str, dict[str, int]]:
    """Replace the user's id with their pseudonym in every document that names them, wherever in
    the document it appears; the pseudonym and how many documents changed, by collection."""
    user_id = check_user(user_id)
    alias = pseudonym(user_id, key)
    changed = {collection: await rewrite(db, collection, identity_filter(collection, user_id),
                                         partial(pseudonymized, collection=collection, names={user_id: alias}))
               for collection in IDENTITY_FIELDS}
    return alias, {k: v for k, v in changed.items() if v}


@dataclass
class Erasure:
    """What an erase did, and what it could not."""

    pseudonym: str
    deleted_assets: list[str] = field(default_factory=list)
    kept_assets: dict[str, str] = field(default_factory=dict)  # asset id -> why it was kept (its holders)
    tokens_deleted: int = 0
    anonymized: dict[str, int] = field(default_factory=dict)
    versions_holding: list[str] = field(default_factory=list)  # dataset versions with the user's data, untouched
    uploads_cleared: int = 0  # upload sessions of their deleted assets, of which what they recorded of the files went
    events_cleared: int = 0  # ASSET_STATUS events of their deleted assets, of which the file's size went


async def versions_holding(db: AsyncDatabase, user_id: str) -> list[str]:
    """The dataset versions that hold something of the user's: a datum they made or whose role is
    one of their assets, an annotation set they made or are the source of, or a copy of a record
    they made, verified or are the source of (what an erase rewrites in the version)."""
    who = await person(db, user_id)
    own = [a["_id"] async for a in db.assets.find(_own(who), {"_id": 1})]
    uses = [u["datum_id"] async for u in db.datum_assets.find({"asset_id": {"$in": own}}, {"datum_id": 1})] if own else []
    datums = [d["_id"] async for d in db.datums.find({"$or": [{"created_by": who}, {"_id": {"$in": uses}}]},
                                                    {"_id": 1})]
    sets = [s["_id"] async for s in db.annotation_sets.find(identity_filter("annotation_sets", who), {"_id": 1})]
    version_ids = {m["version_id"] async for m in db.version_members.find({"datum_id": {"$in": datums}}, {"version_id": 1})}
    version_ids |= {v["_id"] async for v in db.dataset_versions.find({"annotation_set_ids": {"$in": sets}}, {"_id": 1})}
    copies = await db[PACKS].aggregate([{"$match": identity_filter(PACKS, who)}, {"$group": {"_id": "$version_id"}}])
    version_ids |= {c["_id"] async for c in copies}
    return sorted(encode_id(NodeType.DATASET_VERSION, v) for v in version_ids)


@dataclass
class ErasurePlan:
    """What an erase would do, found without changing anything (`graphlake privacy erase` without --confirm)."""

    assets_deleted: list[str] = field(default_factory=list)  # the user's own assets nothing holds
    assets_kept: dict[str, str] = field(default_factory=dict)  # the user's own assets something holds -> its holders
    contents_cleared: int = 0  # the user's assets deleted before, whose name, description and content go
    uploads_cleared: int = 0  # upload sessions of those and of the assets deleted, whose record of the files goes
    events_cleared: int = 0  # ASSET_STATUS events of those and of the assets deleted, whose file's size goes
    tokens: int = 0
    anonymized: dict[str, int] = field(default_factory=dict)  # documents naming the user, by collection
    versions_holding: list[str] = field(default_factory=list)


async def erasure_plan(db: AsyncDatabase, user_id: str) -> ErasurePlan:
    """What erase_user would touch. An asset is kept (as deleteAsset without force keeps it) when a
    pin (a collection's, a version's, a manual one) or a datum or record holds it; one held or freed
    between this and the erase is judged again then."""
    user_id = check_user(user_id)
    who = await person(db, user_id)
    plan = ErasurePlan(versions_holding=await versions_holding(db, user_id))
    own = [a["_id"] async for a in db.assets.find({**_own(who), "status": {"$ne": AssetStatus.DELETED.value}}, {"_id": 1})]
    held: set[ObjectId] = set()
    for start in range(0, len(own), 1000):
        batch = own[start:start + 1000]
        held |= await retention.pinned(batch)
        held |= await asset_users.used(batch)
    for n, asset_id in enumerate(a for a in own if a in held):  # each named with its holders, as the erase will
        why = await assets.holders_of(asset_id) if n < HOLDERS_DESCRIBED else None
        plan.assets_kept[encode_id(NodeType.ASSET, asset_id)] = why or "a pin, datum or annotation record holds it"
    plan.assets_deleted = [encode_id(NodeType.ASSET, a) for a in own if a not in held]
    plan.contents_cleared = await db.assets.count_documents(_erasable(who))
    deleted = [a["_id"] async for a in db.assets.find({**_own(who), "status": AssetStatus.DELETED.value}, {"_id": 1})]
    gone = [*deleted, *(a for a in own if a not in held)]  # what the erase's clearing reaches
    plan.uploads_cleared = await erased_uploads.to_clear(gone)
    plan.events_cleared = await erased_uploads.status_events_to_clear(gone)
    plan.tokens = await db.api_tokens.count_documents({"user_id": who})
    for collection in IDENTITY_FIELDS:
        query = identity_filter(collection, user_id)
        if collection == "api_tokens":  # their own are deleted, not rewritten: only those they made for others
            query = {**query, "user_id": {"$ne": user_id}}
        if count := await db[collection].count_documents(query):
            plan.anonymized[collection] = count
    return plan


async def erase_user(db: AsyncDatabase, user_id: str, key: bytes, stores: Mapping[str, ObjectStore]) -> Erasure:
    """Delete the user's own assets (as deleteAsset without force does: one something still holds
    is kept, and the reason listed), clear the content of every deleted one and what its uploads
    recorded of its file, and delete their tokens; then replace their identity everywhere else.
    Dataset versions that hold their data are listed and left whole."""
    user_id = check_user(user_id)
    erasure = Erasure(pseudonym=pseudonym(user_id, key), versions_holding=await versions_holding(db, user_id))
    who = {"$in": [user_id, erasure.pseudonym]}  # an anonymize before left their documents under the pseudonym
    own = db.assets.find({**_own(who), "status": {"$ne": AssetStatus.DELETED.value}}, {"_id": 1})
    deleted: list[ObjectId] = []
    async for asset in own:
        try:
            await assets.delete_asset(asset["_id"], False, dict(stores))
        except Conflict as held:  # named as the plan names it (the delete's own advice, force, is not an erase's)
            why = await assets.holders_of(asset["_id"])
            erasure.kept_assets[encode_id(NodeType.ASSET, asset["_id"])] = why or str(held)
            continue
        deleted.append(asset["_id"])
    erasure.deleted_assets = [encode_id(NodeType.ASSET, a) for a in deleted]
    # The content of every DELETED asset of theirs is theirs too (those just deleted, those deleted
    # before, and those a crashed erase deleted): only the record that they existed stays.
    await db.assets.update_many(_erasable(who), {
        "$set": {"name": ERASED, "labels": [], "metadata": StoredJson.encode({}).model_dump()},
        # An external S3 object's ETag is, for most objects, the MD5 of its bytes: a fingerprint as the SHA-256 is.
        "$unset": {"description": "", "value": "", "text": "", "storage.etag": "", **dict.fromkeys(ERASED_FACTS, "")}})
    # And what their uploads recorded of those files (services/uploads/erased.py).
    gone = [a["_id"] async for a in db.assets.find({**_own(who), "status": AssetStatus.DELETED.value}, {"_id": 1})]
    erasure.uploads_cleared = await erased_uploads.clear_erased(gone, stores)
    erasure.events_cleared = await erased_uploads.clear_status_events(gone)
    erasure.tokens_deleted = (await db.api_tokens.delete_many({"user_id": who})).deleted_count
    _, erasure.anonymized = await anonymize_user(db, user_id, key)
    return erasure

