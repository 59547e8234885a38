"""The error model: unexpected failures are masked, logged, and traceable by request id."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from graphlake.logs import request_id_var
from resolvers.context import AppState
from tests.conftest import Served
from tests.operations import document


async def test_unexpected_error_is_masked_with_request_id(
    http: httpx.AsyncClient, viewer: str, state: AppState, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_probe(*args: object) -> None:
        raise RuntimeError("secret internals: connection string mongodb://user:pw@host")

    monkeypatch.setattr(state.health, "report", broken_probe)
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


async def test_an_unreadable_request_gets_a_graphql_error_with_a_code(http: httpx.AsyncClient, contributor: str) -> None:
    """Bad JSON, JSON nested thousands of levels deep or holding a number of 5000 digits, JSON that is not
    an object, no query, a wrong method: each is a GraphQL error with a code, never a plain-text answer or a 500."""
    auth = {"Authorization": f"Bearer {contributor}", "Content-Type": "application/json"}
    nested = "[" * 100_000 + "]" * 100_000
    deep = f'{{"query": {json.dumps(document("StoreValue"))}, "variables": {{"input": {{"name": "deep", "value": {nested}}}}}}}'
    two = "query A { __typename } query B { __typename }"
    # More digits than Python's int() reads (ValueError, a plain-text 500), and bodies that are JSON but
    # not an object (AttributeError in Strawberry, a 500 too).
    long_number = '{"query": "{ __typename }", "variables": {"n": ' + "9" * 5000 + "}}"
    for body in ("{not json", deep, '{"variables": {}}', json.dumps({"query": "{ __typename }", "variables": [1]}),
                 json.dumps({"query": two, "operationName": "C"}), long_number, '"{ __typename }"', "null", "5", "true"):
        answer = await http.post("/graphql", content=body, headers=auth)
        assert answer.status_code in (200, 400), (body[:80], answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith("application/json"), (body[:80], answer.text[:200])
        [error] = answer.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["message"], (body[:80], error)
    get = await http.get("/graphql", params={"query": "{ __typename }", "variables": "null"}, headers=auth)
    assert get.json() == {"data": {"__typename": "Query"}}  # null variables in a GET are still fine


NUMBERS = [  # (document, variables, where the message must say the fault is, extensions.field)
    ("{ assets(first: 99999999999) { totalCount } }", None, "first: ", "first"),
    ("{ assets(first: -99999999999) { totalCount } }", None, "first: ", "first"),
    ("{ assets(first: " + "9" * 5000 + ") { totalCount } }", None, "first: ", "first"),
    ("{ assets(first: 1e400) { totalCount } }", None, "first: ", "first"),
    ("{ annotations(filter: {minScore: 1e400}) { totalCount } }", None, "filter.minScore: ", "filter.minScore"),
    ("{ annotations(filter: {minScore: " + "9" * 400 + "}) { totalCount } }", None, "filter.minScore: ", "filter.minScore"),
    ("query ($f: Int = 99999999999) { assets(first: $f) { totalCount } }", None, "$f: ", "$f"),
    ("query ($f: Int) { assets(first: $f) { totalCount } }", {"f": 99999999999}, "'$f'", "$f"),
    ("query ($f: Int) { assets(first: $f) { totalCount } }", {"f": 1e300}, "'$f'", "$f"),
    ("query ($m: Float) { annotations(filter: {minScore: $m}) { totalCount } }", {"m": float("inf")}, "'$m'", "$m"),
    # Inside a variable's value: the place, as the same input given inline is named.
    ("query ($a: AnnotationFilter) { annotations(filter: $a) { totalCount } }", {"a": {"minScore": float("inf")}},
     "'$a'", "a.minScore"),
    ('mutation { storeValue(input: {name: "n", value: {x: 1e400}}) { id } }', None, "input.value.x: ", "input.value.x"),
    ('mutation { storeValue(input: {name: "n", value: {x: ' + "9" * 5000 + "}}) { id } }", None, "input.value.x: ",
     "input.value.x"),
    ('mutation { createUpload(input: {name: "n", sizeBytes: "many"}) { id } }', None, "input.sizeBytes: BigInt",
     "input.sizeBytes"),
    ('mutation { createUpload(input: {name: "n", sizeBytes: 99999999999999999999999}) { id } }', None,
     "input.sizeBytes: BigInt must fit in 64 bits", "input.sizeBytes"),
    ("mutation ($s: BigInt!) { createUpload(input: {name: \"n\", sizeBytes: $s}) { id } }", {"s": "9" * 5000},
     "'$s'", "$s"),
    ("mutation ($s: BigInt!) { createUpload(input: {name: \"n\", sizeBytes: $s}) { id } }", {"s": {"a": 1}}, "'$s'", "$s"),
]
PYTHON = ("Traceback", "int()", "ValueError", "TypeError", "set_int_max_str_digits", "dict", "NoneType", "object of type",
          "Internal server error")


@pytest.mark.parametrize(("query", "variables", "where", "field"), NUMBERS, ids=lambda v: str(v)[:50])
async def test_numbers_out_of_range_are_bad_user_input_naming_where(
        http: httpx.AsyncClient, contributor: str, query: str, variables: dict | None, where: str, field: str | None) -> None:
    """An integer beyond 32 bits (or any length), a float beyond a double: BAD_USER_INPUT, the message
    naming the argument (`first: ...`) or variable (`Variable '$f' ...`), never Python's own words."""
    body = {"query": query, "variables": variables}
    # inf goes as JSON's 1e400, which Python's decoder reads as infinity (as a client's would)
    content = json.dumps(body).replace("Infinity", "1e400")
    answer = await http.post("/graphql", content=content,
                             headers={"Authorization": f"Bearer {contributor}", "Content-Type": "application/json"})
    assert answer.status_code == 200
    result = answer.json()
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"].get("field") == field
    assert where in error["message"][:80], error["message"]
    assert not [word for word in PYTHON if word in error["message"]], error["message"]


