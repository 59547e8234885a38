"""Subscriptions over graphql-transport-ws and graphql-ws: auth in connection_init, limits, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from pathlib import Path

import pytest
import websockets

import graphlake.view
import resolvers.system.queries
from documents.clock import utcnow
from graphlake.logs import request_id_var
from graphlake.settings import Settings
from resolvers.context import AppState
from tests.conftest import MakeToken, Served
from tests.processes import start_server_process
from tests.waiting import wait_for
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


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_no_token_closes_the_connection(served: Served, protocol: str) -> None:
    # Refused at connection_init: an idle socket without a token held a slot of GRAPHLAKE_MAX_WEBSOCKETS.
    async with Subscriber(served.ws_url, protocol) as ws:
        if protocol == LEGACY_WS:  # that protocol says why in a message, then the socket closes
            refused = await ws.connect()
            assert refused["type"] == "connection_error" and refused["payload"]["code"] == "UNAUTHENTICATED", refused
        with pytest.raises(websockets.ConnectionClosed) as closed:
            if protocol == TRANSPORT_WS:
                await ws.connect()
            await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.rcvd.code == (4403 if protocol == TRANSPORT_WS else 1011)  # as for a wrong token


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
        # A code, as every error has, and the setting named, as every limit's error does.
        assert refused["payload"][0]["extensions"] == {"code": "BAD_USER_INPUT"}
        assert "GRAPHLAKE_MAX_SUBSCRIPTIONS_PER_CONNECTION" in refused["payload"][0]["message"]
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


async def test_a_query_on_a_socket_waits_for_a_request_slot_as_over_http(served: Served, viewer: str) -> None:
    """Queries and mutations sent on a socket take one of the process's request slots
    (graphlake/admission.py), as over HTTP: sockets of one token had run a thousand past them. A
    subscription takes none; a query that waits longer than the queue allows gets UNAVAILABLE."""
    admission = served.app.state.admission
    held = contextlib.AsyncExitStack()
    async with Subscriber(served.ws_url) as ws, held:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        for _ in range(admission.concurrent):  # every slot taken, as by slow HTTP requests
            await held.enter_async_context(admission.slot())
        await ws.send({"id": "q1", "type": "subscribe", "payload": {"query": "{ __typename }"}})
        await wait_for(lambda: admission.waiting == 1)
        beat = await ws.subscribe("Heartbeat", {"intervalSeconds": 3600})  # runs at once meanwhile
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message["type"] == "next" and message["id"] == beat
        await held.aclose()  # the slots free: the query runs
        answers = [await asyncio.wait_for(ws.receive(), 5) for _ in range(2)]
        assert [(m["id"], m["type"]) for m in answers] == [("q1", "next"), ("q1", "complete")]
        assert answers[0]["payload"]["data"] == {"__typename": "Query"}

        wait_seconds = admission.wait_seconds
        try:
            admission.wait_seconds = 0.2
            async with contextlib.AsyncExitStack() as full:
                for _ in range(admission.concurrent):
                    await full.enter_async_context(admission.slot())
                await ws.send({"id": "q2", "type": "subscribe", "payload": {"query": "{ __typename }"}})
                refused = await asyncio.wait_for(ws.receive(), 5)
        finally:
            admission.wait_seconds = wait_seconds
        assert refused["id"] == "q2" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "UNAVAILABLE"
        assert "GRAPHLAKE_MAX_CONCURRENT_REQUESTS" in refused["payload"][0]["message"]


def _errors(message: dict) -> list[dict]:
    """The errors a message carries: an `error` message's payload (a list in graphql-transport-ws,
    one error in graphql-ws), or a result's."""
    if message["type"] == "error":
        return message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
    return message["payload"]["errors"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_unexpected_error_inside_a_stream_is_masked_with_the_request_id(
        served: Served, viewer: str, protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    ticks = 0

    def failing_clock() -> datetime:
        nonlocal ticks
        ticks += 1
        if ticks > 1:
            raise RuntimeError("secret internals: mongodb://user:pw@host")
        return utcnow()

    monkeypatch.setattr(resolvers.system.queries, "utcnow", failing_clock)
    with caplog.at_level(logging.ERROR, logger="graphlake.errors"):
        async with Subscriber(served.ws_url, protocol, headers={"X-Request-ID": f"ws-trace-{protocol}"}) as ws:
            await ws.connect({"Authorization": f"Bearer {viewer}"})
            op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
            first = await asyncio.wait_for(ws.receive(), 5)
            failed = await asyncio.wait_for(ws.receive(), 5)
            ended = await asyncio.wait_for(ws.receive(), 5)
    assert first["payload"]["data"]["heartbeat"]["sequence"] == 1
    [error] = _errors(failed)
    assert failed["id"] == op and error["extensions"] == {"code": "INTERNAL", "requestId": f"ws-trace-{protocol}"}
    assert "secret" not in json.dumps(failed) and f"ws-trace-{protocol}" in error["message"]
    assert ended == {"id": op, "type": "complete"}
    logged = [r for r in caplog.records if r.name == "graphlake.errors"]
    assert len(logged) == 1 and logged[0].request_id == f"ws-trace-{protocol}"  # type: ignore[attr-defined]
    assert "secret internals" in str(logged[0].exc_info[1])  # type: ignore[index]


class _RequestIdAtEmit(logging.Filter):
    """Notes each record's request id as the server's own handler reads it (graphlake/logs.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str | None] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen.append(getattr(record, "request_id", None) or request_id_var.get())
        return True


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_unexpected_error_on_a_socket_outside_graphql_is_logged_once_with_its_request_id(
        served: Served, viewer: str, protocol: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a socket's handling outside an operation (its connection_init here) left the socket
    to uvicorn, which logged the traceback once the request's id was gone (`[-]`) and closed it with
    a bare 1011: nothing tied the close a client saw to the log. It is logged as an HTTP request's
    is (graphlake/http_limits.py), and the close's reason names the id to quote."""
    async def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(graphlake.view, "_authenticate", broken)
    caplog.handler.addFilter(ids := _RequestIdAtEmit())
    with caplog.at_level(logging.ERROR):
        async with Subscriber(served.ws_url, protocol, headers={"X-Request-ID": f"ws-bug-{protocol}"}) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.connect({"Authorization": f"Bearer {viewer}"}), 5)
        await wait_for(lambda: any(r.exc_info for r in caplog.records))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert ws.socket.response.headers["x-request-id"] == f"ws-bug-{protocol}"  # the handshake's answer named it too
    assert f"quote request id ws-bug-{protocol}" in closed.value.rcvd.reason
    assert "secret" not in closed.value.rcvd.reason
    tracebacks = [(r, at) for r, at in zip(caplog.records, ids.seen, strict=True) if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]  # once, not again by uvicorn
    record, request_id = tracebacks[0]
    assert request_id == f"ws-bug-{protocol}" and "secret internals" in str(record.exc_info[1])  # type: ignore[index]
    assert "WebSocket /graphql" in record.getMessage()


async def test_an_unexpected_error_before_a_socket_opens_is_answered_as_http_with_its_request_id(
        served: Served, state: AppState, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Before the handshake is answered, the client gets the 500 an HTTP request gets (uvicorn's was
    bare), with the id to quote, logged with it once."""
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(state.sockets, "await_init", broken)
    caplog.handler.addFilter(ids := _RequestIdAtEmit())
    with caplog.at_level(logging.ERROR):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await Subscriber(served.ws_url, headers={"X-Request-ID": "ws-bug-handshake"}).connect()
        await wait_for(lambda: any(r.exc_info for r in caplog.records))
    response = refused.value.response
    assert response.status_code == 500 and response.headers.get("x-request-id") == "ws-bug-handshake"
    assert json.loads(response.body)["errors"][0]["extensions"] == {"code": "INTERNAL", "requestId": "ws-bug-handshake"}
    assert b"secret" not in response.body
    assert [at for r, at in zip(caplog.records, ids.seen, strict=True) if r.exc_info] == ["ws-bug-handshake"]  # once


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_validation_errors_over_a_websocket_carry_a_code(served: Served, viewer: str, protocol: str) -> None:
    async with Subscriber(served.ws_url, protocol) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        for op, query in (("s", "subscription { heartbeat { nope } }"), ("v", "subscription ($n: Int!) { heartbeat { sequence } }")):
            await ws.send({"id": op, "type": kind, "payload": {"query": query}})
            message = await asyncio.wait_for(ws.receive(), 5)
            assert message["id"] == op and message["type"] == "error", message
            assert [e["extensions"]["code"] for e in _errors(message)] == ["BAD_USER_INPUT"], message


async def test_a_syntax_error_still_closes_a_graphql_transport_ws_socket(served: Served, viewer: str) -> None:
    """The protocol's answer to a document that does not parse: close 4400 with the reason."""
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.send({"id": "x", "type": "subscribe", "payload": {"query": "subscription { heartbeat { sequence }"}})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.receive(), 5)
    assert closed.value.rcvd.code == 4400 and "Syntax Error" in closed.value.rcvd.reason


async def test_a_syntax_error_over_graphql_ws_carries_a_code(served: Served, viewer: str) -> None:
    async with Subscriber(served.ws_url, LEGACY_WS) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.send({"id": "x", "type": "start", "payload": {"query": "subscription { heartbeat { sequence }"}})
        message = await asyncio.wait_for(ws.receive(), 5)
    assert message["type"] == "error" and message["payload"]["extensions"]["code"] == "BAD_USER_INPUT", message


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_socket_that_never_initialises_is_closed(served: Served, settings: Settings, protocol: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Strawberry times out only graphql-transport-ws; a silent graphql-ws socket stayed open for good."""
    monkeypatch.setattr(settings, "websocket_init_timeout_seconds", 0.2)
    async with websockets.connect(served.ws_url, subprotocols=[protocol]) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4408, "Connection initialisation timeout")


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_initialised_socket_outlives_the_init_timeout(served: Served, settings: Settings, viewer: str,
                                                               protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough for connection_init to arrive on a slow, loaded machine (with 0.2 s, a stall between
    # the handshake and it closed the socket with 4408 before it was initialised); the test lasts as long.
    monkeypatch.setattr(settings, "websocket_init_timeout_seconds", 2)
    loop = asyncio.get_running_loop()
    async with Subscriber(served.ws_url, protocol) as ws:
        assert (await ws.connect({"Authorization": f"Bearer {viewer}"}))["type"] == "connection_ack"
        # The server's init timer began at the handshake, so before this: it is due by then.
        timed_out_by = loop.time() + settings.websocket_init_timeout_seconds
        op = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        messages = [await asyncio.wait_for(ws.receive(), 5)]
        await wait_for(lambda: loop.time() >= timed_out_by, what="the init timeout to pass")
        # A close by the timer would come before anything answered after it: a second operation's first tick.
        later = await ws.subscribe("Heartbeat", {"intervalSeconds": 0.1})
        while messages[-1]["id"] != later:
            messages.append(await asyncio.wait_for(ws.receive(), 5))
    ticks = [m["payload"]["data"]["heartbeat"]["sequence"] for m in messages if m["id"] == op]
    assert ticks == list(range(1, len(ticks) + 1)) and len(ticks) >= 2, ticks  # the first ran on, in order
    assert messages[-1]["payload"]["data"]["heartbeat"]["sequence"] == 1


async def test_websockets_over_the_process_cap_are_refused_with_try_again_later(
        served: Served, state: AppState, settings: Settings, viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await wait_for(lambda: state.sockets.open_count == 0, what="the sockets of earlier tests to be let go")
    monkeypatch.setattr(settings, "max_websockets", 2)
    auth = {"Authorization": f"Bearer {viewer}"}
    async with Subscriber(served.ws_url) as a, Subscriber(served.ws_url, LEGACY_WS) as b, Subscriber(served.ws_url) as over:
        assert (await a.connect(auth))["type"] == (await b.connect(auth))["type"] == "connection_ack"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await over.connect(auth)
        assert closed.value.rcvd.code == 1013 and "GRAPHLAKE_MAX_WEBSOCKETS=2" in closed.value.rcvd.reason
        await a.close()
        await wait_for(lambda: state.sockets.open_count == 1, what="the server to let go of the closed socket")
        async with Subscriber(served.ws_url) as again:
            assert (await again.connect(auth))["type"] == "connection_ack"


async def test_sockets_that_never_initialise_hold_no_slot_and_the_oldest_make_room(
        served: Served, state: AppState, settings: Settings, viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sockets opened by a client with no token that never send connection_init: they hold none of
    the process's slots (1,000 of them had locked every subscriber out for their init timeout), and of
    more than GRAPHLAKE_MAX_WEBSOCKETS_AWAITING_INIT the oldest are closed (4408) to make room."""
    await wait_for(lambda: state.sockets.open_count == 0, what="the sockets of earlier tests to be let go")
    monkeypatch.setattr(settings, "max_websockets", 2)
    monkeypatch.setattr(settings, "max_websockets_awaiting_init", 3)
    silent = []
    try:
        for _ in range(5):
            silent.append(await websockets.connect(served.ws_url, subprotocols=[TRANSPORT_WS]))
            await wait_for(lambda: state.sockets.open_count == min(len(silent), 3), what="the socket to be counted")
        for evicted in silent[:2]:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(evicted.recv(), 10)
            assert closed.value.rcvd.code == 4408 and "GRAPHLAKE_MAX_WEBSOCKETS_AWAITING_INIT" in closed.value.rcvd.reason
        auth = {"Authorization": f"Bearer {viewer}"}
        async with Subscriber(served.ws_url) as a, Subscriber(served.ws_url, LEGACY_WS) as b, Subscriber(served.ws_url) as over:
            # Two initialised sockets fill the process's cap of 2, three silent ones waiting beside them.
            assert (await a.connect(auth))["type"] == (await b.connect(auth))["type"] == "connection_ack"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await over.connect(auth)
            assert closed.value.rcvd.code == 1013
    finally:
        for socket in silent:
            await socket.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websockets_over_a_tokens_cap_are_refused(served: Served, state: AppState, settings: Settings,
                                                       make_token: MakeToken, protocol: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    await wait_for(lambda: state.sockets.open_count == 0, what="the sockets of earlier tests to be let go")
    monkeypatch.setattr(settings, "max_websockets_per_token", 2)
    busy, other = await make_token(), await make_token()
    async with Subscriber(served.ws_url, protocol) as a, Subscriber(served.ws_url, protocol) as b, \
            Subscriber(served.ws_url, protocol) as over, Subscriber(served.ws_url, protocol) as elsewhere:
        for ws in (a, b):
            assert (await ws.connect({"Authorization": f"Bearer {busy}"}))["type"] == "connection_ack"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await over.connect({"Authorization": f"Bearer {busy}"})
        assert closed.value.rcvd.code == 4429 and "GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN=2" in closed.value.rcvd.reason
        # The cap is the token's: another token still gets in, and a slot given back is taken again.
        assert (await elsewhere.connect({"Authorization": f"Bearer {other}"}))["type"] == "connection_ack"
        await a.close()
        await wait_for(lambda: state.sockets.open_count == 2, what="the server to let go of the closed sockets")
        async with Subscriber(served.ws_url, protocol) as again:
            assert (await again.connect({"Authorization": f"Bearer {busy}"}))["type"] == "connection_ack"
# Messages Strawberry's handlers indexed into unchecked: each dropped the connection without a close
# frame, or was answered with Python's words and no code (graphlake/request_json.py).
MISSHAPEN = [
    '"just a string"', "null", "[1]", '{"type": 5}', '{"id": "1", "type": "start"}', '{"type": "subscribe"}',
    '{"id": "1", "type": "subscribe", "payload": 5}', '{"id": "1", "type": "start", "payload": {"query": 5}}',
    '{"id": "1", "type": "subscribe", "payload": {"query": "subscription { heartbeat { sequence } }", "variables": 7}}',
    '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": {"n": ' + "9" * 5000 + "}}}",
    '{"id": "1", "type": "subscribe", "payload": ' + "[" * 100_000 + "]" * 100_000 + "}",
]


@pytest.mark.parametrize("op_id", [1, "", None], ids=["number", "empty", "null"])
async def test_a_graphql_transport_ws_operation_id_must_be_a_non_empty_string(served: Served, viewer: str,
                                                                               op_id: object) -> None:
    """PROTOCOL.md's `id: '<unique-operation-id>'`, as graphql-ws's own validateMessage reads it:
    Strawberry ran 1 and "1" side by side."""
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.send({"id": op_id, "type": "subscribe", "payload": {"query": "subscription { heartbeat { sequence } }"}})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.receive(), 5)
    assert closed.value.rcvd.code == 4400 and "id must be a non-empty string" in closed.value.rcvd.reason


async def test_a_null_connection_init_payload_is_an_init_without_a_token(served: Served) -> None:
    """PROTOCOL.md: `payload?: Record<string, unknown> | null`. Strawberry closed it as malformed (4400)."""
    async with websockets.connect(served.ws_url, subprotocols=[TRANSPORT_WS]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": None}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd.code == 4403  # as any init without a token


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_unknown_operation_name_over_a_websocket_is_bad_user_input(served: Served, viewer: str,
                                                                            protocol: str) -> None:
    async with Subscriber(served.ws_url, protocol) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        await ws.send({"id": "a", "type": kind, "payload": {"query": "query A { me { role } }", "operationName": "B"}})
        message = await asyncio.wait_for(ws.receive(), 5)
    [error] = _errors(message)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "operationName"}, message
    assert error["message"] == 'Unknown operation named "B".'


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


@pytest.mark.parametrize("compression", [None, "true"])
async def test_websocket_compression_is_offered_only_when_configured(settings: Settings, tmp_path: Path,
                                                                     compression: str | None) -> None:
    """`graphlake serve` answers a client offering permessage-deflate without it unless
    GRAPHLAKE_WEBSOCKET_COMPRESSION is on (each message compressed per socket costs a fanning-out process)."""
    extra = {"WEBSOCKET_COMPRESSION": compression} if compression else {}
    process, base = await start_server_process(settings.mongodb_url.get_secret_value(), settings.database, tmp_path,
                                               **extra)
    try:
        async with websockets.connect(base.replace("http", "ws", 1) + "/graphql", subprotocols=[TRANSPORT_WS]) as socket:
            assert socket.request is not None and "permessage-deflate" in socket.request.headers["Sec-WebSocket-Extensions"]
            accepted = socket.response.headers.get("Sec-WebSocket-Extensions") if socket.response else None
            assert (accepted is not None and accepted.startswith("permessage-deflate")) == bool(compression), accepted
    finally:
        process.terminate()
        await process.wait()
