"""GraphQL over HTTP, as the GraphQL Foundation's spec says: application/graphql-response+json with its
status codes for clients that ask for it, application/json and 200 for the others, and GET for queries only."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import httpx
import pytest

from graphlake import PROJECT_ROOT
from graphlake.graphql_http import GRAPHQL_RESPONSE_JSON, response_media_type
from tests.conftest import Served
from tests.operations import document

NEW = {"Accept": f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9"}  # what graphql-http and Apollo Client send


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "application/json"),
    ("*/*", "application/json"),
    ("application/json", "application/json"),
    (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
    (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
    (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", "application/json"),
    (f"{GRAPHQL_RESPONSE_JSON};q=0", "application/json"),
    ("text/html", "application/json"),
    (f"{GRAPHQL_RESPONSE_JSON};q=0.5, */*", "application/json"),  # */* stands for JSON, at 1
    (f"{GRAPHQL_RESPONSE_JSON}, application/graphql+json, application/json, text/event-stream, multipart/mixed",
     GRAPHQL_RESPONSE_JSON),  # urql's
])
def test_the_media_type_follows_the_accept_header(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected


async def test_a_result_comes_in_the_media_type_asked_for(http: httpx.AsyncClient, viewer: str) -> None:
    auth = {"Authorization": f"Bearer {viewer}"}
    body = {"query": document("Status"), "operationName": "Status"}
    new = await http.post("/graphql", json=body, headers={**auth, **NEW})
    assert new.status_code == 200 and new.headers["content-type"] == f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
    assert new.json()["data"]["health"]["ok"] is True
    for accept in (None, "*/*", "application/json"):
        old = await http.post("/graphql", json=body, headers={**auth, **({"Accept": accept} if accept else {})})
        assert old.status_code == 200 and old.headers["content-type"] == "application/json", accept
        assert old.json()["data"]["health"]["ok"] is True


REQUEST_ERRORS = [  # (document, variables): the operation never runs
    ("{ health { ok }", None),  # does not parse
    ("{ health { nope } }", None),  # does not validate
    ("query ($n: Int!) { health { ok } }", {"n": None}),  # a variable that cannot be coerced
    ("query ($n: Int!) { health { ok } }", {}),  # a required variable missing
    ("{ a: health { ok } " + " ".join(f"a{i}: health {{ ok }}" for i in range(40)) + " }", None),  # over a limit
]


@pytest.mark.parametrize(("query", "variables"), REQUEST_ERRORS, ids=["parse", "validation", "null-variable",
                                                                     "missing-variable", "limit"])
async def test_a_request_error_is_a_4xx_without_data_for_new_clients_only(
        http: httpx.AsyncClient, viewer: str, query: str, variables: dict | None) -> None:
    auth = {"Authorization": f"Bearer {viewer}"}
    body = {"query": query, "variables": variables}
    new = await http.post("/graphql", json=body, headers={**auth, **NEW})
    assert new.status_code == 400, new.text
    assert new.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    answer = new.json()
    assert "data" not in answer and answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", answer
    old = await http.post("/graphql", json=body, headers={**auth, "Accept": "application/json"})
    assert old.status_code == 200 and old.headers["content-type"] == "application/json"
    assert old.json()["data"] is None and old.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_field_error_keeps_data_and_200(http: httpx.AsyncClient, viewer: str) -> None:
    """An error inside execution is not a request error: data (here null, from a non-null root field
    or not) stays, with 200, for every client."""
    missing = "QXNzZXQ6NjU1NmYwMDAwMDAwMDAwMDAwMDAwMDAw"  # Asset:<an ObjectId nothing has>
    answer = await http.post("/graphql", json={"query": "query ($id: ID!) { node(id: $id) { id } health { ok } }",
                                                "variables": {"id": missing}},
                             headers={"Authorization": f"Bearer {viewer}", **NEW})
    assert answer.status_code == 200 and "data" in answer.json(), answer.text
    assert answer.json()["data"]["health"] == {"ok": True}


async def test_a_caller_without_a_token_gets_401_for_what_needs_one(http: httpx.AsyncClient) -> None:
    new = await http.post("/graphql", json={"query": "{ assets { totalCount } }"}, headers=NEW)
    assert new.status_code == 401 and new.headers["www-authenticate"] == "Bearer"
    assert "data" not in new.json() and new.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    old = await http.post("/graphql", json={"query": "{ assets { totalCount } }"})
    assert old.status_code == 200 and old.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_unreadable_bodies_are_400_in_the_media_type_asked_for(http: httpx.AsyncClient, viewer: str) -> None:
    auth = {"Authorization": f"Bearer {viewer}", "Content-Type": "application/json"}
    for body in ('{ "not a JSON', '{"qeury": "{ __typename }"}', '{"query": "{ __typename }", "operationName": 0}',
                 '{"query": "{ __typename }", "operationName": {"obj": "ect"}}', '{"query": false}'):
        for accept, media in ((NEW["Accept"], GRAPHQL_RESPONSE_JSON), ("application/json", "application/json")):
            answer = await http.post("/graphql", content=body, headers={**auth, "Accept": accept})
            assert answer.status_code == 400, (body, answer.text)
            assert answer.headers["content-type"].startswith(media), (body, accept)
            assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_body_field_of_the_wrong_kind_is_refused_naming_it(http: httpx.AsyncClient, viewer: str) -> None:
    """A POST of one operation in JSON is read by the view itself (graphlake/view.py `_answer_post`), a
    batch (a JSON array) by Strawberry: each refuses what it cannot run with a GraphQL error saying why."""
    auth = {"Authorization": f"Bearer {viewer}", "Content-Type": "application/json; charset=utf-8"}
    for body, named in (({"query": 5}, "`query` must be a string"), ({"query": "{ __typename }", "variables": [1]},
                        "`variables` must be an object"), ({"query": "{ __typename }", "extensions": "x"},
                        "`extensions` must be an object"), ({"query": "{ __typename }", "operationName": 5},
                        "`operationName` must be a string"), ([{"query": "{ __typename }"}], "atching")):
        answer = await http.post("/graphql", json=body, headers=auth)
        assert answer.status_code == 400, (body, answer.text)
        [error] = answer.json()["errors"]
        assert named in error["message"] and error["extensions"]["code"] == "BAD_USER_INPUT", (body, error)
    fine = await http.post("/graphql", json={"query": "{ __typename }", "variables": None, "extensions": None}, headers=auth)
    assert fine.json() == {"data": {"__typename": "Query"}}


async def test_an_unknown_operation_name_is_a_request_error_in_either_media_type(http: httpx.AsyncClient,
                                                                                  viewer: str) -> None:
    """As a document that does not validate: the spec's media type gets 400 and no `data`; plain JSON,
    which the spec asks to answer 200 for any well-formed request, gets 200 and null data."""
    body = {"query": "query A { __typename }", "operationName": "B"}
    expected = {"message": 'Unknown operation named "B".', "extensions": {"code": "BAD_USER_INPUT", "field": "operationName"}}
    spec = await http.post("/graphql", json=body, headers={"Authorization": f"Bearer {viewer}", **NEW})
    assert spec.status_code == 400 and spec.json() == {"errors": [expected]}, spec.text
    plain = await http.post("/graphql", json=body, headers={"Authorization": f"Bearer {viewer}", "Accept": "application/json"})
    assert plain.status_code == 200 and plain.json() == {"data": None, "errors": [expected]}, plain.text


async def test_a_mutation_sent_with_get_is_405_naming_post(http: httpx.AsyncClient, contributor: str) -> None:
    auth = {"Authorization": f"Bearer {contributor}"}
    for accept in (NEW["Accept"], "application/json"):
        answer = await http.get("/graphql", params={"query": 'mutation { storeText(input: {name: "n", text: "t"}) { id } }'},
                                headers={**auth, "Accept": accept})
        assert answer.status_code == 405 and answer.headers["allow"] == "POST", answer.text
        [error] = answer.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "POST" in error["message"]
    head = await http.head("/graphql", params={"query": "{ __typename }"}, headers=auth)
    assert head.status_code == 405 and head.headers["allow"] == "GET, POST"
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):  # one answer for every other method, naming those that work,
        other = await http.request(method, "/graphql", headers={"Authorization": "Bearer glk_not-a-token"})  # unread
        assert other.status_code == 405 and other.headers["allow"] == "GET, POST", (method, other.text)
        assert other.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # Nothing was written; a query over GET still works.
    texts = await http.get("/graphql", params={"query": "{ assets { totalCount } }"}, headers=auth)
    assert texts.json() == {"data": {"assets": {"totalCount": 0}}}


async def test_the_graphql_http_audit_finds_nothing_to_fix(served: Served, viewer: str) -> None:
    """The npm graphql-http package's server audits, run against the real server over a real socket:
    no MUST (error) and no SHOULD (warning) may fail; the MAYs (notices) are listed if any fail."""
    node = shutil.which("node")
    modules = PROJECT_ROOT / "assets" / "node_modules"
    assert node and (modules / "graphql-http").is_dir(), "make installs Node.js packages into assets/node_modules"
    process = await asyncio.create_subprocess_exec(
        node, str(PROJECT_ROOT / "tests" / "js" / "http_audit.cjs"), f"{served.base_url}/graphql", viewer,
        env={**os.environ, "ASSETS_NODE_MODULES": str(modules)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    results = json.loads(out)
    assert len(results) >= 61, "the audit ran fewer checks than graphql-http 1.23 has"
    failing = [f"{r['status']} {r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] in ("error", "warn")]
    assert not failing, "graphql-http audits failing:\n" + "\n".join(failing)
    notices = [f"{r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] == "notice"]
    assert not notices, "graphql-http MAY audits failing:\n" + "\n".join(notices)
