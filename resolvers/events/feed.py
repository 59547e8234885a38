"""Live events across every server process: a capped collection, one tail per process, fanned out
in memory to that process's subscribers.

Writers insert each event into `events` and a copy into the capped `event_feed`. Every process
keeps one tailable, awaitData cursor on the feed and publishes what arrives to its Broadcast;
subscriptions filter from there. Capped collections and tailable cursors work on FerretDB and
MongoDB alike and need no replica set (unlike change streams).

The cursor is only the fast path, not the record of position: FerretDB v1.24 can skip documents
inserted while a getMore waits. So every process stamps its feed documents with its writer id and
a gapless sequence number (`w`, `s`), and the tail tracks the last number seen per writer. A gap
is filled by querying exactly the missing numbers before delivering on, and every idle timeout
asks each writer for anything beyond its last number. Each event is so delivered once, in its
writer's order. (FerretDB also closes a tailable cursor whose first batch is not full, hence the
opening `batchSize: 1`.)
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, PyMongoError

from documents.clock import utcnow
from documents.event import FEED_COLLECTION, Event
from graphlake.broadcast import Broadcast

log = logging.getLogger("graphlake.events.feed")

# A writer first seen after the tail started may have written a little earlier: look back this far.
NEW_WRITER_LOOKBACK = timedelta(seconds=10)
GET_MORE_BATCH = 1000
AWAIT_MS = 1000


async def ensure_feed(db: AsyncDatabase, size_bytes: int) -> None:
    """Create the capped feed once (with a first document, so a tail always has one to start at)."""
    try:
        await db.create_collection(FEED_COLLECTION, capped=True, size=size_bytes)
        await db[FEED_COLLECTION].insert_one({"at": utcnow(), "sentinel": True})
    except CollectionInvalid:
        pass  # exists already (another process, or an earlier start)
    except PyMongoError as error:
        if "already exists" not in str(error):
            raise
    await db[FEED_COLLECTION].create_indexes([IndexModel([("w", ASCENDING), ("s", ASCENDING)], name="writer_seq")])


CHUNK_EVENTS = 1000  # events per feed document: one document per publish keeps the feed short to scan


class FeedWriter:
    """This process's writes to the feed: one document per publish (chunked), numbered gaplessly."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.writer = str(ObjectId())
        self._seq = 0
        self._lock = asyncio.Lock()  # numbers must be inserted in the order they were given

    async def publish(self, raw_events: list[dict[str, Any]]) -> None:
        """Send stored events (raw documents) to every process's tail, in this order."""
        chunks = [raw_events[i:i + CHUNK_EVENTS] for i in range(0, len(raw_events), CHUNK_EVENTS)]
        async with self._lock:
            at = utcnow()
            first = self._seq + 1
            docs = [{"at": at, "w": self.writer, "s": first + i, "events": chunk} for i, chunk in enumerate(chunks)]
            await self.db[FEED_COLLECTION].insert_many(docs, ordered=True)
            self._seq += len(docs)


class FeedTail:
    """This process's one reader of the feed."""

    def __init__(self, db: AsyncDatabase, broadcast: Broadcast) -> None:
        self.db = db
        self.broadcast = broadcast
        self.last: dict[str, int] = {}  # writer -> last sequence number delivered
        self.started = utcnow()

    async def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        return await self.db.command(command, codec_options=self.db.codec_options)  # tz-aware dates

    async def _find(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.db[FEED_COLLECTION].find(query, sort=[("s", ASCENDING)]).to_list()

    def _publish(self, doc: dict[str, Any]) -> None:
        self.last[doc["w"]] = doc["s"]
        for event in doc["events"]:
            self.broadcast.publish(Event.model_validate(event))

    async def _take(self, doc: dict[str, Any]) -> None:
        """Deliver a document from the cursor, first filling any gap before it in its writer's numbers."""
        writer, seq = doc.get("w"), doc.get("s")
        if writer is None:
            return  # the sentinel
        last = self.last.get(writer)
        if last is None:
            if doc["at"] < self.started:
                self.last[writer] = seq  # history from before this process started: not news
                return
            # A writer new to us: what it wrote since shortly before we started is news too.
            missed = await self._find({"w": writer, "s": {"$lt": seq},
                                       "at": {"$gte": self.started - NEW_WRITER_LOOKBACK}})
            for earlier in missed:
                self._publish(earlier)
        elif seq <= last:
            return  # delivered already
        elif seq > last + 1:
            missing = await self._find({"w": writer, "s": {"$gt": last, "$lt": seq}})
            if len(missing) < seq - last - 1:
                log.warning("event feed: %d document(s) of writer %s were overwritten before this process read them; "
                            "their events are in the log but were not streamed (raise GRAPHLAKE_EVENT_FEED_BYTES)",
                            seq - last - 1 - len(missing), writer)
            for earlier in missing:
                self._publish(earlier)
        self._publish(doc)

    async def _catch_up(self) -> None:
        """Anything past each known writer's last number (what the cursor may have skipped)."""
        if not self.last:
            return
        for doc in await self._find({"$or": [{"w": w, "s": {"$gt": s}} for w, s in self.last.items()]}):
            if doc["s"] == self.last[doc["w"]] + 1:
                self._publish(doc)

    async def run(self) -> None:
        """Tail until cancelled, reopening (after a short pause) whenever the cursor dies."""
        while True:
            try:
                newest = await self.db[FEED_COLLECTION].find_one({}, sort=[("$natural", -1)])
                since = newest["at"] if newest else utcnow()
                answer = await self._command({"find": FEED_COLLECTION, "filter": {"at": {"$gte": since}},
                                              "tailable": True, "awaitData": True, "batchSize": 1})
                cursor_id = answer["cursor"]["id"]
                for doc in answer["cursor"]["firstBatch"]:
                    await self._take(doc)
                await self._catch_up()
                while cursor_id:
                    answer = await self._command({"getMore": cursor_id, "collection": FEED_COLLECTION,
                                                  "batchSize": GET_MORE_BATCH, "maxTimeMS": AWAIT_MS})
                    batch = answer["cursor"]["nextBatch"]
                    for doc in batch:
                        await self._take(doc)
                    if not batch:
                        await self._catch_up()
                    await asyncio.sleep(0)  # let subscribers drain their queues between batches
                    cursor_id = answer["cursor"]["id"]
                log.debug("event feed cursor closed by the server; reopening")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event feed tail failed; reopening")
            await asyncio.sleep(0.1)
