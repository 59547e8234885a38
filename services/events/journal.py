"""AUDIT events written ahead: a mutation's answer waits for its audit entry to be written to a file
in the data dir, and the entries are stored in the event log moments later, several in one insert.

Why: a mutation that logs nothing but its AUDIT event (`storeValue`, most of them) waited for a
second insert, into a second collection, after its own write: a round trip and about a third of a
millisecond of the database's CPU per mutation, on the critical path of a client storing values
one at a time (bench/peer.py). An append to a file takes microseconds (so it is made on the event
loop), and entries stored together cost the database less each.

What is kept: the entry is written (to the kernel, not synced) before the answer, in the data dir
beside the embedded database's files, which commit the same way (FerretDB's `synchronous(normal)`):
both survive the server's crash, neither a power cut of the moments before. Each process appends to
segment files of its own, locked (`flock`) while it lives, in a directory per database. Whoever
opens the journal (each start, the CLI's commands too, and each server process every
`replay_every` seconds) stores what a stopped process left and deletes those files.

IDs: an event's ID sorts by when it was made, and subscribers resume by it, so an entry gets its ID
when it is stored, not when it is written here (one made earlier could sort before events stored
ahead of it, and a subscriber resuming from one of those would never see it). Before a flush sends
entries, it appends a record of the IDs it gave them. A replay skips the entries in the log under
any ID they have had, and gives the rest IDs made then, recorded the same way before
they are stored through the feed (sent live, as a flush's): however often a replay is cut short
and done again, each entry is stored once. (Without the feed, `graphlake backup`, an entry is stored
under its last recorded ID or the one it was written with, skipped if there already.) A torn last
write (the process died inside it) was never answered for, and is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import InvalidBSON
from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from documents.event import Event, lake_mark, new_event_id
from documents.sparse import stored
from services.cancellation import raise_if_cancelled
from services.errors import Conflict
from services.pauses import event_within

log = logging.getLogger("graphlake.events.journal")

SEGMENT_BYTES = 1 << 20  # a new segment once this one holds this much; a segment all stored is removed
REPLAY_EVERY_SECONDS = 30.0  # how often a server process looks for what a stopped one left
RETRY_SECONDS = (0.1, 0.5, 2.0, 5.0)  # between attempts while the database refuses a flush
CLOSE_WAIT_SECONDS = 30.0  # for a flush under way as the server stops
# Failed flushes in a row before the readers waiting for the journal get the error: one failure is
# often a moment's stall (an operation that outlived its time limit while the event loop was held),
# and the next attempt, 0.1 s later, stores the entries; a database that stays down fails them soon.
FAIL_READERS_AFTER = 3
SUFFIX = ".bson"
MAKING = ".making"  # a segment being made (renamed to SUFFIX once locked)
# Held (locked) by each open journal for its whole life, written to or not: what tells a restore
# that a server journals into this lake (`live_writers`).
ALIVE = ".alive"
# An ALIVE file before it is locked: no replay takes it for a segment (one could remove it between its
# creation and its lock). One a process died making (a moment's window) is empty, and a replay
# removes it once it is older than STALE_MAKING_SECONDS, which no process takes to lock a file.
ALIVE_MAKING = ".alive-making"
STALE_MAKING_SECONDS = 300.0
IDS = "graphlake_journal_ids"  # the key of a record of the IDs a flush gave its entries: [[written as, stored as]]
_READ = CodecOptions(tz_aware=True)


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int
    size: int = 0
    unstored: int = 0  # entries written here and not yet in the log


@dataclass(eq=False)
class _Entry:
    segment: _Segment
    event: Event
    sent: bool = False  # a flush gave it its ID (recorded in its segment) and sent it


class AuditJournal:
    """This process's journal of AUDIT events (see the module docstring). `store` writes events into
    the log (FeedWriter.write_numbered: under the IDs it records, published to subscribers as any stored event); only one flush runs at
    a time, so the log gets the entries in the order they were written."""

    def __init__(self, directory: Path, name: str, store: Callable[[list[Event]], Awaitable[None]],
                 delay_seconds: float, replay_every: float = REPLAY_EVERY_SECONDS) -> None:
        self.directory = directory
        self._name = name  # the writer's id: this process's segments are <name>-<n>.bson
        self._store = store
        self.delay_seconds = delay_seconds  # how long the first entry of a flush waits for others
        self.replay_every = replay_every
        self._segment: _Segment | None = None
        self._segments = 0
        self._pending: list[_Entry] = []  # written here, not yet in the log, in order
        self._written = 0  # entries written, ever
        self._in_log = 0  # of those, how many are in the log (always the first ones)
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []  # readers: (entries they wait for, their answer)
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # a reader waits, or the server stops: flush without the delay
        self._stopping = False
        self._flushing = asyncio.Lock()
        self._failures = 0  # in a row, for the wait before the next attempt
        self._task: asyncio.Task | None = None
        self._alive: int | None = None  # the locked ALIVE file, while open

    async def open(self) -> None:
        """Store what stopped processes left, then take writes."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            alive = self.directory / f"{self._name}{ALIVE}"
            self._alive = _made_locked(alive, alive.with_name(alive.name + ALIVE_MAKING), os.O_WRONLY)
        except OSError:  # only a restore's safety check reads it; writes fall back on their own
            log.exception("audit journal: could not make %s%s", self._name, ALIVE)
        await self.replay()
        # A context of its own: not the opener's, nor (later) any request's time limit or event batch.
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit journal",
                                                           context=contextvars.Context())

    @property
    def unstored(self) -> int:
        """Entries written here and not yet in the log."""
        return self._written - self._in_log

    def write(self, events: Sequence[Event]) -> bool:
        """Append the events; True once they are written. False if the file refused them (a full
        disk, say): the caller then stores them itself, as if there were no journal."""
        if self._stopping:  # no flush will come: stored directly
            return False
        data = b"".join(bson.encode(stored(event)) for event in events)
        try:
            segment = self._current()
            _append(segment, data)
        except OSError:
            log.exception("audit journal: could not write %d AUDIT event(s); they are stored directly", len(events))
            self._close_current()
            return False
        segment.unstored += len(events)
        self._pending.extend(_Entry(segment, event) for event in events)
        self._written += len(events)
        self._wake.set()
        return True

    async def drained(self) -> None:
        """Return once every entry written before the call is in the log; raises what storing them
        raised if FAIL_READERS_AFTER attempts in a row failed (the database down, say)."""
        if self._in_log >= self._written:
            return
        if self._task is None or self._task.done():  # not open, or closed: no task flushes for it
            await self._flush()
            return
        answer = asyncio.get_running_loop().create_future()
        answer.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen, if its reader left
        self._waiting.append((self._written, answer))
        self._urgent.set()
        self._wake.set()
        await asyncio.shield(answer)  # a reader that stops waiting leaves the flush to go on

    async def close(self) -> None:
        """Store what is left (what cannot be stays in its file for the next start), then let go."""
        self._stopping = True  # writes from here on are stored directly
        if self._task is not None:
            self._urgent.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_WAIT_SECONDS)
            except TimeoutError:
                log.warning("audit journal: still storing after %s s as the server stops", CLOSE_WAIT_SECONDS)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self._flush(), CLOSE_WAIT_SECONDS)
        except Exception:
            log.exception("audit journal: %d AUDIT event(s) stay in %s for the next start",
                          len(self._pending), self.directory)
        self._answer(RuntimeError("the server stopped before its audit journal was stored"))
        self._close_current()
        if self._alive is not None:
            (self.directory / f"{self._name}{ALIVE}").unlink(missing_ok=True)
            os.close(self._alive)
            self._alive = None

    async def replay(self) -> int:
        """Store what stopped processes left (`store_left`, through the feed: sent live); how many
        entries were stored."""
        return await store_left(self.directory, Event.get_pymongo_collection(), mine=f"{self._name}-", store=self._store)

    def _current(self) -> _Segment:
        """The segment to append to: a new one when there is none or this one is full."""
        segment = self._segment
        if segment is not None and segment.size < SEGMENT_BYTES:
            return segment
        self._segments += 1
        path = self.directory / f"{self._name}-{self._segments}{SUFFIX}"
        fd = _made_locked(path, path.with_suffix(MAKING), os.O_WRONLY | os.O_APPEND)
        self._close_current()
        self._segment = _Segment(path, fd)
        return self._segment

    def _close_current(self) -> None:
        """Stop appending to the current segment (removed once all of it is stored)."""
        segment, self._segment = self._segment, None
        if segment is not None and segment.unstored == 0:
            _remove(segment)

    def _stored(self, entries: list[_Entry]) -> None:
        """These entries (the first pending ones) are in the log: the readers waiting for them are
        answered, and a segment all stored is emptied (the current one) or removed."""
        self._in_log += len(entries)
        self._answer()
        for entry in entries:
            entry.segment.unstored -= 1
        for segment in {entry.segment for entry in entries}:
            if segment.unstored:
                continue
            try:
                if segment is self._segment:
                    os.ftruncate(segment.fd, 0)  # no await since the count: nothing was appended meanwhile
                    segment.size = 0
                else:
                    _remove(segment)
            except OSError:  # it is stored: a file left behind only costs its replay a look
                log.exception("audit journal: could not empty %s", segment.path)

    def _answer(self, error: BaseException | None = None) -> None:
        """Answer the readers whose entries are in the log, or all of them with `error`."""
        waiting, self._waiting = self._waiting, []
        for target, answer in waiting:
            if answer.done():
                continue
            if error is not None:
                answer.set_exception(error)
            elif target <= self._in_log:
                answer.set_result(None)
            else:
                self._waiting.append((target, answer))

    async def _flush(self) -> None:
        async with self._flushing:
            entries, self._pending = self._pending, []
            if not entries:
                self._answer()
                return
            try:
                if any(entry.sent for entry in entries):  # an attempt that failed may have stored some
                    entries = await self._not_in_log(entries)
                if entries:
                    self._number(entries)
                    await self._store([entry.event for entry in entries])
            except BaseException:
                self._pending[:0] = entries  # still written: tried again, in order, under the same IDs
                raise
            self._stored(entries)

    def _number(self, entries: list[_Entry]) -> None:
        """Give the entries not yet sent their IDs, made now, and record them in their segments first."""
        fresh = [(entry, new_event_id()) for entry in entries if not entry.sent]
        by_segment: dict[_Segment, list[list[Any]]] = {}
        for entry, new in fresh:
            by_segment.setdefault(entry.segment, []).append([entry.event.id, new])
        refused: set[_Segment] = set()
        for segment, pairs in by_segment.items():
            try:
                _append(segment, bson.encode({IDS: pairs}))
            except OSError:  # a full disk, say: these are sent under the IDs they were written with
                log.exception("audit journal: could not record new IDs in %s", segment.path)
                refused.add(segment)
        for entry, new in fresh:
            if entry.segment not in refused:
                entry.event.id = new
            entry.sent = True

    async def _not_in_log(self, entries: list[_Entry]) -> list[_Entry]:
        """The entries not in the log yet; those that are are marked stored."""
        sent = [entry.event.id for entry in entries if entry.sent]
        found = {doc["_id"] async for doc in Event.get_pymongo_collection().find({"_id": {"$in": sent}}, {"_id": 1})}
        there = 0
        while there < len(entries) and entries[there].sent and entries[there].event.id in found:  # stored in order
            there += 1
        self._stored(entries[:there])
        return entries[there:]

    async def _run(self) -> None:
        """Flush what is written, `delay_seconds` after the first of it (what comes meanwhile joins
        it), and look for stopped processes' segments every `replay_every` seconds."""
        loop = asyncio.get_running_loop()
        replay_at = loop.time() + self.replay_every
        while not self._stopping:
            raise_if_cancelled()  # a cancel lost in a flush's write would keep this loop on
            await event_within(self._wake, max(0.0, replay_at - loop.time()))
            if loop.time() >= replay_at:
                replay_at = loop.time() + self.replay_every
                try:
                    await self.replay()
                except Exception:  # tried again next time
                    log.exception("audit journal: storing what a stopped process left failed")
            if not self._wake.is_set():
                continue
            if self.delay_seconds and not self._urgent.is_set():
                await event_within(self._urgent, self.delay_seconds)
            self._wake.clear()
            self._urgent.clear()
            try:
                await self._logged(self._flush())
            except Exception as error:
                if self._failures >= FAIL_READERS_AFTER or self._stopping:
                    self._answer(error)
                if self._stopping:
                    return
                await asyncio.sleep(RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1])
                self._wake.set()

    async def _logged(self, step: Awaitable[Any]) -> None:
        """`step`, its first failure in a row logged."""
        try:
            await step
        except Exception:
            if self._failures == 0:
                log.exception("audit journal: storing AUDIT events failed; they stay journaled and are tried again")
            self._failures += 1
            raise
        self._failures = 0


