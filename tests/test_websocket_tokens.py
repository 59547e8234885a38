"""A WebSocket's token is authenticated at connection_init and watched while the socket is open: a
revocation (here or elsewhere) or an expiry ends its operations with UNAUTHENTICATED and closes
the socket with 4401, with no database lookup per event and one per token-cache interval at most."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
from datetime import timedelta

import pytest
import websockets

from documents.api_token import ApiToken
from documents.clock import utcnow
from documents.roles import Role
from graphlake import PROJECT_ROOT
from resolvers.context import AppState
from services.auth import create_token
from services.node_ids import NodeType, encode_id
from tests.conftest import MakeToken, Served
from tests.operations import Api
from tests.waiting import wait_for
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, Subscriber

UNAUTHENTICATED = {"code": "UNAUTHENTICATED"}


async def _until_closed(ws: Subscriber, within: float = 30) -> tuple[list[dict], websockets.ConnectionClosed]:
    """Every message up to the close, and the close. Fails, saying what came, if the socket is still
    open after `within` seconds: a server that never ends it keeps sending heartbeats, which alone
    would keep this waiting until the suite's watchdog stopped it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    messages: list[dict] = []
    while True:
        try:
            messages.append(await asyncio.wait_for(ws.receive(), max(deadline - loop.time(), 0)))
        except websockets.ConnectionClosed as closed:
            return messages, closed
        except TimeoutError:
            raise AssertionError(f"the socket was still open after {within} s; {len(messages)} messages came, "
                                 f"the last {messages[-1:]}") from None


def _assert_ended_unauthenticated(protocol: str, op: str, messages: list[dict], closed: websockets.ConnectionClosed) -> None:
    """The operation's last messages say UNAUTHENTICATED and end it; nothing follows; the socket closes 4401."""
    if protocol == TRANSPORT_WS:
        *ticks, final = messages
        assert final["type"] == "error" and final["id"] == op, messages
        assert [e["extensions"] for e in final["payload"]] == [UNAUTHENTICATED]
    else:
        *ticks, final, complete = messages
        assert final["type"] == "data" and final["payload"]["data"] is None, messages
        assert [e["extensions"] for e in final["payload"]["errors"]] == [UNAUTHENTICATED]
        assert complete == {"type": "complete", "id": op}
    assert all(t["payload"]["data"]["heartbeat"] for t in ticks)
    assert closed.rcvd is not None and closed.rcvd.code == 4401 and "no longer valid" in closed.rcvd.reason


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_token_revoked_elsewhere_ends_its_sockets_when_the_memory_lapses(
        served: Served, state: AppState, make_token: MakeToken, protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 0.3)  # GRAPHLAKE_TOKEN_CACHE_SECONDS, short
    secret = await make_token(Role.VIEWER, name=f"watched-{protocol}")
    async with Subscriber(served.ws_url, protocol) as ws:
        await ws.connect({"Authorization": f"Bearer {secret}"})
        op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        assert (await asyncio.wait_for(ws.receive(), 5))["payload"]["data"]["heartbeat"]["sequence"] == 1
        # As `graphlake token revoke` or another server process does: only the database knows.
        await ApiToken.find_one({"name": f"watched-{protocol}"}).update({"$set": {"revoked_at": utcnow()}})
        messages, closed = await _until_closed(ws)
    _assert_ended_unauthenticated(protocol, op, messages, closed)


async def test_revoking_through_this_process_ends_its_sockets_at_once(
        api: Api, served: Served, state: AppState, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 3600)  # the memory alone would keep it for an hour
    token, secret = await create_token("revoked-here", Role.VIEWER)
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {secret}"})
        op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        await asyncio.wait_for(ws.receive(), 5)
        await api.data("RevokeApiToken", {"id": encode_id(NodeType.API_TOKEN, token.id)}, token=admin)
        messages, closed = await _until_closed(ws)
    _assert_ended_unauthenticated(TRANSPORT_WS, op, messages, closed)


