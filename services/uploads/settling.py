"""Settling many assets in one write (an upload's completion, the reconciler's failures), each
moving its `updated_at` on past the value read (documents/clock.next_updated_at).

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
from documents.clock import next_updated_at
from documents.common import AssetStatus
from services.errors import Unavailable
from services.id_reads import docs_by_ids

TRIES = 20  # writes of one asset that met another writer's, at most


async def settle(assets: Mapping[ObjectId, Asset], status: AssetStatus, where: dict[str, Any],
                 still: Callable[[Asset], bool], more: Callable[[Asset], dict[str, Any]] | None = None,
                 ) -> dict[ObjectId, datetime]:
    """Set `status` (and `more(asset)`, an update document) on each of `assets`, as read, while it
    meets `where` (`still`, the same test in Python); the `updated_at` stored on each it settled.
    Only the caller sets `status` on these assets (it holds their uploads' claims, or they have
    none): one read in it after the write is one the write settled."""
    left, settled = dict(assets), {}
    for _ in range(TRIES):
        if not left:
            return settled
        stamps = {asset_id: next_updated_at(asset.updated_at) for asset_id, asset in left.items()}
        statements = []
        for asset_id, asset in left.items():
            update = dict(more(asset)) if more else {}
            update["$set"] = {**update.get("$set", {}), "status": status.value, "updated_at": stamps[asset_id]}
            # (Also on an asset stored with no `updated_at` at all, which reads as now.)
            statements.append(UpdateOne({"_id": asset_id, **where, "updated_at": {"$in": [asset.updated_at, None]}}, update))
        written = await Asset.get_pymongo_collection().bulk_write(statements)
        if written.matched_count == len(left):
            return settled | stamps
        now = {asset.id: asset for asset in await docs_by_ids(Asset, list(left))}
        settled |= {asset_id: stamps[asset_id] for asset_id in left if asset_id in now and now[asset_id].status is status}
        left = {asset_id: asset for asset_id, asset in now.items() if asset.status is not status and still(asset)}
    raise Unavailable("other writers kept changing the assets being settled; try again")
