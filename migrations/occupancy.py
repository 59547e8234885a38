"""Who is using a database right now: the servers serving it and the backups reading it, which a
migration (either way) and a restore must not run under.

A server writes into the shapes it started on and never looks again, so a migration under it leaves
it writing what the new version no longer reads (version 11's packs into a lake taken back to 10); a
backup reads the list of collections and the schema version once, so one under a migration labels
what it copied with a version the data no longer has, and misses what the migration moved. Neither
can be left to the operator's memory across hosts, so both say so in the database:

- a server, by its event feed heartbeat (services/events/feed.py): a row in SERVERS_COLLECTION whose
  `alive_at` it renews every second, and clears as it stops. A row renewed within ALIVE_FOR is a live
  server; one that died (kill -9) stops counting ALIVE_FOR after its last beat.
- a backup, by a lease (`lease`): a document beside the schema record, renewed while it runs and
  removed as it ends. One that died stops counting LEASE_FOR after its last renewal.

Both are judged by the reader's clock against the writer's: hosts' clocks must agree to a few seconds
(as they must for every other expiry here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from migrations.liveness import this_process
from migrations.runner import STATE_COLLECTION  # leases sit beside the schema record

SERVERS_COLLECTION = "feed_writers"  # the feed's heartbeats: one row per server process
ALIVE_FOR = timedelta(seconds=10)  # a server that has not beaten for this long is not counted
LEASE_PREFIX = "lease: "
LEASE_FOR = timedelta(seconds=60)  # a lease not renewed for this long is a dead holder's
RENEW_EVERY_SECONDS = 10.0
log = logging.getLogger("graphlake.occupancy")


class InUse(RuntimeError):
    """A server or a backup is using the database, and what was asked would change it under them."""


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _who(row: dict[str, Any]) -> str:
    """"pid 123 on host-a", or what there is of it (servers of releases before this one recorded neither)."""
    pid, host = row.get("pid"), row.get("host")
    return " ".join(filter(None, [f"pid {pid}" if pid is not None else None, f"on {host}" if host else None])) or "a process that did not record its host"


async def users(db: AsyncDatabase) -> list[str]:
    """What uses `db` now, one line each: live servers (and when each was last seen) and running backups."""
    now = _now()
    found = []
    async for row in db[SERVERS_COLLECTION].find({"alive_at": {"$gte": now - ALIVE_FOR}}):
        seen = (now - _aware(row["alive_at"])).total_seconds()
        found.append(f"a server ({_who(row)}), seen {max(seen, 0):.1f} s ago")
    async for lease in db[STATE_COLLECTION].find({"_id": {"$regex": f"^{LEASE_PREFIX}"}, "until": {"$gte": now}}):
        started = (now - _aware(lease["started_at"])).total_seconds()
        found.append(f"{lease.get('what', 'a backup')} ({_who(lease)}), running for {max(started, 0):.0f} s "
                     f"(its lease ends {LEASE_FOR.total_seconds():.0f} s after it stops renewing it)")
    return found


async def refuse_if_in_use(db: AsyncDatabase, doing: str) -> None:
    """InUse, naming each, while a server or a backup uses `db`: `doing` (e.g. "a migration") would
    change the database under them."""
    found = await users(db)
    if found:
        raise InUse(f"{doing} would change database {db.name!r} under what is using it: {'; '.join(found)}. Stop the "
                    "servers and let the backups end first, or pass --force (a server left running writes in the "
                    "shapes it started on, which the changed database may no longer read; a backup under way fails)")


@contextlib.asynccontextmanager
async def lease(db: AsyncDatabase, what: str) -> AsyncIterator[None]:
    """Hold a lease on `db` while the block runs (`what` names the holder, e.g. "a backup into /x"):
    refuse_if_in_use names it until the block ends, or until LEASE_FOR after a killed holder's last
    renewal. Leases of dead holders are removed as a new one is taken."""
    lease_id = f"{LEASE_PREFIX}{ObjectId()}"
    await db[STATE_COLLECTION].delete_many({"_id": {"$regex": f"^{LEASE_PREFIX}"}, "until": {"$lt": _now()}})
    await db[STATE_COLLECTION].insert_one({"_id": lease_id, "what": what, **this_process(), "started_at": _now(),
                                           "until": _now() + LEASE_FOR})

    async def renew() -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            try:
                await db[STATE_COLLECTION].update_one({"_id": lease_id}, {"$set": {"until": _now() + LEASE_FOR}})
            except Exception:  # the next renewal may get through; until then a migration may not see the holder
                log.warning("could not renew the lease of %s", what, exc_info=True)

    renewing = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await db[STATE_COLLECTION].delete_one({"_id": lease_id})
