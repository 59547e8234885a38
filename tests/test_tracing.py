"""OpenTelemetry tracing through the real app and the real database: off by default; when on, a
request that carries a `traceparent` continues that trace down to its database commands and its
requests to S3. Spans are kept by the SDK's in-memory exporter."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from graphql import DocumentNode, GraphQLSchema, parse, print_ast
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from graphlake import tracing
from graphlake.app import create_app
from graphlake.settings import Settings
from graphlake.tracing import literal_free, start_tracing
from services.events.feed import FeedTail
from tests.operations import document
from tests.processes import serving
from tests.waiting import wait_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def tail_refreshes(monkeypatch: pytest.MonkeyPatch) -> dict[FeedTail, int]:
    """How many times each feed tail started from here on has refreshed its writers (its heartbeat and
    a read of the writers: WRITERS_REFRESH_SECONDS apart). Tails already running (the suite's app's)
    are not counted."""
    counts: dict[FeedTail, int] = {}
    run, refresh = FeedTail.run, FeedTail._refresh_writers

    async def counted_run(self: FeedTail) -> None:
        counts[self] = 0
        await run(self)

    async def counted_refresh(self: FeedTail) -> None:
        await refresh(self)
        if self in counts:
            counts[self] += 1

    monkeypatch.setattr(FeedTail, "run", counted_run)
    monkeypatch.setattr(FeedTail, "_refresh_writers", counted_refresh)
    return counts


def recorded() -> tuple[InMemorySpanExporter, TracerProvider]:
    """A tracer provider whose spans are kept in memory, and what keeps them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


