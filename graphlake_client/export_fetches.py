"""An exporter's image downloads, `Client.concurrency` at a time while it reads on through the version.

One at a time, each image waited for the one before it: at 500 images a COCO export spent most
of its time in that queue (bench/exchange.py). Each download keeps its retries on store failures
(Client._retried, which also says a failure as the GraphQL calls do) and its size and SHA-256
checks (Client._fetch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from graphlake_client.exit_loop import to_thread

if TYPE_CHECKING:
    from graphlake_client.client import Client

BACKLOG_PER_SLOT = 4  # downloads started ahead of those running, per slot: bounds the tasks held


class ExportFetches:
    """`async with ExportFetches(lake) as fetches: await fetches.add(asset, target)`: every download
    is done (or the first failure raised, the rest cancelled) when the block ends."""

    def __init__(self, lake: Client) -> None:
        self._lake = lake
        self._gate = asyncio.Semaphore(lake.concurrency)
        self._backlog = BACKLOG_PER_SLOT * lake.concurrency
        self._pending: set[asyncio.Task[None]] = set()

    async def add(self, asset: Mapping[str, Any], target: Path, then: Callable[[], None] | None = None) -> None:
        """Start downloading `asset` into `target`, then run `then` (in a thread: it may read the
        file). Waits while the backlog is full; raises the failure of one started before."""
        while len(self._pending) >= self._backlog:
            done, self._pending = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        self._pending.add(asyncio.create_task(self._one(asset, target, then)))

    async def _one(self, asset: Mapping[str, Any], target: Path, then: Callable[[], None] | None) -> None:
        async with self._gate:
            await self._lake._retried(self._lake._fetch, asset, target)
        if then is not None:
            await to_thread(then)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        pending, self._pending = self._pending, set()
        try:
            if kind is None:  # the export read to its end: every download must finish
                for task in asyncio.as_completed(pending):
                    await task
        finally:  # after a failure (the export's or a download's), what is still running is not wanted
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
