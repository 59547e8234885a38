"""Lineage downstream: the assets derived from an asset, kept beside them as links
(documents/asset.AssetLink), because the embedded default cannot index an asset's `derived_from`.

A link is written before the asset names its source (`add`), so a crash never leaves a source
without the link to an asset naming it; after the write, `relink` makes the asset's links what it
says then (one per source), dropping links it no longer backs. Once the asset is DELETED (a delete,
the collector), `unlink` removes them all; an update racing the delete relinks from what it reads
after its write, a DELETED asset: none. Relinks racing each other can leave a link doubled, or one
the asset no longer backs, until its next relink: nothing relies on a link alone, the reader keeps
an asset only where `backs` says so, once. What crashes and races leave behind is mended daily
(`remove_stale_links`), so that counts of links come right.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.asset import LINKS_COLLECTION, Asset, AssetLink
from documents.clock import utcnow
from documents.common import AssetStatus
from services.id_reads import fields_by_ids

CHUNK = 1000
# Ancestors an update of an asset's lineage reads at most, looking for a cycle (cycle_through).
ANCESTORS_WALKED = 10_000


def backs(asset: Asset, source_id: ObjectId) -> bool:
    """Whether a link from `source_id` to `asset` stands: the asset names the source and is not DELETED."""
    return asset.status is not AssetStatus.DELETED and source_id in asset.derived_from


def _link(source_id: ObjectId, asset_id: ObjectId) -> dict:
    return {"_id": ObjectId(), "source_id": source_id, "asset_id": asset_id}


async def cycle_through(asset_id: ObjectId, sources: Sequence[ObjectId]) -> int | None:
    """The index in `sources` of the first one that derives from `asset_id` already, directly or
    through its own sources (DELETED assets included: they keep their lineage), or None: naming it as
    a source of `asset_id` would make a cycle, which a client walking a lineage upward never leaves.

    Walks upward from `sources`, a level at a time, each level's assets read by id (CHUNK at once),
    ANCESTORS_WALKED at most: past them it finds none (a lineage that long is walked by no reader at
    once either). Two updates at once, each naming the other's asset, may each find none."""
    origin: dict[ObjectId, int] = {}
    for i, source in enumerate(sources):
        origin.setdefault(source, i)
    frontier = list(origin)
    walked = 0
    while frontier and walked < ANCESTORS_WALKED:
        chunk, frontier = frontier[:CHUNK], frontier[CHUNK:]
        walked += len(chunk)
        found = await fields_by_ids(Asset, chunk, ["derived_from"])
        for child in chunk:
            for parent in (found.get(child) or {}).get("derived_from") or []:
                if parent == asset_id:
                    return origin[child]
                if parent not in origin:
                    origin[parent] = origin[child]
                    frontier.append(parent)
    return None


async def add(asset_id: ObjectId, sources: Sequence[ObjectId]) -> None:
    """Links from these sources to the asset, those it does not have yet: before the asset names them."""
    if not sources:
        return
    links = AssetLink.get_pymongo_collection()
    held = set(await links.distinct("source_id", {"asset_id": asset_id, "source_id": {"$in": list(sources)}}))
    if missing := [_link(source, asset_id) for source in dict.fromkeys(sources) if source not in held]:
        await links.insert_many(missing)


async def relink(asset_ids: Sequence[ObjectId], *, settled_before: ObjectId | None = None) -> int:
    """Make the links of these assets what each says now; how many links it removed and added.
    `settled_before` (remove_stale_links): only remove links made before that id's time, leave alone
    the links of assets that are DELETED or not stored (it judges those by age), and look once more
    after removing: an update that came to back a link meanwhile has relinked before this removed it."""
    changed = 0
    for start in range(0, len(asset_ids), CHUNK):
        chunk = list(asset_ids[start:start + CHUNK])
        here = await _relink_chunk(chunk, settled_before, remove=True)
        if settled_before is not None and here:
            here += await _relink_chunk(chunk, settled_before, remove=False)
        changed += here
    return changed


