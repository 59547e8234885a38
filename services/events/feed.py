"""Live events across every server process: a capped collection read by keyed polling.

Writers store each event in `events`. A process's own publishes reach its own subscribers
directly, as soon as they are stored. For the other processes, each publish (a batch) is written
once more as one document of the capped `event_feed`, keyed `<writer>:<sequence>`: every process
numbers its publishes gaplessly, in insertion order, and records its latest number and whether it
has subscribers in `feed_writers` (its heartbeat). Every process runs one reader that asks for each
other writer's next number by `_id` and fans what it finds out in memory to its subscribers. So
each event reaches each process once, in its writer's order; the feed stays bounded (capped), and
a process that fell further behind than the feed holds learns so from the writer's number and logs
which events it could not stream (they are still in the log).

The feed copy is written after the write, in the background (one task per process, each round's
stored events together, a round at most every ASK_EVERY_SECONDS), and only while another live
process has subscribers: a single server (the embedded default), or a cluster nobody is watching,
stores each event once. A process announces its first subscriber at once (a heartbeat as it
arrives), so a new subscription elsewhere starts receiving within the few milliseconds that write
takes, or the rest of a round's wait.

Why not a tailable cursor, the usual carrier: FerretDB v1.24 rescans the whole capped collection
on every getMore (cost grows with the feed, seconds once it is full), can skip documents inserted
while a getMore waits, and closes a tailable cursor whose first batch is not full. An `_id` lookup
is a query FerretDB answers from an index (in our build: scripts/ferretdb), so keyed
polling costs the same whatever the feed holds, and works unchanged on MongoDB (where a change
stream would need a replica set).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, PyMongoError

from documents.clock import utcnow
from documents.event import AUDIT, FEED_COLLECTION, lake_mark, new_event_id
from documents.event import Event as EventDocument
from documents.sparse import stored
from migrations.liveness import this_process
from migrations.occupancy import ALIVE_FOR, SERVERS_COLLECTION
from services.availability import no_time_limit
from services.broadcast import Broadcast
from services.cancellation import raise_if_cancelled
from services.pauses import event_within

if TYPE_CHECKING:
    from services.events.journal import AuditJournal

log = logging.getLogger("graphlake.events.feed")

# The heartbeats double as the record of which servers are alive, which a migration or a restore
# reads before it changes the database under them (migrations/occupancy.py): that module owns both.
WRITERS_COLLECTION = SERVERS_COLLECTION
CHUNK_EVENTS = 1000  # events per feed document
POLL_SECONDS = 0.05  # between rounds when there was nothing new
WRITERS_REFRESH_SECONDS = 1.0
RETRY_SECONDS = 1.0  # between the reader's attempts while the database fails it
STILL_FAILING_EVERY = 60.0  # how often a failure that lasts is said again in the log
CLOSE_WAIT_SECONDS = 30.0  # for the writes in flight as the server stops
GROUP_EVENTS = 1000  # events of waiting writes inserted together at most (one write bigger than this goes alone)
# At most one "does another process listen?" per this long, per process: a stream of writes (a client
# storing values one at a time) shares each question instead of asking once per write. The tail reads
# at POLL_SECONDS, so a copy published sooner would mostly wait there anyway.
ASK_EVERY_SECONDS = POLL_SECONDS
# A writer whose process has not said it is alive for this long is polled only while it has unread
# numbers (ALIVE_FOR, from migrations/occupancy.py).


async def ensure_feed(db: AsyncDatabase, size_bytes: int) -> None:
    """Create the capped feed once (other processes, or an earlier start, may have)."""
    try:
        await db.create_collection(FEED_COLLECTION, capped=True, size=size_bytes)
    except CollectionInvalid:
        pass
    except PyMongoError as error:
        if "already exists" not in str(error):
            raise


@dataclass
class _Waiting:
    """A write waiting for the insert in flight to end (FeedWriter.write), then stored with the others."""

    events: list[EventDocument]
    stored: asyncio.Future[None]

    def done(self, error: BaseException | None = None) -> None:
        if self.stored.done():
            return
        if error is None:
            self.stored.set_result(None)
        else:
            self.stored.set_exception(error)


class _Batch:
    """Events held back by FeedWriter.together() until its block ends."""

    def __init__(self) -> None:
        self.events: list[EventDocument] = []
        self.stored: list[Callable[[], None]] = []  # to run once the events are stored
        self.open = True


# Set inside a FeedWriter.together() block; tasks started there see it too (their appends join the
# batch while it is open, and write at once after: an alert's delivery failure can come later).
_batch: ContextVar[_Batch | None] = ContextVar("graphlake_event_batch", default=None)


def _cancelled() -> RuntimeError:
    """What a waiting write learns when its group's insert was cancelled (the server stopping)."""
    return RuntimeError("the event log write was cancelled")


