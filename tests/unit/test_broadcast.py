"""The in-process fan-out (services/broadcast.py): what counts against a subscriber's queue, and
what a failing filter ends."""

from __future__ import annotations

import asyncio
import time

import pytest

from services import broadcast as broadcast_module
from services.broadcast import Broadcast, SubscriberOverflow
from tests.waiting import LoopTurns, wait_for


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


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_a_long_publish_is_handed_out_in_turns_with_the_loops_other_work() -> None:
    """1,000 messages through a filter of 0.1 ms each: 100 ms of work, which held the loop in one go
    from the publisher (a logEvents of 10,000 events through a costly filter: 20 s). Now other work
    runs between stretches of it, and the subscriber still gets every message, in order."""
    def costly(message: object) -> bool:
        busy(0.0001)
        return True

    broadcast = Broadcast(queue_size=2000)
    stream = broadcast.subscribe(costly)
    first = asyncio.ensure_future(anext(stream))
    await _listening(broadcast, 1)
    async with LoopTurns() as turns:
        await asyncio.sleep(0)
        broadcast.publish_all(range(1000))
        before = turns.count
        got = [await first, *[await anext(stream) for _ in range(999)]]
        assert turns.count - before >= 5  # about one turn per STRETCH of filtering (10 ms); in one go, one
    assert got == list(range(1000))


async def test_each_subscriber_gets_what_was_published_while_it_listened_in_order() -> None:
    broadcast = Broadcast(queue_size=2000)

    def slow(message: object) -> bool:
        busy(0.00005)
        return True

    early = broadcast.subscribe(slow)
    waiting = asyncio.ensure_future(anext(early))
    await _listening(broadcast, 1)
    broadcast.publish_all(range(1000))  # still being handed out as the next subscriber arrives
    late = broadcast.subscribe()
    late_first = asyncio.ensure_future(anext(late))
    await _listening(broadcast, 2)
    broadcast.publish("after")
    assert await late_first == "after"  # nothing published before it listened
    assert [await waiting, *[await anext(early) for _ in range(1000)]] == [*range(1000), "after"]
    await late.aclose()
    await early.aclose()


async def test_a_subscriber_that_leaves_gets_nothing_more_of_a_long_publish() -> None:
    handed: list[object] = []

    def counted(message: object) -> bool:
        busy(0.00005)
        handed.append(message)
        return True

    broadcast = Broadcast(queue_size=2000)
    leaving, witness = broadcast.subscribe(counted), broadcast.subscribe()
    first = [asyncio.ensure_future(anext(leaving)), asyncio.ensure_future(anext(witness))]
    await _listening(broadcast, 2)
    broadcast.publish_all(range(1000))
    assert await first[0] == 0
    await leaving.aclose()
    assert [await first[1], *[await anext(witness) for _ in range(999)]] == list(range(1000))  # all handed out
    assert len(handed) < 1000  # its filter stopped running as it left
    await witness.aclose()


async def test_a_backlog_past_the_limit_drops_every_subscriber_behind_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing does not wait for the fan-out: past PENDING_LIMIT messages not yet handed out, the
    subscribers (all behind that backlog) end with SubscriberOverflow, and nothing more is held."""
    monkeypatch.setattr(broadcast_module, "PENDING_LIMIT", 10)
    broadcast = Broadcast(queue_size=1000)
    stream = broadcast.subscribe()
    first = asyncio.ensure_future(anext(stream))
    await _listening(broadcast, 1)
    broadcast.publish_all(range(6))
    broadcast.publish_all(range(6, 10))  # 10 pending, the hand-out not run yet: at the limit, kept
    assert await first == 0 and [await anext(stream) for _ in range(9)] == list(range(1, 10))
    broadcast.publish_all(range(6))
    broadcast.publish_all(range(6, 12))  # 12 pending: past it
    assert broadcast.subscriber_count == 0
    with pytest.raises(SubscriberOverflow, match="more than 10 messages behind the live fan-out"):
        await anext(stream)
    late = broadcast.subscribe()
    second = asyncio.ensure_future(anext(late))
    await _listening(broadcast, 1)
    broadcast.publish("after")  # a new subscriber is fed again
    assert await second == "after"
    await late.aclose()


async def test_a_subscriber_whose_cancellation_was_lost_on_the_way_stops_instead_of_waiting() -> None:
    """Python 3.11's asyncio.wait_for (inside every PyMongo send) can return its result instead of
    raising a cancellation that came at the same moment (services/cancellation.py). A subscription
    so cancelled came back to its live stream and waited there for good. The stream now raises the
    cancellation it finds pending; one a task took back on purpose (`uncancel`, as asyncio.timeout
    does) reads on."""
    broadcast = Broadcast(queue_size=10)
    reached = asyncio.Event()

    async def subscriber(*, taken_back: bool) -> str:
        try:
            await reached.wait()  # a write, cancelled as it ends: the cancellation lost on the way
        except asyncio.CancelledError:
            if taken_back:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
        async for message in broadcast.subscribe():
            return message
        return "ended"

    lost = asyncio.ensure_future(subscriber(taken_back=False))
    await asyncio.sleep(0)
    lost.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(lost, 5)  # waited for a message before
    assert broadcast.subscriber_count == 0

    kept = asyncio.ensure_future(subscriber(taken_back=True))
    await asyncio.sleep(0)
    kept.cancel()
    await _listening(broadcast, 1)
    broadcast.publish("still here")
    assert await asyncio.wait_for(kept, 5) == "still here"
