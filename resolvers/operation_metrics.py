"""Counts and times every GraphQL operation for /metrics (services/metrics.py defines the metrics).

After ErrorPolicy in the schema's extensions, so an error raised in execution has its code by the
time this one reads the outcome; a document refused before execution does not yet (its result is
shaped later), and services/metrics.error_code counts it as the BAD_USER_INPUT its client gets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from services.metrics import Metrics, error_code


class OperationMetrics(SchemaExtension):
    """Operations by type, name and outcome; query and mutation latency; live subscriptions.

    A subscription's on_operation spans its whole life, so its time is not a latency: it is counted
    (once, when it ends) and held in the gauge of active subscriptions while it runs.
    """

    def __init__(self) -> None:
        self._subscribed = False
        self._last_errors: list | None = None

    def on_operation(self) -> Iterator[None]:
        metrics = getattr(getattr(self.execution_context.context, "state", None), "metrics", None)
        if metrics is None:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:  # also when it ends by an exception: a subscription the client stopped ends so
            if self._subscribed:
                metrics.subscriptions.dec()
            self._record(metrics, time.perf_counter() - started)

    def _record(self, metrics: Metrics, elapsed: float) -> None:
        context = self.execution_context
        try:
            kind = context.operation_type.value if context.graphql_document is not None else "unknown"
        except Exception:  # no operation of the name asked for
            kind = "unknown"
        # A name is counted only when the document has an operation of that name, and kept as a new
        # label only for a caller with a token (services/metrics.py says why).
        caller = getattr(context.context, "principal", None)
        name = metrics.operation_label(context.operation_name if kind != "unknown" else None, may_add=caller is not None)
        errors = context.result.errors if context.result is not None else self._last_errors
        metrics.child(metrics.operations, kind, name, error_code(errors)).inc()
        if kind != OperationType.SUBSCRIPTION.value:
            metrics.child(metrics.operation_seconds, kind, name).observe(elapsed)

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        metrics = getattr(getattr(context.context, "state", None), "metrics", None)
        if metrics is not None and not self._subscribed and context.operation_type is OperationType.SUBSCRIPTION:
            self._subscribed = True
            metrics.subscriptions.inc()
        yield

    def on_stream_result(self, result: object) -> Iterator[None]:
        # Over a WebSocket the results go out one by one; the outcome is that of the last one.
        self._last_errors = getattr(result, "errors", None)
        yield
