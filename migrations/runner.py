"""The schema record and the runner that moves a database between versions.

The record is one document in `graphlake_schema`: the version the data has, the Graphlake version that
wrote it, the steps taken so far, and while a step runs, which one (a marker another runner and every
start see). A step that dies half-way leaves its marker: running `migrate` again, in either direction,
runs that step again first (steps are idempotent and accept data half-way between their two versions),
then goes on.

Which runner takes a step is decided by a unique key, not by the conditional update that sets the marker:
on FerretDB that update is not atomic (of runners sending it at once, several matched), an insert of a
taken `_id` is refused on every server. So before it marks the record, a runner inserts a claim document
beside it, whose `_id` names the record as the runner read it (see _claim_id): of runners that read the
record alike, one inserts it. Every change of the record gives it another name (a step's end is a new
history entry, a marker carries a token of its own), so a claim is never wanted twice, and claims stay
(a few a step). A runner that dies between its claim and its marker leaves a claim and no marker: it is
taken over as a marker is, by a claim of its own on that claim.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import ModuleType
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from migrations import (
    v002_upload_sweeps,
    v003_frozen_versions,
    v004_content_manifests,
    v005_corrections_and_batches,
    v006_datum_uses,
    v007_asset_lineage,
    v008_event_origin,
    v009_event_keys,
    v010_full_json_views,
    v011_record_packs,
    v012_item_sort_keys,
    v013_version_mask_pins,
)
from migrations.liveness import gone, this_process

STATE_COLLECTION = "graphlake_schema"
STATE_ID = "schema"
HISTORY_KEPT = 100
CLAIM_PREFIX = "claim: "  # the `_id`s of claim documents, beside the record in STATE_COLLECTION
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The tokens of the markers this process's migrate calls hold while they run: a marker of this process
# whose call has ended (raised) is taken over by the next call, but not one a call still running holds.
_RUNNING: set[str] = set()

# What version 1 stored, frozen: a database holding any of these but no record is a version-1 lake
# (that version recorded nothing). Another system's collections in the same database do not count.
V1_COLLECTIONS = frozenset({
    "annotation_schemas", "annotation_sets", "annotation_records", "api_tokens", "assets", "aliases",
    "collections", "collection_items", "datums", "datasets", "dataset_versions", "version_members",
    "events", "event_feed", "retentions", "upload_sessions", "upload_claims", "graphlake_probe",
})

Run = Callable[[AsyncDatabase], Awaitable[None]]


@dataclass(frozen=True)
class Migration:
    """The change from version `version - 1` to `version`, and back."""

    version: int
    summary: str
    forward: Run
    backward: Run

    @classmethod
    def of(cls, module: ModuleType) -> Migration:
        return cls(module.VERSION, module.SUMMARY, module.forward, module.backward)


MIGRATIONS: tuple[Migration, ...] = tuple(Migration.of(module) for module in (
    v002_upload_sweeps, v003_frozen_versions, v004_content_manifests, v005_corrections_and_batches, v006_datum_uses,
    v007_asset_lineage, v008_event_origin, v009_event_keys, v010_full_json_views, v011_record_packs,
    v012_item_sort_keys, v013_version_mask_pins))
SCHEMA_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 1
assert [m.version for m in MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1)), "migrations are numbered 2, 3, ... in order"
_BY_VERSION = {m.version: m for m in MIGRATIONS}


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True)
class Step:
    """One migration run one way."""

    migration: Migration
    direction: Direction

    @property
    def from_version(self) -> int:
        return self.migration.version - 1 if self.direction is Direction.FORWARD else self.migration.version

    @property
    def to_version(self) -> int:
        return self.migration.version if self.direction is Direction.FORWARD else self.migration.version - 1

    def __str__(self) -> str:
        return f"{self.from_version} -> {self.to_version}: {self.migration.summary}"

    async def run(self, db: AsyncDatabase) -> None:
        await (self.migration.forward if self.direction is Direction.FORWARD else self.migration.backward)(db)


@dataclass(frozen=True)
class SchemaState:
    """What a database records about its shapes. `version` None: an empty database, never used."""

    version: int | None
    written_by: str | None = None
    interrupted: dict[str, Any] | None = None  # the marker of a step under way or dead half-way
    history: list[dict[str, Any]] = field(default_factory=list)
    restoring: dict[str, Any] | None = None  # set while a restore writes the database (services/backups)

    @property
    def current(self) -> bool:
        return self.version == SCHEMA_VERSION and self.interrupted is None and self.restoring is None

    def changed_since(self, earlier: SchemaState) -> bool:
        """Whether the shapes may differ from `earlier`'s: another version, a step or restore under way,
        or any step taken between (one there and back drops and makes collections on the way)."""
        return (self.version, self.interrupted, self.restoring, self.history) != (
            earlier.version, earlier.interrupted, earlier.restoring, earlier.history)


class SchemaMismatch(RuntimeError):
    """The database's shapes are not the ones this code reads: it must be migrated (or the code changed) first."""

    def __init__(self, state: SchemaState) -> None:
        self.state = state
        if state.restoring:
            what = f"a restore from {state.restoring.get('source')} (started {state.restoring.get('started_at')}) did not finish"
        elif state.interrupted:
            what = f"a migration step ({_marker_text(state.interrupted)}) did not finish"
        else:
            what = f"the database holds schema version {state.version}, this code reads version {SCHEMA_VERSION}"
        super().__init__(what)


