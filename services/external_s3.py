"""Whether objects registered in place on S3 (`registerExternal`) are still the ones registered.

Graphlake never copies such an object, so whoever owns the bucket may overwrite or delete it, and a
dataset version naming it would then hand training code other bytes than it was built from. Their
ETag and size are recorded at registration; `verify --deep` asks S3 for both again (a HEAD each,
never the bytes: hashing a bucket of someone else's data is not the lake's to do). An object
registered by URL has nothing recorded to compare, and is not asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from services.node_ids import NodeType, encode_id
from storage import ObjectStore, as_s3

AT_ONCE = 16  # HEADs in flight: a version may name thousands of objects, and a bucket rate-limits


def registered_on(asset: Mapping[str, Any], stores: Mapping[str, ObjectStore]) -> bool:
    """Whether `asset` (as stored) is an S3 object registered in place through one of these mounts."""
    storage = asset.get("storage") or {}
    return (bool(storage.get("external")) and bool(storage.get("etag")) and str(storage.get("uri", "")).startswith("s3://")
            and as_s3(stores.get(storage.get("mount", ""))) is not None)


async def changes(assets: Sequence[Mapping[str, Any]], stores: Mapping[str, ObjectStore]) -> list[str]:
    """What differs, one line per asset whose object is gone, changed or cannot be asked about."""
    slots = asyncio.Semaphore(AT_ONCE)

    async def check(asset: Mapping[str, Any]) -> str | None:
        async with slots:
            return await _change(asset, stores)

    return [found for found in await asyncio.gather(*map(check, assets)) if found]


async def _change(asset: Mapping[str, Any], stores: Mapping[str, ObjectStore]) -> str | None:
    storage = asset["storage"]
    store = as_s3(stores[storage["mount"]])
    assert store is not None  # registered_on checked it
    uri = storage["uri"]
    named = f"asset {encode_id(NodeType.ASSET, asset['_id'])}: its object {uri}, registered in place,"
    try:
        now = await store.head_external(urlsplit(uri).netloc, storage["key"])
    except Exception as error:  # refused, unreachable: a finding, as for a stored file's bytes
        return f"{named} cannot be asked about ({type(error).__name__}: {error})"
    if now is None:
        return f"{named} is gone"
    if (now["ETag"], now["Size"]) != (storage["etag"], asset.get("size_bytes")):
        return (f"{named} has changed: ETag {now['ETag']} and {now['Size']} bytes now, "
                f"{storage['etag']} and {asset.get('size_bytes')} bytes when registered")
    return None
