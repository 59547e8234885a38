"""Authentication by API token: roles, hashing, expiry, revocation, the anonymous-read switch."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from documents.api_token import ApiToken
from documents.clock import utcnow
from documents.event import Event
from documents.roles import Role
from resolvers.context import AppState
from services import auth, token_cache
from tests.conftest import MakeToken, Served
from tests.operations import Api
from tests.waiting import wait_for


async def test_no_token_is_unauthenticated_with_a_clear_message(api: Api) -> None:
    error = await api.error("Mounts")
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization: Bearer" in error["message"]


@pytest.mark.parametrize("header", ["Bearer glk_notarealtoken", "Basic dXNlcjpwYXNz", "Bearer "])
async def test_bad_tokens_are_unauthenticated(http: httpx.AsyncClient, header: str) -> None:
    response = await http.post("/graphql", json={"query": "{ mounts { name } }"}, headers={"Authorization": header})
    errors = response.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]


async def test_created_token_works_and_only_its_hash_is_stored(api: Api, admin: str, state: AppState) -> None:
    created = (await api.data("CreateApiToken", {"input": {"name": "alice", "role": "CONTRIBUTOR", "userId": "alice@lab"}},
                              token=admin))["createApiToken"]
    secret = created["secret"]
    assert secret.startswith("glk_") and len(secret) > 40
    assert created["token"]["role"] == "CONTRIBUTOR" and created["token"]["active"] is True
    assert created["token"]["createdBy"] is not None

    me = (await api.data("Me", token=secret))["me"]
    assert me == {"tokenName": "alice", "role": "CONTRIBUTOR", "userId": "alice@lab"}

    raw = await state.db["api_tokens"].find_one({"name": "alice"})
    assert secret not in str(raw)
    assert raw["secret_hash"] != secret and len(raw["secret_hash"]) == 64


async def test_token_names_are_unique_and_validated(api: Api, admin: str) -> None:
    await api.data("CreateApiToken", {"input": {"name": "ci-job", "role": "VIEWER"}}, token=admin)
    error = await api.error("CreateApiToken", {"input": {"name": "ci-job", "role": "VIEWER"}}, token=admin)
    assert error["extensions"] == {"code": "CONFLICT", "field": "name"}
    for name in ("no spaces please", "ci-job-2\n"):
        error = await api.error("CreateApiToken", {"input": {"name": name, "role": "VIEWER"}}, token=admin)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == "name"
    # A userId privacy requests could not find (trimmed), or that reads as a token or a pseudonym.
    for user_id in ("", " ", " alice", "alice\n", "token:ci", "anon-3f2a", "a" * 201):
        error = await api.error("CreateApiToken", {"input": {"name": "u-test", "role": "VIEWER", "userId": user_id}},
                                token=admin)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "userId"}, user_id
    error = await api.error("CreateApiToken", {"input": {"name": "late", "role": "VIEWER",
                                                         "expiresAt": "2001-01-01T00:00:00Z"}}, token=admin)
    assert error["extensions"]["field"] == "expiresAt"
    assert await ApiToken.find({"name": {"$in": ["no spaces please", "late", "u-test"]}}).count() == 0


async def test_revoked_token_stops_working_at_once(api: Api, admin: str, make_token: MakeToken) -> None:
    secret = await make_token(Role.VIEWER, name="temp")
    assert (await api.data("Mounts", token=secret))["mounts"]
    tokens = (await api.data("ApiTokens", token=admin))["apiTokens"]["edges"]
    temp_id = next(e["node"]["id"] for e in tokens if e["node"]["name"] == "temp")
    assert (await api.data("RevokeApiToken", {"id": temp_id}, token=admin))["revokeApiToken"]["deleted"] is True
    error = await api.error("Mounts", token=secret)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    listed = (await api.data("ApiTokens", {"includeRevoked": True}, token=admin))["apiTokens"]["edges"]
    assert any(e["node"]["name"] == "temp" and e["node"]["active"] is False for e in listed)
    assert all(e["node"]["name"] != "temp" for e in (await api.data("ApiTokens", token=admin))["apiTokens"]["edges"])


async def test_expired_token_is_refused_even_while_remembered(
        api: Api, state: AppState, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 3600)  # remembered throughout, however slow the machine
    expires_at = utcnow() + timedelta(hours=1)  # stored at millisecond precision, as utcnow gives it
    secret = await make_token(Role.VIEWER, name="soon", expires_at=expires_at)
    assert (await api.data("Mounts", token=secret))["mounts"]  # accepted, and so remembered
    # The clock both checks read (the memory's and the database lookup's) reaches the expiry: no
    # waiting, and no race with a token expiring within a second, which a first request made late on
    # a slow machine found expired already.
    monkeypatch.setattr(auth, "utcnow", lambda: expires_at)
    monkeypatch.setattr(token_cache, "utcnow", lambda: expires_at)
    assert (await api.error("Mounts", token=secret))["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_remembered_token_costs_no_lookup(api: Api, served: Served, viewer: str) -> None:
    await api.data("Mounts", token=viewer)
    served.commands.clear()
    await api.data("Mounts", token=viewer)
    await api.data("Me", token=viewer)
    assert "api_tokens" not in served.commands.collections


async def test_a_revocation_elsewhere_takes_effect_when_the_memory_lapses(
        api: Api, state: AppState, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    # As `graphlake token revoke` does from its own process: this server learns it from the database.
    monkeypatch.setattr(state.tokens, "seconds", 0.3)
    secret = await make_token(Role.VIEWER, name="elsewhere")
    assert (await api.data("Mounts", token=secret))["mounts"]
    remembered_until = time.monotonic() + state.tokens.seconds  # remembered as checked, before this answer
    await ApiToken.find_one({"name": "elsewhere"}).update({"$set": {"revoked_at": utcnow()}})
    # The memory lapsing on the cache's own clock is the condition.
    await wait_for(lambda: time.monotonic() >= remembered_until, what="the remembered token to lapse")
    assert (await api.error("Mounts", token=secret))["extensions"]["code"] == "UNAUTHENTICATED"


async def test_without_the_memory_a_revocation_elsewhere_is_seen_at_once(
        api: Api, state: AppState, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 0)  # GRAPHLAKE_TOKEN_CACHE_SECONDS=0
    secret = await make_token(Role.VIEWER, name="uncached")
    assert (await api.data("Mounts", token=secret))["mounts"]
    await ApiToken.find_one({"name": "uncached"}).update({"$set": {"revoked_at": utcnow()}})
    assert (await api.error("Mounts", token=secret))["extensions"]["code"] == "UNAUTHENTICATED"


async def test_anonymous_read_switch_allows_reads_only(api: Api, state: AppState) -> None:
    assert state.settings.anonymous_read is False
    state.settings.anonymous_read = True
    try:
        assert (await api.data("Mounts"))["mounts"]
        error = await api.error("CreateApiToken", {"input": {"name": "x", "role": "ADMIN"}})
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        state.settings.anonymous_read = False
    assert (await api.error("Mounts"))["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bootstrap_admin_token_is_made_once(state: AppState) -> None:
    from services.auth import authenticate, ensure_bootstrap_admin

    secret = await ensure_bootstrap_admin(state.feed, state.settings)
    assert secret is not None
    assert (await authenticate(secret))[0].role is Role.ADMIN
    assert await ensure_bootstrap_admin(state.feed, state.settings) is None  # a second start prints nothing new
    [audited] = await Event.find({"event_type": "AUDIT"}).to_list()
    assert audited.data.decode()["command"] == "bootstrap" and secret not in audited.data.json
