"""OpenTelemetry tracing: off unless GRAPHLAKE_TRACING is true or OTEL_TRACES_EXPORTER names an exporter.

When on, each HTTP request and WebSocket gets a server span (the ASGI instrumentation, which continues
a client's `traceparent`, or whatever OTEL_PROPAGATORS names), each GraphQL operation its spans
(Strawberry's OpenTelemetry extension: parsing, validation, resolvers), each database command a client
span (the PyMongo instrumentation's listener) and each request to an S3 mount a client span (from the
store's own hook: botocore's instrumentation patches botocore's synchronous client, which aiobotocore's
asynchronous one overrides, so it would never see these calls).

The SDK reads its standard variables itself: OTEL_SERVICE_NAME (default here: graphlake),
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS,
OTEL_PROPAGATORS. OTEL_TRACES_EXPORTER: otlp (the default, OTLP over HTTP/protobuf), console, none,
or several, comma-separated. The packages come with the `tracing` extra.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo.monitoring import CommandListener

from graphlake import __version__
from graphlake.http_metrics import route_template
from graphlake.logs import redact
from graphlake.settings import Settings

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema
    from opentelemetry.trace import TracerProvider

# The longest document text whose printed form (_literal_free_text) is kept: a longer one is most
# likely a batch written inline, different each time, which would only push the others out.
CACHED_DOCUMENT_CHARS = 20_000
# Not traced: probes and scrapes come every few seconds and say nothing about a request's path.
UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics")


class TracingNotStarted(RuntimeError):
    """Tracing is asked for but cannot start (an exporter unknown, the packages missing): the
    message says what to change, and `graphlake serve` prints it as one line."""


def tracing_wanted(settings: Settings) -> bool:
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return settings.tracing or exporter not in ("", "none")


@dataclass
class Tracing:
    """What the app wires in when tracing is on, all from one tracer provider."""

    provider: TracerProvider
    owned: bool = False  # made here from the environment: shut down (its spans flushed) with the app

    def close(self) -> None:
        if self.owned:
            self.provider.shutdown()  # type: ignore[attr-defined]

    def asgi_middleware(self) -> tuple[type, dict[str, Any]]:
        """The ASGI instrumentation and its options, for Starlette's Middleware (outermost). Its
        server span is named by RouteNames, which goes just inside it."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.util.http import ExcludeList

        # The instrumentation searches its patterns anywhere in `scheme://host/path`: given the
        # paths as they are, `/blobs/local/metrics/healthz` (an object's key) went untraced too.
        # Anchored, they name the routes themselves.
        untraced = ExcludeList([rf"^[a-z]+://[^/]*{re.escape(path)}$" for path in UNTRACED_PATHS])
        # Without exclude_spans every body chunk sent or received becomes a span of its own.
        return OpenTelemetryMiddleware, {"tracer_provider": self.provider, "excluded_urls": untraced,
                                         "exclude_spans": ["receive", "send"], "server_request_hook": _redact_query,
                                         "default_span_details": _span_details,
                                         "http_capture_headers_sanitize_fields": _sanitized_headers()}

    def schema_extension(self) -> Callable[[], Any]:
        from opentelemetry.trace import SpanKind
        from strawberry.extensions import LifecycleStep
        from strawberry.extensions.tracing import OpenTelemetryExtension

        class WithoutArguments(OpenTelemetryExtension):
            """Resolver spans name their field, not its arguments: those are the client's data (a
            name, a JSON value, a batch of 10,000 events, which Strawberry would copy per span).

            The operation's span follows OpenTelemetry's GraphQL conventions: named `query Asset`
            (the operation's type and name), with `graphql.operation.type`, `graphql.operation.name`
            and `graphql.document` with every literal value replaced (literal_free). Strawberry's
            own span carried the document as sent (`query`), and with it the values a client wrote
            inline (`assetByAlias(alias: "patient-0042")`, a JSON value given as a literal)."""

            def on_operation(self) -> Any:
                self._operation_name = self.execution_context.operation_name
                span = self._span_holder[LifecycleStep.OPERATION] = self._tracer.start_span(
                    "GraphQL Operation", kind=SpanKind.SERVER)
                try:
                    yield
                finally:
                    context = self.execution_context
                    _describe_operation(span, context.query, context.graphql_document, context.operation_name,
                                        context.schema._schema)
                    span.end()

            def filter_resolver_args(self, args: dict[str, Any], info: Any) -> dict[str, Any]:
                return {}

        provider = self.provider
        return lambda: WithoutArguments(tracer_provider=provider)

    def database_listener(self) -> CommandListener:
        from opentelemetry.instrumentation._semconv import (
            _get_schema_url_for_signal_types,
            _OpenTelemetrySemanticConventionStability,
            _OpenTelemetryStabilitySignalType,
        )
        from opentelemetry.instrumentation.pymongo import CommandTracer
        from opentelemetry.instrumentation.pymongo.version import __version__ as instrumentation_version

        # The instrumentor's own listener, given to our client (PymongoInstrumentor registers it
        # process-wide instead, which reaches only clients made after it), made as the instrumentor
        # makes it: with the conventions OTEL_SEMCONV_STABILITY_OPT_IN asks for (`database` or
        # `database/dup`: db.system.name, db.namespace, db.collection.name, server.address), which
        # a tracer made without them ignored, and their schema URL.
        signal = _OpenTelemetryStabilitySignalType.DATABASE
        _OpenTelemetrySemanticConventionStability._initialize()
        mode = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(signal)
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.pymongo", instrumentation_version,
                                          schema_url=_get_schema_url_for_signal_types([signal]))
        return _InTraces(CommandTracer(tracer, semconv_opt_in_mode=mode))

    def s3_observer(self, mount: str) -> Callable[[str, float, bool], None]:
        """A span for each S3 request, told of it as it ends (storage.s3.Observer)."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        tracer = self.provider.get_tracer("graphlake.s3", __version__)

        def observe(operation: str, seconds: float, ok: bool) -> None:
            if not trace.get_current_span().get_span_context().is_valid:
                return  # outside a traced operation (a readiness probe, the maintenance): as _InTraces
            end = time.time_ns()
            span = tracer.start_span(f"S3.{operation}", kind=SpanKind.CLIENT, start_time=end - int(seconds * 1e9),
                                     attributes={"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": operation,
                                                 "graphlake.mount": mount})
            if not ok:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=end)

        return observe


def _describe_operation(span: Any, text: str | None, document: DocumentNode | None, operation_name: str | None,
                        schema: GraphQLSchema | None) -> None:
    """Name the operation's span and give it the conventions' attributes, once the document is
    parsed (a document that could not be parsed, or that has no such operation, keeps its first name)."""
    from graphql import get_operation_ast

    operation = get_operation_ast(document, operation_name) if document is not None else None
    if operation is None:
        return
    kind, name = operation.operation.value, operation.name.value if operation.name else None
    span.set_attribute("graphql.operation.type", kind)
    if name:
        span.set_attribute("graphql.operation.name", name)
    printed = (_literal_free_text(text, schema) if text is not None and len(text) <= CACHED_DOCUMENT_CHARS
               else literal_free(document, schema))  # type: ignore[arg-type]
    span.set_attribute("graphql.document", printed)
    span.update_name(f"{kind} {name}" if name else kind)


@functools.lru_cache(maxsize=256)
def _literal_free_text(text: str, schema: GraphQLSchema | None) -> str:
    """literal_free of the document `text` parses to, kept for the next operation sending the same
    text: clients send the same few documents again and again, and visiting and printing one held
    the event loop 0.1-0.7 ms (graphlake_client's documents) every operation. The text is parsed again
    here, once, where it is not kept yet; `schema` is one object per app (kept by identity)."""
    from graphql import parse

    return literal_free(parse(text), schema)


def literal_free(document: DocumentNode, schema: GraphQLSchema | None = None) -> str:
    """The document printed with every literal value a client wrote replaced by a placeholder of its
    kind: strings by "", numbers by 0, lists by []. An input object keeps its fields' names (the
    schema's), each value replaced; any other object (a JSON scalar's value, whose keys are the
    client's data), and every object where `schema` is not given, becomes {}. Booleans, enums and
    nulls stay: the schema's words, not the client's data. Variables stay as `$name`: their values
    are never in a span."""
    from graphql import (
        FloatValueNode,
        IntValueNode,
        ListValueNode,
        ObjectValueNode,
        StringValueNode,
        TypeInfo,
        TypeInfoVisitor,
        Visitor,
        get_named_type,
        is_input_object_type,
        print_ast,
        visit,
    )

    types = TypeInfo(schema) if schema is not None else None

    class Placeholders(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: Any) -> StringValueNode:
            return StringValueNode(value="")

        def enter_int_value(self, node: IntValueNode, *_: Any) -> IntValueNode:
            return IntValueNode(value="0")

        def enter_float_value(self, node: FloatValueNode, *_: Any) -> IntValueNode:
            return IntValueNode(value="0")

        def enter_list_value(self, node: ListValueNode, *_: Any) -> ListValueNode:
            return ListValueNode(values=())

        def enter_object_value(self, node: ObjectValueNode, *_: Any) -> ObjectValueNode | None:
            if types is not None and is_input_object_type(get_named_type(types.get_input_type())):
                return None  # its fields are visited, each value replaced
            return ObjectValueNode(fields=())

    placeholders = Placeholders()
    return print_ast(visit(document, placeholders if types is None else TypeInfoVisitor(types, placeholders)))


def _span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A server span's first name: its method alone. The instrumentation's own default is the method
    and the path as sent (`GET /blobs/local/assets/<id>/<file>`): a name per object, where the
    conventions want a name of low cardinality, `{method} {http.route}`, which RouteNames gives it
    once the router has chosen the route."""
    return (scope.get("method") or "HTTP") if scope["type"] == "http" else "WebSocket", {}


class RouteNames:
    """Names the server span after the route its request took (`GET /blobs/{mount}/{key:path}`) and
    sets `http.route`, as the conventions ask; a path no route has keeps the method alone. Just
    inside the ASGI instrumentation, whose span is then the current one. Named as the answer starts:
    the router has chosen by then, and the instrumentation ends an HTTP span with the answer's body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        from opentelemetry import trace

        span = trace.get_current_span()
        named = False

        def name() -> None:
            nonlocal named
            route = route_template(scope)
            if not named and route is not None and span.is_recording():
                named = True
                span.set_attribute("http.route", route)
                span.update_name(f"{scope['method']} {route}" if scope["type"] == "http" else f"WebSocket {route}")

        async def naming_send(message: Any) -> None:
            name()
            await send(message)

        try:
            await self.app(scope, receive, naming_send)
        finally:
            name()  # nothing was sent (the client went away)


def _redact_query(span: Any, scope: dict[str, Any]) -> None:
    """The server span's `url.query` with its signatures REDACTED, as the log writes them. The
    instrumentation redacts `sig` in `http.url` only; with OTEL_SEMCONV_STABILITY_OPT_IN=http (or
    http/dup) it copied the query as sent into `url.query`: every signed download URL's signature,
    a bearer capability for days, went to the tracing backend."""
    query = (getattr(span, "attributes", None) or {}).get("url.query")
    if query:
        redacted = redact("?" + query)[1:]
        if redacted != query:
            span.set_attribute("url.query", redacted)


def _sanitized_headers() -> list[str]:
    """Headers whose values a span never carries, should OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST
    capture them (`.*`, say): the API token, besides those OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS names."""
    from opentelemetry.instrumentation.asgi import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS
    from opentelemetry.util.http import get_custom_headers

    return [*get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
            "authorization", "proxy-authorization", "cookie", "set-cookie"]


class _InTraces(CommandListener):
    """The instrumentor's command tracer, for commands made inside a traced operation only. The
    event feed's tail, the maintenance and the health probes run outside any request, and each of
    their commands became a trace of its own: about two a second from an idle server, and one per
    /readyz, whose request is not traced. Finishing events pass through: the tracer ends only the
    spans it began."""

    def __init__(self, tracer: CommandListener) -> None:
        self._tracer = tracer

    def started(self, event: Any) -> None:
        from opentelemetry import trace

        if trace.get_current_span().get_span_context().is_valid:
            self._tracer.started(event)

    def succeeded(self, event: Any) -> None:
        self._tracer.succeeded(event)

    def failed(self, event: Any) -> None:
        self._tracer.failed(_Scrubbed(event))


class _Scrubbed:
    """A failed command's event as the tracer reads it, its failure cut to the code and its name.
    The tracer makes the server's message the span's status, and the message quotes the values
    refused (`{_id: "alice@example.org"} has the field 'name' of non-numeric type string`, a
    duplicate key's value on MongoDB): the client's data. The code says what went wrong all the same."""

    def __init__(self, event: Any) -> None:
        self._event = event
        code, name = event.failure.get("code"), event.failure.get("codeName") or "UnknownError"
        self.failure = {"code": code, "codeName": name,
                        "errmsg": name if code is None else f"{name} (code {code})"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


def start_tracing(settings: Settings, provider: TracerProvider | None = None) -> Tracing | None:
    """Tracing with `provider` (tests give one with an in-memory exporter), or with one made from
    the OTEL_* variables when the settings ask for tracing; None when off."""
    if provider is None and not tracing_wanted(settings):
        return None
    try:
        import opentelemetry.instrumentation.asgi
        import opentelemetry.instrumentation.pymongo
        import opentelemetry.sdk  # noqa: F401
    except ImportError as missing:
        raise TracingNotStarted(f"tracing is on (GRAPHLAKE_TRACING or OTEL_TRACES_EXPORTER) but {missing.name} is not "
                           "installed: install Graphlake with its tracing extra (pip install 'graphlake[tracing]')") from None
    if provider is not None:
        return Tracing(provider)
    return Tracing(_provider_from_environment(), owned=True)


def _provider_from_environment() -> TracerProvider:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    attributes = {"service.version": __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "graphlake"
    provider = TracerProvider(resource=Resource.create(attributes))  # the sampler: OTEL_TRACES_SAMPLER
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name != "none":
            raise TracingNotStarted(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (Graphlake knows otlp, console, none)")
    trace.set_tracer_provider(provider)  # for any other instrumented library in the process
    return provider
