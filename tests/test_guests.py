"""Callers without a valid token (resolvers/guests.py): they may call `health`, `me` and `__typename`, and
anything else they send is refused UNAUTHENTICATED before it is validated, or before it is parsed whole."""

from __future__ import annotations

import httpx
import pytest
from graphql import get_introspection_query

from resolvers.context import AppState
from tests.operations import Api
from tests.validations import count_validations

BAD_TOKEN = {"Authorization": "Bearer glk_not_a_token"}


async def ask(http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None) -> dict:
    response = await http.post("/graphql", json={"query": query}, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_guest_may_call_what_needs_no_role(http: httpx.AsyncClient) -> None:
    body = await ask(http, "{ health { ok } me { role } __typename }")
    assert body == {"data": {"health": {"ok": True}, "me": None, "__typename": "Query"}}
    wrong = await ask(http, "{ health { ok } me { role } }", BAD_TOKEN)  # `me` says why the token failed
    assert wrong["data"] == {"health": {"ok": True}, "me": None}
    assert [e["extensions"]["code"] for e in wrong["errors"]] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(("query", "named"), [
    ("{ health { ok } assets { totalCount } }", "`assets`"),
    ("{ health { ok } ...Lists } fragment Lists on Query { ... on Query { mounts { name } } }", "`mounts`"),
    ("{ __schema { types { name } } }", "`__schema`"),  # introspection needs a token
    ('mutation { createCollection(input: {name: "x"}) { id } }', "a mutation"),
    ("query A { health { ok } } query B { apiTokens { totalCount } }", "`apiTokens`"),  # every operation counts
])
async def test_a_guests_document_asking_for_more_is_refused_unvalidated(
        http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, query: str, named: str) -> None:
    validations = count_validations(monkeypatch)
    body = await ask(http, query)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"].startswith(named) and "Authorization: Bearer" in error["message"]
    wrong = (await ask(http, query, BAD_TOKEN))["errors"][0]  # a bad token is told why it failed
    assert wrong["extensions"] == {"code": "UNAUTHENTICATED"} and "not valid" in wrong["message"]
    assert validations == []


async def test_a_guests_document_is_parsed_only_up_to_a_small_budget(
        http: httpx.AsyncClient, viewer: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """#16's document (14 KB of `me { role }`) from a guest stops at GRAPHLAKE_MAX_TOKENS_UNAUTHENTICATED."""
    validations = count_validations(monkeypatch)
    budget = state.settings.max_tokens_unauthenticated
    padded = "{ health { ok } }" + "\n# comments count" * budget
    for query in ("{ " + "me { role } " * 1200 + "}", padded):
        [error] = (await ask(http, query))["errors"]
        assert error["extensions"] == {"code": "UNAUTHENTICATED"}
        assert f"more than {budget} tokens (GRAPHLAKE_MAX_TOKENS_UNAUTHENTICATED)" in error["message"]
        assert "Authorization: Bearer" in error["message"]
    assert validations == []
    # The same public document is fine with a token, whose budget is GRAPHLAKE_MAX_TOKENS.
    assert await ask(http, padded, {"Authorization": f"Bearer {viewer}"}) == {"data": {"health": {"ok": True}}}


async def test_guests_neither_fill_nor_use_the_document_memo(
        http: httpx.AsyncClient, viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    validations = count_validations(monkeypatch)
    member = {"Authorization": f"Bearer {viewer}"}
    for _ in range(2):
        assert "errors" not in await ask(http, "query GuestMemo { health { database } }")
    assert len(validations) == 2  # validated each time: a guest's document is not remembered
    for _ in range(2):
        assert "errors" not in await ask(http, "query MemberMemo { mounts { name } }", member)
    assert len(validations) == 3  # a member's is, once
    refused = await ask(http, "query MemberMemo { mounts { name } }")  # and a guest does not get its outcome
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_members_introspect_and_anonymous_reads_lift_the_guest_limits(
        http: httpx.AsyncClient, api: Api, viewer: str, state: AppState) -> None:
    introspection = get_introspection_query(descriptions=True, input_value_deprecation=True)
    body = await ask(http, introspection, {"Authorization": f"Bearer {viewer}"})  # what GraphiQL sends
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"
    state.settings.anonymous_read = True
    try:
        assert (await api.data("Mounts"))["mounts"]  # reads without a token, at a member's token budget
        public = "{ health { ok } }" + "\n# comments count" * state.settings.max_tokens_unauthenticated
        assert (await ask(http, public)) == {"data": {"health": {"ok": True}}}
        assert (await ask(http, public, BAD_TOKEN))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        state.settings.anonymous_read = False
