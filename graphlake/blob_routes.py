"""The local mounts' own HTTP routes: signed PUT (uploads, parts) and signed GET (downloads, Range).

    PUT /blobs/{mount}/{key}?size=..&exp=..&sig=..          one object, streamed to a temp file, renamed
    PUT /blobs/{mount}/{key}?upload=..&part=N&size=..&offset=..&...   one part, written in place
    GET /blobs/{mount}/{key}?name=..&type=..&exp=..&sig=..  the object, Range supported

Bodies stream to disk in chunks; nothing is held in memory whole. A bad, changed or expired
signature gets 403; a key outside the mount or a malformed number, 400. A PUT writes only while its
upload session is open (409 after), and creates only (412 once the object exists): no URL can
replace what a completion verified. A single PUT of another size than the URL was signed for, or
of another SHA-256 than the one declared, stores nothing (400), as a signed S3 PUT refuses it: the
right bytes can be sent again, where a stored object would have been found wrong only at completion,
and no URL could have replaced it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graphlake.object_files import ObjectFileResponse, open_stored
from graphlake.user_content import user_content
from services.uploads.sessions import refuses_writes
from storage.local import PUT_TEMP_PREFIX, FileSwapped, LocalStore, StagedFile, UnsafeKey
from storage.ownership import MountNotOwned
from storage.protocol import StoreUnavailable
from storage.signing import InvalidSignature

WRITE_BLOCK = 4 * 1024 * 1024
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024  # buffers one pwritev may take


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _signed(request: Request, method: str) -> tuple[LocalStore, str, dict[str, str]] | Response:
    """The local mount, key and signed parameters of a request, or the response refusing it."""
    store = request.app.state.graphlake.stores.get(request.path_params["mount"])
    if not isinstance(store, LocalStore):
        return _error(404, "no such local mount")
    key = request.path_params["key"]
    try:
        return store, key, store.signer.verify(method, store.name, key, request.query_params)
    except InvalidSignature as error:
        return _error(403, str(error))


class _TooLarge(Exception):
    pass


def _numbers(params: dict[str, str], *names: str) -> list[int] | Response:
    """The signed integer parameters, or 400: only a URL the server did not sign could hold anything else."""
    try:
        values = [int(params[name]) for name in names]
    except (KeyError, ValueError):
        return _error(400, f"the URL's {', '.join(names)} must be whole numbers")
    if any(value < 0 for value in values):
        return _error(400, f"the URL's {', '.join(names)} must not be negative")
    return values


async def _write_body(request: Request, fd: int, offset: int, limit: int, digest: Any = None) -> int:
    """Stream the body into `fd` from `offset`, in blocks of WRITE_BLOCK (one thread hop each,
    not one per network chunk), feeding `digest` on the way; returns the bytes written.
    _TooLarge past `limit`. A block is the network chunks as they came, written with one pwritev:
    joining them first would copy every byte once more."""
    block: list[bytes] = []
    size = 0
    position = offset
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _TooLarge
        if chunk:
            block.append(chunk)
            size += len(chunk)
        if size >= WRITE_BLOCK:
            await anyio.to_thread.run_sync(_write_chunks, fd, block, position, digest)
            position += size
            block, size = [], 0
    if block:
        await anyio.to_thread.run_sync(_write_chunks, fd, block, position, digest)
    return received


def _write_chunks(fd: int, chunks: list[bytes], position: int, digest: Any) -> None:
    if digest is not None:
        for chunk in chunks:
            digest.update(chunk)
    views = [memoryview(c) for c in chunks]
    while views:
        written = os.pwritev(fd, views[:_IOV_MAX], position)
        position += written
        while written:  # drop what was written; a short write leaves part of one chunk
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0], written = views[0][written:], 0


async def put_blob(request: Request) -> Response:
    signed = _signed(request, "PUT")
    if isinstance(signed, Response):
        return signed
    store, key, params = signed
    # Every file-system call of a PUT goes to a worker thread, a few at a time: on a network file
    # system whose server is away (a hard NFS mount) each waits until it is back, and on the event
    # loop every request of the process waited with it.
    try:
        await anyio.to_thread.run_sync(store.path, key)
    except UnsafeKey as error:
        return _error(400, str(error))
    if "upload" in params:  # a closed multipart upload's data file is gone: its parts get 404 there
        return await _put_part(request, store, params)
    # Whether its upload is still open is asked once, after the body and before the bytes are kept:
    # asked before the body as well, every file's upload cost the database one more read (2 of a
    # file's 2.1 finds, 0.3 ms of FerretDB's CPU each) to turn away early what only a client racing its
    # own completion or abort sends, and that body is bounded by the size the URL was signed for.
    numbers = _numbers(params, "size")
    if isinstance(numbers, Response):
        return numbers
    [limit] = numbers
    # Written under an unpredictable name beside the key, through no link (StagedFile), then linked
    # to the key: its temporary name swapped for a link meanwhile must not put what the link points
    # to under the key (os.link followed it, and the digest went onto that file too).
    try:
        staged, taken = await anyio.to_thread.run_sync(_staged, store, key)
    except UnsafeKey as error:
        return _error(400, str(error))
    except StoreUnavailable as error:  # a URL signed before another lake adopted the mount (storage/ownership.py)
        return _error(409 if isinstance(error, MountNotOwned) else 503, str(error))
    try:
        if taken:  # said before the body is read; the link below decides a race
            return _error(412, "an object is already stored for this upload; a URL cannot replace it")
        digest = hashlib.sha256()  # on the way in, so completion need not read the object back
        try:
            received = await _write_body(request, staged.file.fileno(), 0, limit, digest)
        except _TooLarge:
            return _error(413, f"the body is larger than the {limit} bytes this URL was signed for")
        if received != limit:
            return _error(400, f"the body must be the {limit} bytes declared, got {received}; nothing was stored")
        if (declared := params.get("digest")) is not None and not hmac.compare_digest(
                store.signer.digest_tag(digest.hexdigest()).encode(), declared.encode()):
            return _error(400, f"the body's SHA-256 is {digest.hexdigest()}, not the one declared; nothing was stored")
        if (refusal := await refuses_writes(key)) is not None:  # closed while the body was on its way
            return _error(409, refusal)
        try:
            await anyio.to_thread.run_sync(_kept, store, staged, digest.hexdigest())
        except FileExistsError:
            return _error(412, "an object is already stored for this upload; a URL cannot replace it")
        except FileSwapped as error:
            return _error(409, str(error))
    finally:
        await anyio.to_thread.run_sync(staged.close)
    return Response(status_code=200, headers={"ETag": f'"{staged.name}"'})


def _staged(store: LocalStore, key: str) -> tuple[StagedFile, bool]:
    """The new file a PUT's body goes into, and whether an object stands at the key already."""
    staged = store.stage(key, prefix=PUT_TEMP_PREFIX, mode=0o600)
    try:
        return staged, staged.taken()
    except BaseException:
        staged.close()
        raise


