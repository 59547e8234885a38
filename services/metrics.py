"""Every Prometheus metric Graphlake keeps, defined here and nowhere else.

One `Metrics` per served app, in a registry of its own (not prometheus-client's process-wide
default): two apps in one process (the tests, the benchmarks) keep separate counts, and an app
with metrics off records nothing at all. The app shell makes it (graphlake/runtime.py) and puts it
on the app state; resolvers record through it; the database and the S3 stores are timed through
the hooks below, so neither documents nor storage import this module. Services import nothing of
the app shell for it: this module holds no settings.

Every label takes values from a closed set Graphlake itself chooses, except the operation name,
which clients choose: `operation_label` caps the distinct names a process keeps.
"""

from __future__ import annotations

import re
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from documents.asset import Asset
from documents.common import AssetStatus
from documents.event import LEVELS

# Seconds. Requests run from a millisecond (a cached lookup) to minutes (a SHA-256 read back from S3).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# A database command or an S3 call: from a tenth of a millisecond on a local socket.
CALL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Keys in one DataLoader batch: 1 (a single lookup) up to a page of the largest size, and beyond.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

# The codes an error carries (services/errors.py, resolvers/errors.py); anything else is counted as "other".
ERROR_CODES = frozenset({"BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED", "CONFLICT", "INTERNAL",
                         "UNAVAILABLE", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED",
                         "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED"})
ANONYMOUS = "anonymous"  # an operation without a name
OTHER = "other"  # a name past the cap, or no GraphQL name at all
_LEVEL_NAMES = {number: name for name, number in LEVELS.items()}
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
# Commands the driver sends by itself; the rest are Graphlake's own (a closed set, named in the code).
_DRIVER_COMMANDS = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart", "saslContinue",
                              "buildInfo", "killCursors"})


def error_code(errors: list[Any] | None) -> str:
    """The outcome label of a result: `ok`, or the code of its first error."""
    if not errors:
        return "ok"
    code = (getattr(errors[0], "extensions", None) or {}).get("code")
    if code is None and hasattr(errors[0], "original_error") and errors[0].original_error is None:
        # A document or variable refused before execution (parse, validation, coercion): its client
        # gets BAD_USER_INPUT (resolvers/errors.py), a code it is given only after this counts it.
        code = "BAD_USER_INPUT"
    return code if code in ERROR_CODES else OTHER


class Metrics:
    """The metrics of one app, in `registry` (what /metrics exposes)."""

    def __init__(self, *, max_operation_names: int = 500, process: bool = True) -> None:
        # No `<name>_created` series: in Prometheus' text format each counter and histogram child
        # got a gauge of its creation time beside it, which doubled the series of every counter
        # (the operations': up to 500 names by outcome) and which no alert or dashboard reads.
        # prometheus-client's switch is process-wide; every registry here is Graphlake's.
        disable_created_metrics()
        self.registry = registry = CollectorRegistry(auto_describe=True)
        if process:  # CPU, memory, open files, GC: what the default registry would show
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.max_operation_names = max_operation_names
        self._names: set[str] = set()
        self._names_lock = threading.Lock()
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

        self.operations = Counter(
            "graphlake_operations", "GraphQL operations answered, by type, name and outcome (ok or the first error's code).",
            ["type", "name", "outcome"], registry=registry)
        self.operation_seconds = Histogram(
            "graphlake_operation_seconds", "Time to answer a GraphQL query or mutation, parsing and validation included.",
            ["type", "name"], buckets=REQUEST_BUCKETS, registry=registry)
        self.http_requests = Counter(
            "graphlake_http_requests", "HTTP requests answered, by method, route (its template: a set the server "
            "defines) and status (none: no answer was started).", ["method", "route", "status"], registry=registry)
        self.websockets = Gauge("graphlake_websockets_open", "WebSockets open on this process.", registry=registry)
        self.subscriptions = Gauge("graphlake_subscriptions_active", "Subscriptions running on this process.",
                                   registry=registry)
        self.loader_batch = Histogram(
            "graphlake_dataloader_batch_size", "Keys loaded by one DataLoader batch (one database query each).",
            ["loader"], buckets=BATCH_BUCKETS, registry=registry)
        self.database_seconds = Histogram(
            "graphlake_database_command_seconds", "Time of one database command, from the driver's point of view.",
            ["command", "outcome"], buckets=CALL_BUCKETS, registry=registry)
        self.s3_seconds = Histogram(
            "graphlake_s3_request_seconds", "Time of one request to an S3 mount, retries included.",
            ["mount", "operation", "outcome"], buckets=CALL_BUCKETS, registry=registry)
        self.upload_bytes = Counter(
            "graphlake_upload_bytes", "Bytes of the uploads completed (the assets turned ACTIVE), by mount.",
            ["mount"], registry=registry)
        self.uploads = Counter(
            "graphlake_uploads_completed", "Uploads completed, by mount and outcome (ACTIVE or FAILED).",
            ["mount", "outcome"], registry=registry)
        self.events = Counter("graphlake_events_ingested", "Events logged through the API, by level.", ["level"],
                              registry=registry)
        self.tasks = Counter(
            "graphlake_background_runs", "Runs of the background tasks (a maintenance round, each of its steps, the "
            "scheduled backup's check), by outcome (ok, error).",
            ["task", "outcome"], registry=registry)
        self.expired_uploads = Counter("graphlake_uploads_expired", "Upload sessions the reconciler expired.",
                                       registry=registry)
        self.thumbnails = Counter(
            "graphlake_thumbnails_made", "Thumbnails this process made (each (image, size) once), by mount and outcome "
            "(made, refused: no image, or too many pixels).", ["mount", "outcome"], registry=registry)
        self.backups = Counter("graphlake_scheduled_backups", "Scheduled backups this process attempted, by "
                               "outcome (written, failed).", ["outcome"], registry=registry)
        self.mount_changes_refused = Counter(
            "graphlake_mount_changes_refused", "Writes and deletes this process left undone on a mount another lake "
            "owns (storage/ownership.py), by mount and action.", ["mount", "action"], registry=registry)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept once made: prometheus-client converts the values, builds the
        key and takes a lock on every call, about 2 us, and a request asks for three or four (its HTTP
        count, its operation's count and time, a loader's batch sizes). Every label set here is bounded
        (graphlake/http_metrics.py, operation_label), and no child is ever removed."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch_admission(self, admission: Admitting) -> None:
        """Expose the request slots' state (graphlake/admission.py), read as each scrape comes."""
        self.registry.register(_AdmissionCollector(admission))

    def operation_label(self, name: str | None, *, may_add: bool = True) -> str:
        """The label of an operation's name: names are the client's choice, so at most
        `max_operation_names` distinct ones are kept per process; later ones (and anything that is
        not a GraphQL name of at most 100 characters) count as "other". A caller without a token
        names no new one (`may_add` false): a guest sending a hundred names took every slot, and
        the names of the lake's own clients counted as "other" until the process restarted."""
        if name is None:
            return ANONYMOUS
        if name in self._names:
            return name
        if not may_add or not _NAME.fullmatch(name) or name in (ANONYMOUS, OTHER):
            return OTHER
        with self._names_lock:
            if len(self._names) >= self.max_operation_names:
                return OTHER
            self._names.add(name)
        return name

    def count_events(self, levels: Iterable[int]) -> None:
        """Events just stored, by their levels."""
        for level, n in Tally(levels).items():
            self.events.labels(_LEVEL_NAMES.get(level, OTHER)).inc(n)

    def count_uploads(self, assets: Iterable[Asset]) -> None:
        """Uploads just completed: their assets, ACTIVE (their bytes counted) or FAILED."""
        for asset in assets:
            mount = asset.storage.mount if asset.storage else "none"
            self.uploads.labels(mount, asset.status.value).inc()
            if asset.status is AssetStatus.ACTIVE and asset.size_bytes:
                self.upload_bytes.labels(mount).inc(asset.size_bytes)

    def backup_finished(self, outcome: str) -> None:
        """A scheduled backup was written or failed (services/backups/schedule.py tells)."""
        self.backups.labels(outcome).inc()

    def database_listener(self) -> CommandListener:
        """A PyMongo listener that times every command (give it to the client when it is made)."""
        return _DatabaseTimer(self.database_seconds)

    def s3_observer(self, mount: str) -> S3Observer:
        return S3Observer(self.s3_seconds, mount)


