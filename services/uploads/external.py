"""Registering objects that already exist (an S3 prefix, or an http(s) URL) as EXTERNAL assets,
in place: never copied, never deleted with their asset."""

from __future__ import annotations

import mimetypes
import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from bson import ObjectId

import storage
from documents.asset import Asset, StorageRef
from documents.clock import to_millis, utcnow
from documents.common import AssetKind, AssetStatus, Ownership
from documents.json_value import StoredJson
from documents.sparse import stored
from services import collections
from services.checks import check_labels, check_metadata, check_name, check_no_controls, control_in
from services.errors import BadUserInput, Unavailable
from storage import ObjectStore, StoreAnswered, as_s3
from storage.protocol import LAKE_FOLDERS

if TYPE_CHECKING:
    from storage.s3 import S3Store


@dataclass
class Registered:
    """What registerExternal did: the assets it made, and those it found registered already."""

    new: list[Asset]
    unchanged: list[Asset]


async def register_external(*, stores: dict[str, ObjectStore], mount: str | None, bucket: str | None, prefix: str | None,
                            url: str | None, name: str | None, labels: list[str], metadata: StoredJson,
                            collection_id: ObjectId | None, actor: str | None, max_items: int,
                            owner: Ownership | None = None, data_timestamp: datetime | None = None) -> Registered:
    """EXTERNAL assets for objects that already exist (an S3 prefix, or an http(s) URL), never copied.
    Deleting such an asset never deletes the object. An object registered before (the same URI and,
    for S3, the same ETag, still ACTIVE) is not registered twice: it is reported unchanged."""
    labels = check_labels(labels)
    check_metadata(metadata)
    if (url is None) == (bucket is None):
        raise BadUserInput("give either an s3 bucket (with mount and prefix) or a url", field="input")
    if name is not None:  # as an upload's name: an asset named blank, or 100 kB long, was stored as given
        if url is None:
            raise BadUserInput("names a url's asset only: the objects of a bucket are named by their keys", field="name")
        name = check_name(name)
    if collection_id:
        await collections.get_collection(collection_id, field="collectionId")
    now = utcnow()
    # Who produced the objects and when, as a stored file may say (MADSci's object-storage datapoints carry both).
    produced: dict[str, Any] = {"owner": owner or Ownership(),
                                "data_timestamp": to_millis(data_timestamp) if data_timestamp else None}
    assets: list[Asset] = []
    if url is not None:
        parsed = urlparse(url)
        # Plain http too: a lab's MinIO or instrument server often has no TLS. Nothing else: the URL
        # becomes a download link, where a `javascript:` or `file:` one would act in the reader's browser.
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise BadUserInput("must be an http or https URL", field="url")
        filename = posixpath.basename(parsed.path) or parsed.netloc
        if name is None:  # the asset is named by its URL's file name, held to a name's rule
            check_no_controls(filename, "url")
        assets.append(Asset(id=ObjectId(), kind=AssetKind.EXTERNAL, status=AssetStatus.ACTIVE, name=name or filename,
                            media_type=mimetypes.guess_type(filename)[0], metadata=metadata, labels=labels,
                            storage=StorageRef(mount="", key="", uri=url, external=True), created_at=now, updated_at=now,
                            created_by=actor, **produced))
    else:
        store = as_s3(stores.get(mount or ""))
        if store is None:
            raise BadUserInput("must name an s3 mount whose credentials can read the bucket", field="mount")
        try:
            objects = await store.list_objects(bucket, prefix or "", limit=max_items)
        except Exception as error:
            if isinstance(error, StoreAnswered) and error.refused:  # no such bucket, no permission, a bad name
                raise BadUserInput(f"cannot list s3://{bucket}/{prefix or ''}: {error.reason}", field="bucket") from None
            if storage.unreachable(error):  # not the request's fault: UNAVAILABLE, naming the mount
                raise Unavailable(f"mount {store.name!r} cannot be reached to list s3://{bucket}/{prefix or ''}; "
                                  "retry shortly", field="mount") from None
            raise
        if len(objects) > max_items:
            raise BadUserInput(f"more than {max_items} objects under that prefix, the most one call registers; "
                               "register narrower prefixes one by one", field="prefix")
        _refuse_the_lakes_own(objects, bucket, store, stores)
        for obj in objects:  # each asset is named by its key: held to a name's rule, before any is stored
            if found := control_in(obj["Key"]):
                raise BadUserInput(f"object key {obj['Key']!r} holds a control character ({found}), which no asset's name "
                                   "may: register the objects beside it by narrower prefixes", field="prefix")
        for obj in objects:
            filename = posixpath.basename(obj["Key"])
            assets.append(Asset(
                id=ObjectId(), kind=AssetKind.EXTERNAL, status=AssetStatus.ACTIVE, name=filename,
                media_type=mimetypes.guess_type(filename)[0], size_bytes=obj["Size"], metadata=metadata, labels=labels,
                storage=StorageRef(mount=store.name, key=obj["Key"], uri=f"s3://{bucket}/{obj['Key']}", external=True,
                                   etag=obj.get("ETag")),
                created_at=now, updated_at=now, created_by=actor, **produced,
            ))
    known = await _registered(assets)
    unchanged = [known[_identity(a)] for a in assets if _identity(a) in known]
    assets = [a for a in assets if _identity(a) not in known]
    if assets:
        await Asset.get_pymongo_collection().insert_many([stored(a) for a in assets])
    if collection_id and (assets or unchanged):  # registered before, maybe into another collection
        items = [collections.NewItem(a.id, a.storage.key or None, None) for a in assets + unchanged]  # path: the object key
        await collections.add_items(collection_id, items, actor, max_items)
    return Registered(new=assets, unchanged=unchanged)


def _refuse_the_lakes_own(objects: list[dict], bucket: str, through: S3Store, stores: dict[str, ObjectStore]) -> None:
    """Refuse objects of this lake's own folders on its S3 mounts (the same bucket of the same
    store): an EXTERNAL asset must not name bytes the lake deletes with another asset or sets aside."""
    owned = tuple(mount.object_key(folder) for mount in map(as_s3, stores.values())
                  if mount is not None and mount.bucket == bucket and mount.endpoint_url == through.endpoint_url
                  for folder in LAKE_FOLDERS)
    inside = [o["Key"] for o in objects if o["Key"].startswith(owned)] if owned else []
    if inside:
        raise BadUserInput(f"{len(inside)} object(s) under that prefix are this lake's own (e.g. {inside[0]!r}), kept "
                           f"under its mounts' {', '.join(LAKE_FOLDERS)}: register a prefix outside them", field="prefix")


def _identity(asset: Asset) -> tuple[str, str | None]:
    assert asset.storage is not None
    return asset.storage.uri, asset.storage.etag


async def _registered(assets: list[Asset]) -> dict[tuple[str, str | None], Asset]:
    """The ACTIVE EXTERNAL assets registered already for these objects, by (URI, ETag)."""
    if not assets:
        return {}
    found = await Asset.find({"storage.uri": {"$in": [_identity(a)[0] for a in assets]}, "kind": AssetKind.EXTERNAL.value,
                              "status": AssetStatus.ACTIVE.value}).to_list()
    return {_identity(a): a for a in found}
