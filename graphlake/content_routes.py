"""GET /assets/{id or alias}/content: an asset's content in one request, with the caller's token.

    curl -H "Authorization: Bearer $TOKEN" http://localhost:8000/assets/<ID or alias>/content -o out

For scripts, curl and the Python client's downloads: one request, as MADSci's
`GET /datapoint/{id}/value` is, where the GraphQL path takes two (`asset(id)` for a signed URL, then
that URL). It needs what `asset(id)` needs: VIEWER, or no token under GRAPHLAKE_ANONYMOUS_READ.

- A FILE on a local mount: the file itself, streamed from disk (Range supported), named in
  Content-Disposition. Nothing passes through the API process in memory.
- A FILE on an S3 mount, or an EXTERNAL asset: 307 to a signed GET of 15 minutes (the same URL
  `downloadUrl` gives), so the bytes never pass through the server at all.
- A VALUE: its JSON as stored (application/json), named `<name>.json` when its name has no extension;
  a TEXT: its text, in its media type, named as the asset is.
Every answer names the asset in X-Graphlake-Id, X-Graphlake-Kind, X-Graphlake-Name (percent-encoded)
and X-Graphlake-Size, and carries X-Graphlake-SHA256 where the lake knows it, so a client checks
what it received. Refusals are GraphQL-shaped errors with a code: 400 BAD_USER_INPUT, 401 UNAUTHENTICATED, 403 FORBIDDEN,
404 NOT_FOUND (also a DELETED asset), 409 CONFLICT (an upload not yet complete, or FAILED), 503 UNAVAILABLE.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import quote

from bson import ObjectId
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from documents.asset import Asset
from documents.clock import to_millis
from documents.common import AssetKind, AssetStatus
from documents.roles import Role
from graphlake.object_files import ObjectFileResponse, content_etag, not_modified, not_modified_response, open_stored
from graphlake.user_content import user_content
from resolvers.errors import retry_after
from services.assets import aliased_asset
from services.auth import bearer_secret
from services.availability import unavailable
from services.checks import valid_media_type
from services.errors import Conflict, Forbidden, GraphlakeError, NotFound, Unauthenticated
from services.node_ids import NodeType, decode_object_id, encode_id
from services.uploads.downloads import download_url
from storage import LocalStore
from storage.disposition import disposition
from storage.local import UnsafeKey

log = logging.getLogger("graphlake.content")

URL_SECONDS = 900  # the redirect's signed GET, as downloadUrl's default
# Not graphql_http's statuses: GraphQL over HTTP answers a missing or conflicting object with 200 and
# its error, where a plain GET of a resource says 404 and 409, as curl and HTTP caches expect.
_STATUS = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "CONFLICT": 409,
           "UNAVAILABLE": 503}


def _refusal(error: GraphlakeError) -> JSONResponse:
    status = _STATUS.get(error.code, 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else retry_after(error)
    return JSONResponse({"errors": [{"message": str(error), "extensions": error.extensions}]}, status_code=status,
                        headers=headers)


async def _caller_may_read(request: Request) -> None:
    """Unauthenticated or Forbidden unless the caller may read, as `asset(id)` decides."""
    state = request.app.state.graphlake
    secret = bearer_secret(request.headers.get("authorization"))  # Unauthenticated for a malformed header
    if not secret:
        if state.settings.anonymous_read:
            return
        raise Unauthenticated("this needs an API token: send it as `Authorization: Bearer <token>`")
    principal = await state.tokens.authenticate(secret)
    if not principal.role.includes(Role.VIEWER):
        raise Forbidden(f"this needs role VIEWER; your token has {principal.role.value}")


async def _find(ref: str) -> tuple[Asset, datetime | None]:
    """The asset `ref` names, and since when an alias names it (None for an ID)."""
    try:
        asset_id: ObjectId | None = decode_object_id(ref, NodeType.ASSET)
    except GraphlakeError:
        asset_id = None  # not an asset ID: an alias, then
    asset, since = (await Asset.get(asset_id), None) if asset_id is not None else await aliased_asset(ref)
    if asset is None or asset.status is AssetStatus.DELETED:
        raise NotFound(f"no asset with ID or alias {ref!r}", field="id")
    if asset.status is AssetStatus.PENDING:
        raise Conflict("the asset's upload is not complete yet", field="id")
    if asset.status is AssetStatus.FAILED:  # its object, if any, was never verified (see download_url)
        raise Conflict("the asset's upload FAILED: it has no content; upload the file again", field="id")
    return asset, since


def _value_file_name(name: str) -> str:
    """A value saved under its name is JSON: `.json` is added to a name without an extension (the
    Python client's `file_name` names it so too)."""
    return name if PurePosixPath(name).suffix else f"{name}.json"


def _stored_inline(request: Request, asset: Asset) -> Response:
    """A VALUE's JSON or a TEXT's text, or 304 when the client holds it already: its ETag names the
    SHA-256 of the bytes sent, which never change under one asset ID (a text is replaced as a new
    asset), and the media type and name they are sent under, which an asset's record may change."""
    if asset.kind is AssetKind.VALUE:
        body = asset.value.json.encode() if asset.value is not None else b"null"
        media_type, name = "application/json", _value_file_name(asset.name)
    else:
        body = (asset.text or "").encode()
        # One stored before media types were checked may not go into a header as it is.
        media_type = text_media_type(asset.media_type if asset.media_type and valid_media_type(asset.media_type)
                                     else "text/plain")
        name = asset.name
    response = Response(body, media_type=media_type, headers={"Content-Disposition": disposition(name)})
    etag = content_etag(asset.sha256 or hashlib.sha256(body).hexdigest(), response.headers)
    if not_modified(request.headers, etag):
        return not_modified_response(etag)
    response.headers["ETag"] = etag
    return response


_CHARSET = re.compile(r"[ \t]*;[ \t]*charset=(?:\"[^\"]*\"|[^;\"]*)", re.IGNORECASE)


def text_media_type(media_type: str) -> str:
    """A TEXT's media type as it is sent: its text goes out in UTF-8, whatever charset its uploader
    named (`text/csv; charset=iso-8859-1` made a browser read `größe` as `grÃ¶Ã\x9fe`). Starlette
    adds `; charset=utf-8` to a text/* type that names none."""
    stripped = _CHARSET.sub("", media_type)
    return f"{stripped}; charset=utf-8" if stripped != media_type else media_type


def _described(asset: Asset, response: Response) -> Response:
    response.headers["X-Graphlake-Id"] = encode_id(NodeType.ASSET, asset.id)
    response.headers["X-Graphlake-Kind"] = asset.kind.value
    response.headers["X-Graphlake-Name"] = quote(asset.name, safe="")  # percent-encoded: any name is one header
    if asset.size_bytes is not None:
        response.headers["X-Graphlake-Size"] = str(asset.size_bytes)
    if asset.sha256:
        response.headers["X-Graphlake-SHA256"] = asset.sha256
    return response


async def get_content(request: Request) -> Response:
    state = request.app.state.graphlake
    try:
        await _caller_may_read(request)
        asset, aliased_since = await _find(request.path_params["ref"])
        if asset.kind in (AssetKind.VALUE, AssetKind.TEXT):
            return _described(asset, _stored_inline(request, asset))
        storage = asset.storage
        store = state.stores.get(storage.mount) if storage is not None else None
        if storage is not None and isinstance(store, LocalStore) and not storage.external:
            try:
                file, stat_result = await open_stored(store, storage.key)  # sent from it, never opened again by name
            except (UnsafeKey, FileNotFoundError):
                raise NotFound("the asset's stored file is missing from its mount; `graphlake check` says more",
                               field="id") from None
            # Named by the asset's SHA-256 (verified at completion; the mount's files are the lake's own;
            # none yet for an ingested file until the reconciler reads it: then by the file's identity),
            # and dated by its record and its alias too: a rename, or an alias moved to an older file,
            # is a change a client revalidating by date alone (curl -z, wget -N) must see.
            changed = max(to_millis(when) for when in (asset.updated_at, aliased_since) if when is not None)
            return _described(asset, ObjectFileResponse(file, filename=asset.name, media_type=asset.media_type or None,
                                                        digest=asset.sha256, stat_result=stat_result,
                                                        last_modified=changed.timestamp()))
        url = await download_url(asset, state.stores, URL_SECONDS, state.settings.max_download_url_seconds)
        if url is None:
            raise NotFound("the asset's content is on a mount this server does not have", field="id")
        return _described(asset, RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"}))
    except GraphlakeError as error:
        return _refusal(error)
    except Exception as error:
        outage = unavailable(error)
        if outage is None:
            raise
        log.warning("content of %s: %s (%s)", request.path_params["ref"], outage, type(error).__name__)
        return _refusal(outage)


def content_routes(prefix: str = "/assets") -> list[Route]:
    return [Route(prefix + "/{ref:path}/content", get_content, methods=["GET", "HEAD"], middleware=user_content())]
