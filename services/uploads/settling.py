"""Settling many assets in one write (an upload's completion, the reconciler's failures), each
moving its `updated_at` on past the value read (services/compare_and_set.py).

A plain `$set` of now to all of them left an asset's `updated_at` as a client had read it when the
change fell in that millisecond (or after an updateAsset had moved it ahead of the clock): that
client's updateAsset with `expectedUpdatedAt` then passed over the change. So each asset is written
only while it still has the `updated_at` read, and one another writer changed since is read again
and written again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from documents.asset import Asset
from documents.common import AssetStatus
from services.compare_and_set import Attempt, write_on_stamps
from services.id_reads import docs_by_ids


async def settle(assets: Mapping[ObjectId, Asset], status: AssetStatus, where: dict[str, Any],
                 still: Callable[[Asset], bool], more: Callable[[Asset], dict[str, Any]] | None = None,
                 ) -> dict[ObjectId, datetime]:
    """Set `status` (and `more(asset)`, an update document) on each of `assets`, as read, while it
    meets `where` (`still`, the same test in Python); the `updated_at` stored on each it settled.
    Only the caller sets `status` on these assets (it holds their uploads' claims, or they have
    none): one read in it after the write is one the write settled."""
    settled: dict[ObjectId, datetime] = {}  # by a write that missed some of the others

    async def write(attempts: dict[ObjectId, Attempt[Asset]]) -> bool:
        statements = []
        for asset_id, (asset, read, new) in attempts.items():
            update = dict(more(asset)) if more else {}
            update["$set"] = {**update.get("$set", {}), "status": status.value, "updated_at": new}
            # (Also on an asset stored with no `updated_at` at all, which reads as now.)
            statements.append(UpdateOne({"_id": asset_id, **where, "updated_at": {"$in": [read, None]}}, update))
        return (await Asset.get_pymongo_collection().bulk_write(statements)).matched_count == len(statements)

    async def read_again(attempts: dict[ObjectId, Attempt[Asset]]) -> dict[ObjectId, Asset]:
        now = {asset.id: asset for asset in await docs_by_ids(Asset, list(attempts))}
        settled.update({asset_id: attempt.new for asset_id, attempt in attempts.items()
                        if asset_id in now and now[asset_id].status is status})
        return {asset_id: asset for asset_id, asset in now.items() if asset.status is not status and still(asset)}

    return settled | await write_on_stamps(assets, stamp=lambda asset: asset.updated_at, write=write,
                                           read_again=read_again, what="the assets being settled")