def _append(segment: _Segment, data: bytes) -> None:
    written = os.write(segment.fd, data)
    if written != len(data):  # a short write: undone, so no torn entry sits before later ones
        os.ftruncate(segment.fd, segment.size)
        raise OSError(f"wrote {written} of {len(data)} bytes")
    segment.size += len(data)


def _remove(segment: _Segment) -> None:
    try:
        segment.path.unlink(missing_ok=True)
    finally:
        os.close(segment.fd)


def _segment_order(path: Path) -> tuple[str, int]:
    """Segments of one process in the order it wrote them (its 10th after its 9th)."""
    match = re.fullmatch(r"(.*)-(\d+)", path.stem)
    return (match[1], int(match[2])) if match else (path.stem, 0)


def _read_all(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size, 0)


def complete_entries(data: bytes) -> tuple[list[dict[str, Any]], int, bool]:
    """The whole BSON documents at the start of `data`, how many bytes they take, and whether what
    follows them is a torn last write (shorter than its own length says) rather than damage."""
    entries, position = [], 0
    while position + 4 <= len(data):
        size = int.from_bytes(data[position:position + 4], "little")
        if size < 5:
            return entries, position, False
        if position + size > len(data):
            return entries, position, True
        try:
            entries.append(bson.decode(data[position:position + size], _READ))
        except InvalidBSON:
            return entries, position, False
        position += size
    return entries, position, True  # nothing left, or fewer than 4 bytes of a length: torn


