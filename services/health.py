"""Readiness: is the database answering and is every mount usable? Shared by /readyz, `health` and
`graphlake health`."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from storage import ObjectStore, StoreUnavailable

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class HealthReport:
    database_error: str | None
    mount_errors: dict[str, str | None]

    @property
    def database(self) -> bool:
        return self.database_error is None

    @property
    def storage(self) -> bool:
        return all(error is None for error in self.mount_errors.values())

    @property
    def ok(self) -> bool:
        return self.database and self.storage


async def _database_error(db: AsyncDatabase) -> str | None:
    try:
        await asyncio.wait_for(db.command("ping"), PROBE_TIMEOUT)
    except Exception as error:  # any failure means "not ready"; the message says which
        return f"database: {type(error).__name__}: {error}"
    return None


async def _mount_error(store: ObjectStore) -> str | None:
    try:
        await asyncio.wait_for(store.check(), PROBE_TIMEOUT)
    except StoreUnavailable as error:
        return str(error)
    except TimeoutError:
        return f"mount {store.name!r}: no answer within {PROBE_TIMEOUT:.0f}s"
    return None


async def probe(db: AsyncDatabase, stores: dict[str, ObjectStore]) -> HealthReport:
    """Checks the database and every mount concurrently."""
    names = list(stores)
    results = await asyncio.gather(_database_error(db), *(_mount_error(stores[n]) for n in names))
    return HealthReport(database_error=results[0], mount_errors=dict(zip(names, results[1:], strict=True)))


class SharedProbe:
    """The server's probe: one at a time, its report reused for `max_age` seconds.

    /readyz and the `health` query need no token, and each call pinged the database and asked every
    store: a client calling them in a loop cost that many round trips, and as many waits on a store
    that hangs. Here callers arriving together share one probe, and a report is reused briefly;
    a caller that gives up does not cancel the probe the others wait on.
    """

    def __init__(self, db: AsyncDatabase, stores: dict[str, ObjectStore], max_age: float = 1.0) -> None:
        self.db = db
        self.stores = stores
        self.max_age = max_age
        self._report: HealthReport | None = None
        self._at = -math.inf
        self._running: asyncio.Future[HealthReport] | None = None
        self.probes = 0  # how many probes ran (for tests)

    def forget(self) -> None:
        """Drop the last report: the next caller probes (after the mounts changed, say)."""
        self._report = None

    async def report(self) -> HealthReport:
        loop = asyncio.get_running_loop()
        if self._report is not None and loop.time() - self._at < self.max_age:
            return self._report
        if self._running is None:
            self._running = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._running)

    async def _probe(self) -> HealthReport:
        try:
            self.probes += 1
            report = await probe(self.db, self.stores)
            self._report, self._at = report, asyncio.get_running_loop().time()
            return report
        finally:
            self._running = None