def conventions(monkeypatch: pytest.MonkeyPatch, opt_in: str) -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN set to `opt_in` for what this test starts: the instrumentations
    read it once per process, so they are made to read it again."""
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability as Stability

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    monkeypatch.setattr(Stability, "_initialized", False)
    monkeypatch.setattr(Stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})


def of_trace(spans: tuple[ReadableSpan, ...], trace_id: str = TRACE_ID) -> list[ReadableSpan]:
    return [span for span in spans if format(span.context.trace_id, "032x") == trace_id]


async def post(http: httpx.AsyncClient, operation: str, variables: dict, token: str, **headers: str) -> dict:
    response = await http.post("/graphql", json={"query": document(operation), "operationName": operation,
                                                 "variables": variables},
                               headers={"Authorization": f"Bearer {token}", **headers})
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    return body["data"]


def test_tracing_is_off_by_default(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert start_tracing(settings) is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert start_tracing(settings) is None


async def test_a_traceparent_is_continued_down_to_the_database_and_s3(settings: Settings, contributor: str,
                                                                      viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    refreshes = tail_refreshes(monkeypatch)
    exporter, provider = recorded()
    data = b"traced" * 1000
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        stored = (await post(http, "StoreValue", {"input": {"name": "traced", "value": {"x": 1}}}, contributor))["storeValue"]
        read = await post(http, "Asset", {"id": stored["id"]}, viewer, traceparent=TRACEPARENT)
        assert read["asset"]["name"] == "traced"
        read_spans = of_trace(exporter.get_finished_spans())

        session = (await post(http, "CreateUpload", {"input": {"name": "t.bin", "sizeBytes": len(data), "mount": "lab",
                                                               "sha256": hashlib.sha256(data).hexdigest()}},
                              contributor))["createUpload"]
        assert (await http.put(session["url"], content=data, headers=session["headers"])).status_code == 200
        upload_trace = "0af7651916cd43dd8448eb211c80319c"
        completed = await post(http, "CompleteUpload", {"input": {"id": session["id"]}}, contributor,
                               traceparent=f"00-{upload_trace}-b7ad6b7169203331-01")
        assert completed["completeUpload"]["status"] == "ACTIVE"
        upload_spans = of_trace(exporter.get_finished_spans(), upload_trace)
        untraced = await http.get("/healthz")
        assert untraced.status_code == 200
        exporter.clear()
        assert (await http.get("/readyz")).status_code == 200  # pings the database: no trace of its own
        # Until this app's feed tail has refreshed its writers twice more (a heartbeat and a read each):
        # commands outside any request, not merely a while in which some may have run.
        [tail] = refreshes
        due = refreshes[tail] + 2
        await wait_for(lambda: refreshes[tail] >= due, what="the feed tail's next two rounds of commands")
        idle = exporter.get_finished_spans()
    provider.shutdown()
    # Commands outside any request (probes, the feed's tail, the maintenance) make no traces.
    assert [span.name for span in idle] == []

    # The server span continues the client's: its parent is the client's span, in the client's trace.
    servers = [span for span in read_spans if span.kind is SpanKind.SERVER and span.name.startswith("POST")]
    assert len(servers) == 1 and servers[0].parent is not None and format(servers[0].parent.span_id, "016x") == PARENT_ID
    assert any(span.name == "query Asset" for span in read_spans)  # the operation's, as the GraphQL conventions name it
    assert any(span.name == "GraphQL Resolving: asset" for span in read_spans)  # a resolver's span
    # No span carries the client's data: the arguments (here the asset's id) stay out.
    assert not any(key.startswith("graphql.param") for span in read_spans for key in span.attributes)
    database = [span for span in read_spans if span.kind is SpanKind.CLIENT and span.attributes.get("db.system") == "mongodb"]
    assert any(span.name.endswith(".find") for span in database), [span.name for span in read_spans]
    assert all(span.context.trace_id == servers[0].context.trace_id for span in database)
    # A request to S3 (the completion's HEAD of the object) is a span of the completion's trace.
    s3 = [span for span in upload_spans if span.name == "S3.HeadObject"]
    assert len(s3) == 1 and s3[0].attributes["graphlake.mount"] == "lab" and s3[0].kind is SpanKind.CLIENT
    # Probes are not traced.
    assert not any("/healthz" in (span.attributes.get("http.target") or span.attributes.get("url.path") or span.name)
                   for span in exporter.get_finished_spans())


async def test_spans_carry_no_signature_and_no_token(settings: Settings, viewer: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the stable HTTP conventions (OTEL_SEMCONV_STABILITY_OPT_IN=http) the server span copied the
    query as sent into `url.query`, signature and all; a header capture of `.*` took the API token."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    conventions(monkeypatch, "http/dup")
    exporter, provider = recorded()
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        # Refused (a wrong signature), and traced all the same, as a valid one would be.
        await http.get("/blobs/local/some/key?exp=9999999999&sig=SIGNATURE-VALUE")
        await post(http, "Me", {}, viewer)
    provider.shutdown()
    spans = [dict(span.attributes or {}) for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    said = repr(spans)
    assert any("url.query" in span for span in spans), said  # the stable conventions were on
    assert "SIGNATURE-VALUE" not in said and "sig=REDACTED" in said, said
    assert viewer not in said, said


async def test_a_literal_value_in_a_document_is_in_no_span(settings: Settings, contributor: str) -> None:
    """Strawberry's operation span carried the document as sent (`query`): the values a client wrote
    in it rather than in variables (an alias naming a patient, a JSON value, a name) went to every
    trace exporter. The span follows OpenTelemetry's GraphQL conventions now: the operation's type
    and name, and the document with each literal replaced by a placeholder of its kind."""
    exporter, provider = recorded()
    secrets = ("patient-0042", "Jane Doe", "diagnosis_code_X17", "98765", "4.125")
    stored = """mutation Stored { storeValue(input: {name: "Jane Doe", value: {diagnosis_code_X17: [98765, 4.125]},
        labels: ["a"], metadata: {ward: "patient-0042"}}) { id } }"""
    read = 'query Looked { byAlias: assetByAlias(alias: "patient-0042") { id } assets(first: 3) { edges { node { id } } } }'
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for query in (stored, read):
            response = await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {contributor}"})
            assert response.status_code == 200 and not response.json().get("errors"), response.text
    provider.shutdown()
    spans = exporter.get_finished_spans()
    said = repr([(span.name, dict(span.attributes or {}), [dict(e.attributes or {}) for e in span.events]) for span in spans])
    for secret in secrets:
        assert secret not in said, (secret, said)
    operations = {span.name: dict(span.attributes or {}) for span in spans if "graphql.operation.type" in (span.attributes or {})}
    assert set(operations) == {"mutation Stored", "query Looked"}, said
    assert operations["query Looked"]["graphql.operation.name"] == "Looked"
    assert operations["query Looked"]["graphql.operation.type"] == "query"
    assert 'byAlias: assetByAlias(alias: "")' in operations["query Looked"]["graphql.document"]
    assert "assets(first: 0)" in operations["query Looked"]["graphql.document"]
    # An input object keeps its fields' names (the schema's); a JSON value's keys are the client's.
    assert 'input: { name: "", value: {  }, labels: [], metadata: {  } }' in operations["mutation Stored"]["graphql.document"]
    assert not any("query" in attributes for attributes in operations.values())  # Strawberry's copy as sent


async def test_a_document_sent_again_is_printed_once(settings: Settings, contributor: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The operation span's literal-free document was visited and printed again for every operation,
    though clients send the same few documents over and over: it is kept per document text now."""
    printed: list[str] = []

    def counted(document: DocumentNode, schema: GraphQLSchema | None = None) -> str:
        printed.append(print_ast(document))
        return literal_free(document, schema)

    monkeypatch.setattr(tracing, "literal_free", counted)
    exporter, provider = recorded()
    name = f"Again{uuid.uuid4().hex[:8]}"  # a text no other test sent: not kept yet
    read = f'query {name} {{ assets(first: 3) {{ edges {{ node {{ id }} }} }} }}'
    other = read.replace("first: 3", "first: 4")  # another text: printed on its own
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for query in (read, read, other, read):
            response = await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {contributor}"})
            assert response.status_code == 200 and not response.json().get("errors"), response.text
    provider.shutdown()
    documents = [dict(span.attributes or {}).get("graphql.document") for span in exporter.get_finished_spans()
                 if span.name == f"query {name}"]
    assert len(documents) == 4 and set(documents) == {print_ast(parse(read.replace("first: 3", "first: 0")))}, documents
    assert len(printed) == 2, printed


