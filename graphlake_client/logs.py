"""`GraphlakeLogHandler`: Python log records shipped to a lake as events, without ever holding up
the code that logs.

    import logging
    from graphlake_client import GraphlakeLogHandler

    logging.getLogger().addHandler(GraphlakeLogHandler("http://127.0.0.1:8000", token, source={"nodeId": "reader-1"}))
    logging.getLogger("plates").warning("plate %s read twice", 7, extra={"plate": 7})

`emit` turns a record into an EventInput and puts it on a bounded queue, nothing more: it never
waits for the network. A background thread sends the queue in batches (one `logEvents` each, at
most `batch_size` events, a drop notice included, or `flush_interval` seconds apart). Each record gets a key as it is
made (a UUID), so a batch is safe to send twice: one that failed on the way (a timeout whose batch
was in fact stored, a server restarting, a gateway's 503) is sent again, `retries` times with
backoff from `backoff_seconds` (retries.keyed_writes; by default about two minutes of waits, which
a server's restart or upgrade fits in), and the lake stores each record once. While it waits, new
records queue up behind it. When the queue is full, records are dropped and counted
(`dropped`); the handler says so on stderr at once and, as soon as it can, in the lake (a WARNING
event; kept, with its key, until the lake confirms it, so a notice whose answer was lost is not
counted twice). Batches the server refuses, or that still fail after the retries, are counted in
`lost`, also said on stderr: records the lake did not confirm storing (a batch whose last answer was
lost on the way may be stored all the same; sent again, its keys find it). A batch the server
refuses for one record's data or message (BAD_USER_INPUT naming `inputs[i]`) is sent again without
it: that record alone is lost. One refused for a record's time (this machine's clock ahead of the
lake's) is sent again untimed, as every record after it: the lake times them as they arrive, and
their own time goes in their data as `log.created`. A record whose `data` passes `max_data_bytes` of JSON (a huge `extra` field, a
traceback of megabytes) goes shortened: tracebacks cut to their last MAX_TRACE_CHARS characters,
then the largest `extra` fields left out, named under `log.truncated` with the size it had (in emit
already, so a queue waiting on a lake that is down does not hold megabytes per record); and a
batch stops short of `max_batch_bytes`, under the server's request body limit. The queue holds at
most `capacity` records and about `max_queue_bytes` (64 MiB) of them; records past either are dropped
and counted as above. `flush()` waits (bounded) for what was queued; `close()` flushes, then stops,
in `close_timeout` in all (logging.shutdown's flush before it included, when the sender is stuck);
a batch still being tried then is given up (counted lost), its retries cancelled. A record logged
after close() is dropped, counted in `dropped` and said once on stderr.

The sender starts with the first record. A forked child (a `fork` multiprocessing pool's worker, a
PyTorch DataLoader's, os.fork) starts the handler over: an empty queue, counts at zero, a sender of
its own at its first record (the parent's records stay the parent's to send). A multiprocessing
child, which ends with os._exit and so without logging.shutdown, closes the handler as it ends
(multiprocessing.util.Finalize): a pool's workers must end that way, `pool.close(); pool.join()`,
not `pool.terminate()` (which leaving `with Pool() as pool:` does), which kills them at once.

Each event: `level` from the record's level, `message` its message, `timestamp` when it was made,
`data` its `extra` fields (JSON-safe: anything else as its repr) plus a reserved key `log` with the
logger name, the place in the code, the thread and process, and the exception's traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import multiprocessing
import multiprocessing.util
import os
import queue
import re
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from graphlake_client.client import Client
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import ExitSafeLoop
from graphlake_client.predicates import json_time
from graphlake_client.results import EventInput, Level, Source

# Attempts after the first: waits of 0.5, 1, 2 ... s, at most 30 s each, about two minutes in all. A
# background sender can wait that long (records queue up behind it; the caller never waits), and a
# lake restarting or being upgraded takes longer than the interactive default's 15 s.
HANDLER_RETRIES = 9

MAX_MESSAGE = 10_000  # the server's limit on an event message, in characters
# An event's data as JSON, and a batch's: under the server's defaults (GRAPHLAKE_MAX_EVENT_DATA_BYTES,
# 1 MiB; GRAPHLAKE_MAX_BODY_BYTES, 16 MiB), which refuse a whole batch over them.
MAX_DATA_BYTES = 256 * 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024
# What the queue may hold, its records' sizes as JSON (rough_size): while a lake is down, records
# queue up to `capacity`, and 10,000 records of 256 KiB each would be 2.5 GiB.
MAX_QUEUE_BYTES = 64 * 1024 * 1024
MAX_TRACE_CHARS = 32 * 1024  # of a traceback or stack in an event shortened to fit: its end, where the error is
# The event a BAD_USER_INPUT names for what it alone carries (services/events/log.py): its data or its
# message. Refusals of what every record shares (the event type, the source) fail the batch whole.
_REFUSED_EVENT = re.compile(r"inputs\[(\d+)\]\.(?:data|message)\b")
# A record's time the server refuses: it is ahead of the server's clock by more than it allows
# (GRAPHLAKE_EVENT_CLOCK_SKEW_SECONDS). This machine's clock is, and so would every record's be.
_REFUSED_TIME = re.compile(r"inputs\[\d+\]\.timestamp\b")
# What every LogRecord carries: anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_FLUSH = object()  # on the queue: send what is gathered now
_STOP = object()  # on the queue: send what is gathered, then end the thread


# Every handler made in this process, for _after_fork.
_HANDLERS: weakref.WeakSet[GraphlakeLogHandler] = weakref.WeakSet()


def _after_fork() -> None:
    """A forked child (a fork pool's worker, a DataLoader's, os.fork) has a copy of each handler, but
    not its sender thread: what it logged was queued, never sent, never counted. And another thread
    of the parent may have held the handler's lock or its queue's at the fork, held for good in the
    child, whose first record then hung. Each handler starts over in the child, with locks of its own."""
    for handler in list(_HANDLERS):
        handler._start_over()


if sys.platform != "win32":  # which has no fork
    os.register_at_fork(after_in_child=_after_fork)


def _close(handler: weakref.ref[GraphlakeLogHandler]) -> None:
    """Close the handler if it is still there (multiprocessing.util.Finalize's callback: see _start_sender)."""
    if (alive := handler()) is not None:
        alive.close()


def level_name(levelno: int) -> Level:
    """The event level for a Python level: the highest LogLevel at or below it (custom levels round down)."""
    names: tuple[tuple[int, Level], ...] = ((logging.CRITICAL, "CRITICAL"), (logging.ERROR, "ERROR"),
                                            (logging.WARNING, "WARNING"), (logging.INFO, "INFO"))
    for threshold, name in names:
        if levelno >= threshold:
            return name
    return "DEBUG"


def jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as JSON the server stores: finite numbers, string keys, lists, an aware datetime as
    `json_time` writes it (so that `data("taken") > t` compares it as a time); anything else as its
    repr. One odd `extra` field must not make the server refuse the whole batch."""
    if isinstance(value, str):
        return text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime) and value.tzinfo is not None:  # as predicates compare times (a naive one: its repr)
        return json_time(value)
    if depth < 20 and isinstance(value, dict):
        return {text(str(k)): jsonable(v, depth + 1) for k, v in value.items()}
    if depth < 20 and isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    return text(repr(value))


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def rough_size(value: Any) -> int:
    """The size of `value` (jsonable's output) as JSON, found by one walk without serialising it:
    exact but for escapes (a quote, a backslash, a newline or another control character takes a
    byte or five more as JSON). emit's measure, taken once per record in the caller's thread; what
    is sent is measured exactly (_json_size). It counted characters, not bytes, and 5 bytes a
    number: the queue's byte bound held two or three times its bytes of such records. (Written
    out, not by recursion on keys too: a walk costs what the rougher one did.)"""
    kind = type(value)
    if kind is str:
        return (len(value) if value.isascii() else len(value.encode())) + 2  # isascii: a flag, not a scan
    if kind is dict:
        if not value:
            return 2
        size = 1 + 4 * len(value)  # braces, commas, and each member's quotes around its key and colon
        for key, item in value.items():
            size += (len(key) if key.isascii() else len(key.encode())) + rough_size(item)
        return size
    if kind is list:
        if not value:
            return 2
        size = 1 + len(value)  # brackets and commas
        for item in value:
            size += rough_size(item)
        return size
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    return len(repr(value))  # int, or a finite float (jsonable's): its repr is its JSON


def shortened(data: dict[str, Any], size: int, most: int, measure: Callable[[Any], int] = _json_size) -> dict[str, Any]:
    """A record's `data` (its `extra` fields and `log`, `size` bytes of JSON) within `most` bytes as
    `measure` counts them: its traceback and stack cut to their last MAX_TRACE_CHARS characters,
    then its largest `extra` fields left out until it fits; `log.truncated` says what it was and
    what went. Each field is measured once (emit's measure is rough_size: no serialising there)."""
    log = dict(data.get("log") or {})
    for name in ("exception", "stack"):
        if isinstance(log.get(name), str) and len(log[name]) > MAX_TRACE_CHARS:
            log[name] = "...\n" + log[name][-MAX_TRACE_CHARS:]
    extra = {k: v for k, v in data.items() if k != "log"}
    dropped: list[str] = []
    log["truncated"] = {"bytes": size, "dropped": dropped}
    # A dict's JSON: its braces, and each member's key, colon and value, commas between them.
    members = {k: measure(k) + 1 + measure(v) for k, v in extra.items()}
    left = 1 + len(members) + 1 + sum(members.values()) + measure("log") + 1 + measure(log)
    for name in sorted(members, key=members.__getitem__, reverse=True):
        if left <= most:
            break
        left -= members[name] + 1
        del extra[name]
        dropped.append(name)
        left += measure(name) + 1  # its name in `dropped`, and a comma
    if left > most:  # the log itself: a logger or path of megabytes
        return {"log": {"truncated": log["truncated"]}}
    return {**extra, "log": log}


def _refused_index(error: Exception, count: int) -> int | None:
    """The batch's event a BAD_USER_INPUT names for its own data or message (`inputs[3].data`), if one of `count`."""
    if getattr(error, "code", None) != "BAD_USER_INPUT":
        return None
    found = _REFUSED_EVENT.match(getattr(error, "field", None) or "")
    index = int(found.group(1)) if found else None
    return index if index is not None and index < count else None


def _untimed(event: EventInput) -> EventInput:
    """The event without its `timestamp` (the lake times it as it arrives), which goes into its data
    as `log.created`. Its key stays: sent again, it is found, not stored twice."""
    untimed = event.copy()
    created = untimed.pop("timestamp", None)
    if created is not None:
        data = dict(untimed.get("data") or {})
        data["log"] = {**(data.get("log") or {}), "created": created}
        untimed["data"] = data
    return untimed


def text(value: str) -> str:
    """`value` as UTF-8 can carry it: a lone surrogate (a file name of another encoding read through
    os.fsdecode, say) written as its escape, where it made the server refuse the record's whole batch."""
    if value.isascii():  # a flag, not a scan: most text needs no encoding to know
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


class GraphlakeLogHandler(logging.Handler):
    """Ships log records as events of `event_type`, batched in the background; never blocks `emit`.
    `source` is an OwnershipInput dict (nodeId, workflowId, ...); `capacity` (records) and
    `max_queue_bytes` bound the queue; a failed batch is sent again `retries` times, the first wait
    `backoff_seconds`, doubling."""

    def __init__(self, url: str, token: str | None, *, event_type: str = "PYTHON_LOG",
                 source: Source | None = None, level: int = logging.NOTSET, capacity: int = 10_000,
                 batch_size: int = 500, flush_interval: float = 1.0, timeout: float = 10.0,
                 close_timeout: float = 5.0, retries: int = HANDLER_RETRIES, backoff_seconds: float = 0.5,
                 max_data_bytes: int = MAX_DATA_BYTES, max_batch_bytes: int = MAX_BATCH_BYTES,
                 max_queue_bytes: int = MAX_QUEUE_BYTES) -> None:
        super().__init__(level)
        self.max_data_bytes, self.max_batch_bytes, self.max_queue_bytes = max_data_bytes, max_batch_bytes, max_queue_bytes
        self.retries, self.backoff_seconds = retries, backoff_seconds
        self.event_type, self.source = event_type, source
        self.batch_size, self.flush_interval, self.close_timeout = batch_size, flush_interval, close_timeout
        self._lake = (url, token, timeout)
        self.capacity = capacity
        self._closed = False
        # This clock is ahead of the lake's (a record's time refused): records go timed by the lake's
        # clock from then on, their own time kept in their data (`log.created`).
        self._untimed = False
        self._start_over()
        _HANDLERS.add(self)

    def _start_over(self) -> None:
        """An empty queue, counts at zero, and no sender yet: the first record starts one. Also what a
        forked child gets (_after_fork): the parent's queue, counts and sender stay the parent's."""
        self.dropped = 0  # records not queued: the queue was full, or the handler closed
        self.lost = 0  # records queued whose storing the lake never confirmed: their batch failed
        self._unreported = 0  # dropped records the lake has not been told about
        self._said_closed = False  # a record came after close: said once on stderr
        self._notice: EventInput | None = None  # the drop notice being sent, with its key, until confirmed
        self._accepted = 0  # records queued so far
        self._queued_bytes = 0  # the rough_size of the records on the queue now
        self._settled = 0  # of those, sent or lost
        self._progress = threading.Condition()
        self._queue: queue.Queue[Any] = queue.Queue(self.capacity)
        self._stalled_at: int | None = None  # _settled when a flush last ran out of time
        self._abandoned = False  # close gave up on the sender: what it still settles was counted lost
        self._failing = False  # the last batch failed: say so once per run of failures
        self._sending: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None  # the batch being sent, for close
        self._thread: threading.Thread | None = None

    def _start_sender(self) -> None:
        """Start the sender thread (under _progress, at the first record). In a multiprocessing child (a
        pool's worker, a DataLoader's), close the handler as the child ends: it ends with os._exit,
        without logging.shutdown, and what it logged last was lost."""
        self._thread = threading.Thread(target=self._work, args=self._lake, daemon=True, name="graphlake-log-handler")
        self._thread.start()
        if multiprocessing.parent_process() is not None:
            multiprocessing.util.Finalize(self, _close, args=(weakref.ref(self),), exitpriority=0)

    def _from_sender(self, record: logging.LogRecord) -> bool:
        """Whether the sender made `record` (httpx's and stamina's records of its requests). Asked of the
        thread handling it, which is the one that logged it, since record.thread is None wherever an
        app sets `logging.logThreads = False`: the sender's request logs were then shipped, and logged
        more requests, without end. record.thread still catches them when another thread handles
        them (a QueueListener's)."""
        sender = self._thread
        if sender is None:
            return False
        return threading.get_ident() == sender.ident or (record.thread is not None and record.thread == sender.ident)

    def _sender_alive(self) -> bool:
        sender = self._thread
        return sender is not None and sender.is_alive()

    # --- the caller's side: never waits
    def handle(self, record: logging.LogRecord) -> bool:
        # The sender's own records (httpx logs each request at INFO) are refused here, before the
        # handler's lock: logging.shutdown holds that lock while it flushes and closes this handler, so
        # a sender waiting for it stalled until close gave up, and the records still queued were lost.
        if self._from_sender(record):
            return False
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        if self._from_sender(record):
            return  # the sender's own records (httpx's, say) would feed themselves forever
        if self._closed:
            self._dropped_after_close()
            return
        try:
            event, size = self._event(record)
        except Exception:
            self.handleError(record)
            return
        with self._progress:
            if self._thread is None:
                self._start_sender()
            try:
                if self._queued_bytes and self._queued_bytes + size > self.max_queue_bytes:
                    raise queue.Full
                self._queue.put_nowait((event, size))  # its size with it: the sender gives back what was counted
                self._accepted += 1
                self._queued_bytes += size
                return
            except queue.Full:
                self.dropped += 1
                self._unreported += 1
                first = self._unreported == 1
        if first:
            sys.stderr.write(f"GraphlakeLogHandler: queue full ({self.capacity} records or {self.max_queue_bytes} bytes): "
                             "dropping log records until it drains (the count goes to the lake as a WARNING event)\n")

    def _dropped_after_close(self) -> None:
        with self._progress:
            self.dropped += 1
            first, self._said_closed = not self._said_closed, True
        if first:
            sys.stderr.write("GraphlakeLogHandler: a log record came after the handler closed: dropped, as every "
                             "later one (counted in `dropped`)\n")

    def _event(self, record: logging.LogRecord) -> tuple[EventInput, int]:
        """The record as an event, and its size as JSON (rough_size), its data walked once."""
        # The record's own level too: a custom one (25, say) goes as the named level below it.
        log: dict[str, Any] = {"logger": record.name, "module": record.module, "function": record.funcName,
                               "line": record.lineno, "path": record.pathname, "thread": record.threadName,
                               "process": record.process, "levelno": record.levelno, "levelname": record.levelname}
        if record.exc_info:
            log["exception"] = record.exc_text or logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            log["stack"] = record.stack_info
        extra = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        data = jsonable({**extra, "log": log})
        size = rough_size(data)
        if size > self.max_data_bytes:
            # Shortened now, not only as it is sent: while the lake is down, each queued record held
            # its extra whole (150 records of 2 MiB took 300 MiB). The sender still measures it exactly.
            data = shortened(data, size, self.max_data_bytes, rough_size)
            size = rough_size(data)  # at most max_data_bytes to walk again, only for a record this large
        created = datetime.fromtimestamp(record.created, UTC)
        # Keyed, and timed by the record: a batch sent again (its answer lost) is found, not stored twice.
        event: EventInput = {"eventType": self.event_type, "level": level_name(record.levelno),
                             "message": text(record.getMessage()[:MAX_MESSAGE]), "data": data,
                             "timestamp": created.isoformat(timespec="milliseconds"), "key": str(uuid.uuid4())}
        if self.source:
            event["source"] = self.source
        if self._untimed:
            event = _untimed(event)
            size += rough_size({"created": event["data"]["log"]["created"]}) - 1  # a member more in `log`
        # The event's other members are a few short strings: walked, but not its data again.
        return event, rough_size({**event, "data": None}) - rough_size(None) + size

    def flush(self, timeout: float | None = None) -> None:
        """Wait until what was logged before this call is sent (or lost), at most `timeout` (close_timeout) seconds."""
        with self._progress:
            target = self._accepted
        if self._sender_alive():
            try:
                self._queue.put_nowait(_FLUSH)  # the sender stops gathering and sends now
            except queue.Full:
                pass  # full: it sends full batches anyway
        with self._progress:
            if not self._progress.wait_for(lambda: self._settled >= target or not self._sender_alive(),
                                           self.close_timeout if timeout is None else timeout) and timeout is None:
                self._stalled_at = self._settled  # a whole close_timeout with nothing settled: stuck

    def close(self) -> None:
        """Flush, then stop the sender, in close_timeout seconds in all; records not sent by then are
        lost (counted in `lost`, and said on stderr)."""
        if not self._closed:
            # logging.shutdown flushes, then closes: when that flush ran out of time and the sender has
            # settled nothing since, it is stuck, and waiting again would only double the hang at exit.
            stuck = self._stalled_at is not None and self._stalled_at == self._settled
            deadline = time.monotonic() + (0.0 if stuck else self.close_timeout)
            if not stuck:
                self.flush()
            self._closed = True
            lost_before = self.lost
            # What a slow or stuck sender left queued will not go: count it lost, and make room for the stop.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _FLUSH:
                    self._settle(1, lost=True)
                    self._taken(item[1])
            with self._progress:
                sender = self._thread
            if sender is not None:
                try:  # emptied now; only an emit already past its closed check can still add a record
                    self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
                except queue.Full:
                    pass  # the sender is a daemon thread: it ends with the process
                sender.join(max(0.0, deadline - time.monotonic()))
            sending = None
            with self._progress:
                if self._sender_alive():  # still at a batch: it will not be waited for
                    self.lost += self._accepted - self._settled
                    self._settled, self._abandoned = self._accepted, True
                    sending = self._sending
            if self._abandoned and sending is not None:  # nor tried again: its retries could go on for a minute
                loop, task = sending
                loop.call_soon_threadsafe(task.cancel)
            if self.lost > lost_before:
                sys.stderr.write(f"GraphlakeLogHandler: {self.lost - lost_before} log records not sent before the handler "
                                 f"closed (its close_timeout, {self.close_timeout:g} s, ran out)\n")
        super().close()

    # --- the sender's side: its own thread and event loop
    def _work(self, url: str, token: str | None, timeout: float) -> None:
        with asyncio.Runner(loop_factory=ExitSafeLoop) as runner:  # it sends at exit too (logging.shutdown)
            # Its retries are the handler's: every event it sends is keyed, so lost answers are sent again.
            lake = Client(url, token, retries=self.retries, timeout=timeout, direct_writes=False)
            lake.backoff_seconds = self.backoff_seconds
            try:
                while True:
                    batch, stop = self._gather()
                    if batch:
                        try:
                            runner.run(self._send(lake, batch))
                        except asyncio.CancelledError:
                            pass  # close gave up on it (counted lost there); the stop follows
                    if stop:
                        return
            finally:
                runner.run(lake.aclose())

    def _taken(self, size: int) -> None:
        with self._progress:
            self._queued_bytes -= size

    def _gather(self) -> tuple[list[EventInput], bool]:
        """The next batch, its records' room on the queue given back (max_queue_bytes): the sizes
        emit measured, queued with them (measured again here, they held up emit's callers too)."""
        batch, stop = self._take()
        self._taken(sum(size for _, size in batch))
        return [event for event, _ in batch], stop

    def _take(self) -> tuple[list[tuple[EventInput, int]], bool]:
        """The next batch (each record with its size): from the first record on, until it is full
        (_room), flush_interval, a flush or the stop."""
        batch: list[tuple[EventInput, int]] = []
        item = self._queue.get()
        deadline = time.monotonic() + self.flush_interval
        while True:
            if item is _STOP:
                return batch, True
            if item is _FLUSH:
                if batch:
                    return batch, False
            else:
                batch.append(item)
                if len(batch) >= self._room():
                    return batch, False
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return batch, False

    def _room(self) -> int:
        """How many records the next batch takes: batch_size, less the drop notice's place when one
        waits to go. The server counts the notice as an event (GRAPHLAKE_MAX_EVENTS_PER_BATCH): a full
        batch beside it was refused whole, notice included, batch after batch."""
        waiting = self._notice is not None or self._unreported > 0  # read unlocked: _send checks again
        return max(1, self.batch_size - waiting)

    async def _send(self, lake: Client, batch: list[EventInput]) -> None:
        task = asyncio.current_task()
        with self._progress:
            if self._notice is None and self._unreported:
                self._notice = self._drop_notice(self._unreported)
                self._unreported = 0
            # The same notice (its key) until the lake confirms it: one whose answer was lost, sent
            # again with the next batch, is found, not counted twice.
            notice = [self._notice] if self._notice is not None else []
            if task is not None:
                self._sending = (asyncio.get_running_loop(), task)
        # Never more than batch_size events in all. A drop counted after the batch was gathered (or a
        # batch_size of 1) leaves no room beside the notice: what does not fit follows, without it.
        # Nor more than max_batch_bytes: what does not fit follows in a batch of its own.
        try:
            for part in self._parts(batch, room=self.batch_size - len(notice)):
                await self._deliver(lake, part, notice)
                notice = []
        finally:
            with self._progress:
                self._sending = None

    def _parts(self, batch: list[EventInput], room: int) -> list[list[EventInput]]:
        """`batch`, each record's data shortened to max_data_bytes, in parts of at most `room`
        records (then batch_size) and max_batch_bytes each."""
        parts: list[list[EventInput]] = [[]]
        size = 0
        for record in batch:
            record, record_size = self._fitted(record)
            if len(parts[-1]) >= room or (parts[-1] and size + record_size > self.max_batch_bytes):
                parts.append([])
                room, size = self.batch_size, 0
            parts[-1].append(record)
            size += record_size
        # The first part may be empty: no room beside the notice, which then goes alone.
        return [part for i, part in enumerate(parts) if part or i == 0]

    def _fitted(self, record: EventInput) -> tuple[EventInput, int]:
        """The record with its data within max_data_bytes, and its size as JSON."""
        size = _json_size(record)
        if size > self.max_data_bytes:  # only then can its data be over (the record holds it)
            data = record.get("data") or {}
            if (data_size := _json_size(data)) > self.max_data_bytes:
                record = {**record, "data": shortened(data, data_size, self.max_data_bytes)}
                size = _json_size(record)
        return record, size

    async def _deliver(self, lake: Client, records: list[EventInput], notice: list[EventInput]) -> None:
        """One logEvents call: `records`, after the drop `notice` when one goes along. A record the
        server refuses (BAD_USER_INPUT naming it) is left out and the rest sent again."""
        while notice or records:
            try:
                await lake.log_events(notice + records)  # keyed, all: sent again while it fails on the way (retries)
            except GraphlakeClientError as error:
                # (Records queued timed before that was found out are refused so too: untimed alike.)
                if _REFUSED_TIME.match(getattr(error, "field", None) or "") and any("timestamp" in r for r in records):
                    if not self._untimed:
                        sys.stderr.write(f"GraphlakeLogHandler: the lake refused a record's time ({error}): this "
                                         "machine's clock is ahead of the lake's; records are sent timed by the lake "
                                         "from now on, their own time in their data as log.created\n")
                    self._untimed = True
                    records = [_untimed(record) for record in records]
                    continue
                refused = _refused_index(error, len(notice) + len(records))
                if refused is None:
                    self._failed(lake, records, notice, error)
                    return
                sys.stderr.write(f"GraphlakeLogHandler: the lake refused a log record, sent without it: {error}\n")
                if refused < len(notice):
                    notice = []  # its count is said on stderr already
                    with self._progress:
                        self._notice = None
                else:
                    del records[refused - len(notice)]
                    self._settle(1, lost=True)
                continue
            except Exception as error:
                self._failed(lake, records, notice, error)
                return
            break
        self._failing = False
        with self._progress:
            if notice and self._notice is notice[0]:
                self._notice = None
        self._settle(len(records))

    def _failed(self, lake: Client, records: list[EventInput], notice: list[EventInput], error: Exception) -> None:
        if not self._failing:
            what = [f"{len(records)} log records"] if records else []
            what += ["the drop notice"] if notice else []
            sys.stderr.write(f"GraphlakeLogHandler: {' and '.join(what)} not confirmed stored at {lake.url} "
                             f"(tried {1 + self.retries} times at most): {type(error).__name__}: {error}\n")
        self._failing = True
        self._settle(len(records), lost=True)

    def _drop_notice(self, dropped: int) -> EventInput:
        notice: EventInput = {"eventType": self.event_type, "level": "WARNING",
                              "message": f"{dropped} log records dropped: the handler's queue was full",
                              "data": {"log": {"dropped": dropped}}, "key": str(uuid.uuid4())}
        if self.source:
            notice["source"] = self.source
        return notice

    def _settle(self, count: int, *, lost: bool = False) -> None:
        with self._progress:
            if self._abandoned:
                return  # counted when close gave up on it
            self._settled += count
            if lost:
                self.lost += count
            self._progress.notify_all()
