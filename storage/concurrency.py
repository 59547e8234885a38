"""How many store calls one operation keeps in flight: a batch of uploads, a garbage collection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

STORE_CONCURRENCY = 16  # enough to hide a store's latency, few enough not to swamp it


async def bounded_gather(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int = STORE_CONCURRENCY) -> list[T]:
    """Run the jobs, at most `limit` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))
