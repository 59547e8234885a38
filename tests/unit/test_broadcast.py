"""The in-process fan-out (services/broadcast.py): what counts against a subscriber's queue, and
what a failing filter ends."""

from __future__ import annotations

import asyncio

import pytest

from services.broadcast import Broadcast, SubscriberOverflow
from tests.waiting import wait_for


async def _listening(broadcast: Broadcast, count: int) -> None:
    # A generator subscribes when it is first iterated, in the task started for it.
    await wait_for(lambda: broadcast.subscriber_count == count, what=f"{count} subscriber(s)")


async def test_unwanted_messages_never_fill_a_queue() -> None:
    broadcast = Broadcast(queue_size=2)
    stream = broadcast.subscribe(lambda m: m == "wanted")
    first = asyncio.ensure_future(anext(stream))
    await _listening(broadcast, 1)
    for _ in range(100):  # all published before the subscriber reads anything
        broadcast.publish("noise")
    broadcast.publish("wanted")
    assert await first == "wanted"
    await stream.aclose()


async def test_a_full_queue_of_wanted_messages_still_drops_its_subscriber() -> None:
    broadcast = Broadcast(queue_size=2)
    stream = broadcast.subscribe()
    first = asyncio.ensure_future(anext(stream))
    await _listening(broadcast, 1)
    for i in range(5):
        broadcast.publish(i)
    assert [await first, await anext(stream)] == [0, 1]
    with pytest.raises(SubscriberOverflow, match="more than 2 messages behind"):
        await anext(stream)


async def test_a_filter_that_raises_ends_its_own_subscription_only() -> None:
    broadcast = Broadcast()

    def broken(message: object) -> bool:
        raise KeyError("assetId")

    failing, healthy = broadcast.subscribe(broken), broadcast.subscribe()
    waiting = [asyncio.ensure_future(anext(failing)), asyncio.ensure_future(anext(healthy))]
    await _listening(broadcast, 2)
    broadcast.publish("event")  # the publisher is not the one that fails
    with pytest.raises(KeyError):
        await waiting[0]
    assert await waiting[1] == "event"
    assert broadcast.subscriber_count == 1
    await healthy.aclose()
