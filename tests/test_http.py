"""HTTP surface around GraphQL: CORS for browser apps, structured logs."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
import websockets

from graphlake.app import create_app
from graphlake.logs import JsonFormatter, configure_logging, request_id_var
from graphlake.settings import Settings
from tests.processes import serving
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, Subscriber


async def test_cors_preflight_allows_configured_origins_only(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["https://lab.example"]}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        allowed = await http.options("/graphql", headers={"Origin": "https://lab.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://lab.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = await http.options("/graphql", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in refused.headers
        # Tracing and common client headers pass the preflight too.
        traced = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers":
                  "content-type,traceparent,tracestate,baggage,apollo-require-preflight,x-apollo-operation-name"}
        allowed = await http.options("/graphql", headers={"Origin": "https://lab.example", **traced})
        assert allowed.status_code == 200, allowed.text
        for header in ("traceparent", "tracestate", "baggage", "apollo-require-preflight", "x-apollo-operation-name"):
            assert header in allowed.headers["access-control-allow-headers"].lower()
        # A body over the limit reaches the page as a 413 it may read, not as a network error.
        origin = {"Origin": "https://lab.example", "Content-Type": "application/json"}
        too_big = await http.post("/graphql", content=b" " * (settings.max_body_bytes + 1), headers=origin)
        assert too_big.status_code == 413 and too_big.headers["access-control-allow-origin"] == "https://lab.example"
        # What names a download is readable by the page too.
        exposed = {h.strip().lower() for h in too_big.headers["access-control-expose-headers"].split(",")}
        assert {"content-disposition", "x-graphlake-name", "x-graphlake-sha256", "www-authenticate"} <= exposed


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_handshakes_follow_the_cors_origins(settings: Settings, viewer: str, protocol: str) -> None:
    """Browsers apply no CORS to WebSockets but send their page's Origin: a page on a configured origin
    may subscribe, one elsewhere is refused (403) before the socket opens; clients that are not browsers
    send no Origin and are not affected."""
    app = create_app(settings.model_copy(update={"cors_origins": ["https://lab.example"]}))
    async with serving(app, log_level="info") as port:  # "warning" would silence uvicorn.access for later tests
        url = f"ws://127.0.0.1:{port}/graphql"
        for origin in ("https://lab.example", None):
            async with Subscriber(url, protocol, headers={"Origin": origin} if origin else None) as ws:
                acked = await ws.connect({"Authorization": f"Bearer {viewer}"})
                assert acked["type"] == "connection_ack", (origin, acked)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with Subscriber(url, protocol, headers={"Origin": "https://evil.example"}) as ws:
                await ws.connect({"Authorization": f"Bearer {viewer}"})
        assert refused.value.response.status_code == 403


def test_json_logs_carry_the_request_id() -> None:
    configure_logging("INFO", json=True)
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    token = request_id_var.set("req-7")
    try:
        logging.getLogger("graphlake.test").warning("disk %s is %d%% full", "/data", 91)
    finally:
        request_id_var.reset(token)
        configure_logging("INFO", json=False)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["message"] == "disk /data is 91% full" and entry["level"] == "WARNING"
    assert entry["request_id"] == "req-7" and entry["logger"] == "graphlake.test"
    # A record no request stamped (one logged outside any, through another handler) is a line all the same.
    bare = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})))
    assert bare["message"] == "x" and bare["request_id"] is None


def test_logs_never_hold_a_signature() -> None:
    """A signed URL is a bearer capability: access lines and client request lines keep the URL, not its signature."""
    configure_logging("INFO", json=False)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "PUT",
                                                 "/blobs/local/assets/x?size=1&exp=2&sig=c2VjcmV0LXNpZw", "1.1", 200)
        logging.getLogger("graphlake.test").warning("PUT http://minio/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                                    "&X-Amz-Credential=AKIA%2F20261130&X-Amz-Signature=deadbeef42 failed")
        # httpx's own request lines are not written at all (they quote a webhook's URL whole).
        logging.getLogger("httpx").info("HTTP Request: POST https://hooks.example/services/T0/B0/hunter2")
    finally:
        configure_logging("INFO", json=False)
    logged = stream.getvalue()
    assert "c2VjcmV0LXNpZw" not in logged and "deadbeef42" not in logged and "AKIA" not in logged
    assert "sig=REDACTED" in logged and "X-Amz-Signature=REDACTED" in logged and "size=1&exp=2" in logged
    assert "hunter2" not in logged


@pytest.mark.parametrize("json_lines", [False, True])
def test_an_exceptions_text_holds_no_signature(json_lines: bool) -> None:
    """An HTTP error quotes the URL it was for: the traceback under a log line kept its signature."""
    configure_logging("INFO", json=json_lines)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        try:
            raise RuntimeError("403 for url 'http://127.0.0.1:8000/blobs/local/k?exp=2&sig=c2VjcmV0LXNpZw'")
        except RuntimeError:
            logging.getLogger("graphlake.test").exception("a download failed")
    finally:
        configure_logging("INFO", json=False)
    logged = stream.getvalue()
    assert "c2VjcmV0LXNpZw" not in logged and "sig=REDACTED" in logged and "RuntimeError" in logged, logged


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_text_another_handler_formatted_first_and_a_stack_hold_no_signature(json_lines: bool) -> None:
    """A logger's own handler runs before the root's and caches the exception's text on the record:
    the redaction took a text it found there as done, and the root's line printed it, signature and
    all. A stack (stack_info=True) was never redacted: it holds source lines, a URL a line spells out."""
    configure_logging("INFO", json=json_lines)
    stream, first = io.StringIO(), io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    own = logging.getLogger("graphlake.test.own")
    own_handler = logging.StreamHandler(first)
    own.addHandler(own_handler)
    try:
        try:
            raise RuntimeError("403 for url 'http://127.0.0.1:8000/blobs/local/k?exp=2&sig=c2VjcmV0LXNpZw'")
        except RuntimeError:
            own.exception("a download failed", stack_info=True, extra={"url": "/blobs/local/k?exp=2&sig=STACK-SIG"})
    finally:
        own.removeHandler(own_handler)
        configure_logging("INFO", json=False)
    assert "c2VjcmV0LXNpZw" in first.getvalue() and "STACK-SIG" in first.getvalue()  # formatted there first, as it was
    logged = stream.getvalue()
    assert "c2VjcmV0LXNpZw" not in logged and "STACK-SIG" not in logged and "RuntimeError" in logged, logged
    assert "sig=REDACTED" in logged.split("Stack (most recent call last)", 1)[1], logged  # the stack's line, kept


def test_json_logs_name_the_trace_they_were_written_in() -> None:
    """With tracing on, a line could not be matched to its trace (nor a trace to its lines) but by time."""
    from opentelemetry.sdk.trace import TracerProvider

    configure_logging("INFO", json=True)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    provider = TracerProvider()
    try:
        with provider.get_tracer("test").start_as_current_span("request") as span:
            logging.getLogger("graphlake.test").warning("inside a trace")
        logging.getLogger("graphlake.test").warning("outside any")
    finally:
        configure_logging("INFO", json=False)
        provider.shutdown()
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines()[-2:])
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x") and inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside and "span_id" not in outside
