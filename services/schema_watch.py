"""Whether the database still holds the schema this server started on.

A server passes the schema gate once, at its start (migrations.check_schema), and then writes in
the shapes of its code. Migrations and restores refuse while it is alive (migrations/occupancy.py),
but one forced past it (`--force`), or run while its heartbeat could not be written, changes the
database under it: from then on each of its writes may be in a shape the database no longer reads
(version 11's record packs in a lake taken back to 10). So the maintenance round reads the schema
record again, and once it differs from what the server started on (another version, a step under
way, a restore, or any step taken since, even one there and back: a migration drops and makes
collections, and their indexes with them), the server stops taking writes and reports not ready
until it is restarted, which passes the gate again.
"""

from __future__ import annotations

import logging

from pymongo.asynchronous.database import AsyncDatabase

from migrations import SchemaState, read_state
from services.errors import Unavailable

log = logging.getLogger("graphlake.schema")


class SchemaWatch:
    """This server's view of the schema record: learnt at its first check, compared at each after."""

    def __init__(self) -> None:
        self._started: SchemaState | None = None
        self.changed: str | None = None  # why writes are refused; None while the schema is the one started on

    async def check(self, db: AsyncDatabase) -> bool:
        """Read the record again; False (and from then on, until restarted) once it changed."""
        if self.changed is None:
            now = await read_state(db)
            if self._started is None and now.current:
                self._started = now  # the start's gate just passed: this is what it passed on
            elif self._started is None or now.changed_since(self._started):
                self.changed = _what_changed(self._started, now)
                log.error("%s", self.changed)
        return self.changed is None

    def refuse_writes(self) -> None:
        """Unavailable, saying why, once the schema changed under this server."""
        if self.changed is not None:
            raise Unavailable(self.changed, retry=False)  # only a restart mends it


def _what_changed(started: SchemaState | None, now: SchemaState) -> str:
    if now.restoring:
        what = "a restore is writing it"
    elif now.interrupted:
        what = "a migration step is running on it (or died on it)"
    elif started is not None and now.version == started.version:
        what = f"it was migrated away and back to schema version {now.version}"
    else:
        what = f"it holds schema version {now.version} now"
    return (f"this server stopped taking writes: the database's schema changed under it ({what}), and it would "
            "write in the shapes it started on. Restart it: a start checks the schema again (a server of a "
            "release that reads the database's version is the one to start)")
