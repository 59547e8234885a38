"""How many GraphQL requests run at once on one process; the rest wait their turn.

One process runs every request on one event loop. Fifty heavy reads admitted together each
complete a few fields, then yield, so every turn of the loop runs fifty slices of work: a /healthz
(or any light request) arriving then waits for all of them at each of the several turns it needs,
and requests past the database time limit fail while they only waited for the loop. Admitted a few
at a time, the same work takes the same total time, each request finishes sooner, and a turn of the
loop stays short. A request that waits longer than `wait_seconds` for its turn gets UNAVAILABLE
(HTTP 503 with Retry-After), so a client under overload hears so rather than timing out.

The default is 4 slots, not more: what the admitted requests hold while they run (a nested page's
documents and results, some 20,000 objects each) is what every young-generation pass of Python's
garbage collector walks, so its pauses (the longest waits on /healthz) grow with the slots. Under
bench/health.py's load on 2 cores, 4 slots gave /healthz p99 76-80 ms where 8 gave 89-117 ms, at
the same requests per second: the loop is one CPU either way, and 4 still overlap the database's
round trips.

Queries and mutations sent on a WebSocket take a slot too (graphlake/websocket_handlers.py);
subscriptions do not: one holds its socket for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from services.errors import Unavailable

# How long no request must have run before quiet() returns. An importing client works a few to a
# hundred milliseconds between its batches; a person clicking through the web app, longer.
QUIET_SECONDS = 0.25


class Admission:
    def __init__(self, concurrent: int, wait_seconds: float) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self.concurrent = concurrent
        self.wait_seconds = wait_seconds
        self.waiting = 0  # how many requests wait for a slot now
        self.running = 0  # how many hold one
        self._quiet = asyncio.Event()  # set while none does
        self._quiet.set()
        self._quiet_since = time.monotonic()  # when the last one ended
        self._admitted = 0  # requests that took a slot, ever
        self.timed_out = 0  # requests answered UNAVAILABLE for want of a slot, ever (in the metrics)

    async def quiet(self) -> None:
        """Return once no request has held a slot for QUIET_SECONDS. Background work that no one
        waits for (eager thumbnails, services/thumbnails.py) waits for this, so it does not take the
        CPU from requests: not during a burst, nor in the gaps between the requests of a client that
        sends them one after another (an import, whose client works between its batches)."""
        while True:
            await self._quiet.wait()
            admitted = self._admitted
            await asyncio.sleep(max(0.0, self._quiet_since + QUIET_SECONDS - time.monotonic()))
            if self._quiet.is_set() and self._admitted == admitted:
                return

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            if self._slots.locked():  # a wait is due: bounded by wait_seconds
                async with asyncio.timeout(self.wait_seconds):
                    await self._slots.acquire()
            else:  # a free slot is taken at once: no timer to arm and cancel (most requests; ~3 us each)
                await self._slots.acquire()
        except TimeoutError:
            self.timed_out += 1
            raise Unavailable(f"the server is busy: this request waited {self.wait_seconds:g} s for one of its "
                              f"{self.concurrent} request slots (GRAPHLAKE_MAX_CONCURRENT_REQUESTS)") from None
        finally:
            self.waiting -= 1
        self.running += 1
        self._admitted += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self.running -= 1
            if not self.running:
                self._quiet_since = time.monotonic()
                self._quiet.set()
            self._slots.release()