def _call(callbacks: Iterable[Callable[[], None]]) -> None:
    """Run what waited for a write to be stored; one failing is logged, not the write's failure."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("event log: a callback after a stored write failed")


class FeedWriter:
    """This process's publishes: one numbered feed document each (chunked), in insertion order."""

    def __init__(self, db: AsyncDatabase, broadcast: Broadcast | None = None) -> None:
        self.db = db
        self.broadcast = broadcast  # this process's subscribers, served without the round trip
        self.writer = str(ObjectId())
        self._seq = 0  # the last number published; only _publish_stored changes it
        self._unpublished: list[dict[str, Any]] = []  # stored events, in order, for the feed
        self._publisher: asyncio.Task | None = None  # _publish_stored, while there is any
        self._asked_at = float("-inf")  # the loop's time of the last question (_publish_stored)
        # Group commit (write): set while no insert is in flight; the writes waiting for the one that is.
        self._idle = asyncio.Event()
        self._idle.set()
        self._waiting: list[_Waiting] = []
        self._group: asyncio.Task | None = None  # held: the loop keeps only a weak reference to a task
        # Where a mutation's AUDIT event goes when it is all the mutation logs (services/events/journal.py);
        # None: stored before the answer, as every other event.
        self.ahead: AuditJournal | None = None

    async def write_numbered(self, events: list[EventDocument]) -> None:
        """`write` for events whose IDs were made just before and recorded (the audit journal's:
        services/events/journal.py): they keep them, and go in the order they were made."""
        await self.write(events, now=True, numbered=True)

    async def write(self, events: list[EventDocument], then: Sequence[Callable[[], None]] = (), *,
                    now: bool = False, numbered: bool = False) -> None:
        """Store events in the log (inside together(): when it ends, unless `now`), hand them to this
        process's subscribers, and queue their copy for the other processes (sent in the background),
        then call `then` (an alert, say): only once they are stored, and even if the caller stopped
        waiting for them meanwhile (its request cancelled while its events wait in a group).

        Returns once they are stored. Writes that arrive while an insert is in flight wait for it and
        then go in one insert together (group commit): sixteen clients logging one event at a time
        made half the inserts, and FerretDB spends about 40% less CPU per event in an insert of
        eight than alone. Each write still learns its own outcome, as if it had been inserted alone,
        and is stored whole or not at all: a write the database refuses part of (a key another
        event holds) is taken out again, before anyone is told of it, but for its keyed events,
        which stay (and are news): their caller finds them by key and counts them as its own, or
        takes them out itself (services/events/keys.py). `now`: a caller that must learn that
        outcome before it answers (keyed events).

        Each event gets its ID here, as it takes its place in the order of inserts (unless
        `numbered`): made earlier (before a keyed batch's lookup, or a mutation's other work), an
        event went in after others made later, and a subscriber resuming by ID from one of those
        missed it. So an ID is read only once its write has returned (when not held in a block).
        """
        batch = _batch.get()
        if batch is not None and batch.open and not now:  # stored as the block ends; `then` after that, as for its own events
            batch.events.extend(events)
            batch.stored.extend(then)
            return
        if not events:
            _call(then)
            return
        if not numbered:  # no await from here until the events are queued or their insert has begun
            for event in events:
                event.id = new_event_id()
        if not self._idle.is_set():
            waiting = _Waiting(events, asyncio.get_running_loop().create_future())

            def ended(stored: asyncio.Future[None]) -> None:
                # Reading the outcome marks it seen even when the writer stopped waiting (no "never retrieved" log).
                if not stored.cancelled() and stored.exception() is None:
                    _call(then)

            waiting.stored.add_done_callback(ended)
            self._waiting.append(waiting)
            # Shielded: a writer that stops waiting (its request cancelled) leaves its events to be stored.
            await asyncio.shield(waiting.stored)
            return
        self._idle.clear()  # the common case, nothing in flight: inserted here, in the request's own context
        try:
            await self._insert(events, [len(events)])
        finally:
            self._insert_waiting()
        _call(then)

    @property
    def inserting(self) -> bool:
        """Whether an insert of events is in flight (later writes then wait and go in the next one)."""
        return not self._idle.is_set()

    async def _insert(self, events: list[EventDocument], writes: Sequence[int]) -> None:
        """Insert the events of one or more writes (`writes`: how many events each has, in order).
        Ordered: a refused event stops the insert. The writes wholly before it are stored, and news;
        what the write holding it had stored before it is deleted again, never delivered, so that
        write fails whole, as if it had been inserted alone; but its keyed events stay, and are news:
        their caller adopts them (keys.write_keyed), since another sender of the same keys may
        already have been answered with their ids."""
        for event in events:  # before the live delivery too: a subscription's origin filter reads it
            event.by_lake = lake_mark(event.event_type)
        raw = [stored(e) for e in events]
        collection = EventDocument.get_pymongo_collection()
        try:
            await collection.insert_many(raw, ordered=True)
        except BulkWriteError as error:
            inserted = error.details.get("nInserted", 0)
            kept = 0
            for size in writes:
                if kept + size > inserted:
                    break
                kept += size
            keyed = [i for i in range(kept, inserted) if events[i].key is not None]
            self._stored([*events[:kept], *(events[i] for i in keyed)], [*raw[:kept], *(raw[i] for i in keyed)])
            error.kept = [events[i] for i in keyed]  # type: ignore[attr-defined]  # for their caller (keys.write_keyed)
            unkeyed = [events[i].id for i in range(kept, inserted) if events[i].key is None]
            if unkeyed:
                try:
                    with no_time_limit():  # an undo cut short would leave half a write
                        await collection.delete_many({"_id": {"$in": unkeyed}})
                except Exception:
                    log.exception("event log: %d event(s) of a refused write could not be taken out again",
                                  len(unkeyed))
            raise
        self._stored(events, raw)

    def stored_after_all(self, events: list[EventDocument]) -> None:
        """Events an insert that failed (a lost answer, a time limit) stored all the same, as their
        writer found: news like any stored event (keys.write_keyed)."""
        self._stored(events, [stored(e) for e in events])

    def _stored(self, events: list[EventDocument], raw: list[dict[str, Any]]) -> None:
        """Stored: no await from here to the queues (the fan-out's and the feed's), so this process's
        subscribers and the feed see concurrent writes in the same order."""
        if not events:
            return
        if self.broadcast is not None:
            self.broadcast.publish_all(events)  # each presented once, shared by all
        self._unpublished.extend(raw)
        if self._publisher is None or self._publisher.done():
            # A context of its own: not the request's time limit, tracing span or event batch.
            self._publisher = asyncio.get_running_loop().create_task(
                self._publish_stored(), name="event feed publisher", context=contextvars.Context())

    def _insert_waiting(self) -> None:
        """After an insert: the writes that waited for it go in the next one (up to GROUP_EVENTS events,
        so a group takes about as long as one big write), or nothing is in flight."""
        if not self._waiting:
            self._idle.set()
            return
        size, count = 0, 0
        for waiting in self._waiting:
            if count and size + len(waiting.events) > GROUP_EVENTS:
                break
            size, count = size + len(waiting.events), count + 1
        group, self._waiting = self._waiting[:count], self._waiting[count:]
        # A context of its own, as the publisher's: not one writer's time limit, background mark or trace,
        # which would then apply to the others' events too. The client's own time limit applies.
        self._group = asyncio.get_running_loop().create_task(
            self._insert_group(group), name="event log group insert", context=contextvars.Context())
        self._group.add_done_callback(lambda task: task.cancelled() and self._group_ended(group))

    def _group_ended(self, group: list[_Waiting]) -> None:
        """A group's task cancelled before its first step (the server stopping) never ran the code that
        answers its writes and starts the next group: both are done here, so nothing waits forever."""
        left = [waiting for waiting in group if not waiting.stored.done()]
        if not left:
            return  # cancelled while inserting: _insert_group answered every write and moved on
        for waiting in left:
            waiting.done(_cancelled())
        self._insert_waiting()

    async def _insert_group(self, group: list[_Waiting]) -> None:
        events = [event for waiting in group for event in waiting.events]
        try:
            await self._insert(events, [len(waiting.events) for waiting in group])
        except BulkWriteError as error:
            # Ordered: what comes before the failing event is stored, the rest was not tried. The writes
            # wholly before it succeeded, the one holding it fails as it would have alone (_insert took
            # out what of it was stored), and the later ones are tried again in the next insert.
            stored = error.details.get("nInserted", 0)
            for index, waiting in enumerate(group):
                stored -= len(waiting.events)
                if stored >= 0:
                    waiting.done()
                else:
                    waiting.done(error)
                    self._waiting[:0] = group[index + 1:]
                    break
        except BaseException as error:  # nothing known to be stored: each write fails as it would have alone
            for waiting in group:
                waiting.done(error if isinstance(error, Exception) else _cancelled())
            if not isinstance(error, Exception):
                raise
        else:
            for waiting in group:
                waiting.done()
        finally:
            self._insert_waiting()

    async def settled(self) -> None:
        """Return once this process's journaled AUDIT events are in the log: reads that show events
        wait for it, so a mutation's audit entry is there as soon as it answered."""
        if self.ahead is not None:
            await self.ahead.drained()

    async def close(self) -> None:
        """Wait for the events still being stored, and the copies still being published (as the server stops)."""
        if self.ahead is not None:
            await self.ahead.close()
        try:
            await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("event log: writes still in flight after %s s as the server stops", CLOSE_WAIT_SECONDS)
        if self._publisher is not None:
            await asyncio.gather(self._publisher, return_exceptions=True)

    async def _publish_stored(self) -> None:
        """Copy the stored events to the feed while another process listens, oldest first.

        After the write, not within it: a mutation answers once its events are in the log, one
        round trip sooner, and every write stored meanwhile shares the next round's question and
        insert. Whether anyone listens is asked only after all the events taken were stored: a
        process may announce a resuming subscriber while an insert runs, and read the log before the
        insert shows there (resolvers/events/queries.py); either it read them, or it is seen
        listening now. A round starts at most once per ASK_EVERY_SECONDS (the first at once), so
        a stream of writes costs one question per round rather than one per write; the rule above
        holds, since each round asks after taking what it publishes. A failure here loses no event
        (they are in the log, for any subscriber that resumes) but may cost another process's live
        subscribers some, so it is logged.
        """
        loop = asyncio.get_running_loop()
        while self._unpublished:
            wait = self._asked_at + ASK_EVERY_SECONDS - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # what is stored meanwhile joins this round
            raw, self._unpublished = self._unpublished, []
            self._asked_at = loop.time()
            try:
                if await self._others_listening():
                    first = self._seq + 1
                    chunks = [raw[i:i + CHUNK_EVENTS] for i in range(0, len(raw), CHUNK_EVENTS)]
                    docs = [{"_id": f"{self.writer}:{first + i}", "events": chunk} for i, chunk in enumerate(chunks)]
                    await self.db[FEED_COLLECTION].insert_many(docs, ordered=True)
                    self._seq += len(docs)
            except Exception:
                log.exception("event feed: %d stored event(s) were not copied to the feed; other processes' live "
                              "subscribers miss them (they are in the log)", len(raw))

    @contextlib.asynccontextmanager
    async def together(self) -> AsyncIterator[None]:
        """Everything written within the block is stored and published as one write as it ends,
        even when the block fails: a mutation's own events (ASSET_STATUS, the events of logEvents)
        and its AUDIT event cost one insert and one publish, not one each. A block that wrote its
        AUDIT event alone hands it to the audit journal, when there is one (`ahead`): the block ends
        once it is on disk, and it is stored moments later."""
        batch = _Batch()
        token = _batch.set(batch)
        try:
            yield
        finally:
            _batch.reset(token)
            batch.open = False
            if not (self.ahead is not None and batch.events and not batch.stored
                    and all(e.event_type == AUDIT for e in batch.events) and self.ahead.write(batch.events)):
                await self.write(batch.events, then=batch.stored)  # their `then`s: only if stored (at once if none)

    async def _others_listening(self) -> bool:
        """Whether another live process has subscribers (a small collection: one row per process)."""
        return await self.db[WRITERS_COLLECTION].find_one(
            {"listening": True, "alive_at": {"$gte": utcnow() - ALIVE_FOR}, "_id": {"$ne": self.writer}}, {"_id": 1}
        ) is not None

    async def heartbeat(self) -> None:
        """Say this process is alive, its latest number, and whether it has subscribers."""
        listening = self.broadcast is not None and self.broadcast.has_subscribers
        await self.db[WRITERS_COLLECTION].update_one(
            {"_id": self.writer}, {"$set": {"alive_at": utcnow(), "seq": self._seq, "listening": listening},
                                   "$setOnInsert": {"started_at": utcnow(), **this_process()}}, upsert=True)

    async def stopped(self) -> None:
        """Say this process no longer serves (as it stops, once its heartbeats have ended): a
        migration need not wait ALIVE_FOR for it. Its row stays, for the numbers it published."""
        await self.db[WRITERS_COLLECTION].update_one({"_id": self.writer}, {"$set": {"alive_at": None, "listening": False}})