async def test_a_bad_enum_in_a_variable_names_its_place(http: httpx.AsyncClient, viewer: str) -> None:
    """What a client sends as variables is named as precisely as what it writes inline (`field`),
    so a client can point at the argument it got wrong."""
    query = "query ($filter: AssetFilter, $first: Int!) { assets(filter: $filter, first: $first) { totalCount } }"
    answer = (await http.post("/graphql", json={"query": query, "variables": {"filter": {"kinds": ["VALUE", "BOGUS"]}}},
                              headers={"Authorization": f"Bearer {viewer}"})).json()
    assert [e["extensions"] for e in answer["errors"]] == [{"code": "BAD_USER_INPUT", "field": "filter.kinds[1]"},
                                                           {"code": "BAD_USER_INPUT", "field": "$first"}]


async def test_a_variable_the_operation_does_not_declare_is_ignored(http: httpx.AsyncClient, viewer: str) -> None:
    """graphql-core leaves an operation's variable definitions None when it declares none: the
    list-size check walked them and answered "'NoneType' object is not iterable", with no code."""
    headers = {"Authorization": f"Bearer {viewer}"}
    posted = await http.post("/graphql", json={"query": "{ health { ok } }", "variables": {"x": [1] * 5}}, headers=headers)
    got = await http.get("/graphql", params={"query": "{ health { ok } }", "variables": '{"x": 1}'}, headers=headers)
    for answer in (posted, got):
        assert answer.status_code == 200 and answer.json() == {"data": {"health": {"ok": True}}}, answer.text


async def test_an_unknown_enum_value_lists_the_allowed_ones(http: httpx.AsyncClient, viewer: str) -> None:
    """graphql-core suggests only near misses; `WARN` (Python's logging.WARN) is not one by its measure."""
    headers = {"Authorization": f"Bearer {viewer}"}
    query = "query ($level: LogLevel) { events(filter: {minLevel: $level}) { totalCount } }"
    sent = (await http.post("/graphql", json={"query": query, "variables": {"level": "WARN"}}, headers=headers)).json()
    inline = (await http.post("/graphql", json={"query": "{ events(filter: {minLevel: WARN}) { totalCount } }"},
                              headers=headers)).json()
    for answer, field in ((sent, "$level"), (inline, "filter.minLevel")):
        [error] = answer["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
        assert error["message"].endswith("Value 'WARN' does not exist in 'LogLevel' enum. "
                                         "Allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL."), error["message"]
    near = (await http.post("/graphql", json={"query": query, "variables": {"level": "WARNIN"}}, headers=headers)).json()
    assert near["errors"][0]["message"].endswith("Did you mean the enum value 'WARNING'?")  # graphql-core's own


async def test_a_document_of_several_operations_needs_their_name(http: httpx.AsyncClient, viewer: str) -> None:
    """The GraphQL spec: without operationName, a document of several operations is an error, not its first one."""
    document = "query A { me { role } } query B { health { ok } }"
    headers = {"Authorization": f"Bearer {viewer}"}
    unnamed = (await http.post("/graphql", json={"query": document}, headers=headers)).json()
    assert unnamed["data"] is None
    assert unnamed["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "operationName"}
    named = (await http.post("/graphql", json={"query": document, "operationName": "B"}, headers=headers)).json()
    assert named == {"data": {"health": {"ok": True}}}


async def test_an_unexpected_error_outside_graphql_is_logged_once_with_its_request_id(
    served: Served, state: AppState, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A route outside GraphQL (/readyz here; the signed blob routes, the content route) that failed
    unexpectedly answered a plain `Internal Server Error` without X-Request-ID, and uvicorn logged the
    traceback after the request's id was gone: its line said `[-]`, and nothing tied it to the call."""
    async def broken_probe(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(state.health, "report", broken_probe)
    seen: list[str | None] = []

    class RequestIdAtEmit(logging.Filter):  # as the server's own handler reads it (graphlake/logs.py)
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(getattr(record, "request_id", None) or request_id_var.get())
            return True

    caplog.handler.addFilter(RequestIdAtEmit())
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            response = await http.get("/readyz", headers={"X-Request-ID": "trace-me-2"})
    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "trace-me-2"
    assert response.json()["errors"][0]["extensions"] == {"code": "INTERNAL", "requestId": "trace-me-2"}
    assert "secret internals" not in response.text
    tracebacks = [(r, at) for r, at in zip(caplog.records, seen, strict=True) if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]  # once, not again by uvicorn
    record, request_id = tracebacks[0]
    assert request_id == "trace-me-2" and "secret internals" in str(record.exc_info[1])
    assert "GET /readyz" in record.getMessage()
