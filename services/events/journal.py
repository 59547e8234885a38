"""AUDIT events written ahead: a mutation's answer waits for its audit entry to reach a file in the
data dir, and the entries are stored in the event log moments later, several in one insert.

Why: a mutation that logs nothing but its AUDIT event (`storeValue`, most of them) waited for a
second insert, into a second collection, after its own write: a round trip and about a third of a
millisecond of the database's CPU per mutation, on the critical path of a client storing values
one at a time (bench/peer.py). An append to a file takes microseconds, and entries stored together
cost the database less each.

What is kept: the entry is on disk before the answer, in the data dir beside the embedded
database's own files and with their durability (both survive the server's crash; neither is synced
per write, see FerretDB's `synchronous(normal)`). Each process appends to segment files of its own,
locked (`flock`) while it lives. Whoever opens the journal (each server start, and each process
every REPLAY_EVERY_SECONDS) stores what a dead process left, ignoring entries already stored (an
event's `_id` is made when it is written here), then deletes those files. A torn last entry (the
process died inside a write) was never acknowledged, and is dropped.

What changes: an entry reaches the log up to the flush delay after the answer. Reads on this process
that show events wait for it first (`drained`); other processes see it after the delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import InvalidBSON
from pymongo.errors import BulkWriteError

from documents.event import Event
from documents.sparse import stored

log = logging.getLogger("graphlake.events.journal")

SEGMENT_BYTES = 1 << 20  # a new segment once this one holds this much; a segment all stored is removed
REPLAY_EVERY_SECONDS = 30.0  # how often a process looks for what a dead one left (a worker restarted beside it)
RETRY_SECONDS = (0.1, 0.5, 2.0, 5.0)  # between attempts while the database refuses a flush
SUFFIX = ".bson"
MAKING = ".making"  # a segment being made (renamed to SUFFIX once locked)
_READ = CodecOptions(tz_aware=True)


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int
    size: int = 0
    unstored: int = 0  # entries written here and not yet in the log


class AuditJournal:
    """This process's journal of AUDIT events (see the module docstring). `store` writes events into
    the log (FeedWriter.write: published to subscribers as any stored event); only the journal's own
    task calls it, one flush at a time, so the log gets the entries in the order they were written."""

    def __init__(self, directory: Path, name: str, store: Callable[[list[Event]], Awaitable[None]],
                 delay_seconds: float) -> None:
        self.directory = directory
        self._name = name  # the writer's id: this process's segments are <name>-<n>.bson
        self._store = store
        self.delay_seconds = delay_seconds  # how long the first entry of a flush waits for others
        self._segment: _Segment | None = None
        self._segments = 0
        self._pending: list[tuple[_Segment, Event]] = []  # written here, not yet in the log, in order
        self._written = 0  # entries written, ever
        self._in_log = 0  # of those, how many are in the log (always the first ones)
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []  # readers: (entries they wait for, their answer)
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # a reader waits: flush without the delay
        self._failed = False  # the last flush failed: it may have stored some before it did
        self._failures = 0  # in a row, for the wait before the next attempt
        self._task: asyncio.Task | None = None

    async def open(self) -> None:
        """Store what dead processes left, then take writes."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self.replay()
        # A context of its own: not the opener's, nor (later) any request's time limit or event batch.
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit journal",
                                                           context=contextvars.Context())

    @property
    def unstored(self) -> int:
        """Entries written here and not yet in the log."""
        return self._written - self._in_log

    def write(self, events: Sequence[Event]) -> bool:
        """Append the events; True once they are in the file. False if the file refused them (a full
        disk, say): the caller then stores them itself, as if there were no journal."""
        data = b"".join(bson.encode(stored(event)) for event in events)
        try:
            segment = self._current()
            written = os.write(segment.fd, data)
            if written != len(data):  # a short write: undone, so no torn entry sits before later ones
                os.ftruncate(segment.fd, segment.size)
                raise OSError(f"wrote {written} of {len(data)} bytes")
        except OSError:
            log.exception("audit journal: could not write %d AUDIT event(s); they are stored directly", len(events))
            self._close_current()
            return False
        segment.size += len(data)
        segment.unstored += len(events)
        self._pending.extend((segment, event) for event in events)
        self._written += len(events)
        self._wake.set()
        return True

    async def drained(self) -> None:
        """Return once every entry written before the call is in the log; raises what storing them
        raised meanwhile (the database down, say)."""
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
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self._flush()
        except Exception:
            log.exception("audit journal: %d AUDIT event(s) stay in %s for the next start",
                          len(self._pending), self.directory)
        self._answer(RuntimeError("the server stopped before its audit journal was stored"))
        self._close_current()

    async def replay(self) -> int:
        """Store the entries of segments no live process holds, then delete them; how many were stored."""
        replayed = 0
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(f"{self._name}-") or path.suffix not in (SUFFIX, MAKING):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # another process replayed it meanwhile
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process lives
                entries = complete_entries(await asyncio.to_thread(_read_all, fd))
                if entries:
                    await _insert_new(entries)
                    replayed += len(entries)
                    log.warning("audit journal: stored %d AUDIT event(s) a stopped process left in %s", len(entries), path)
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return replayed

    def _current(self) -> _Segment:
        """The segment to append to: a new one when there is none or this one is full."""
        segment = self._segment
        if segment is not None and segment.size < SEGMENT_BYTES:
            return segment
        self._segments += 1
        path = self.directory / f"{self._name}-{self._segments}{SUFFIX}"
        # Made and locked under another name, then renamed into place: a replay never finds it unlocked.
        making = path.with_suffix(MAKING)
        fd = os.open(making, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(making, path)
        self._close_current()
        self._segment = _Segment(path, fd)
        return self._segment

    def _close_current(self) -> None:
        """Stop appending to the current segment (removed once all of it is stored)."""
        segment, self._segment = self._segment, None
        if segment is not None and segment.unstored == 0:
            self._remove(segment)

    def _remove(self, segment: _Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        os.close(segment.fd)

    def _stored(self, entries: list[tuple[_Segment, Event]]) -> None:
        """These entries (the first pending ones) are in the log: a segment all stored is emptied
        (the current one) or removed, and the readers waiting for them are answered."""
        for segment, _ in entries:
            segment.unstored -= 1
        for segment in {segment for segment, _ in entries}:
            if segment.unstored:
                continue
            if segment is self._segment:
                os.ftruncate(segment.fd, 0)  # no await since the count: nothing was appended meanwhile
                segment.size = 0
            else:
                self._remove(segment)
        self._in_log += len(entries)
        self._answer()

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
        entries, self._pending = self._pending, []
        if not entries:
            return
        try:
            if self._failed:  # the attempt that failed may have stored some: they are not stored twice
                entries = await self._not_in_log(entries)
            if entries:
                await self._store([event for _, event in entries])
        except BaseException:
            self._pending[:0] = entries  # still on disk: tried again, in order
            self._failed = True
            raise
        self._failed = False
        self._stored(entries)

    async def _not_in_log(self, entries: list[tuple[_Segment, Event]]) -> list[tuple[_Segment, Event]]:
        """The entries not in the log yet; those that are are marked stored."""
        found = {doc["_id"] async for doc in Event.get_pymongo_collection().find(
            {"_id": {"$in": [event.id for _, event in entries]}}, {"_id": 1})}
        there = 0
        while there < len(entries) and entries[there][1].id in found:  # stored in order: a prefix
            there += 1
        self._stored(entries[:there])
        return entries[there:]

    async def _run(self) -> None:
        """Flush what is written, `delay` after the first of it (what comes meanwhile joins it), and
        look for dead processes' segments now and then."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), REPLAY_EVERY_SECONDS)
            except TimeoutError:
                with contextlib.suppress(Exception):  # tried again next time; the log says why
                    await self._logged(self.replay())
                continue
            if self.delay_seconds and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self.delay_seconds)
            self._wake.clear()
            self._urgent.clear()
            try:
                await self._logged(self._flush())
            except Exception as error:
                self._answer(error)
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


def _read_all(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size, 0)


def complete_entries(data: bytes) -> list[dict[str, Any]]:
    """The whole BSON documents at the start of `data`; a torn or unreadable tail ends them."""
    entries, position = [], 0
    while position + 4 <= len(data):
        size = int.from_bytes(data[position:position + 4], "little")
        if size < 5 or position + size > len(data):
            break
        try:
            entries.append(bson.decode(data[position:position + size], _READ))
        except InvalidBSON:
            break
        position += size
    return entries


async def _insert_new(entries: list[dict[str, Any]]) -> None:
    """Insert the entries, skipping those already in the log (by `_id`)."""
    try:
        await Event.get_pymongo_collection().insert_many(entries, ordered=False)
    except BulkWriteError as error:
        if any(e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
            raise