def _stored_as(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[Any]]]:
    """A segment's events, each under the ID the last record gave it (a flush's, or an earlier
    replay's) or the one it was written with, and every ID it has had (written, then each record's
    in order): an attempt cut short may still have stored it under any of them."""
    given: dict[Any, list[Any]] = {}
    for entry in entries:
        for old, new in entry.get(IDS, ()):
            given.setdefault(old, []).append(new)
    had = [(entry, [entry["_id"], *given.get(entry["_id"], [])]) for entry in entries if IDS not in entry]
    return [({**entry, "_id": ids[-1]}, ids) for entry, ids in had]


async def store_left(directory: Path, events: AsyncCollection, mine: str = "\0",
                     store: Callable[[list[Event]], Awaitable[None]] | None = None) -> int:
    """Store in `events` the entries of the segments in `directory` no live process holds (not those
    named `mine`...), then delete the segments; how many entries were stored.

    An entry in the log under any ID it has had is skipped. With `store` (the event feed's write,
    as a flush stores), the others get IDs made now, recorded in their segment before they are
    stored through it: a server's subscribers get them live, after every event stored before them,
    and a subscription resuming from an earlier event reads them. Without it (`graphlake backup`, on
    the raw database), where the record cannot be written, for a damaged segment, or for entries
    this version's event model refuses, each is stored under its last ID (`_stored_as`), a duplicate
    skipped, and not sent live. Either way a replay cut short and done again stores nothing twice.
    A segment with bytes that are no torn last write (a whole entry that does not decode) is kept,
    renamed `.corrupt`, and logged."""
    if not directory.is_dir():
        return 0
    replayed = 0
    for path in sorted(directory.iterdir(), key=_segment_order):
        if path.suffix == ALIVE and not path.name.startswith(mine) and not _held(path):
            path.unlink(missing_ok=True)  # a stopped process's
        if path.suffix == ALIVE_MAKING and not path.name.startswith(mine) and _stale(path) and not _held(path):
            path.unlink(missing_ok=True)  # a process that died making it
        if path.name.startswith(mine) or path.suffix not in (SUFFIX, MAKING):
            continue
        try:  # written to only to record the IDs a replay through the feed gives
            fd = os.open(path, (os.O_RDWR | os.O_APPEND if store else os.O_RDONLY) | os.O_CLOEXEC)
        except FileNotFoundError:  # another process replayed it meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process lives
            if os.fstat(fd).st_nlink == 0:  # replayed and deleted by another process while this one waited
                continue
            data = await asyncio.to_thread(_read_all, fd)
            entries, used, torn = complete_entries(data)
            damaged = used < len(data) and not torn
            count = await _store_entries(fd, used, entries, events, None if damaged else store)
            if count:
                replayed += count
                log.warning("audit journal: stored %d AUDIT event(s) a stopped process left in %s", count, path)
            if damaged:
                log.error("audit journal: %s holds %d byte(s) past its last readable entry that are no torn write; "
                          "kept as %s", path, len(data) - used, path.with_suffix(".corrupt").name)
                path.rename(path.with_suffix(".corrupt"))
                continue
            if used < len(data):
                log.warning("audit journal: %s ends in a write its process died in (%d byte(s), never answered "
                            "for); dropped", path, len(data) - used)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return replayed


