"""Stats asked early: where this process's single-object uploads went, so a completion asks the store while it reads the session."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from bson import ObjectId

from documents.upload import UploadSession
from storage import ObjectStore
from storage.protocol import ObjectInfo


class StoredHere:
    """Where the single-object uploads this process started put their objects: a completion asks
    the store about the object (a HEAD, on S3: a round trip of its own) while it claims and reads
    the session, instead of after. Only a hint, used when the session it reads agrees; a miss (a
    session another process started) asks after the read, as before."""

    def __init__(self, limit: int = 10_000) -> None:
        self._where: OrderedDict[ObjectId, tuple[str, str]] = OrderedDict()
        self._limit = limit

    def remember(self, session: UploadSession) -> None:
        if session.multipart_id is None and not session.direct:  # a direct write's stat is local anyway
            self._where[session.id] = (session.mount, session.key)
            while len(self._where) > self._limit:
                self._where.popitem(last=False)

    def ask_early(self, session_ids: Sequence[ObjectId], stores: dict[str, ObjectStore]) -> dict[ObjectId, Early]:
        """A stat started now for each session remembered here (a hint is used once)."""
        early = {}
        for session_id in session_ids:
            mount, key = self._where.pop(session_id, (None, None))
            if mount in stores:
                early[session_id] = Early(mount, key, asyncio.ensure_future(stores[mount].stat(key)))
        return early


@dataclass(frozen=True)
class Early:
    """A stat begun before its session was read."""

    mount: str
    key: str
    stat: asyncio.Future[ObjectInfo | None]

    def serves(self, session: UploadSession) -> bool:
        return session.multipart_id is None and (session.mount, session.key) == (self.mount, self.key)

    def drop(self) -> None:
        if self.stat.done():
            if not self.stat.cancelled():
                self.stat.exception()  # retrieved, so an unused failure is not logged as unhandled
        else:
            self.stat.cancel()


stored_here = StoredHere()
