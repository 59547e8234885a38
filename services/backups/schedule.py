"""Scheduled backups: each due backup is taken by one process of a cluster, logged as an event (a
failure as an alerting error), and only the newest few scheduled backups are kept."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from documents.event import BACKUP_COMPLETED, BACKUP_FAILED, LEVELS
from documents.json_value import StoredJson
from services.backups.writer import remove_dead_partials, write_backup
from services.events.feed import FeedWriter
from services.events.log import EventSettings, NewEvent, log_events
from services.schedules import claim_due, failed

log = logging.getLogger("graphlake.backups")
PREFIX = "scheduled-"  # only these are pruned: manual and pre-migration backups stay until removed


class ScheduleSettings(EventSettings, Protocol):
    """What scheduled backups read from the server's settings (graphlake/settings.py says what each means)."""

    backup_every_hours: float | None
    backup_keep: int


async def scheduled_backup(db: AsyncDatabase, feed: FeedWriter, settings: ScheduleSettings, directory: Path, *,
                           graphlake_version: str, local_roots: Mapping[str, Path] | None = None,
                           referenced_mounts: Sequence[str] = (),
                           on_outcome: Callable[[str], None] | None = None) -> Path | None:
    """Take the scheduled backup if it is due here; the new backup's directory, else None.
    `on_outcome` (the app's metrics) is told "written" or "failed" of each backup attempted: a
    failure is reported here, as an alert event, and never raised."""
    if settings.backup_every_hours is None:
        return None
    every = timedelta(hours=settings.backup_every_hours)
    if (claim := await claim_due(db, "backup", every)) is None:
        return None
    destination = directory / f"{PREFIX}{utcnow().strftime('%Y%m%dT%H%M%S.%fZ')}"
    started = time.monotonic()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        await feed.settled()  # the audit entries of every mutation answered so far (services/events/journal.py)
        manifest = await write_backup(db, destination, graphlake_version=graphlake_version, local_roots=local_roots,
                                      referenced_mounts=referenced_mounts)
    except Exception as error:  # any failure is reported, as an alert, and the server goes on
        # In the server's log too: an operator reading it after the fact should not need the event log.
        log.error("scheduled backup to %s failed: %s: %s", destination, type(error).__name__, error)
        # Tried again within the hour (RETRY_AFTER), as the other scheduled jobs are: a passing fault
        # (a full disk, the database away a moment) cost a whole period without a backup, a day at 24.
        await failed(db, "backup", every, claim)
        await log_events(feed, [NewEvent(
            event_type=BACKUP_FAILED, level=LEVELS["ERROR"], alert=True,
            message=f"scheduled backup to {destination} failed: {error}",
            data=StoredJson.encode({"path": str(destination), "error": f"{type(error).__name__}: {error}"}))], settings)
        if on_outcome is not None:
            on_outcome("failed")
        return None
    seconds = round(time.monotonic() - started, 3)
    await log_events(feed, [NewEvent(
        event_type=BACKUP_COMPLETED, message=f"scheduled backup to {destination}",
        data=StoredJson.encode({"path": str(destination), "documents": manifest.documents,
                                "objects": len(manifest.payloads), "payloadBytes": manifest.payload_bytes,
                                "seconds": seconds}))], settings)
    if on_outcome is not None:
        on_outcome("written")
    await asyncio.to_thread(prune, directory, settings.backup_keep)
    return destination


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` scheduled backups in `directory` (their names sort by time),
    and what backups that died there left (a backup also does, before it starts: this is for one that
    died after it)."""
    remove_dead_partials(directory)
    scheduled = sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    removed = scheduled[:-keep] if keep else scheduled
    for path in removed:
        shutil.rmtree(path)
    return removed