async def _store_entries(fd: int, used: int, entries: list[dict[str, Any]], events: AsyncCollection,
                         store: Callable[[list[Event]], Awaitable[None]] | None) -> int:
    """Store one segment's entries not in the log yet (see store_left); how many were stored."""
    left = _stored_as(entries)
    if not left:
        return 0
    found = {doc["_id"] async for doc in events.find({"_id": {"$in": [i for _, ids in left for i in ids]}}, {"_id": 1})}
    todo = [(entry, ids[0]) for entry, ids in left if not found.intersection(ids)]
    if not todo:
        return 0
    for entry, _ in todo:  # journaled before schema 8 marked the lake's own events: marked as they are stored
        if lake_mark(entry.get("event_type", "")):
            entry["by_lake"] = True
    if store is not None:
        try:
            models = [Event.model_validate(entry) for entry, _ in todo]
        except ValidationError:  # written by another version of Graphlake: stored as it is
            log.exception("audit journal: entries this version cannot read are stored as written, not sent live")
        else:
            pairs = [[as_written, new_event_id()] for _, as_written in todo]
            if _record(fd, used, bson.encode({IDS: pairs})):
                for model, (_, new) in zip(models, pairs, strict=True):
                    model.id = new
                await store(models)
                return len(models)
    return await _insert_new(events, [entry for entry, _ in todo])


