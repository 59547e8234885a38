"""Opening and closing everything Graphlake runs on: shared by the app's lifespan and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from pymongo.monitoring import CommandListener

from documents.clock import utcnow
from graphlake import __version__
from graphlake.data_dir import owner_only_dir
from graphlake.database import connected
from graphlake.database_access import database_url, embedded
from graphlake.local_services import EmbeddedDatabase
from graphlake.mounts import build_stores, signing_secret
from graphlake.settings import Settings
from graphlake.tracing import Tracing
from resolvers.context import AppState
from resolvers.events.types import Event
from services.broadcast import Broadcast
from services.errors import Unavailable
from services.events.feed import FeedWriter
from services.events.journal import AuditJournal
from services.health import SharedProbe
from services.metrics import Metrics
from services.mount_owners import missing_roots, noted_roots, settle_owners
from services.thumbnails import Thumbnailer
from services.token_cache import TokenCache
from storage.signing import UrlSigner

log = logging.getLogger("graphlake.database")

if TYPE_CHECKING:
    from storage.s3 import Observer


@asynccontextmanager
async def open_state(settings: Settings, listeners: Sequence[CommandListener] = (), *,
                     serving: bool = False, tracing: Tracing | None = None,
                     quiet: Callable[[], Awaitable[None]] | None = None, mounts: bool = True) -> AsyncIterator[AppState]:
    """The database (starting the embedded FerretDB when no URL is set) and every mount, opened.
    `serving` (the server, not a command) bounds each database operation by the request time limit,
    and keeps metrics unless GRAPHLAKE_METRICS is off; with `tracing`, database commands and S3
    requests are traced too. `quiet` returns once no request is running: eager thumbnails wait for it.
    A command (not `serving`) that uses the mounts (`mounts`) is refused, Unavailable, when a local
    mount's folder this lake used before is missing: a server goes on (/readyz names it), but a
    command run then went through with nothing written or deleted there (`assets gc` deleted the
    assets and left their files), saying so only in a warning.

    Closed in reverse order on exit, also when opening fails half-way.
    """
    owner_only_dir(settings.data_dir)  # whatever the database: it holds secrets and the local mount's objects
    async with AsyncExitStack() as stack:
        if settings.mongodb_url:
            url = database_url(settings, stack)
        else:
            database = embedded(settings, stack)
            url = database.url
            if serving:  # cancelled before the database stops (the stack unwinds in reverse)
                watchdog = asyncio.create_task(keep_running(database))
                stack.push_async_callback(_cancelled, watchdog)
        timeout = settings.database_timeout_seconds if serving else None
        metrics = Metrics(max_operation_names=settings.metrics_max_operation_names) \
            if serving and settings.metrics != "off" else None
        observers = [watcher for watcher in (metrics, tracing) if watcher is not None]
        listeners = [*listeners, *(watcher.database_listener() for watcher in observers)]
        client = await stack.enter_async_context(connected(url, settings.database, listeners, timeout))
        stores = build_stores(settings, _s3_observers(observers) if observers else None)
        db = client[settings.database]
        lake = await noted_roots(db, stores)  # a local mount's folder used before is not made as it opens
        for store in stores.values():
            await store.open()
            stack.push_async_callback(store.close)
        await settle_owners(db, stores, lake)  # before anything may write or delete on a mount
        if mounts and not serving and (missing := missing_roots(stores)):
            raise Unavailable("; ".join(missing))
        if metrics is not None:
            for name, store in stores.items():
                store.ownership.on_refused = partial(_count_refused, metrics, name)
        events = Broadcast(settings.subscriber_queue_size, present=Event.from_document)
        feed = FeedWriter(db, events)
        stack.push_async_callback(feed.close)  # before the client closes: its last copies go out
        journal = AuditJournal(settings.audit_journal_dir, feed.writer, feed.write_numbered, settings.audit_flush_seconds)
        if serving and settings.journals_audit:
            await journal.open()  # stores what a process that stopped left first
            feed.ahead = journal
        else:  # a command, or a server without the journal, still stores what a stopped server left
            await journal.replay()
        yield AppState(settings=settings, client=client, db=db, stores=stores, started_at=utcnow(),
                       events=events, feed=feed, tokens=TokenCache(settings.token_cache_seconds), version=__version__,
                       metrics=metrics, health=SharedProbe(db, stores),
                       # Signed with the local mounts' secret, for every mount: S3 mounts' thumbnails are
                       # made by this server too, on the first GET of such a URL.
                       thumbnail_signer=UrlSigner(signing_secret(settings), settings.base_url, route="/thumbnails"),
                       thumbnailer=Thumbnailer(settings.thumbnail_concurrency, settings.thumbnail_max_pixels, metrics,
                                               quiet=quiet))


# How often the server checks that the embedded FerretDB still answers: a database that died is
# back within this (and its start, about a second), where requests meanwhile get UNAVAILABLE.
REVIVE_SECONDS = 2.0


async def keep_running(database: EmbeddedDatabase) -> None:
    """Start the embedded FerretDB again whenever it has stopped (crashed, killed, out of memory)."""
    while True:
        await asyncio.sleep(REVIVE_SECONDS)
        try:
            status = await asyncio.to_thread(database.revive)
        except Exception as error:  # its binary gone, its files unreadable: said, and tried again
            log.error("the embedded FerretDB has stopped and could not be started again: %s", error)
            continue
        if status is not None:
            log.error("the embedded FerretDB had stopped (exit status %s); started it again (its log: %s)",
                      status, database.ferret_dir / "ferretdb.log")


async def _cancelled(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _count_refused(metrics: Metrics, mount: str, action: str) -> None:
    metrics.mount_changes_refused.labels(mount, action).inc()


def _s3_observers(observers: Sequence[Metrics | Tracing]) -> Callable[[str], Observer]:
    """One S3 observer per mount that tells each of `observers` (metrics, tracing)."""
    def for_mount(mount: str) -> Observer:
        each = [observer.s3_observer(mount) for observer in observers]

        def observe(operation: str, seconds: float, ok: bool) -> None:
            for observer in each:
                observer(operation, seconds, ok)

        return each[0] if len(each) == 1 else observe

    return for_mount


