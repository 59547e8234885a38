"""The error model: unexpected failures are masked, logged, and traceable by request id."""

from __future__ import annotations

import logging

import httpx
import pytest

import resolvers.system.queries
from tests.operations import document


async def test_unexpected_error_is_masked_with_request_id(
    http: httpx.AsyncClient, viewer: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_probe(*args: object) -> None:
        raise RuntimeError("secret internals: connection string mongodb://user:pw@host")

    monkeypatch.setattr(resolvers.system.queries, "probe", broken_probe)
    with caplog.at_level(logging.ERROR, logger="graphlake.errors"):
        response = await http.post(
            "/graphql", json={"query": document("Status"), "operationName": "Status"},
            headers={"Authorization": f"Bearer {viewer}", "X-Request-ID": "trace-me-1"},
        )
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "trace-me-1"}
    assert "secret internals" not in response.text
    assert "trace-me-1" in error["message"]
    logged = [r for r in caplog.records if r.name == "graphlake.errors"]
    assert logged and logged[0].exc_info and "secret internals" in str(logged[0].exc_info[1])
    assert logged[0].request_id == "trace-me-1"  # type: ignore[attr-defined]


async def test_syntax_and_validation_errors_are_bad_user_input(http: httpx.AsyncClient, viewer: str) -> None:
    for query in ["{ health { ok }", "{ health { nope } }", "query ($n: Int!) { health { ok } }"]:
        response = await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {viewer}"})
        errors = response.json()["errors"]
        assert errors and all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in errors), errors


async def test_malformed_ids_name_the_argument(http: httpx.AsyncClient, admin: str) -> None:
    response = await http.post("/graphql", json={"query": document("Node"), "operationName": "Node",
                                                 "variables": {"id": "not-an-id!"}},
                               headers={"Authorization": f"Bearer {admin}"})
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
