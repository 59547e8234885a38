"""Cancellations that never reached the task they were meant for.

On Python 3.11, `asyncio.wait_for` returns its inner result instead of raising when a cancellation
comes at the moment the inner awaitable finishes (fixed in 3.12: CPython gh-86296), and PyMongo's
asynchronous driver sent every command through it: about one cancel in three landing half a
millisecond into a write was lost (measured against the embedded FerretDB). The task then goes on
as if never cancelled, to its next wait, which nothing cancels again: a subscription waited for live
messages for good, and a background loop ran on through the server's stop. Commands are now sent
and answered without it (graphlake/driver_waits.py), but the driver still connects through it, so
loops and long waits call raise_if_cancelled first."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """CancelledError if this task was cancelled and has not seen it. A task that caught its
    cancellation on purpose has taken it back (`Task.uncancel`, as `asyncio.timeout` does) and goes on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