class MigrationInProgress(RuntimeError):
    """Another runner, still alive, holds the migration marker."""


def plan(start: int, target: int) -> list[Step]:
    """The steps from version `start` to `target`, in order."""
    for version in (start, target):
        _known(version)
    if target >= start:
        return [Step(_BY_VERSION[v], Direction.FORWARD) for v in range(start + 1, target + 1)]
    return [Step(_BY_VERSION[v], Direction.BACKWARD) for v in range(start, target, -1)]


def _known(version: int) -> None:
    if not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"schema version {version} is unknown to this code (it knows 1 to {SCHEMA_VERSION})")


async def read_state(db: AsyncDatabase) -> SchemaState:
    return (await _read(db))[1]


async def _read(db: AsyncDatabase) -> tuple[dict[str, Any] | None, SchemaState]:
    """The record as stored (None: there is none), and what it says."""
    record = await db[STATE_COLLECTION].find_one({"_id": STATE_ID})
    if record is not None:
        return record, SchemaState(record["version"], record.get("written_by"), record.get("migrating"),
                                   record.get("history", []), record.get("restoring"))
    if V1_COLLECTIONS & set(await db.list_collection_names()):
        return None, SchemaState(1)
    return None, SchemaState(None)


async def check_schema(db: AsyncDatabase, writer: str) -> SchemaState:
    """The gate every start passes: an empty database is recorded at this code's version; any other
    that is not exactly at it (or has a step half-done) raises SchemaMismatch."""
    state = await read_state(db)
    if state.version is None:
        await _record_new(db, SCHEMA_VERSION, writer)
        state = await read_state(db)
    if not state.current:
        raise SchemaMismatch(state)
    return state


async def migrate(db: AsyncDatabase, *, writer: str, to: int = SCHEMA_VERSION, dry_run: bool = False,
                  take_over: bool = False, force: bool = False,
                  on_step: Callable[[Step], None] | None = None) -> list[Step]:
    """Move the database to version `to` (forward or back), one recorded step at a time; the steps
    taken (with `dry_run`, the steps it would take, touching nothing). An empty database is just
    recorded at `to`. A marker left by a runner that is alive elsewhere raises MigrationInProgress
    unless `take_over` (the caller knows that runner is gone). While a server or a backup uses the
    database, a migration with steps to take raises occupancy.InUse unless `force`; one with nothing
    to do succeeds all the same (`make run` migrates before each start, servers running or not).
    A version this code does not know, as `to` or stored, raises ValueError, with `dry_run` too."""
    from migrations.occupancy import refuse_if_in_use  # it reads this module's record collection

    _known(to)  # before anything: a dry run on an empty database would otherwise promise any version
    record, state = await _read(db)
    if state.version is None:
        if not dry_run:
            await _record_new(db, to, writer)
        return []
    if state.restoring:
        raise SchemaMismatch(state)  # half-restored: only finishing the restore makes sense
    steps = _steps_from(state, to)
    left = state.interrupted
    if left and not take_over and not _ended_here(left) and not gone(left):
        raise MigrationInProgress(f"another runner holds the migration marker ({_marker_text(left)})")
    if dry_run or not steps:
        return steps
    if not force:
        await refuse_if_in_use(db, f"migrating to schema version {to}")
    seen = record  # the record as this runner last read or wrote it: each step's claim names it
    for step in steps:
        token = str(ObjectId())
        marker = {"migration": step.migration.version, "direction": step.direction.value, "writer": writer,
                  **this_process(), "started_at": datetime.now(UTC), "claim": token}
        _RUNNING.add(token)
        try:
            seen = await _take_step(db, seen, step, marker, take_over=take_over)
        finally:
            _RUNNING.discard(token)  # ended: a marker it left (it raised) is this process's to take over
        if on_step:
            on_step(step)
    return steps