class FeedTail:
    """This process's one reader of the feed."""

    def __init__(self, db: AsyncDatabase, broadcast: Broadcast, own: FeedWriter | None = None) -> None:
        self.db = db
        self.broadcast = broadcast
        self.own = own  # this process's writer, whose heartbeat this reader sends
        self.next: dict[str, int] = {}  # writer -> the sequence number to read next
        self.advertised: dict[str, int] = {}  # writer -> its latest number, as it last said
        self.alive: set[str] = set()  # writers whose process said it is alive lately
        self.started = utcnow()
        self.failures = 0  # attempts failed in a row (the database away, say)

    async def _refresh_writers(self) -> None:
        if self.own is not None:
            await self.own.heartbeat()
        alive_since = utcnow() - ALIVE_FOR
        self.alive = set()
        async for writer in self.db[WRITERS_COLLECTION].find({}):
            name, seq = writer["_id"], writer["seq"]
            if self.own is not None and name == self.own.writer:
                continue  # delivered here as it is written
            self.advertised[name] = seq
            if writer.get("alive_at") and writer["alive_at"] >= alive_since:
                self.alive.add(name)
            if name not in self.next:
                # A writer that first published before we started: its past is history, not news.
                self.next[name] = 1 if writer["started_at"] >= self.started else seq + 1

    async def _read_writer(self, writer: str) -> bool:
        """Deliver what is there from this writer; True if anything was."""
        found = False
        while True:
            seq = self.next[writer]
            doc = await self.db[FEED_COLLECTION].find_one({"_id": f"{writer}:{seq}"})
            if doc is None:
                if self.advertised.get(writer, 0) >= seq and await self._overwritten(writer, seq):
                    continue
                return found
            self.broadcast.publish_all(EventDocument.model_validate(raw) for raw in doc["events"])
            self.next[writer] = seq + 1
            found = True

    async def _overwritten(self, writer: str, seq: int) -> bool:
        """The writer has published `seq`, yet it is gone: skip what the capped feed dropped."""
        await asyncio.sleep(POLL_SECONDS)  # the insert may just not be visible yet
        if await self.db[FEED_COLLECTION].find_one({"_id": f"{writer}:{seq}"}, {"_id": 1}) is not None:
            return True
        newest = self.advertised[writer]
        skip_to = seq + 1
        while skip_to <= newest and await self.db[FEED_COLLECTION].find_one({"_id": f"{writer}:{skip_to}"}, {"_id": 1}) is None:
            skip_to += 1
        log.warning("event feed: %d publish(es) of writer %s were overwritten before this process read them; their "
                    "events are in the log but were not streamed (raise GRAPHLAKE_EVENT_FEED_BYTES)", skip_to - seq, writer)
        self.next[writer] = skip_to
        return skip_to <= newest

    async def run(self) -> None:
        """Read until cancelled."""
        refreshed = 0.0
        loop = asyncio.get_running_loop()
        said_at = -STILL_FAILING_EVERY
        while True:
            raise_if_cancelled()  # the server stopping: a cancel lost in a read would keep this loop on
            try:
                if loop.time() - refreshed >= WRITERS_REFRESH_SECONDS or self.broadcast.listening_changed.is_set():
                    self.broadcast.listening_changed.clear()
                    await self._refresh_writers()  # with this process's heartbeat
                    refreshed = loop.time()
                found = False
                # Live processes every round; a stopped one only while it still has unread numbers.
                polled = [w for w in self.next if w in self.alive or self.advertised.get(w, 0) >= self.next[w]]
                for writer in polled:
                    found = await self._read_writer(writer) or found
                    await asyncio.sleep(0)  # let subscribers drain between writers
                if self.failures:
                    log.warning("event feed reader: works again after %d failed attempt(s)", self.failures)
                    self.failures = 0
                if not found:  # wait a round, or until this process gains its first or loses its last subscriber
                    await event_within(self.broadcast.listening_changed, POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Said with its traceback as it starts, then once a minute while it lasts: the database
                # away for an hour wrote a traceback every few seconds (each attempt waits out the time
                # limit, then a second).
                self.failures += 1
                if self.failures == 1:
                    log.exception("event feed reader failed; retrying every %g s", RETRY_SECONDS)
                    said_at = loop.time()
                elif loop.time() - said_at >= STILL_FAILING_EVERY:
                    log.warning("event feed reader: still failing after %d attempts: %s: %s", self.failures,
                                type(error).__name__, error)
                    said_at = loop.time()
                await asyncio.sleep(RETRY_SECONDS)
