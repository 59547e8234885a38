"""Readiness: is the database answering and is every mount usable? Shared by /readyz, `health` and
`graphlake health`."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ServerSelectionTimeoutError

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


async def _database_error(db: AsyncDatabase | None, seconds: float) -> str | None:
    if db is None:
        return None  # not probed: the caller knows why
    try:
        # A moment more than `seconds`: a client that gives up after `seconds` says why itself.
        await asyncio.wait_for(db.command("ping"), seconds + 0.5)
    except ServerSelectionTimeoutError as error:
        # PyMongo's message goes on with the whole topology: the first server's error says it.
        return f"database: unreachable: {_FIRST_ERROR.split(str(error))[0]}"
    except TimeoutError:
        return f"database: no answer within {seconds:g} s"
    except Exception as error:  # any failure means "not ready"; the message says which
        return f"database: {type(error).__name__}: {error}"
    return None


# Where PyMongo's server-selection message turns from the error to its settings and topology.
_FIRST_ERROR = re.compile(r" \(configured timeouts|, Timeout: ")


async def _mount_error(store: ObjectStore, seconds: float) -> str | None:
    try:
        await asyncio.wait_for(store.check(), seconds)
    except StoreUnavailable as error:
        return str(error)
    except TimeoutError:
        return f"mount {store.name!r}: no answer within {seconds:g} s"
    except Exception as error:
        # Not one a store's check is meant to raise (a closed store's, a library's own): the mount is
        # not ready all the same, and named. Raised, it made /readyz answer 500 and `health` fail whole.
        return f"mount {store.name!r}: its check failed: {type(error).__name__}: {error}"
    if store.ownership.lake is not None and store.ownership.owner is None:
        # Not yet known whose it is (services/mount_owners.py): every upload there is refused meanwhile.
        return store.ownership.refusal()
    return None


async def probe(db: AsyncDatabase | None, stores: dict[str, ObjectStore], seconds: float = PROBE_TIMEOUT) -> HealthReport:
    """Checks the database (unless None) and every mount concurrently, each given `seconds`."""
    names = list(stores)
    results = await asyncio.gather(_database_error(db, seconds), *(_mount_error(stores[n], seconds) for n in names))
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


class FailureLog:
    """Says each failure in the log when it starts and again every `every` seconds while it lasts.

    /readyz needs no token and wrote a line per failing part on every call: a load balancer asking
    every second, or anyone asking in a loop, wrote as many lines as requests while a mount was down.
    """

    def __init__(self, log: logging.Logger, every: float = 60.0) -> None:
        self._log = log
        self.every = every
        self._said: dict[str, float] = {}  # each failure still going on, and when it was last said

    def say(self, failures: list[str]) -> None:
        now = time.monotonic()
        # A failure that ended is forgotten: said again at once should it come back.
        self._said = {failure: at for failure, at in self._said.items() if failure in failures}
        for failure in failures:
            if now - self._said.get(failure, -math.inf) >= self.every:
                self._log.warning("not ready: %s", failure)
                self._said[failure] = now
