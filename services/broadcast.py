"""In-process fan-out of notifications to live subscribers, each with a bounded queue.

A slow subscriber never blocks the publisher: when its queue is full it is dropped, and its
stream ends with SubscriberOverflow once it has read what it was sent. Across server processes,
the event feed (services/events/feed.py) publishes into each process's Broadcast.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any


class SubscriberOverflow(Exception):
    """The subscriber fell more than its queue size behind and was dropped."""


class _Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(size)
        self.overflowed = False


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
        subscriber = _Subscriber(self.queue_size)
        if not self._subscribers:
            self.listening_changed.set()
        self._subscribers.add(subscriber)
        try:
            while True:
                if subscriber.overflowed and subscriber.queue.empty():
                    raise SubscriberOverflow(f"fell more than {self.queue_size} messages behind and was dropped")
                message = await subscriber.queue.get()
                if accept(message):
                    yield message
        finally:
            self._remove(subscriber)