async def test_an_expiring_token_ends_its_sockets_as_it_expires(
        served: Served, state: AppState, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 3600)
    # Long enough for the socket to connect before the token expires on a slow, loaded machine (with
    # 1 s, a connection_init that came late was refused), and no longer: the test lasts as long, as it
    # ends when the server closes the socket at the expiry, not after a sleep.
    secret = await make_token(Role.VIEWER, expires_at=utcnow() + timedelta(seconds=3))
    async with Subscriber(served.ws_url, LEGACY_WS) as ws:
        assert (await ws.connect({"Authorization": f"Bearer {secret}"}))["type"] == "connection_ack"
        op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.2})
        messages, closed = await _until_closed(ws)
    _assert_ended_unauthenticated(LEGACY_WS, op, messages, closed)


async def test_a_watched_token_costs_no_lookup_per_event(
        served: Served, state: AppState, viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 3600)
    async with Subscriber(served.ws_url) as a, Subscriber(served.ws_url, LEGACY_WS) as b:
        for ws in (a, b):
            await ws.connect({"Authorization": f"Bearer {viewer}"})
            await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        served.commands.clear()
        ticks = [await asyncio.wait_for(ws.receive(), 5) for _ in range(10) for ws in (a, b)]
    assert all(t["payload"]["data"]["heartbeat"] for t in ticks)
    assert "api_tokens" not in served.commands.collections


async def test_the_sockets_of_one_token_share_one_lookup_per_interval(
        served: Served, state: AppState, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five sockets of one token wake together as its memory lapses; they look it up once between them."""
    monkeypatch.setattr(state.tokens, "seconds", 0.3)
    secret = await make_token(Role.VIEWER)
    sockets = [Subscriber(served.ws_url) for _ in range(5)]
    # Each lookup as the cache timed it (the monotonic moment its memory is reckoned from), and the
    # tasks that asked the cache for the token: the sockets' watches. Timed on the cache's own clock,
    # not the test's: a count against the test's wall clock passed or failed by how late the loop ran.
    looked_up: list[float] = []
    askers: set[asyncio.Task] = set()
    look_up, authenticate = state.tokens._look_up, state.tokens.authenticate

    def timed_look_up(key: str, presented: str, checked_at: float):
        if presented == secret:
            looked_up.append(checked_at)
        return look_up(key, presented, checked_at)

    def asked(presented: str):
        if presented == secret:
            askers.add(asyncio.current_task())
        return authenticate(presented)

    try:
        for ws in sockets:
            await ws.connect({"Authorization": f"Bearer {secret}"})
        monkeypatch.setattr(state.tokens, "_look_up", timed_look_up)
        monkeypatch.setattr(state.tokens, "authenticate", asked)
        await wait_for(lambda: len(looked_up) >= 3 and len(askers) >= len(sockets),
                       what="three lookups of the token, asked for by every socket")
    finally:
        for ws in sockets:
            await ws.close()
    # Each lookup waits for the memory the one before left to lapse: never two in one interval, though
    # every socket asks (a lookup of its own each would be five at once). As the cache reckons it.
    seconds = state.tokens.seconds
    assert all(later >= earlier + seconds for earlier, later in itertools.pairwise(looked_up)), (looked_up, seconds)


async def test_the_npm_graphql_ws_client_gets_unauthenticated_and_a_final_close(
        served: Served, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    node = shutil.which("node")
    modules = PROJECT_ROOT / "assets" / "node_modules"
    assert node and (modules / "ws").is_dir(), "make installs Node.js packages into assets/node_modules"
    monkeypatch.setattr(state.tokens, "seconds", 0.3)
    _, secret = await create_token("npm-client", Role.VIEWER)
    process = await asyncio.create_subprocess_exec(
        node, str(PROJECT_ROOT / "tests" / "js" / "revoked_token.cjs"), served.ws_url, secret,
        env={**os.environ, "ASSETS_NODE_MODULES": str(modules)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert (await asyncio.wait_for(process.stdout.readline(), 20)).strip() == b"READY"
        await ApiToken.find_one({"name": "npm-client"}).update({"$set": {"revoked_at": utcnow()}})
        lines = [json.loads(await asyncio.wait_for(process.stdout.readline(), 10)) for _ in range(2)]
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
    errors, closed = lines
    assert [e["extensions"] for e in errors["error"]] == [UNAUTHENTICATED]
    # 4401 is one of the codes that client never reconnects after ("fatal"): no retries with a dead token.
    assert closed == {"closed": 4401, "fatal": True}
