"""In-process fan-out of notifications to live subscribers, each with a bounded queue.

A slow subscriber never blocks the publisher: when its queue is full it is dropped, and its
stream ends with SubscriberOverflow once it has read what it was sent. Each subscriber's filter
runs as a message is handed out, so its queue holds (and its lag counts) only what it asked for: a
subscriber that wants little is never dropped for messages it did not want. Across server processes,
the event feed (services/events/feed.py) publishes into each process's Broadcast.

Publishing returns at once; one task per Broadcast hands the messages out, in the order they were
published, to the subscribers listening as each was published, and takes its turn on the event loop
(services/pauses.py) as it goes. Filters are the costly part: one logEvents of 10,000 events, handed
to one subscriber whose filter took 2 ms an event, held the loop 20 s in the publisher, and every
other request of the process waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from services.cancellation import raise_if_cancelled
from services.pauses import take_turn, turn_due

log = logging.getLogger("graphlake.broadcast")



class SubscriberOverflow(Exception):
    """The subscriber fell too far behind (its queue full, or the fan-out's backlog) and was dropped."""


# Messages published and not yet handed out, past which every subscriber listening is dropped as
# overflowed (they all wait on the same backlog, handed out in order). Publishing no longer waits for
# the fan-out, so a lake logging faster than its subscribers' filters keep up with would otherwise
# hold ever more in memory; dropped, a subscriber's client resumes from the log by event ID. Several
# of the largest logEvents batches, so one batch handed to a cheap filter never reaches it.
PENDING_LIMIT = 100_000


class _Subscriber:
    def __init__(self, size: int, accept: Callable[[Any], bool]) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(size)
        self.accept = accept
        self.overflowed: str | None = None  # why it was dropped, behind
        self.failed: Exception | None = None  # its filter raised: that ends this subscription only


# Wakes a subscriber waiting on an empty queue to read why it ends.
_WAKE = object()
_UNSET = object()  # a message not presented yet


class Broadcast:
    """`present` turns a published message into what subscribers receive, once for all of them (the
    server passes the GraphQL type's constructor, so services publish documents and stay GraphQL-free)."""

    def __init__(self, queue_size: int = 1000, present: Callable[[Any], Any] = lambda message: message) -> None:
        self.queue_size = queue_size
        self.present = present
        self._subscribers: set[_Subscriber] = set()
        # Set when the first subscriber arrives or the last one leaves (the event feed tells other
        # processes whether to send it anything); whoever acts on it clears it.
        self.listening_changed = asyncio.Event()
        # Published, not yet handed out: each publish's messages with the subscribers listening then,
        # in the order published. `_handing_out` works through them, while there are any.
        self._pending: deque[tuple[list[Any], tuple[_Subscriber, ...]]] = deque()
        self._pending_count = 0  # the messages in `_pending`
        self._handing_out: asyncio.Task | None = None

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions this broadcast feeds now (tests wait on it: a client is not told
        when its subscription starts to listen)."""
        return len(self._subscribers)

    def publish(self, message: Any) -> None:
        self.publish_all((message,))

    def publish_all(self, messages: Iterable[Any]) -> None:
        """Queue messages for the subscribers listening now, in order (read only when there are any).
        Returns at once: they are handed out in the background, after what was published before."""
        if not self._subscribers:
            return
        batch = list(messages)
        if not batch:
            return
        if self._pending_count + len(batch) > PENDING_LIMIT:
            for subscriber in list(self._subscribers):
                self._drop(subscriber, f"fell more than {PENDING_LIMIT} messages behind the live fan-out")
            self._pending.clear()
            self._pending_count = 0
            return
        self._pending.append((batch, tuple(self._subscribers)))
        self._pending_count += len(batch)
        if self._handing_out is None or self._handing_out.done():
            # A context of its own: not the publishing request's time limit, tracing span or event batch.
            self._handing_out = asyncio.get_running_loop().create_task(
                self._hand_out(), name="live fan-out", context=contextvars.Context())

    async def _hand_out(self) -> None:
        """Each pending message to each of its subscribers still listening, taking turns on the loop
        between subscribers: one task, so each subscriber gets the messages in the order published."""
        while self._pending:
            messages, subscribers = self._pending.popleft()
            self._pending_count -= len(messages)
            for message in messages:
                presented = _UNSET
                for subscriber in subscribers:
                    if turn_due():
                        await take_turn()
                    if subscriber not in self._subscribers:
                        continue  # left, or ended, since it was published
                    if presented is _UNSET:
                        try:
                            presented = self.present(message)
                        except Exception:  # never the fan-out's end: the next messages still go out
                            log.exception("live fan-out: a message could not be presented; not sent")
                            break
                    self._offer(subscriber, presented)

    def _offer(self, subscriber: _Subscriber, message: Any) -> None:
        # Filtered here, not as the subscriber reads: a queue holds only what its subscriber wants,
        # so a burst of unrelated events (one large logEvents) never fills an idle subscriber's queue.
        try:
            if not subscriber.accept(message):
                return
        except Exception as error:  # ends its own subscription, never the others' delivery
            subscriber.failed = error
            self._remove(subscriber)
            with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its reader anyway
                subscriber.queue.put_nowait(_WAKE)
            return
        try:
            subscriber.queue.put_nowait(message)
        except asyncio.QueueFull:
            self._drop(subscriber, f"fell more than {subscriber.queue.maxsize} messages behind")

    def _drop(self, subscriber: _Subscriber, why: str) -> None:
        """End a subscription that fell behind, once its reader has read what it was sent."""
        subscriber.overflowed = f"{why} and was dropped"
        self._remove(subscriber)
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its reader anyway
            subscriber.queue.put_nowait(_WAKE)

    def _remove(self, subscriber: _Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            if not self._subscribers:
                self.listening_changed.set()

    async def subscribe(self, accept: Callable[[Any], bool] = lambda _: True) -> AsyncIterator[Any]:
        """The presented messages `accept` takes, in order. `accept` runs as they are handed out, once
        per subscriber; if it raises, this subscription ends with that error once it has read the rest."""
        async with self.listen(accept) as messages:
            async for message in messages:
                yield message

    @contextlib.asynccontextmanager
    async def listen(self, accept: Callable[[Any], bool] = lambda _: True) -> AsyncIterator[AsyncIterator[Any]]:
        """As `subscribe`, but listening from the moment the block is entered, before its messages are
        read: a resuming subscription (resolvers/events/queries.py) reads the log meanwhile, and
        nothing published after it started reading may be lost."""
        subscriber = _Subscriber(self.queue_size, accept)
        if not self._subscribers:
            self.listening_changed.set()
        self._subscribers.add(subscriber)
        try:
            yield self._read(subscriber)
        finally:
            self._remove(subscriber)

    async def _read(self, subscriber: _Subscriber) -> AsyncIterator[Any]:
        while True:
            raise_if_cancelled()  # else a subscription whose cancellation was lost waits here for good
            if subscriber.queue.empty():
                if subscriber.failed is not None:
                    raise subscriber.failed
                if subscriber.overflowed:
                    raise SubscriberOverflow(subscriber.overflowed)
            message = await subscriber.queue.get()
            if message is not _WAKE:
                yield message
