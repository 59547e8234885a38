"""In-process fan-out of notifications to live subscribers, each with a bounded queue.

A slow subscriber never blocks the publisher: when its queue is full it is dropped, and its
stream ends with SubscriberOverflow once it has read what it was sent. Each subscriber's filter
runs as a message is published, so its queue holds (and its lag counts) only what it asked for: a
subscriber that wants little is never dropped for messages it did not want. Across server processes,
the event feed (services/events/feed.py) publishes into each process's Broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any


class SubscriberOverflow(Exception):
    """The subscriber fell more than its queue size behind and was dropped."""


class _Subscriber:
    def __init__(self, size: int, accept: Callable[[Any], bool]) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(size)
        self.accept = accept
        self.overflowed = False
        self.failed: Exception | None = None  # its filter raised: that ends this subscription only


# Wakes a subscriber waiting on an empty queue to read why it ends.
_WAKE = object()


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

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions this broadcast feeds now (tests wait on it: a client is not told
        when its subscription starts to listen)."""
        return len(self._subscribers)

    def publish(self, message: Any) -> None:
        if not self._subscribers:
            return
        message = self.present(message)
        for subscriber in list(self._subscribers):
            # Filtered here, not as the subscriber reads: a queue holds only what its subscriber wants,
            # so a burst of unrelated events (one large logEvents) never fills an idle subscriber's queue.
            try:
                if not subscriber.accept(message):
                    continue
            except Exception as error:  # ends its own subscription, never the publisher's round
                subscriber.failed = error
                self._remove(subscriber)
                with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its reader anyway
                    subscriber.queue.put_nowait(_WAKE)
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                subscriber.overflowed = True
                self._remove(subscriber)

    def _remove(self, subscriber: _Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            if not self._subscribers:
                self.listening_changed.set()

    async def subscribe(self, accept: Callable[[Any], bool] = lambda _: True) -> AsyncIterator[Any]:
        """The presented messages `accept` takes, in order. `accept` runs as they are published, once
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
            if subscriber.queue.empty():
                if subscriber.failed is not None:
                    raise subscriber.failed
                if subscriber.overflowed:
                    raise SubscriberOverflow(f"fell more than {subscriber.queue.maxsize} messages behind and was dropped")
            message = await subscriber.queue.get()
            if message is not _WAKE:
                yield message
