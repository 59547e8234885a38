"""The verbs users of the systems Graphlake replaces reach for: store a value, a text, a file or a
directory, register what exists elsewhere, get an asset, query assets page by page.

Files and directories go through the upload code (uploads.py): bytes never pass through GraphQL.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError, check_json, wire_time
from graphlake_client.predicates import Predicate, filter_inputs, names
from graphlake_client.results import Paged, Source
from graphlake_client.uploads import Uploader

AssetKind = Literal["FILE", "VALUE", "TEXT", "EXTERNAL"]
AssetStatus = Literal["PENDING", "ACTIVE", "FAILED", "DELETED"]
OrderField = Literal["CREATED_AT", "NAME", "SIZE", "DATA_TIMESTAMP"]
PAGE_SIZE = 100  # assets per page by default; the server allows up to GRAPHLAKE_MAX_PAGE_SIZE (500)


class StorageRef(TypedDict):
    mount: str
    uri: str
    external: bool


class Asset(TypedDict, total=False):
    """An asset as the verbs return it (operations.ASSET_DETAIL; `value`, `text` and `downloadUrl`
    where the verb loads the content). Keys are the schema's field names."""

    id: str
    kind: AssetKind
    status: AssetStatus
    name: str
    description: str | None
    mediaType: str | None
    sizeBytes: int | None
    sha256: str | None
    labels: list[str]
    metadata: dict[str, Any]
    aliases: list[str]
    owner: dict[str, str | None]  # Source's fields (nodeId, workflowId, ...), null where not recorded
    dataTimestamp: str | None
    createdAt: str
    updatedAt: str
    storage: StorageRef | None
    value: Any
    text: str | None
    downloadUrl: str | None


class Registered(TypedDict):
    """registerExternal's answer: the assets it made, and those registered before (first pages)."""

    count: int
    assets: list[Asset]
    unchangedCount: int
    unchanged: list[Asset]


class Page(Paged[Asset]):
    """One page of `query_assets`; resume after it with `after=page.end_cursor`."""

    @property
    def assets(self) -> list[Asset]:
        return self.items