class Admitting(Protocol):
    """What the metrics read of the request slots (graphlake/admission.Admission)."""

    waiting: int
    running: int
    timed_out: int


class _AdmissionCollector(Collector):
    """Requests waiting for a slot, holding one, and refused for want of one. Overload showed
    nowhere else: a request refused before it runs is no GraphQL operation answered."""

    def __init__(self, admission: Admitting) -> None:
        self._admission = admission

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        admission = self._admission
        yield GaugeMetricFamily("graphlake_requests_waiting", "GraphQL requests (over HTTP, and queries and mutations "
                                "on a WebSocket) waiting for a request slot.", value=admission.waiting)
        yield GaugeMetricFamily("graphlake_requests_running", "GraphQL requests holding a request slot.",
                                value=admission.running)
        yield CounterMetricFamily("graphlake_request_slot_timeouts", "GraphQL requests answered UNAVAILABLE (the "
                                  "server is busy) after waiting GRAPHLAKE_REQUEST_QUEUE_SECONDS for a slot.",
                                  value=admission.timed_out)


@contextmanager
def task_outcome(metrics: Metrics | None, task: str) -> Iterator[None]:
    """Counts one run of a background task as ok, or as error when it raises (the error goes on)."""
    try:
        yield
    except Exception:  # not a cancellation: shutting down is no failure
        if metrics is not None:
            metrics.tasks.labels(task, "error").inc()
        raise
    if metrics is not None:
        metrics.tasks.labels(task, "ok").inc()


class _DatabaseTimer(CommandListener):
    """Times database commands. PyMongo reports the duration itself; nothing is kept per command."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._children: dict[tuple[str, str], Any] = {}

    def _observe(self, name: str, outcome: str, micros: int) -> None:
        child = self._children.get((name, outcome))
        if child is None:
            label = name if name.isidentifier() and len(name) <= 40 else OTHER
            child = self._children[(name, outcome)] = self._histogram.labels(label, outcome)
        child.observe(micros / 1e6)

    def started(self, event: CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if event.command_name not in _DRIVER_COMMANDS:
            self._observe(event.command_name, "ok", event.duration_micros)

    def failed(self, event: CommandFailedEvent) -> None:
        if event.command_name not in _DRIVER_COMMANDS:
            self._observe(event.command_name, "error", event.duration_micros)


class S3Observer:
    """Times the requests of one S3 mount: storage.s3.S3Store calls it (a plain callable, so storage
    imports nothing of this) with the operation, its duration and whether it succeeded."""

    def __init__(self, histogram: Histogram, mount: str) -> None:
        self._histogram = histogram
        self._mount = mount

    def __call__(self, operation: str, seconds: float, ok: bool) -> None:
        self._histogram.labels(self._mount, operation, "ok" if ok else "error").observe(seconds)
