"""Live events across every server process: a capped collection, one tail per process, fanned out
in memory to that process's subscribers.

Writers insert each event into `events` and a copy into the capped `event_feed`. Every process
keeps one tailable, awaitData cursor on the feed and publishes what arrives to its Broadcast;
subscriptions filter from there. Capped collections and tailable cursors work the same on FerretDB
and MongoDB, need no replica set (unlike change streams), and survive restarts of any one process.

FerretDB v1.24 closes a tailable cursor whose first batch is not full, so the tail opens with
`batchSize: 1` and a filter that matches at least the newest feed document, then reads with
getMore in large batches. Each reopen starts a little before the last document seen, and a window
of recent ids drops the repeats, so nothing is lost or delivered twice when a cursor dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, PyMongoError

from documents.clock import utcnow
from documents.event import FEED_COLLECTION, Event
from graphlake.broadcast import Broadcast

log = logging.getLogger("graphlake.events.feed")

REOPEN_OVERLAP = timedelta(seconds=5)
SEEN_WINDOW = 100_000
GET_MORE_BATCH = 1000
AWAIT_MS = 1000


async def ensure_feed(db: AsyncDatabase, size_bytes: int) -> None:
    """Create the capped feed once, with a first document so a tail always has one to start at."""
    try:
        await db.create_collection(FEED_COLLECTION, capped=True, size=size_bytes)
    except CollectionInvalid:
        return  # exists already (another process, or an earlier start)
    except PyMongoError as error:
        if "already exists" not in str(error):
            raise
        return
    await db[FEED_COLLECTION].insert_one({"at": utcnow(), "sentinel": True})


async def publish(db: AsyncDatabase, raw_events: list[dict[str, Any]]) -> None:
    """Send stored events (raw documents) to every process's tail, in this order."""
    at = utcnow()
    await db[FEED_COLLECTION].insert_many([{"at": at, "event": event} for event in raw_events], ordered=True)


class FeedTail:
    """This process's one reader of the feed."""

    def __init__(self, db: AsyncDatabase, broadcast: Broadcast) -> None:
        self.db = db
        self.broadcast = broadcast
        self._seen: deque = deque(maxlen=SEEN_WINDOW)
        self._seen_set: set = set()
        self._last_at = None

    def _deliver(self, doc: dict[str, Any], history_until: Any = None) -> None:
        """Publish a feed document once; documents up to `history_until` are only marked as seen."""
        self._last_at = doc["at"]
        if doc["_id"] in self._seen_set:
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(doc["_id"])
        self._seen_set.add(doc["_id"])
        if "event" in doc and (history_until is None or doc["at"] > history_until):
            self.broadcast.publish(Event.model_validate(doc["event"]))

    async def _start_at(self) -> Any:
        if self._last_at is not None:
            return self._last_at - REOPEN_OVERLAP
        newest = await self.db[FEED_COLLECTION].find_one({}, sort=[("$natural", -1)])
        return newest["at"] if newest else utcnow()

    async def run(self) -> None:
        """Tail until cancelled, reopening (with a short pause) whenever the cursor dies."""
        # At process start, what the feed already holds is history, not news.
        history_until = None if self._last_at is not None else await self._start_at()
        while True:
            try:
                since = await self._start_at()
                answer = await self.db.command({"find": FEED_COLLECTION, "filter": {"at": {"$gte": since}},
                                                "tailable": True, "awaitData": True, "batchSize": 1},
                                               codec_options=self.db.codec_options)
                cursor_id = answer["cursor"]["id"]
                for doc in answer["cursor"]["firstBatch"]:
                    self._deliver(doc, history_until)
                while cursor_id:
                    answer = await self.db.command({"getMore": cursor_id, "collection": FEED_COLLECTION,
                                                    "batchSize": GET_MORE_BATCH, "maxTimeMS": AWAIT_MS},
                                                   codec_options=self.db.codec_options)  # tz-aware dates
                    for doc in answer["cursor"]["nextBatch"]:
                        self._deliver(doc, history_until)
                    cursor_id = answer["cursor"]["id"]
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event feed tail failed; reopening")
            await asyncio.sleep(0.1)
