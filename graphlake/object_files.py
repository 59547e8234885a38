"""The response that sends a local mount's stored file (GET /assets/{id}/content, a signed GET of /blobs),
and the two rules of RFC 9110 that Starlette's FileResponse leaves out or bends: a conditional GET
(If-None-Match, If-Modified-Since) answered 304, and a Range header read as section 14 says."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import BinaryIO

import anyio
from starlette.datastructures import Headers
from starlette.responses import FileResponse, RangeNotSatisfiable, Response
from starlette.types import Receive, Scope, Send

from services.checks import valid_media_type
from storage import LocalStore
from storage.disposition import disposition

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


async def open_stored(store: LocalStore, key: str) -> tuple[BinaryIO, os.stat_result]:
    """`key`'s file in a local mount (LocalStore.open_object) and its fstat, both in a worker thread:
    on a network file system whose server is away (a hard NFS mount) an open or a stat waits until it
    is back, which on the event loop stopped every request of the process, /healthz and /readyz too."""
    def opened() -> tuple[BinaryIO, os.stat_result]:
        file = store.open_object(key)
        try:
            return file, os.fstat(file.fileno())
        except BaseException:
            file.close()
            raise
    return await anyio.to_thread.run_sync(opened)


def content_etag(basis: str, headers: Mapping[str, str]) -> str:
    """The strong ETag of one representation: the bytes (`basis`: their SHA-256, or what else names
    them) together with the headers the asset's record decides, its media type and Content-Disposition.
    Starlette's (an MD5 of the file's mtime and size) named neither: an alias moved to another file of
    that size and mtime, or an asset renamed, was answered 304, and the client kept the other bytes or
    the old name. Short: 128 bits tell representations apart as well as 256 do."""
    parts = (basis, headers.get("content-type", ""), headers.get("content-disposition", ""))
    return '"' + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] + '"'


def file_identity(stat_result: os.stat_result) -> str:
    """An ETag's basis for a file whose SHA-256 the server does not know (or cannot trust to describe it
    now): which file it is (device, inode) and its change time and size. Without the inode, two files
    of one size and mtime (copies made with `cp -p`) were one to a cache."""
    return f"file:{stat_result.st_dev}:{stat_result.st_ino}:{stat_result.st_mtime_ns}:{stat_result.st_size}"


def not_modified(request: Headers, etag: str, last_modified: str | None = None) -> bool:
    """Whether a GET or HEAD with these headers is answered 304 (RFC 9110 13.1.2, 13.1.3): If-None-Match
    compared weakly with `etag`; If-Modified-Since only when there is no If-None-Match."""
    if (if_none_match := request.get("if-none-match")) is not None:
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "*" in tags or etag.removeprefix("W/") in [tag.removeprefix("W/") for tag in tags]
    if last_modified is None or (if_modified_since := request.get("if-modified-since")) is None:
        return False
    try:
        return parsedate_to_datetime(if_modified_since) >= parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):  # not an HTTP date: ignored, as the RFC says
        return False


def not_modified_response(etag: str, last_modified: str | None = None, **headers: str) -> Response:
    """The 304: no body, the validators a cache refreshes its copy with."""
    validators = {"ETag": etag, **({"Last-Modified": last_modified} if last_modified else {}), **headers}
    return Response(status_code=304, headers=validators)


class ObjectFileResponse(FileResponse):
    """Starlette's FileResponse (Range, ETag, Last-Modified, HEAD) of a file the route has opened
    already (LocalStore.open_object), reading and sending 1 MiB at a time instead of 64 KiB, for up to
    LARGE_SENDS downloads at once in a process; any more send 64 KiB at a time, as before.

    The file, not its path in the mount: a writer sharing the mount could swap that name for a link
    between the route's check and FileResponse's own stat and open (47 of 400 downloads so raced
    served a file from outside the mount). Its headers come from the descriptor's fstat, and the
    path FileResponse opens is the descriptor's own (/dev/fd/N: Linux opens the very file held
    open, macOS duplicates the descriptor), which no name in the mount can change. The file stays
    open until the response is sent.

    Why 1 MiB: each chunk is a read in a worker thread and a send through the event loop. bench/peer.py's
    fetch of 100 files of 1 MiB, 4 at a time, against MADSci's data manager (whose FastAPI
    FileResponse sends 64 KiB at a time), runs of 8 interleaved rounds: 1.04-1.11x its time with
    64 KiB chunks (3 runs), 1.05-1.18x with 256 KiB (2), 0.76-0.92x with 1 MiB (5). A download to a
    slow client holds about two chunks (the one read next, and what the socket has not taken yet):
    2 MiB against 128 KiB, so the large ones are counted: at most LARGE_SENDS x 2 MiB, however many
    clients download at once."""

    chunk_size = 1 << 20
    LARGE_SENDS = 32
    _large_sending = 0  # this process's downloads sending large chunks now (changed on the event loop only)

    def __init__(self, file: BinaryIO, *, filename: str, media_type: str | None, digest: str | None = None,
                 content_disposition_type: str = "attachment", stat_result: os.stat_result | None = None,
                 last_modified: float | None = None) -> None:
        """`digest`: what names the bytes for the ETag (content_etag), the asset's SHA-256 or a tag of it;
        None where the route knows none, and the file's identity (file_identity) names them instead.
        `last_modified`: a Unix time later than the file's mtime at which what the response says of
        it changed (the asset's record), sent as Last-Modified instead."""
        self.file = file
        fd = file.fileno()
        if media_type is not None and not valid_media_type(media_type):
            # Stored before media types were checked (or read from an ingested object's metadata): a line
            # break in it would end the header, and a server refuses to send such a header at all.
            media_type = "application/octet-stream"
        stat_result = stat_result or os.fstat(fd)
        super().__init__(f"/dev/fd/{fd}", filename=filename, media_type=media_type, stat_result=stat_result,
                         content_disposition_type=content_disposition_type)
        # Starlette's names an escaped file by `filename*` alone, which curl -OJ does not read.
        self.headers["content-disposition"] = disposition(filename, content_disposition_type)
        self.headers["etag"] = content_etag(digest or file_identity(stat_result), self.headers)
        if last_modified is not None and last_modified > stat_result.st_mtime:
            self.headers["last-modified"] = formatdate(last_modified, usegmt=True)

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        """The ranges to send, [] for the whole file (200), or RangeNotSatisfiable (416 naming the size).

        Starlette's answered 400 to a Range of another unit (`items=0-1`) or one it could not read
        (`bytes=5-2`, `bytes=abc`), which RFC 9110 does not allow, and 416 to `bytes=0-9,500-` of a
        100-byte file, which it calls satisfiable. Here, as section 14 says: another unit is ignored;
        an invalid range-spec rejects the header (416); the range-specs past the end are dropped, and
        416 only when none is left. A suffix of an empty file (`bytes=-5`) is satisfiable too, by the
        whole of it: no Content-Range can name a part of nothing, so it is sent whole (200)."""
        unit, equals, specifier = http_range.partition("=")
        if not equals or unit.strip().lower() != "bytes":
            return []
        specs = [part.strip() for part in specifier.split(",")]
        specs = [spec for spec in specs if spec]  # a list's empty elements count for nothing (RFC 9110 5.6.1)
        if len(specs) > cls.max_ranges:
            return []  # as Starlette: a header of that many ranges is ignored
        ranges: list[tuple[int, int]] = []
        suffix_of_nothing = False
        for spec in specs:
            match = _RANGE_SPEC.fullmatch(spec)
            if match is None or not any(match.groups()) or (
                    match[1] and match[2] and int(match[2]) < int(match[1])):
                raise RangeNotSatisfiable(file_size)  # invalid: rejected, as 15.5.17 allows
            first, last = match.groups()
            if not first:  # a suffix: the last `last` bytes, satisfiable unless it asks for none
                length = int(last)
                if length and file_size:
                    ranges.append((max(file_size - length, 0), file_size))
                suffix_of_nothing |= length > 0 and not file_size
            elif int(first) < file_size:
                ranges.append((int(first), min(int(last) + 1, file_size) if last else file_size))
        if not ranges:
            if suffix_of_nothing:
                return []
            raise RangeNotSatisfiable(file_size)
        ranges.sort()
        merged = [ranges[0]]
        for start, end in ranges[1:]:  # overlapping or touching ranges are sent as one
            if start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in ("GET", "HEAD") and not_modified(Headers(scope=scope), self.headers["etag"],
                                                               self.headers.get("last-modified")):
            # The client's copy is this file: Starlette's FileResponse sent it all again each time.
            try:
                return await not_modified_response(self.headers["etag"], self.headers.get("last-modified"))(
                    scope, receive, send)
            finally:
                self.file.close()
        large = ObjectFileResponse._large_sending < self.LARGE_SENDS
        if large:
            ObjectFileResponse._large_sending += 1
        else:
            self.chunk_size = FileResponse.chunk_size
        # A server that offers `http.response.pathsend` opens the path itself after `send` returns,
        # by when the descriptor is closed (or another file's): the bytes go through here instead.
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:
            scope = {**scope, "extensions": {k: v for k, v in extensions.items() if k != "http.response.pathsend"}}
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.file.close()
            if large:
                ObjectFileResponse._large_sending -= 1
