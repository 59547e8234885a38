"""GET /thumbnails/{mount}/{key}?size=..&sha=..&exp=..&sig=..: an image asset's thumbnail.

The URL comes from `Asset.thumbnailUrl` and carries all the route needs (the image's key, SHA-256
and the size), signed, so serving one costs no database read. The first request makes the
thumbnail (services/thumbnails.py); later ones serve the stored one: from the local mount itself
(with a strong ETag, a revalidation answered 304), or by a redirect to a signed GET on an S3 mount.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from graphlake.object_files import content_etag, not_modified, not_modified_response
from graphlake.user_content import user_content
from services.thumbnails import (
    CACHE_CONTROL,
    MEDIA_TYPE,
    SIGN_METHOD,
    SIZES,
    URL_SECONDS,
    ImageRefused,
    ThumbnailTooLarge,
    thumbnail_etag_basis,
)
from storage import LocalStore
from storage.local import UnsafeKey
from storage.ownership import MountNotOwned
from storage.protocol import StoreUnavailable
from storage.signing import InvalidSignature

_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def get_thumbnail(request: Request) -> Response:
    state = request.app.state.graphlake
    mount, key = request.path_params["mount"], request.path_params["key"]
    store = state.stores.get(mount)
    if store is None:
        return _error(404, "no such mount")
    try:
        params = state.thumbnail_signer.verify(SIGN_METHOD, mount, key, request.query_params)
    except InvalidSignature as error:
        return _error(403, str(error))
    # Signed by us, so well formed; checked anyway, as the blob routes do, should the secret leak.
    size, sha256 = params.get("size", ""), params.get("sha", "")
    if not size.isdigit() or int(size) not in SIZES or not _SHA256.match(sha256):
        return _error(400, "the URL's size or sha is not one the server signs")
    try:
        if isinstance(store, LocalStore):
            return _served(request, await state.thumbnailer.local_bytes(store, key, sha256, int(size)), sha256, int(size))
        thumbnail = await state.thumbnailer.ensure(store, key, sha256, int(size))
    except FileNotFoundError:
        return _error(404, "the image's object does not exist")
    except UnsafeKey as error:  # only a URL signed with a leaked secret could name one
        return _error(400, str(error))
    except ImageRefused as error:
        return _error(422, str(error))
    except StoreUnavailable as error:  # not made yet, and this lake stores nothing on another lake's mount
        return _error(409 if isinstance(error, MountNotOwned) else 503, str(error))
    except ThumbnailTooLarge as error:  # made again, and an oversized file was back at once: a writer's race
        return _error(503, str(error))
    # The signed GET lives URL_SECONDS: the redirect may be cached for less than that.
    return RedirectResponse(await state.thumbnailer.serve_url(store, thumbnail), status_code=302,
                            headers={"Cache-Control": f"private, max-age={URL_SECONDS // 2}"})


def _served(request: Request, content: bytes, sha256: str, size: int) -> Response:
    """A thumbnail from a local mount, or 304 when the client holds it already (If-None-Match, as the
    content route answers: graphlake/object_files.py). Looked at once the thumbnail is read, so that an
    image deleted meanwhile is 404, not a copy said to be current. (On S3 the redirect's signed GET
    answers revalidations with the store's own ETag.)"""
    response = Response(content, media_type=MEDIA_TYPE, headers={"Cache-Control": CACHE_CONTROL})
    etag = content_etag(thumbnail_etag_basis(sha256, size), response.headers)
    if not_modified(request.headers, etag):
        return not_modified_response(etag, **{"Cache-Control": CACHE_CONTROL})
    response.headers["ETag"] = etag
    return response


def thumbnail_routes(prefix: str = "/thumbnails") -> list[Route]:
    return [Route(prefix + "/{mount}/{key:path}", get_thumbnail, methods=["GET", "HEAD"], middleware=user_content())]
