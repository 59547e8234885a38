"""Automatic Persisted Queries (graphlake/persisted_queries.py): the exchange Apollo Client and others
run, over POST and GET, and each way it is refused."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest

from graphlake.app import create_app
from graphlake.graphql_http import GRAPHQL_RESPONSE_JSON
from graphlake.persisted_queries import MAX_STORED_CHARS, PersistedQueries, PersistedQueryError
from graphlake.settings import Settings
from resolvers.context import AppState
from tests.operations import document

STATUS = document("Status")
STATUS_HASH = hashlib.sha256(STATUS.encode()).hexdigest()  # for stores no test used before


def fresh() -> tuple[str, str]:
    """The Status query made new (a comment is enough), and its hash: the app's store lives as long as the
    session's app, so each test persists a document no other test has."""
    query = f"{STATUS}\n# {uuid.uuid4().hex}"
    return query, hashlib.sha256(query.encode()).hexdigest()
NEW = {"Accept": f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9"}


def persisted(sha256: str = STATUS_HASH, version: object = 1) -> dict:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256}}


async def test_the_apq_exchange_over_post(http: httpx.AsyncClient, viewer: str) -> None:
    auth = {"Authorization": f"Bearer {viewer}"}
    query, sha = fresh()
    # 1. The hash alone, unknown yet: the client is told to send the query (200, as Apollo Client expects).
    first = await http.post("/graphql", json={"extensions": persisted(sha), "operationName": "Status"}, headers=auth)
    assert first.status_code == 200 and "no-cache" in first.headers["cache-control"]
    assert first.json() == {"errors": [{"message": "PersistedQueryNotFound",
                                        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}
    # 2. Hash and query: run and remembered.
    second = await http.post("/graphql", json={"query": query, "extensions": persisted(sha), "operationName": "Status"},
                             headers=auth)
    assert second.status_code == 200 and second.json()["data"]["health"]["ok"] is True
    # 3. The hash alone again: answered from the store, with the same result.
    third = await http.post("/graphql", json={"extensions": persisted(sha), "operationName": "Status"}, headers=auth)
    assert third.status_code == 200 and third.json() == second.json()
    # Upper-case hex names the same document.
    upper = await http.post("/graphql", json={"extensions": persisted(sha.upper())}, headers=auth)
    assert upper.json() == second.json()


async def test_apq_over_get_so_caches_can_serve_it(http: httpx.AsyncClient, viewer: str) -> None:
    """A hash-only GET has a short URL that a cache can key on; even with Accept: */* it is an API call, not GraphiQL."""
    auth = {"Authorization": f"Bearer {viewer}"}
    query, sha = fresh()
    params = {"extensions": json.dumps(persisted(sha)), "operationName": "Status"}
    missing = await http.get("/graphql", params=params, headers={**auth, "Accept": "*/*"})
    assert missing.status_code == 200 and missing.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    stored = await http.get("/graphql", params={**params, "query": query}, headers=auth)
    assert stored.json()["data"]["health"]["ok"] is True
    served = await http.get("/graphql", params=params, headers={**auth, "Accept": "*/*"})
    assert served.status_code == 200 and served.json() == stored.json()
    assert served.headers["content-type"] == "application/json"
    assert "accept" in served.headers["vary"].lower()  # a cache keeps the two media types apart
    # GET runs queries only, however the document arrives.
    mutation = f'mutation {{ storeText(input: {{name: "n", text: "t"}}) {{ id }} }} # {uuid.uuid4().hex}'
    sha = hashlib.sha256(mutation.encode()).hexdigest()
    await http.post("/graphql", json={"query": mutation, "extensions": persisted(sha)}, headers=auth)  # VIEWER: refused, but stored
    refused = await http.get("/graphql", params={"extensions": json.dumps(persisted(sha))}, headers=auth)
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"


async def test_unknown_hashes_are_404_for_new_clients(http: httpx.AsyncClient, viewer: str) -> None:
    """application/graphql-response+json answers without data must not be 2xx: 404, which Apollo Client
    answers by sending the query (it gives up on APQ after a 400 or 500 only)."""
    answer = await http.post("/graphql", json={"extensions": persisted("ab" * 32)},
                             headers={"Authorization": f"Bearer {viewer}", **NEW})
    assert answer.status_code == 404 and answer.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert answer.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_hash_that_does_not_match_its_query_is_refused(http: httpx.AsyncClient, viewer: str) -> None:
    auth = {"Authorization": f"Bearer {viewer}"}
    wrong = "0" * 64
    query, sha = fresh()
    answer = await http.post("/graphql", json={"query": query, "extensions": persisted(wrong)}, headers=auth)
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["extensions"] == {"code": "PERSISTED_QUERY_HASH_MISMATCH", "field": "extensions.persistedQuery.sha256Hash"}
    assert sha in error["message"] and wrong in error["message"]
    # Nothing was stored under the wrong hash.
    later = await http.post("/graphql", json={"extensions": persisted(wrong)}, headers=auth)
    assert later.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_malformed_persisted_queries_name_the_field(http: httpx.AsyncClient, viewer: str) -> None:
    auth = {"Authorization": f"Bearer {viewer}"}
    for extensions, field in ((persisted(version=2), "extensions.persistedQuery.version"),
                              (persisted("not-hex"), "extensions.persistedQuery.sha256Hash"),
                              ({"persistedQuery": "x"}, "extensions.persistedQuery")):
        answer = await http.post("/graphql", json={"query": STATUS, "extensions": extensions}, headers=auth)
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


async def test_apq_can_be_turned_off(settings: Settings, state: AppState, viewer: str) -> None:
    """With GRAPHLAKE_PERSISTED_QUERIES_MAX_ENTRIES=0, Apollo's PersistedQueryNotSupported: its clients then stop sending hashes."""
    app = create_app(settings.model_copy(update={"persisted_queries_max_entries": 0}))
    app.state.graphlake = state  # the running app's database, stores and token cache
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        answer = await http.post("/graphql", json={"query": STATUS, "extensions": persisted()},
                                 headers={"Authorization": f"Bearer {viewer}"})
    assert answer.status_code == 200
    assert answer.json() == {"errors": [{"message": "PersistedQueryNotSupported",
                                         "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}}]}


def test_the_store_is_bounded_and_keeps_the_recently_used() -> None:
    store = PersistedQueries(max_entries=2)
    docs = [f"{{ a{i}: __typename }}" for i in range(3)]
    hashes = [hashlib.sha256(d.encode()).hexdigest() for d in docs]
    store.document(docs[0], persisted(hashes[0]))
    store.document(docs[1], persisted(hashes[1]))
    assert store.document(None, persisted(hashes[0])) == docs[0]  # 0 is now the most recently used
    store.document(docs[2], persisted(hashes[2]))  # 1 goes
    assert len(store) == 2
    assert store.document(None, persisted(hashes[0])) == docs[0]
    assert store.document(None, persisted(hashes[2])) == docs[2]
    with pytest.raises(PersistedQueryError) as evicted:
        store.document(None, persisted(hashes[1]))
    assert evicted.value.code == "PERSISTED_QUERY_NOT_FOUND"
    # A document too long to keep still runs; its hash is simply not remembered.
    long = "{ __typename }" + " " * MAX_STORED_CHARS
    long_hash = hashlib.sha256(long.encode()).hexdigest()
    assert store.document(long, persisted(long_hash)) == long
    with pytest.raises(PersistedQueryError) as not_kept:
        store.document(None, persisted(long_hash))
    assert not_kept.value.code == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(("token", "anonymous_read"), [(None, False), ("not-a-token", False), (None, True)],
                         ids=["no token", "a wrong token", "an anonymous reader"])
async def test_a_guest_neither_fills_the_store_nor_learns_from_it(http: httpx.AsyncClient, viewer: str, settings: Settings,
                                                                  token: str | None, anonymous_read: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller without a valid token is run what it may run, but its documents are not remembered,
    and no hash is known to it: else anyone could push out the clients' documents and tell which they are."""
    monkeypatch.setattr(settings, "anonymous_read", anonymous_read)
    guest = {"Authorization": f"Bearer {token}"} if token else {}
    auth = {"Authorization": f"Bearer {viewer}"}
    query, sha = fresh()
    sent = await http.post("/graphql", json={"query": query, "extensions": persisted(sha)}, headers=guest)
    assert sent.status_code == 200 and sent.json()["data"]["health"]["ok"] is True  # Status needs no role
    again = await http.get("/graphql", params={"query": query, "extensions": json.dumps(persisted(sha))},
                           headers={**guest, "Accept": "application/json"})
    assert again.json()["data"]["health"]["ok"] is True  # the GET path alike
    unknown = await http.post("/graphql", json={"extensions": persisted(sha)}, headers=auth)
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"  # not remembered
    # A document a client persisted is unknown to a guest, over POST and GET.
    await http.post("/graphql", json={"query": query, "extensions": persisted(sha)}, headers=auth)
    assert (await http.post("/graphql", json={"extensions": persisted(sha)}, headers=auth)).json()["data"]
    hidden = await http.post("/graphql", json={"extensions": persisted(sha)}, headers=guest)
    assert hidden.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    hidden = await http.get("/graphql", params={"extensions": json.dumps(persisted(sha))},
                            headers={**guest, "Accept": "application/json"})
    assert hidden.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
