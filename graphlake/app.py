"""The ASGI application: `create_app(settings)` and the lifespan that opens and closes its services."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING

from pymongo.monitoring import CommandListener
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from graphlake import __version__
from graphlake.admission import Admission
from graphlake.blob_routes import blob_routes
from graphlake.compression import compression
from graphlake.content_routes import content_routes
from graphlake.graphiql import graphiql_asset_route, graphiql_installed, not_installed
from graphlake.http_limits import BodySizeLimit, RequestId
from graphlake.http_metrics import HttpRequests
from graphlake.logs import json_line
from graphlake.metrics_route import metrics_route
from graphlake.mounts import local_roots
from graphlake.runtime import open_state
from graphlake.settings import Settings
from graphlake.thumbnail_routes import thumbnail_routes
from graphlake.tracing import RouteNames, start_tracing
from graphlake.view import GraphQLView
from graphlake.webapp import not_built, webapp_built, webapp_fallback, webapp_routes
from resolvers.context import AppState
from resolvers.schema import build_schema
from services import collections, lineage, unfinished_deletes
from services.asset_users import remove_orphaned_uses
from services.assets import unpinned_rounds
from services.auth import ensure_bootstrap_admin
from services.availability import no_time_limit
from services.backups.schedule import scheduled_backup
from services.batches import remove_abandoned
from services.cancellation import raise_if_cancelled
from services.events import audit
from services.events.feed import ALIVE_FOR, FeedTail, ensure_feed
from services.events.log import archive as archive_events
from services.health import FailureLog
from services.metrics import Metrics, task_outcome
from services.mount_owners import settle_owners
from services.node_ids import NodeType, encode_id
from services.privacy.aging import scheduled_anonymization
from services.privacy.places import pseudonym_key
from services.schedules import run_due
from services.snapshots import write_missing_contents
from services.uploads.reconciler import reconcile, sweep_stray_copies, sweep_temp_files

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

log = logging.getLogger("graphlake")
# True in the server's own background tasks (maintenance, scheduled backups): a database command
# listener can tell their commands from a request's (the test suite's round-trip counts do).
in_background: ContextVar[bool] = ContextVar("graphlake_in_background", default=False)
# Headers browser apps send beyond CORS's safelisted ones, allowed so their preflight passes: the token and
# request id, W3C trace context (OpenTelemetry's fetch instrumentation adds traceparent, tracestate and
# baggage), and Apollo Client's (apollo-require-preflight, its operation name and client identity).
CORS_REQUEST_HEADERS = [
    "Authorization", "Content-Type", "X-Request-ID", "traceparent", "tracestate", "baggage",
    "apollo-require-preflight", "x-apollo-operation-name", "apollographql-client-name", "apollographql-client-version",
]
# Response headers a page of another origin may read (beyond CORS's safelisted ones): what names a
# download (its file name, and the content route's description of the asset), and why a request was refused.
CORS_RESPONSE_HEADERS = [
    "X-Request-ID", "Retry-After", "WWW-Authenticate", "Content-Disposition", "Content-Range", "ETag",
    "X-Graphlake-Id", "X-Graphlake-Kind", "X-Graphlake-Name", "X-Graphlake-Size", "X-Graphlake-SHA256",
]

# Sweeping temp files lists every directory of each local mount: hourly, not every reconcile round.
TEMP_SWEEP_SECONDS = 3600
STRAY_SWEEP_EVERY = timedelta(days=1)  # it lists every file of each mount's assets/ and versions/
# Versions without a content file (built before them, or its write failed) get one, a few an hour:
# each reads its whole version, and the round's other steps wait for it.
CONTENT_FILES_EVERY = timedelta(hours=1)
CONTENT_FILES_PER_ROUND = 20
CONTENT_FILES_SECONDS = 60  # none begun after this long
# Uses and lineage links a crash left behind read every one of them: daily too. What is younger than
# LINKS_SETTLED may still be in the middle of a write (services/lineage.remove_stale_links).
STALE_LINKS_EVERY = timedelta(days=1)
UNFINISHED_DELETES_EVERY = timedelta(hours=1)  # a version a dead delete hid stays hidden at most this (and 30 min)
# An addToCollection cut short between its pins and its items left them (collections.settle_cut_short_adds).
CUT_SHORT_ADDS_EVERY = timedelta(hours=1)
LINKS_SETTLED = timedelta(hours=1)
SCHEMA_CHECK_SECONDS = 2.0  # how soon a schema changed under the server (a forced migration) stops its writes
SHUTDOWN_WAIT_SECONDS = 10  # for the workers and event writes still running when the server stops


def create_app(
    settings: Settings | None = None,
    *,
    announce: bool = False,
    command_listeners: Sequence[CommandListener] = (),
    tracer_provider: TracerProvider | None = None,
) -> Starlette:
    """The Graphlake app. `announce` prints the URLs and a first admin token (for `graphlake serve`).

    `command_listeners` are handed to PyMongo; tests use one to count database round trips.
    `tracer_provider` turns tracing on with it (tests give one that keeps spans in memory); without
    it, tracing follows GRAPHLAKE_TRACING and the OTEL_* variables (graphlake/tracing.py).
    """
    settings = settings or Settings()
    tracing = start_tracing(settings, tracer_provider)
    admission = Admission(settings.max_concurrent_requests, settings.request_queue_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_state(settings, command_listeners, serving=True, tracing=tracing,
                              quiet=admission.quiet) as state:
            app.state.graphlake = state
            if state.metrics is not None:
                state.metrics.watch_admission(admission)
            with no_time_limit():  # startup: no client waits on it
                secret = await ensure_bootstrap_admin(state.feed, settings) if settings.bootstrap_admin_token else None
                await ensure_feed(state.db, settings.event_feed_bytes)
            workers = [asyncio.create_task(FeedTail(state.db, state.events, state.feed).run()),
                       asyncio.create_task(_maintain(state)), asyncio.create_task(_watch_schema(state))]
            if settings.backup_every_hours is not None:
                workers.append(asyncio.create_task(_scheduled_backups(state)))
            if announce:
                _announce(settings, secret)
            try:
                yield
            finally:
                for worker in workers:
                    worker.cancel()
                await _finish(workers, state.background)
                try:  # so a migration run next (`make run` again) need not wait for this server's heartbeat to age
                    await state.feed.stopped()
                except Exception:
                    log.warning("could not mark this server stopped; a migration waits %s for it", ALIVE_FOR,
                                exc_info=True)
                if tracing is not None:
                    tracing.close()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "version": __version__})

    said = FailureLog(log)

    async def readyz(request: Request) -> JSONResponse:
        state: AppState = request.app.state.graphlake
        report = await state.health.report()
        # Anyone may ask (a load balancer does, without a token): say what fails by name only; the
        # errors name endpoints and buckets, so they go to the server log (and `graphlake health`).
        failing = ["database"] if report.database_error else []
        failing += [f"mount {name}" for name, error in report.mount_errors.items() if error]
        failing += ["schema"] if state.schema_watch.changed else []  # it takes no writes: send them elsewhere
        said.say(list(filter(None, [report.database_error, *report.mount_errors.values(), state.schema_watch.changed])))
        ok = report.ok and not failing
        # Ready all the same: a lake reads a mount another lake owns (a restored copy's), and says so here.
        foreign = [name for name, store in state.stores.items() if not store.ownership.owned]
        body = {"ok": ok, "database": report.database, "storage": report.storage, "failing": failing,
                "notOwned": foreign}
        return JSONResponse(body, status_code=200 if ok else 503)

    view = GraphQLView(build_schema(settings, [tracing.schema_extension()] if tracing else []), settings, admission)
    # The count outside the request id: it sees the answer that middleware gives an unexpected error.
    middleware = [Middleware(HttpRequests), Middleware(RequestId), Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, paths=("/graphql",))]
    if settings.cors_origins:
        # Outside the body limit, so a 413 reaches a page of another origin as a 413 (inside, it came
        # without CORS headers, and the browser reported a network error instead).
        middleware.insert(0, Middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_RESPONSE_HEADERS,
        ))
    if tracing is not None:  # outermost: the server span covers everything below, and carries the client's trace
        instrumentation, options = tracing.asgi_middleware()
        middleware[:0] = [Middleware(instrumentation, **options), Middleware(RouteNames)]
    compressed = [compression(settings.compression_min_bytes)] if settings.compression else []
    routes = [
        # Every method reaches the view, which answers the ones GraphQL over HTTP has no use for (HEAD,
        # PUT, ...) with a GraphQL error and `Allow: GET, POST`: the route's own 405 was plain text
        # and listed HEAD, which the view refuses.
        Route("/graphql", view, methods=None, middleware=compressed),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *metrics_route(settings),
        graphiql_asset_route(settings, middleware=compressed),
        *blob_routes(),
        *content_routes(),
        *thumbnail_routes(),
        *webapp_routes(settings, middleware=compressed),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={404: webapp_fallback(settings)})
    app.state.admission = admission
    app.state.settings = settings  # how it is served follows them too (graphlake/http_server.py)
    return app


async def _finish(workers: list[asyncio.Task], background: set[asyncio.Task]) -> None:
    """Wait for the cancelled workers and the event writes still running, but not forever: a stop
    must not hang on one stuck task. Those left are named in the log, with where each waits."""
    tasks = {*workers, *background}
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_SECONDS)
    for task in pending:
        log.warning("stopping without task %s, still running after %g s: %s", task.get_name(), SHUTDOWN_WAIT_SECONDS,
                    "".join(traceback.format_stack(task.get_stack()[-1])) if task.get_stack() else "?")


async def _maintain(state: AppState) -> None:
    """At start and then every interval: remove what batch writes that died left (services/batches.py),
    expire upload sessions past their time (and, hourly, sweep the temp files of uploads that died;
    daily, set aside stray copies and remove stale uses and links; hourly, run again the deletes that
    died half done: services/unfinished_deletes.py), archive old events, and (when
    configured) anonymize what is old enough (daily) and delete assets nothing has pinned for long
    enough. Each round counts in the metrics as ok or error (an error when any of its steps failed,
    the others having run), and each step on its own too."""
    in_background.set(True)  # this task's own context
    with no_time_limit():  # no client waits on this task: its operations have no time limit
        swept_at = -math.inf
        while True:
            raise_if_cancelled()  # as in _watch_schema
            try:
                with task_outcome(state.metrics, "maintenance"):
                    swept_at = await _maintenance_round(state, swept_at)
            except StepsFailed as error:  # each logged already, with its traceback
                swept_at = error.swept_at
                log.error("maintenance: %s", error)
            except Exception:
                log.exception("maintenance failed; the round runs again next interval")
            await asyncio.sleep(state.settings.reconcile_interval_seconds)


async def _maintenance_round(state: AppState, swept_at: float) -> float:
    """One round of _maintain; returns when temp files were last swept.

    Each step runs on its own: one that fails is logged and the others still run, where a step that
    kept failing (a daily job is due again an hour after it fails: services/schedules.py) would keep
    those after it from ever running. One process of a cluster runs each daily job. None runs once
    the schema changed under this server: they write in the shapes it started on."""
    if not await state.schema_watch.check(state.db):
        return swept_at
    settings = state.settings

    async def abandoned_batches() -> None:
        abandoned = await remove_abandoned(state.db)
        if abandoned:
            log.warning("removed the documents of %d batch write(s) whose writer died", abandoned)

    async def uploads() -> None:
        expired = await reconcile(state.stores, state.feed)
        if expired:
            log.info("expired %d upload session(s)", expired)
            if state.metrics is not None:
                state.metrics.expired_uploads.inc(expired)

    async def temp_files() -> None:
        nonlocal swept_at
        if time.monotonic() - swept_at >= TEMP_SWEEP_SECONDS:
            swept_at = time.monotonic()  # hourly, whether or not this sweep gets through
            swept = await sweep_temp_files(state.stores, timedelta(seconds=settings.upload_expiry_seconds))
            if swept:
                log.info("removed %d temp file(s) of uploads that died", swept)

    # Each step's name is its `task` in the metrics (graphlake_background_runs_total) and in the log.
    steps = {
        # First: a mount another lake adopted since the last round is left alone by the steps after this.
        "mount-owners": lambda: settle_owners(state.db, state.stores),
        "abandoned-batches": abandoned_batches,
        "reconcile": uploads,
        "temp-files": temp_files,
        "stray-copies": lambda: run_due(state.db, "stray-copies", STRAY_SWEEP_EVERY, lambda: sweep_stray_copies(state.stores)),
        "stale-links": lambda: run_due(state.db, "stale-links", STALE_LINKS_EVERY, _remove_stale_links),
        "content-files": lambda: run_due(state.db, "content-files", CONTENT_FILES_EVERY, lambda: _write_content_files(state)),
        "unfinished-deletes": lambda: run_due(state.db, "unfinished-deletes", UNFINISHED_DELETES_EVERY,
                                              lambda: _finish_deletes(state)),
        "cut-short-adds": lambda: run_due(state.db, "cut-short-adds", CUT_SHORT_ADDS_EVERY, _settle_cut_short_adds),
        "event-archive": lambda: _archive_events(state),
        "anonymization": lambda: _anonymize(state),
        "asset-gc": lambda: _collect_assets(state),
    }
    failed = [name for name, step in steps.items() if not await _on_its_own(name, step, state.metrics)]
    if failed:
        raise StepsFailed(f"{', '.join(failed)} failed (logged above); the round's other steps ran", swept_at)
    return swept_at


async def _watch_schema(state: AppState) -> None:
    """Read the schema record every SCHEMA_CHECK_SECONDS (one read by `_id`; none once it changed under
    this server, services/schema_watch.py): a migration forced past the server is noticed within that."""
    in_background.set(True)  # not a request's reads
    with no_time_limit():
        while True:
            raise_if_cancelled()  # the server stopping: a cancel lost in a read would keep this loop on
            try:
                await state.schema_watch.check(state.db)  # once changed, it stays so without reading again
            except Exception:  # the database away for a moment: readyz says so already; look again next time
                log.debug("schema check failed", exc_info=True)
            await asyncio.sleep(SCHEMA_CHECK_SECONDS)


class StepsFailed(Exception):
    """Steps of a maintenance round failed, each logged as it did; `swept_at` as the round returns it."""

    def __init__(self, message: str, swept_at: float) -> None:
        super().__init__(message)
        self.swept_at = swept_at


async def _on_its_own(name: str, step: Callable[[], Awaitable[object]], metrics: Metrics | None) -> bool:
    """Run one step of the round; whether it succeeded (its error logged if not). Counted in the
    metrics under its name: a round's `error` said that some step failed, not which (the asset
    collection, the event archive and the anonymization among them), short of reading the log."""
    try:
        with task_outcome(metrics, name):
            await step()
    except Exception:
        log.exception("maintenance: %s failed", name)
        return False
    return True


async def _remove_stale_links() -> None:
    uses, links = await remove_orphaned_uses(), await lineage.remove_stale_links(LINKS_SETTLED)
    if uses or links:
        log.warning("removed %d datum use(s) and mended %d lineage link(s) a crash had left behind", uses, links)


async def _archive_events(state: AppState) -> None:
    settings = state.settings
    if settings.event_archive_after_days is not None:
        # One process of a cluster per round: each would walk the same backlog and write the same events.
        archived = await run_due(state.db, "event-archive", timedelta(seconds=settings.reconcile_interval_seconds),
                                 lambda: archive_events(timedelta(days=settings.event_archive_after_days)))
        if archived:
            log.info("archived %d event(s)", archived)


async def _anonymize(state: AppState) -> None:
    settings = state.settings
    if settings.anonymize_after_days is not None:
        changed = await scheduled_anonymization(state.db, state.feed, settings, await pseudonym_key(state.db))
        if changed:
            log.info("anonymized %d document(s) older than %g days", sum(changed.values()),
                     settings.anonymize_after_days)


async def _write_content_files(state: AppState) -> None:
    store = state.stores.get(state.settings.default_mount)
    if store is not None:
        written = await write_missing_contents(store, most=CONTENT_FILES_PER_ROUND, seconds=CONTENT_FILES_SECONDS)
        if written:
            log.info("wrote the content files of %d version(s) that had none", written)


async def _settle_cut_short_adds() -> None:
    if settled := await collections.settle_cut_short_adds():
        log.warning("settled the pins of %d collection item(s) an add cut short had left", settled)


async def _finish_deletes(state: AppState) -> None:
    finished = await unfinished_deletes.finish(state.stores)
    if finished:
        log.info("ran %d unfinished delete(s) again", finished)


async def _collect_assets(state: AppState) -> None:
    settings = state.settings
    if settings.asset_gc_after_days is not None:
        # One process of a cluster per round, as the event archive: each walked the same candidates,
        # checked the same pins and uses, and all but one found nothing left to delete.
        collected = await run_due(state.db, "asset-gc", timedelta(seconds=settings.reconcile_interval_seconds),
                                  lambda: _collect_round(state, settings.asset_gc_after_days))
        if collected:
            log.info("garbage-collected %d unpinned asset(s)", collected)


async def _collect_round(state: AppState, days: float) -> int:
    collected = 0
    async for deleted in unpinned_rounds(timedelta(days=days), state.stores):
        collected += len(deleted)  # a round at a time: a backlog is never held whole
        if deleted:  # in the audit trail as `graphlake assets gc` puts its rounds: a delete no one asked for
            # left nothing there, and an asset found DELETED said neither when nor why
            ids = [encode_id(NodeType.ASSET, a.id) for a in deleted]
            await audit.record(state.feed, state.settings, f"garbage-collected {len(ids)} asset(s) unpinned for "
                               f"over {days:g} days (automatic)", user_id=None, ids=ids, command="asset-gc-after-days",
                               olderThanDays=f"{days:g}")
    return collected


async def _scheduled_backups(state: AppState) -> None:
    """Check every interval whether the scheduled backup is due (one process of a cluster takes it)."""
    in_background.set(True)
    with no_time_limit():  # no client waits on this task: its operations have no time limit
        settings = state.settings
        roots = local_roots(settings) if settings.backup_with_payloads else {}
        while True:
            raise_if_cancelled()  # as in _watch_schema
            try:
                with task_outcome(state.metrics, "backup"):
                    taken = await scheduled_backup(state.db, state.feed, settings, settings.backups,
                                                   graphlake_version=__version__, local_roots=roots,
                                                   referenced_mounts=[m for m in settings.mounts if m not in roots],
                                                   on_outcome=state.metrics.backup_finished if state.metrics else None)
                if taken:
                    log.info("scheduled backup written to %s", taken)
            except Exception:
                log.exception("scheduled backup check failed; retrying next interval")
            await asyncio.sleep(min(settings.reconcile_interval_seconds, 60))


def _webapp_url(settings: Settings) -> str | None:
    """Where the web app is, when it is served and built."""
    return f"{settings.base_url}/" if settings.webapp and webapp_built(settings) else None


def _webapp_banner(settings: Settings) -> str:
    if not settings.webapp:
        return "off"
    return f"{settings.base_url}/ (sign in with an API token)" if webapp_built(settings) else not_built(settings)


def _graphiql_banner(settings: Settings, url: str) -> str:
    if not settings.graphiql:
        return "off"
    return f"{url} (open it in a browser)" if graphiql_installed(settings) else not_installed(settings)


def _announce(settings: Settings, admin_secret: str | None) -> None:
    """What a person starting the server needs: where to go, and how to authenticate. With
    GRAPHLAKE_LOG_JSON, one JSON line with the same facts as keys, as the log lines are."""
    url = f"{settings.base_url}/graphql"
    database = f"embedded FerretDB under {settings.data_dir.resolve()}" if settings.embedded_database else settings.database
    if settings.log_json:
        fields: dict[str, object] = {"version": __version__, "graphql_url": url,
                                     "graphiql": settings.graphiql, "webapp": _webapp_url(settings),
                                     "database": database,
                                     "metrics": f"{settings.base_url}/metrics" if settings.metrics != "off" else None}
        if admin_secret:  # shown once, stored only as a hash, as in the plain banner
            fields["admin_token"] = admin_secret
        print(json_line("graphlake", f"Graphlake {__version__} is up", fields), flush=True)
        return
    lines = [
        "",
        f"  Graphlake {__version__} is up.",
        f"  GraphQL endpoint : {url}",
        f"  GraphiQL         : {_graphiql_banner(settings, url)}",
        f"  Web app          : {_webapp_banner(settings)}",
        f"  Database         : {database}",
    ]
    if settings.listens_everywhere and not settings.public_url:
        lines += ["", f"  Listening on every address, but signed URLs and these links name {settings.base_url}:",
                  "  set GRAPHLAKE_PUBLIC_URL to the address other machines reach this server by."]
    if admin_secret:
        lines += [
            "",
            f"  Admin API token (shown once, stored only as a hash): {admin_secret}",
            '  Send it as the header  Authorization: Bearer <token>  (GraphiQL: the Headers tab).',
        ]
    else:
        lines += ["", "  Authenticate with `Authorization: Bearer <token>`; new tokens: `graphlake token create NAME --role ADMIN|CONTRIBUTOR|VIEWER` (VIEWER when no role is given)."]
    print("\n".join(lines) + "\n", flush=True)
