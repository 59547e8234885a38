"""Readiness: is the database answering and is every mount usable? Shared by /readyz and `health`."""

from __future__ import annotations

import asyncio
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
