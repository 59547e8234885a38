"""HTTP surface around GraphQL: CORS for browser apps, structured logs."""

from __future__ import annotations

import io
import json
import logging

import httpx

from graphlake.app import create_app
from graphlake.logs import JsonFormatter, configure_logging, request_id_var
from graphlake.settings import Settings


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
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


def test_logs_never_hold_a_signature() -> None:
    """A signed URL is a bearer capability: access lines and client request lines keep the URL, not its signature."""
    configure_logging("INFO", json=False)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "PUT",
                                                 "/blobs/local/assets/x?size=1&exp=2&sig=c2VjcmV0LXNpZw", "1.1", 200)
        logging.getLogger("httpx").info("HTTP Request: PUT http://minio/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                        "&X-Amz-Credential=AKIA%2F20261130&X-Amz-Signature=deadbeef42 \"HTTP/1.1 200 OK\"")
    finally:
        configure_logging("INFO", json=False)
    logged = stream.getvalue()
    assert "c2VjcmV0LXNpZw" not in logged and "deadbeef42" not in logged and "AKIA" not in logged
    assert "sig=REDACTED" in logged and "X-Amz-Signature=REDACTED" in logged and "size=1&exp=2" in logged
