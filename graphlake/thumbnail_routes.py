"""GET /thumbnails/{mount}/{key}?size=..&sha=..&exp=..&sig=..: an image asset's thumbnail.

The URL comes from `Asset.thumbnailUrl` and carries all the route needs (the image's key, SHA-256
and the size), signed, so serving one costs no database read. The first request makes the
thumbnail (services/thumbnails.py); later ones serve the stored one: from the local mount itself,
or by a redirect to a signed GET on an S3 mount.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from graphlake.user_content import user_content
from services.thumbnails import (
    CACHE_CONTROL,
    MEDIA_TYPE,
    SIGN_METHOD,
    SIZES,
    URL_SECONDS,
    ImageRefused,
    ThumbnailTooLarge,
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
            content = await state.thumbnailer.local_bytes(store, key, sha256, int(size))
            return Response(content, media_type=MEDIA_TYPE, headers={"Cache-Control": CACHE_CONTROL})
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


def thumbnail_routes(prefix: str = "/thumbnails") -> list[Route]:
    return [Route(prefix + "/{mount}/{key:path}", get_thumbnail, methods=["GET", "HEAD"], middleware=user_content())]