def _record(fd: int, used: int, record: bytes) -> bool:
    """Append `record` to a segment after its `used` bytes (a torn last write is cut off first: the
    record must follow whole entries); False, logged, if the disk refuses it."""
    try:
        os.ftruncate(fd, used)
        if os.write(fd, record) == len(record):
            return True
        os.ftruncate(fd, used)
        log.warning("audit journal: a short write recording a replay's IDs; stored under their last IDs instead")
    except OSError:
        log.exception("audit journal: could not record a replay's IDs; stored under their last IDs instead")
    return False


async def _insert_new(collection: AsyncCollection, events: list[dict[str, Any]]) -> int:
    """Insert the events, skipping those already in the log (by `_id`); how many were new."""
    try:
        await collection.insert_many(events, ordered=False)
    except BulkWriteError as error:
        if error.details.get("writeConcernErrors") or any(
                e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
            raise
        return len(events) - len(error.details.get("writeErrors", []))
    return len(events)


def _made_locked(path: Path, making: Path, flags: int) -> int:
    """`path` made (opened with `flags`) and locked for this process; its descriptor. Made and
    locked as `making`, then renamed into place: nobody finds it unlocked under its name (and
    takes it for a stopped process's) while this process lives."""
    fd = os.open(making, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(making, path)
    except OSError:
        os.close(fd)
        making.unlink(missing_ok=True)
        raise
    return fd


def _stale(path: Path) -> bool:
    """Whether `path` was last changed more than STALE_MAKING_SECONDS ago (False if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime > STALE_MAKING_SECONDS
    except FileNotFoundError:
        return False


def _held(path: Path) -> bool:
    """Whether a live process holds the lock on `path` (False if it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and the lock with it
    return False


def live_writers(directory: Path) -> list[Path]:
    """What live processes hold in `directory`: an open journal's ALIVE file, or a segment (a
    journal, or a moment's replay of a stopped one's). A server with its journal off holds nothing."""
    if not directory.is_dir():
        return []
    return [path for path in sorted(directory.iterdir())
            if path.suffix in (ALIVE, ALIVE_MAKING, SUFFIX, MAKING) and _held(path)]


def refuse_if_live(directory: Path) -> None:
    """Conflict, naming what it holds, while a live process journals into `directory`."""
    held = live_writers(directory)
    if held:
        raise Conflict(f"a running process holds {held[0]} (a server journaling into this lake): stop it first")


def set_aside(directory: Path, why: str) -> Path | None:
    """Move the journal of a lake whose database is being replaced (a restore) out of the way, so
    no later start stores the replaced lake's AUDIT events into the lake that takes its place; where
    it went (None: there was none). Kept, not deleted: they are the events of the lake before.
    Conflict, moving nothing, while a live process holds any of it."""
    if not directory.is_dir() or not any(directory.iterdir()):
        return None
    refuse_if_live(directory)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = directory.with_name(f"{directory.name}.{why}-{stamp}-{secrets.token_hex(3)}")
    try:
        directory.rename(target)
    except OSError as error:
        raise Conflict(f"the journal {directory} cannot be moved aside ({error.strerror}): fix that, then "
                       "run the restore again with --replace") from None
    return target
