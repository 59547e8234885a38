"""The local mounts' own HTTP routes: signed PUT (uploads, parts) and signed GET (downloads, Range).

    PUT /blobs/{mount}/{key}?size=..&exp=..&sig=..          one object, streamed to a temp file, renamed
    PUT /blobs/{mount}/{key}?upload=..&part=N&size=..&...   one part of a multipart upload
    GET /blobs/{mount}/{key}?name=..&type=..&exp=..&sig=..  the object, Range supported

Bodies stream to disk in chunks; nothing is held in memory whole. A bad, changed or expired
signature gets 403; a key outside the mount, 400.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from storage.local import LocalStore, UnsafeKey
from storage.signing import InvalidSignature


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _store(request: Request) -> LocalStore | None:
    store = request.app.state.graphlake.stores.get(request.path_params["mount"])
    return store if isinstance(store, LocalStore) else None


async def put_blob(request: Request) -> Response:
    store = _store(request)
    if store is None:
        return _error(404, "no such local mount")
    key = request.path_params["key"]
    try:
        params = store.signer.verify("PUT", store.name, key, request.query_params)
        target = store.part_path(params["upload"], int(params["part"])) if "upload" in params else store.path(key)
    except InvalidSignature as error:
        return _error(403, str(error))
    except (UnsafeKey, ValueError) as error:
        return _error(400, str(error))
    if "upload" in params and not target.parent.is_dir():
        return _error(404, "the multipart upload is no longer open")
    limit = int(params.get("size", "0"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
    received = 0
    try:
        async with await anyio.open_file(fd, "wb", closefd=True) as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise OverflowError
                await out.write(chunk)
        os.replace(temp, target)  # atomic: a reader sees the old object or the new one, never half
    except OverflowError:
        Path(temp).unlink(missing_ok=True)
        return _error(413, f"the body is larger than the {limit} bytes this URL was signed for")
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return Response(status_code=200, headers={"ETag": f'"{target.name}"'})


async def get_blob(request: Request) -> Response:
    store = _store(request)
    if store is None:
        return _error(404, "no such local mount")
    key = request.path_params["key"]
    try:
        params = store.signer.verify("GET", store.name, key, request.query_params)
        path = store.path(key)
    except InvalidSignature as error:
        return _error(403, str(error))
    except UnsafeKey as error:
        return _error(400, str(error))
    if not path.is_file():
        return _error(404, "the object does not exist")
    return FileResponse(path, filename=params.get("name") or path.name, media_type=params.get("type") or None,
                        content_disposition_type="attachment")


def blob_routes(prefix: str = "/blobs") -> list[Route]:
    return [
        Route(prefix + "/{mount}/{key:path}", put_blob, methods=["PUT"]),
        Route(prefix + "/{mount}/{key:path}", get_blob, methods=["GET", "HEAD"]),
    ]
