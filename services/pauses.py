"""Pauses: waiting on an event for at most a while, as the background loops do between rounds, and
giving the event loop back during long work, as request steps and the live fan-out do.

One process serves every request on one event loop, and asyncio runs every step that is ready before
it looks at its sockets again: work that runs long without a yield makes every other request wait,
/healthz included (#16). So such work takes its turn (`take_turn`): once the loop's current stretch of
work has lasted STRETCH, the step waits for the next iteration, after the sockets have been read.
"""

from __future__ import annotations

import asyncio
import time

# The longest stretch of work one loop iteration runs before the next steps wait for the loop to read
# its sockets (and so answer /healthz). Shorter costs more re-queued steps at saturation.
STRETCH = 0.01

# The current stretch: the loop it runs on and when it began (None: the loop has read its sockets
# since). One event loop serves every request of a process; a new loop (a test's) starts afresh.
_loop: asyncio.AbstractEventLoop | None = None
_began: float | None = None


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


def _stretch_over() -> None:
    global _began
    _began = None


def turn_due() -> bool:
    """Whether the loop's current stretch of work has lasted STRETCH, so the step should `take_turn`
    now; the check alone, for a loop of small items that would pay for an await each. A stretch's
    first check starts it, and schedules its end: a callback that runs first thing in the next
    iteration, so there the steps that waited start a new stretch."""
    global _loop, _began
    loop = asyncio.get_running_loop()
    now = time.perf_counter()
    if _began is None or _loop is not loop:
        _loop, _began = loop, now
        loop.call_soon(_stretch_over)
        return False
    return now - _began >= STRETCH


async def take_turn() -> None:
    """Return at once while the loop's current stretch of work is shorter than STRETCH; otherwise wait
    for the next iteration, which reads the sockets first. Those still over it wait again, behind what
    the sockets brought (a /healthz, say)."""
    while True:  # not awaiting an asyncio.Event: the next iteration is what it waits for
        if not turn_due():
            return
        await asyncio.sleep(0)