def _kept(store: LocalStore, staged: StagedFile, sha256: str) -> None:
    """The body's digest kept with the file, and the file put at its key: atomic and create-only, so a
    reader sees no object or all of it (FileExistsError if one is there)."""
    store.record_sha256(staged.file.fileno(), sha256)
    staged.store(replace=False)


async def _put_part(request: Request, store: LocalStore, params: dict[str, str]) -> Response:
    """A part goes straight to its offset in the upload's data file; its marker is written only
    once all of it is there, so a broken-off part counts as missing and is sent again."""
    numbers = _numbers(params, "part", "size", "offset")
    if isinstance(numbers, Response):
        return numbers
    number, size, offset = numbers
    try:
        marker = store.part_name(number)
        fd = await store.open_part_file(params["upload"])
    except (UnsafeKey, ValueError) as error:
        return _error(400, str(error))
    except FileNotFoundError:
        return _error(404, "the multipart upload is no longer open")
    except StoreUnavailable as error:
        return _error(409 if isinstance(error, MountNotOwned) else 503, str(error))
    try:
        received = await _write_body(request, fd, offset, size)
    except _TooLarge:
        return _error(413, f"the body is larger than the {size} bytes this URL was signed for")
    finally:
        await anyio.to_thread.run_sync(os.close, fd)
    if received != size:
        return _error(400, f"part {number} must be {size} bytes, got {received}")
    try:
        await anyio.to_thread.run_sync(store.mark_part, params["upload"], number, size)
    except UnsafeKey as error:  # the upload's folder swapped for a link since the part was written
        return _error(400, str(error))
    except FileNotFoundError:
        return _error(404, "the multipart upload is no longer open")
    return Response(status_code=200, headers={"ETag": f'"{marker}"'})


async def get_blob(request: Request) -> Response:
    signed = _signed(request, "GET")
    if isinstance(signed, Response):
        return signed
    store, key, params = signed
    try:
        file, stat_result = await open_stored(store, key)  # sent from this descriptor, never opened again by name
    except UnsafeKey as error:
        return _error(400, str(error))
    except FileNotFoundError:
        return _error(404, "the object does not exist")
    except StoreUnavailable as error:  # its file system gone (LocalStore.note_root): not a missing object
        return _error(503, str(error))
    # `digest`: a tag of the asset's SHA-256 (LocalStore.sign_get_now), signed with the URL; a URL
    # without one (a file whose digest is not read yet, a URL signed before) names the file by its identity.
    digest = params.get("digest")
    return ObjectFileResponse(file, filename=params.get("name") or key.rpartition("/")[2],
                              media_type=params.get("type") or None, stat_result=stat_result,
                              digest=f"sha256-tag:{digest}" if digest else None)


def blob_routes(prefix: str = "/blobs") -> list[Route]:
    return [
        Route(prefix + "/{mount}/{key:path}", put_blob, methods=["PUT"]),
        Route(prefix + "/{mount}/{key:path}", get_blob, methods=["GET", "HEAD"], middleware=user_content()),
    ]