async def test_database_spans_follow_the_conventions_asked_for(settings: Settings, viewer: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The database listener was made without OTEL_SEMCONV_STABILITY_OPT_IN: asked for the stable
    database conventions, its spans kept the old names (db.mongodb.collection, db.name), which a
    backend reading the stable ones does not know."""
    conventions(monkeypatch, "database")
    exporter, provider = recorded()
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        await post(http, "Assets", {"first": 1}, viewer, traceparent=TRACEPARENT)
    provider.shutdown()
    database = [span for span in of_trace(exporter.get_finished_spans()) if span.kind is SpanKind.CLIENT
                and span.attributes.get("db.system.name") == "mongodb"]
    finds = [span for span in database if span.name.endswith(".find")]
    assert finds, [(span.name, dict(span.attributes)) for span in exporter.get_finished_spans()]
    assert all(span.attributes.get("db.namespace") == settings.database for span in finds)
    assert any(span.attributes.get("db.collection.name") for span in finds)
    assert not any("db.mongodb.collection" in span.attributes for span in finds)


async def test_server_spans_are_named_by_route_not_by_path(settings: Settings, viewer: str) -> None:
    """The server span was named by the path as sent (`GET /blobs/local/assets/<id>/...`): a name per
    object, where the conventions want `{method} {http.route}`, few names a backend can group by."""
    exporter, provider = recorded()
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        await http.get("/blobs/local/assets/object-7/scan.tif?exp=9999999999&sig=forged")
        await post(http, "Me", {}, viewer)
        await http.get("/no/such/path-3")
    provider.shutdown()
    servers = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER  # the operation's is too
               and "graphql.operation.type" not in (span.attributes or {})]
    names = sorted(span.name for span in servers)
    assert names == ["GET", "GET /blobs/{mount}/{key:path}", "POST /graphql"], names
    blob = next(span for span in servers if span.name.startswith("GET /blobs"))
    assert blob.attributes["http.route"] == "/blobs/{mount}/{key:path}"


async def test_a_failed_command_span_says_its_code_not_the_values(settings: Settings, mongodb_url: str) -> None:
    """A failed command's span status carried the server's message, which quotes the values it
    refused (`{_id: "alice@example.org"} has the field 'name' of non-numeric type string`; a
    duplicate key's on MongoDB): the client's data, sent to the tracing backend as it was."""
    from opentelemetry.trace import StatusCode
    from pymongo import AsyncMongoClient
    from pymongo.errors import OperationFailure

    exporter, provider = recorded()
    tracing = start_tracing(settings, provider)
    assert tracing is not None
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, event_listeners=[tracing.database_listener()])
    people = client[f"graphlake_scratch_{uuid.uuid4().hex[:8]}"].people
    try:
        await people.insert_one({"_id": "alice@example.org", "name": "Alice"})
        with provider.get_tracer("test").start_as_current_span("request"):
            with pytest.raises(OperationFailure) as raised:
                await people.find_one_and_update({"_id": "alice@example.org"}, {"$inc": {"name": 1}})
    finally:
        await client.drop_database(people.database.name)
        await client.close()
    assert "alice@example.org" in str(raised.value)  # the server said it: what the span must not repeat
    provider.shutdown()
    [failed] = [span for span in exporter.get_finished_spans() if span.status.status_code is StatusCode.ERROR]
    said = repr((failed.status.description, dict(failed.attributes or {}), [e.attributes for e in failed.events]))
    assert "alice@example.org" not in said, said
    assert failed.status.description == "TypeMismatch (code 14)", said


async def test_only_the_probe_routes_themselves_go_untraced(settings: Settings, viewer: str) -> None:
    """The untraced paths were matched anywhere in the URL: an object or asset whose path held
    `healthz` or `metrics` (`/blobs/local/metrics/healthz`) made no trace."""
    exporter, provider = recorded()
    async with serving(create_app(settings, tracer_provider=provider)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        await http.get("/blobs/local/metrics/healthz?exp=9999999999&sig=forged")
        await http.get("/healthz-and-more")
        for probe in ("/healthz", "/readyz", "/metrics"):
            await http.get(probe)
    provider.shutdown()
    servers = sorted(span.name for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER)
    assert servers == ["GET", "GET /blobs/{mount}/{key:path}"], servers
