"""The response that sends a local mount's stored file (GET /assets/{id}/content, a signed GET of /blobs)."""

from __future__ import annotations

import os
from typing import BinaryIO

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from storage.disposition import disposition


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

    def __init__(self, file: BinaryIO, *, filename: str, media_type: str | None,
                 content_disposition_type: str = "attachment") -> None:
        self.file = file
        fd = file.fileno()
        super().__init__(f"/dev/fd/{fd}", filename=filename, media_type=media_type, stat_result=os.fstat(fd),
                         content_disposition_type=content_disposition_type)
        # Starlette's names an escaped file by `filename*` alone, which curl -OJ does not read.
        self.headers["content-disposition"] = disposition(filename, content_disposition_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
