"""Waiting in tests on a condition, never for a guessed time (DESIGN.md, Tests): a sleep long enough on
an idle machine is too short on a loaded one, and too long everywhere else."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from services.broadcast import Broadcast


async def wait_for(condition: Callable[[], Any | Awaitable[Any]], *, timeout: float = 10,  # noqa: ASYNC109 (a poll that names what it awaited)
                   interval: float = 0.02, what: str | None = None) -> Any:
    """Return `condition()`'s first true value (it may be sync or async), polled every `interval`
    seconds; fail saying what was awaited once `timeout` seconds have passed without one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"waited {timeout} s for {what or getattr(condition, '__qualname__', condition)}")
        # A short poll: the event loop runs the served app too, so this is where the server makes progress.
        await asyncio.sleep(interval)


class LoopTurns:
    """The event loop's turns counted while the block runs (`async with LoopTurns() as turns:`, then
    `turns.count`): a step that holds the loop in one go lets none pass, one that waits on a thread or
    takes its turns lets some. A count, not a time: it says the same on a fast machine and a slow one."""

    def __init__(self) -> None:
        self.count = 0
        self._spinning: asyncio.Task | None = None

    async def _spin(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._spinning = asyncio.create_task(self._spin())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._spinning is not None
        self._spinning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._spinning


def live_subscribers(events: Broadcast) -> int:
    """How many subscriptions this process's broadcast feeds now. A client is not told when its
    subscription starts to listen (the protocols have no acknowledgement), so a test that publishes
    right after subscribing first waits for this count."""
    return events.subscriber_count