async def _take_step(db: AsyncDatabase, seen: dict[str, Any] | None, step: Step, marker: dict[str, Any], *,
                     take_over: bool) -> dict[str, Any]:
    """Claim the record as `seen`, mark it, run `step` and record it; the record then."""
    await _claim(db, seen, marker, take_over=take_over)
    # The claim decides; the update's condition only keeps a marker set since from being overwritten
    # where the update is atomic (MongoDB), and its upsert makes a version-1 lake's record.
    held_marker = (seen or {}).get("migrating")
    held = ({"migrating.pid": held_marker.get("pid"), "migrating.started_at": held_marker.get("started_at")}
            if held_marker else {"migrating": None})
    try:
        taken = await db[STATE_COLLECTION].find_one_and_update(
            {"_id": STATE_ID, **held},
            {"$set": {"migrating": marker}, "$setOnInsert": {"version": step.from_version, "history": []}},
            upsert=seen is None, return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:  # the record exists, with another runner's marker
        taken = None
    if taken is None:
        raise MigrationInProgress("another runner changed the schema record while this one ran; run again to see where it is")
    await step.run(db)
    done = await db[STATE_COLLECTION].find_one_and_update({"_id": STATE_ID}, {
        "$set": {"version": step.to_version, "written_by": marker["writer"], "migrating": None},
        "$push": {"history": {"$each": [{"from": step.from_version, "to": step.to_version, "at": datetime.now(UTC),
                                         "by": marker["writer"]}], "$slice": -HISTORY_KEPT}},
    }, return_document=ReturnDocument.AFTER)
    assert done is not None
    return done


async def _claim(db: AsyncDatabase, seen: dict[str, Any] | None, marker: dict[str, Any], *, take_over: bool) -> None:
    """Insert the claim on the record as `seen` (holding `marker`, which it sets next), or raise
    MigrationInProgress: another runner claimed it, or the record is no longer as seen. A claim whose
    runner is gone (or `take_over`, or a call of this process that has ended) without having marked
    the record is taken over by a claim on that claim, which is again one runner's."""
    on = _claim_id(seen)
    claim_id = on
    while True:
        try:
            await db[STATE_COLLECTION].insert_one({**marker, "_id": claim_id})
            return
        except DuplicateKeyError:
            pass
        holder = await db[STATE_COLLECTION].find_one({"_id": claim_id})
        if holder is None or _claim_id(await db[STATE_COLLECTION].find_one({"_id": STATE_ID})) != on:
            raise MigrationInProgress("another runner changed the schema record while this one ran; run again to see where it is")
        if not (take_over or _ended_here(holder) or gone(holder)):
            raise MigrationInProgress(f"another runner holds the migration claim ({_marker_text(holder)})")
        claim_id = f"{CLAIM_PREFIX}take over {holder['claim']}"


def _claim_id(record: dict[str, Any] | None) -> str:
    """The `_id` of the claim that lets one runner change the record from what it is in `record`.
    Unique to that state of the record: a record without a marker is named by its version and the time
    of its last history entry (each step's end, restore and first record adds one), one with a marker by
    the marker's token (a marker of an earlier Graphlake, which has none, by its process and start)."""
    if record is None:
        return f"{CLAIM_PREFIX}the first step of a lake that has no record"
    marker = record.get("migrating")
    if marker:
        token = marker.get("claim") or f"{marker.get('host')}/{marker.get('pid')}/{_instant(marker.get('started_at'))}"
        return f"{CLAIM_PREFIX}take over {token}"
    history = record.get("history") or [{}]
    return f"{CLAIM_PREFIX}version {record.get('version')} since {_instant(history[-1].get('at'))}"


def _instant(value: object) -> object:
    """A stored time as every client reads it, tz-aware or naive UTC: milliseconds since the epoch."""
    if isinstance(value, datetime):
        return ((value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH) // timedelta(milliseconds=1)
    return value


def _ended_here(marker: dict[str, Any]) -> bool:
    """Whether a marker (or claim) was left by a migrate call of this process that has ended (raised)."""
    return all(marker.get(k) == v for k, v in this_process().items()) and marker.get("claim") not in _RUNNING


def _steps_from(state: SchemaState, target: int) -> list[Step]:
    """The steps from where `state` is to `target`: a step left half-done runs again first, the way
    that leads to `target`."""
    assert state.version is not None
    if not state.interrupted:
        return plan(state.version, target)
    version = state.interrupted["migration"]
    if target >= version:
        return [Step(_BY_VERSION[version], Direction.FORWARD), *plan(version, target)]
    return [Step(_BY_VERSION[version], Direction.BACKWARD), *plan(version - 1, target)]


async def _record_new(db: AsyncDatabase, version: int, writer: str) -> None:
    """Record `version` for an empty database; another process doing the same at once is fine."""
    try:
        await db[STATE_COLLECTION].update_one(
            {"_id": STATE_ID},
            {"$setOnInsert": {"version": version, "written_by": writer, "migrating": None,
                              "history": [{"from": None, "to": version, "at": datetime.now(UTC), "by": writer}]}},
            upsert=True,
        )
    except DuplicateKeyError:  # two upserts raced; the other one's insert stands
        pass


def _marker_text(marker: dict[str, Any]) -> str:
    version = marker.get("migration")
    arrow = f"{version - 1} -> {version}" if marker.get("direction") == Direction.FORWARD else f"{version} -> {version - 1}"
    return f"{arrow}, started {marker.get('started_at')} by pid {marker.get('pid')} on {marker.get('host')}"
