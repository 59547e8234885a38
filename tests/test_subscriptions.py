"""Subscriptions over graphql-transport-ws and graphql-ws: auth in connection_init, limits."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from graphlake.settings import Settings
from tests.conftest import Served
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, Subscriber

NEXT = {TRANSPORT_WS: "next", LEGACY_WS: "data"}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_heartbeat_with_token_in_connection_init(served: Served, viewer: str, protocol: str) -> None:
    async with Subscriber(served.ws_url, protocol) as ws:
        assert (await ws.connect({"Authorization": f"Bearer {viewer}"}))["type"] == "connection_ack"
        op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        ticks = [await asyncio.wait_for(ws.receive(), 5) for _ in range(2)]
        assert [t["type"] for t in ticks] == [NEXT[protocol]] * 2
        assert [t["payload"]["data"]["heartbeat"]["sequence"] for t in ticks] == [1, 2]
        assert all(t["id"] == op for t in ticks)
        await ws.complete(op)


async def test_bare_token_under_auth_token_key_works(served: Served, viewer: str) -> None:
    async with Subscriber(served.ws_url) as ws:
        assert (await ws.connect({"authToken": viewer}))["type"] == "connection_ack"


async def test_wrong_token_closes_the_connection(served: Served) -> None:
    async with Subscriber(served.ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.connect({"Authorization": "Bearer glk_wrong"})
        assert closed.value.rcvd.code == 4403


async def test_no_token_gets_unauthenticated_error(served: Served) -> None:
    async with Subscriber(served.ws_url) as ws:
        assert (await ws.connect())["type"] == "connection_ack"
        op = await ws.subscribe("Heartbeat")
        message = await asyncio.wait_for(ws.receive(), 5)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert message["id"] == op
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_argument_names_the_field(served: Served, viewer: str) -> None:
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("Heartbeat", {"intervalSeconds": 0})
        message = await asyncio.wait_for(ws.receive(), 5)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "intervalSeconds"}


async def test_subscriptions_per_connection_limit(served: Served, viewer: str, settings: Settings) -> None:
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        for _ in range(settings.max_subscriptions_per_connection):
            await ws.subscribe("Heartbeat", {"intervalSeconds": 3600})
            assert (await asyncio.wait_for(ws.receive(), 5))["type"] == "next"
        over = await ws.subscribe("Heartbeat", {"intervalSeconds": 3600})
        refused = await asyncio.wait_for(ws.receive(), 5)
        assert refused["type"] == "error" and refused["id"] == over
        assert "limit" in refused["payload"][0]["message"].lower()
        # Freeing one slot lets a new subscription in, at once: the server handles a connection's
        # messages in order, so "complete" has freed the slot before the next "subscribe" is read.
        await ws.complete("1")
        again = await ws.subscribe("Heartbeat", {"intervalSeconds": 3600})
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message["type"] == "next" and message["id"] == again


async def test_each_operation_on_a_socket_reads_fresh_data(served: Served, api, contributor: str) -> None:
    """A WebSocket's context lives for the connection; its DataLoader caches must not."""
    from tests.factories import value_asset

    asset = await value_asset(api, contributor, name="before")
    query = "query ($id: ID!) { asset(id: $id) { name } }"
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {contributor}"})
        await ws.send({"id": "q1", "type": "subscribe", "payload": {"query": query, "variables": {"id": asset["id"]}}})
        first = await asyncio.wait_for(ws.receive(), 5)
        await api.data("UpdateAsset", {"input": {"id": asset["id"], "name": "after"}}, token=contributor)
        await ws.send({"id": "q2", "type": "subscribe", "payload": {"query": query, "variables": {"id": asset["id"]}}})
        replies = [await asyncio.wait_for(ws.receive(), 5) for _ in range(2)]
    assert first["payload"]["data"]["asset"]["name"] == "before"
    second = next(r for r in replies if r["id"] == "q2" and r["type"] == "next")
    assert second["payload"]["data"]["asset"]["name"] == "after"


# Messages Strawberry's handlers indexed into unchecked: each dropped the connection without a close
# frame, or was answered with Python's words and no code (graphlake/request_json.py).
MISSHAPEN = [
    '"just a string"', "null", "[1]", '{"type": 5}', '{"id": "1", "type": "start"}', '{"type": "subscribe"}',
    '{"id": "1", "type": "subscribe", "payload": 5}', '{"id": "1", "type": "start", "payload": {"query": 5}}',
    '{"id": "1", "type": "subscribe", "payload": {"query": "subscription { heartbeat { sequence } }", "variables": 7}}',
    '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": {"n": ' + "9" * 5000 + "}}}",
    '{"id": "1", "type": "subscribe", "payload": ' + "[" * 100_000 + "]" * 100_000 + "}",
]


@pytest.mark.parametrize("message", MISSHAPEN, ids=lambda m: m[:40])
async def test_a_misshapen_message_gets_the_protocols_answer(served: Served, viewer: str, message: str) -> None:
    """graphql-transport-ws closes with 4400, as its spec says of an invalid message; graphql-ws skips it,
    and the connection goes on serving."""
    async with Subscriber(served.ws_url, TRANSPORT_WS) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.socket.send(message)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    async with Subscriber(served.ws_url, LEGACY_WS) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.socket.send(message)
        op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        tick = await asyncio.wait_for(ws.receive(), 5)
        assert (tick["type"], tick["id"]) == ("data", op)
        await ws.complete(op)
