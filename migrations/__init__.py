"""Versioned changes to the stored document shapes, and the record of which version a database holds.

SCHEMA_VERSION is the shape version this code reads and writes. Each change to a stored shape adds one
module here (`vNNN_<what>.py`) with a forward and a backward step written against raw collections and
the shapes of its own time, never against today's Beanie documents (those move on; a step must keep
meaning what it meant). Steps are idempotent, so a run that died half-way is finished by running it again.

Indexes are not migrated: each document declares its own and every start reconciles them
(graphlake/database.py), so an upgrade or a downgrade gets the indexes of the code it runs.

Version 1 is the shape of the first wave, before the database recorded any version.
"""

from migrations.occupancy import InUse
from migrations.runner import (
    MIGRATIONS,
    SCHEMA_VERSION,
    STATE_COLLECTION,
    Migration,
    MigrationInProgress,
    SchemaMismatch,
    SchemaState,
    Step,
    check_schema,
    migrate,
    plan,
    read_state,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "STATE_COLLECTION", "InUse", "Migration", "MigrationInProgress", "SchemaMismatch", "SchemaState", "Step",
           "check_schema", "migrate", "plan", "read_state"]
