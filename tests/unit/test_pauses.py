"""services/pauses.event_within: a background loop's wait between rounds, which a stop must end."""

from __future__ import annotations

import asyncio

import pytest

from services.pauses import event_within


async def test_it_says_whether_the_event_came_in_time() -> None:
    event = asyncio.Event()
    assert await event_within(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await event_within(event, 5) is True


@pytest.mark.parametrize("seconds", [0, 5])
async def test_a_stop_that_comes_with_the_event_still_stops(seconds: float) -> None:
    """The server's stop cancels the loops as it closes their sockets, which sets the event they wait
    on (the feed reader's `listening_changed`): the cancellation must come out. Python 3.11's wait_for
    returned the event instead, every time, and the loop went on past the stop's 10 s limit."""
    for _ in range(20):
        event = asyncio.Event()
        waiting = asyncio.create_task(event_within(event, seconds))
        await asyncio.sleep(0)  # it is waiting
        event.set()
        waiting.cancel()  # in the same turn
        with pytest.raises(asyncio.CancelledError):
            await waiting
