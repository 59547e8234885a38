"""A minimal client for both GraphQL WebSocket protocols, to drive subscriptions in tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import websockets

from tests.operations import document

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class Subscriber:
    """One WebSocket connection speaking `protocol`."""

    def __init__(self, url: str, protocol: str = TRANSPORT_WS, *, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.protocol = protocol
        self.headers = headers  # sent with the handshake (X-Request-ID, say)
        self.socket: Any = None
        self._ids = 0

    async def connect(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Opens the socket and sends connection_init; returns the server's first answer."""
        self.socket = await websockets.connect(self.url, subprotocols=[self.protocol], additional_headers=self.headers)
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        """The next message, skipping keep-alives."""
        while True:
            frame = await self.socket.recv()
            assert isinstance(frame, str), "the GraphQL WebSocket protocols send text frames only"
            message = json.loads(frame)
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def subscribe(self, operation: str, variables: dict[str, Any] | None = None, *, query: str | None = None) -> str:
        """Start `operation` from graphql/operations (or from `query`, a document naming it)."""
        self._ids += 1
        op_id = str(self._ids)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query or document(operation), "operationName": operation, "variables": variables or {}}
        await self.send({"id": op_id, "type": kind, "payload": payload})
        return op_id

    async def complete(self, op_id: str) -> None:
        await self.send({"id": op_id, "type": "complete" if self.protocol == TRANSPORT_WS else "stop"})

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()

    async def __aenter__(self) -> Subscriber:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def next_events(ws: Subscriber, count: int, *, timeout: float = 20) -> list[dict[str, Any]]:  # noqa: ASYNC109 (per message)
    """The next `count` events an `events` subscription (EventStream, EventStreamFrom) on `ws` sends,
    each in a data message (of the socket's protocol) without errors, waiting at most `timeout` seconds
    for each."""
    data = "next" if ws.protocol == TRANSPORT_WS else "data"
    events = []
    for _ in range(count):
        message = await asyncio.wait_for(ws.receive(), timeout)
        assert message["type"] == data and not message["payload"].get("errors"), message
        events.append(message["payload"]["data"]["events"])
    return events


async def last_comes_next(sockets: Subscriber | Sequence[Subscriber], log_last: Callable[[], Awaitable[object]],
                          messages: Collection[str] = ("last",)) -> None:
    """Nothing more reaches `sockets` than what the test has received: the events of `messages` that
    `log_last()` logs now, where the watched ones came from, are delivered after anything logged
    before them, so they must be the next on each socket (in any order between processes). A window
    of quiet, instead, is too short on a loaded machine: a late repeat went unseen."""
    await log_last()
    for ws in [sockets] if isinstance(sockets, Subscriber) else sockets:
        got = await next_events(ws, len(messages))
        assert sorted(event["message"] for event in got) == sorted(messages), got