async def _relink_chunk(chunk: list[ObjectId], settled_before: ObjectId | None, *, remove: bool) -> int:
    links = AssetLink.get_pymongo_collection()
    standing = {asset["_id"]: asset.get("derived_from", []) async for asset in Asset.get_pymongo_collection().find(
        {"_id": {"$in": chunk}, "status": {"$ne": AssetStatus.DELETED.value}}, {"derived_from": 1})}
    if settled_before is not None:
        chunk = [a for a in chunk if a in standing]
    wanted = {(source, asset_id) for asset_id, sources in standing.items() for source in sources}
    held: set[tuple[ObjectId, ObjectId]] = set()
    stale: list[ObjectId] = []
    found = await links.find({"asset_id": {"$in": chunk}}, {"source_id": 1, "asset_id": 1}).to_list()
    # Oldest first, so that of a doubled pair the same link stays whoever relinks. (Sorted here: a
    # sort on `_id` could lead MongoDB's planner to walk every link in `_id` order.)
    for link in sorted(found, key=lambda link: link["_id"]):
        pair = (link["source_id"], link["asset_id"])
        if pair in wanted and pair not in held:
            held.add(pair)
        elif settled_before is None or link["_id"] < settled_before:  # not named, or a pair's second link
            stale.append(link["_id"])
    changed = 0
    if missing := [_link(source, asset_id) for source, asset_id in wanted - held]:
        await links.insert_many(missing)
        changed += len(missing)
    if stale and remove:
        changed += (await links.delete_many({"_id": {"$in": stale}})).deleted_count
    return changed


async def unlink(deleted: Sequence[ObjectId]) -> None:
    """Every link of these assets, once DELETED (what relink would do, in one command)."""
    if deleted:
        await AssetLink.get_pymongo_collection().delete_many({"asset_id": {"$in": list(deleted)}})


async def write_links(db: AsyncDatabase) -> None:
    """Make every link again from the assets (a restore: backups leave them out, as they are derived),
    in the assets' order."""
    await db[LINKS_COLLECTION].delete_many({})
    links: list[dict] = []
    async for asset in db[Asset.Settings.name].find(
            {"derived_from.0": {"$exists": True}, "status": {"$ne": AssetStatus.DELETED.value}}, {"derived_from": 1},
            sort=[("_id", 1)]):
        links += [_link(source, asset["_id"]) for source in dict.fromkeys(asset["derived_from"])]
        if len(links) >= CHUNK:
            await db[LINKS_COLLECTION].insert_many(links)
            links = []
    if links:
        await db[LINKS_COLLECTION].insert_many(links)


async def remove_stale_links(settled: timedelta) -> int:
    """Remove the links no asset backs (`backs`), which the derived assets of a source skip but their
    count (`totalCount`) counts: those of an asset DELETED by a delete that died before `unlink`, or
    never stored (a create that died after `add`), a source the asset no longer names, a second link
    of one pair (relinks racing). Reads every link once; returns how many links it removed or added.

    Only what has been `settled` long: a younger link may be one an asset is about to name (`add`
    writes it first), and an asset deleted moments ago may yet be kept (a delete is undone when
    something began using the asset meanwhile, services/assets._still_unused). A standing asset
    with a link it does not back is relinked (`relink` reads it again), not judged from this read:
    an update may have named the source since.

    Read a page of assets at a time, in asset order through the index on the links' assets, each
    page a query of its own (all the links of its assets then read together): pages by `_id` would
    each read every link on the embedded default (no index holds that order there), and one cursor
    over them all would hold a SQLite reader (and its write-ahead log) for the whole pass."""
    cutoff = utcnow() - settled
    links = AssetLink.get_pymongo_collection()
    mended = 0
    after: dict = {}
    while True:
        page = await links.find(after, {"asset_id": 1}, sort=[("asset_id", 1)], limit=CHUNK).to_list()
        asset_ids = sorted({link["asset_id"] for link in page})
        if asset_ids:
            mended += await _settle_links(asset_ids, cutoff)
        if len(page) < CHUNK:
            return mended
        after = {"asset_id": {"$gt": asset_ids[-1]}}


async def _settle_links(asset_ids: list[ObjectId], cutoff: datetime) -> int:
    """remove_stale_links for these assets, every link of theirs; how many links it removed or added.
    Those of an asset not stored, or DELETED before `cutoff`, go; a standing asset is relinked."""
    young = ObjectId.from_datetime(cutoff)
    assets = {a["_id"]: a async for a in Asset.get_pymongo_collection().find(
        {"_id": {"$in": asset_ids}}, {"status": 1, "deleted_at": 1})}
    deleted = {a for a, doc in assets.items() if doc.get("status") == AssetStatus.DELETED.value}
    gone = [a for a in asset_ids if a not in assets
            or (a in deleted and (assets[a].get("deleted_at") is None or assets[a]["deleted_at"] < cutoff))]
    mended = (await AssetLink.get_pymongo_collection().delete_many(
        {"asset_id": {"$in": gone}, "_id": {"$lt": young}})).deleted_count if gone else 0
    return mended + await relink([a for a in asset_ids if a in assets and a not in deleted], settled_before=young)