def _produced(fields: dict[str, Any], owner: Source | None, data_timestamp: datetime | None) -> dict[str, Any]:
    """An input's fields given by name (`dataTimestamp=`), with `owner` and `data_timestamp` as
    store_file takes them (the same words in every verb); each time checked and written out as
    wire_time does, naming the argument as the caller wrote it."""
    made = {name: wire_time(given, name) if isinstance(given, datetime) else given for name, given in fields.items()}
    if owner is not None:
        made["owner"] = owner
    if data_timestamp is not None:
        made["dataTimestamp"] = wire_time(data_timestamp, "data_timestamp")
    return made


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields given (None left out, so the schema's defaults apply)."""
    return {k: v for k, v in fields.items() if v is not None}


class Assets(Uploader):
    """Storing, registering, getting and querying assets, on top of the uploads."""

    # --- store
    async def store_value(self, value: Any, *, name: str | None = None, collection: str | None = None,
                          labels: list[str] | None = None, metadata: dict[str, Any] | None = None,
                          description: str | None = None, owner: Source | None = None,
                          data_timestamp: datetime | None = None, **fields: Any) -> Asset:
        """Store any JSON as a VALUE asset; `owner` and `data_timestamp` (aware) as for store_file
        (`fields`: StoreValueInput's others by their GraphQL names, such as aliases and derivedFrom)."""
        check_json(value, "value")  # fails here, naming the culprit, rather than as a vague error from httpx
        check_json(metadata, "metadata")
        fields = _produced(fields, owner, data_timestamp)
        collection_id = await self._collection_first(collection)
        made = (await self.execute(ops.STORE_VALUE, {"input": {**_present({
            "name": "value" if name is None else name, "labels": labels, "metadata": metadata, "description": description, **fields}),
            "value": value}}))["storeValue"]  # always sent: null is a value too
        return await self._filed(made, collection, collection_id)

    async def store_text(self, text: str, *, name: str | None = None, collection: str | None = None,
                         labels: list[str] | None = None, metadata: dict[str, Any] | None = None,
                         media_type: str | None = None, description: str | None = None, owner: Source | None = None,
                         data_timestamp: datetime | None = None, **fields: Any) -> Asset:
        """Store a text as a TEXT asset (text/plain unless `media_type`; the rest as for store_value)."""
        check_json(metadata, "metadata")
        fields = _produced(fields, owner, data_timestamp)
        collection_id = await self._collection_first(collection)
        made = (await self.execute(ops.STORE_TEXT, {"input": _present({
            "name": "text" if name is None else name, "text": text, "mediaType": media_type, "labels": labels, "metadata": metadata,
            "description": description, **fields})}))["storeText"]
        return await self._filed(made, collection, collection_id)

    async def _collection_first(self, collection: str | None) -> str | None:
        """The collection's id (made if new), found before anything is stored: a name the server refuses
        fails the call with nothing stored, naming `collection`."""
        if not collection:
            return None
        try:
            return await self.collection_id(collection)
        except GraphlakeClientError as error:
            if error.code != "BAD_USER_INPUT":
                raise
            raise GraphlakeClientError(f"collection {collection[:80]!r}: {error}", error.code, "collection") from error

    async def _filed(self, asset: Asset, collection: str | None, collection_id: str | None) -> Asset:
        """The asset, put into the collection found first. A second write: should it fail, the asset
        stays stored, outside the collection, and the error says so."""
        if collection and collection_id:
            try:
                await self.execute(ops.ADD_TO_COLLECTION, {"input": {
                    "collectionId": collection_id, "items": [{"assetId": asset["id"]}]}})
            except GraphlakeClientError as error:
                raise error.restated(f"asset {asset['id']} was stored but not put into collection "
                                     f"{collection!r}: {error}") from error
        return asset

    async def store_file(self, path: Path | str, *, name: str | None = None, collection: str | None = None,
                         labels: list[str] | None = None, metadata: dict[str, Any] | None = None,
                         media_type: str | None = None, description: str | None = None,
                         mount: str | None = None, owner: Source | None = None,
                         data_timestamp: datetime | None = None, resume: bool = True) -> Asset:
        """Upload one file as a FILE asset through signed URLs (into `collection` by name, under its file
        name); `owner` and `data_timestamp` (aware) as store_value's `owner` and `dataTimestamp`,
        `resume` as upload_file's."""
        path = Path(path)
        wire_time(data_timestamp, "data_timestamp")  # refused before the collection is made (upload_file sends it)
        collection_id = await self._collection_first(collection)
        uploaded = await self.upload_file(path, name=name, media_type=media_type, collection_id=collection_id,
                                          collection_path=(name or path.name) if collection_id else None,
                                          description=description, metadata=metadata, labels=labels, mount=mount,
                                          owner=owner, data_timestamp=data_timestamp, resume=resume)
        [stored] = await self._in_detail([uploaded["id"]])
        return stored

    async def store_directory(self, path: Path | str, *, collection: str | None = None, as_archive: bool = False,
                              ignore: Iterable[str] = (), manifest: dict[str, dict[str, Any]] | None = None,
                              follow_symlinks: bool = False,
                              progress: Callable[[int, int], None] | None = None, owner: Source | None = None,
                              data_timestamp: datetime | None = None) -> list[Asset]:
        """Upload a directory: file by file keeping relative paths (as the items' paths in `collection`,
        else as the assets' names), or as one zip (`as_archive`). `ignore`, `manifest` (per-file
        description, metadata, labels), `follow_symlinks`, `progress(done_bytes, total_bytes)`, `owner`
        and `data_timestamp` as for upload_paths."""
        path = Path(path)
        if not path.is_dir():
            raise GraphlakeClientError(f"{path}: not a directory", "BAD_USER_INPUT", "path")
        uploaded = await self.upload_paths([path], collection=collection, as_archive=as_archive, ignore=ignore,
                                           manifest=manifest, follow_symlinks=follow_symlinks, progress=progress,
                                           owner=owner, data_timestamp=data_timestamp)
        return await self._in_detail([a["id"] for a in uploaded])

    async def _in_detail(self, ids: list[str]) -> list[Asset]:
        """These assets as the other verbs answer them (operations.ASSET_DETAIL): an upload answers
        with a few fields only, so metadata, labels and the rest are read back, 100 a call."""
        found: list[Asset] = []
        for start in range(0, len(ids), 100):
            found += (await self.execute(ops.ASSETS_BY_IDS, {"ids": ids[start:start + 100]}))["nodes"]
        return found

    async def register_external(self, url: str | None = None, *, bucket: str | None = None, prefix: str | None = None,
                                mount: str | None = None, name: str | None = None, collection: str | None = None,
                                labels: list[str] | None = None, metadata: dict[str, Any] | None = None,
                                owner: Source | None = None, data_timestamp: datetime | None = None) -> Registered:
        """Register an http(s) `url`, or the objects of an S3 `bucket`/`prefix` on `mount`, as EXTERNAL assets,
        uncopied (`owner` and `data_timestamp` as for store_file)."""
        check_json(metadata, "metadata")  # as store_value's: a datetime is refused, not sent as text
        taken = wire_time(data_timestamp, "data_timestamp")  # before the collection is made
        collection_id = await self._collection_first(collection)
        return (await self.execute(ops.REGISTER_EXTERNAL, {"input": _present({
            "url": url, "bucket": bucket, "prefix": prefix, "mount": mount, "name": name,
            "collectionId": collection_id, "labels": labels, "metadata": metadata, "owner": owner,
            "dataTimestamp": taken})}))["registerExternal"]

    # --- change
    async def update_asset(self, asset: str | Asset, *, name: str | None = None, description: str | None = None,
                           labels: list[str] | None = None, metadata: dict[str, Any] | None = None,
                           data_timestamp: datetime | None = None, owner: Source | None = None,
                           expected_updated_at: str | None = None) -> Asset:
        """Change an asset (by ID, alias or as returned): each field given replaces its value (`labels`
        the whole list, `metadata` the whole object, `owner` every ownership field); the rest stay.
        `expected_updated_at`: the `updatedAt` you read; the change is made only while the asset still
        has it (CONFLICT otherwise), so a read-modify-write never undoes another writer's change.
        Returns the asset as get_asset does."""
        check_json(metadata, "metadata")
        taken = wire_time(data_timestamp, "data_timestamp")
        asset_id = await self._asset_id(asset)
        await self.execute(ops.UPDATE_ASSET, {"input": {"id": asset_id, **_present({
            "name": name, "description": description, "labels": labels, "metadata": metadata,
            "dataTimestamp": taken, "owner": owner, "expectedUpdatedAt": expected_updated_at})}})
        return await self.get_asset(asset_id)

    async def delete_asset(self, asset: str | Asset) -> bool:
        """Delete an asset (by ID, alias or as returned): its payload goes once nothing holds it. True once
        it is gone, also when it was gone already; CONFLICT, naming what holds it, while a datum or
        version still does."""
        deleted: bool = (await self.execute(ops.DELETE_ASSET, {"id": await self._asset_id(asset)}))["deleteAsset"]["deleted"]
        return deleted

    async def _asset_id(self, asset: str | Asset) -> str:
        """The ID of an asset given by ID, alias or as returned (looked up without its payload); NOT_FOUND if none."""
        if not isinstance(asset, str):
            return asset["id"]
        found = await self._by_id_or_alias(asset, ops.ASSET_ID, ops.ASSET_ID_BY_ALIAS)
        if found is None:
            raise GraphlakeClientError(f"no asset with ID or alias {asset!r}", "NOT_FOUND", "asset")
        return str(found["id"])

    # --- read
    async def find_asset(self, id_or_alias: str) -> Asset | None:
        """The asset with this ID or alias, with its content (value, text or downloadUrl); None if none."""
        found: Asset | None = await self._by_id_or_alias(id_or_alias, ops.ASSET, ops.ASSET_BY_ALIAS)
        return found

    async def _by_id_or_alias(self, ref: str, by_id: str, by_alias: str) -> Any:
        """`by_id`'s asset for `ref`, else (`ref` is no ID, or no asset's) `by_alias`'s; None if neither.
        A `ref` that is not shaped as an asset's ID goes to `by_alias` at once: sent as an ID first, it
        cost a request per lookup that the server refused (and counted among its errors)."""
        found = None
        if _shaped_as_asset_id(ref):
            try:
                found = (await self.execute(by_id, {"id": ref}))["asset"]
            except GraphlakeClientError as error:
                if error.code != "BAD_USER_INPUT":
                    raise  # else the server tells IDs apart more strictly: try it as an alias
        return found or (await self.execute(by_alias, {"alias": ref}))["assetByAlias"]

    async def get_asset(self, id_or_alias: str) -> Asset:
        """One asset by ID or alias, with its value, text or downloadUrl; NOT_FOUND if none."""
        found = await self.find_asset(id_or_alias)
        if found is None:
            raise GraphlakeClientError(f"no asset with ID or alias {id_or_alias!r}", "NOT_FOUND")
        return found

    async def query_assets(self, *where: Predicate, kinds: Iterable[AssetKind | str] | None = None,
                           statuses: Iterable[AssetStatus] | None = None, labels_all: Iterable[str] | None = None,
                           labels_any: Iterable[str] | None = None, name_contains: str | None = None,
                           media_type_prefix: str | None = None, sha256: str | None = None,
                           collection: str | None = None, created_after: datetime | None = None,
                           created_before: datetime | None = None, data_after: datetime | None = None,
                           data_before: datetime | None = None, owner: dict[str, str] | None = None,
                           order_by: OrderField = "CREATED_AT",
                           descending: bool = True, page_size: int = PAGE_SIZE, after: str | None = None,
                           payload: bool = False) -> AsyncIterator[Page]:
        """Pages of the assets matching every predicate and filter (`payload`: with values and texts).
        `data_after` / `data_before` bound `dataTimestamp`; `owner` is OwnershipInput (`{"nodeId": "reader-1"}`)."""
        bounds = {name: wire_time(moment, name) for name, moment in (
            ("created_after", created_after), ("created_before", created_before), ("data_after", data_after),
            ("data_before", data_before))}
        collection_id = None
        if collection is not None:  # "" names no collection: NOT_FOUND, not every asset of the lake
            collection_id = await self.find_collection(collection)
            if collection_id is None:
                raise GraphlakeClientError(f"no collection named {collection!r}", "NOT_FOUND", "collection")
        asset_filter = _present({
            "kinds": names(kinds, "kinds"), "statuses": names(statuses, "statuses"),
            "labelsAll": names(labels_all, "labels_all"), "labelsAny": names(labels_any, "labels_any"),
            "nameContains": name_contains, "mediaTypePrefix": media_type_prefix, "sha256": sha256,
            "collectionId": collection_id, "createdAfter": bounds["created_after"],
            "createdBefore": bounds["created_before"], "dataTimestampAfter": bounds["data_after"],
            "dataTimestampBefore": bounds["data_before"], "owner": owner,
            **filter_inputs(where)})
        variables = {"filter": asset_filter, "orderBy": {"field": order_by, "direction": "DESC" if descending else "ASC"},
                     "first": page_size, "payload": payload}
        async for nodes, end_cursor, has_next in self._walk(ops.ASSETS_PAGE, "assets", variables, after):
            yield Page(nodes, end_cursor, has_next)

    async def _walk(self, operation: str, field: str, variables: dict[str, Any],
                    after: str | None) -> AsyncIterator[tuple[list[Any], str | None, bool]]:
        """A connection's pages, one request each, from `after`: (nodes, endCursor, hasNextPage)."""
        while True:
            found = (await self.execute(operation, {**variables, "after": after}))[field]
            info = found["pageInfo"]
            yield [edge["node"] for edge in found["edges"]], info["endCursor"], info["hasNextPage"]
            if not info["hasNextPage"]:
                return
            after = info["endCursor"]


_ASSET_ID = re.compile(rb"Asset:[0-9a-f]{24}")


def _shaped_as_asset_id(ref: str) -> bool:
    """Whether `ref` reads as an asset's global ID (unpadded base64url of `Asset:<ObjectId hex>`, as
    the server writes them); an alias may still look like one, so a lookup by it that finds nothing
    tries the alias too."""
    try:
        raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
    except (ValueError, binascii.Error):
        return False
    return _ASSET_ID.fullmatch(raw) is not None
