"""Waiting on an event for at most a while, as the background loops do between rounds."""

from __future__ import annotations

import asyncio


async def event_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`.

    Not `asyncio.wait_for`: on Python 3.11 a cancellation that arrives in the same turn as the event
    is lost, the wait answering as if the event alone had come (gh-86296, fixed in 3.12). A server's
    stop closes sockets, which sets the event the feed reader waits on, as it cancels the reader:
    the reader went on and outlived the stop by its 10 s limit. `asyncio.timeout` counts
    cancellations, and lets the stop through (tests/unit/test_pauses.py)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
