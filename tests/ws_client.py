"""A minimal client for both GraphQL WebSocket protocols, to drive subscriptions in tests."""

from __future__ import annotations

import json
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
