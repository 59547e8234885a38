"""Strawberry's two WebSocket protocol handlers, with what Graphlake adds to both.

- A socket must send `connection_init` within `GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS`, whichever
  protocol it speaks. Strawberry times out only graphql-transport-ws; a legacy graphql-ws socket
  that never sent it stayed open for good. It is closed as graphql-transport-ws closes one: 4408.
- A token may hold `GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN` sockets (the process
  `GRAPHLAKE_MAX_WEBSOCKETS`, counted by the view as sockets open): see `refusal` for the codes.

The parts of Strawberry's handlers used here are gathered in resolvers/internals.py (with a canary).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from resolvers.context import Context
from resolvers.internals import BaseGraphQLTransportWSHandler, BaseGraphQLWSHandler
from services.socket_slots import SocketLimitReached

if TYPE_CHECKING:
    from graphlake.view import GraphQLView

# graphql-transport-ws's code and reason for a socket that never initialised; Strawberry sends it there.
INIT_TIMEOUT = (4408, "Connection initialisation timeout")


def refusal(full: SocketLimitReached) -> tuple[int, str]:
    """The close code and reason of a socket over a cap (a reason fits in 123 bytes).

    The process's cap: 1013 Try Again Later, the WebSocket code for a server too busy now; the npm
    graphql-ws client retries it with backoff (another process, or this one later, may have room).
    A token's cap: 4429, as graphql-transport-ws's 44xx codes mirror HTTP statuses (429 Too Many
    Requests); that client does not retry it, since reconnecting would only ask again for a slot the
    same client already holds too many of.
    """
    if full.per_token:
        return 4429, f"Too many WebSockets for this token (GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN={full.limit})"
    return 1013, f"Too many WebSockets on this server (GRAPHLAKE_MAX_WEBSOCKETS={full.limit}); try again later"


class _Hardened:
    """What both protocol handlers get (a mixin: it sits before Strawberry's class)."""

    view: GraphQLView
    websocket: Any
    context: Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # From the settings at each connection rather than once at start; Strawberry's
        # graphql-transport-ws handler reads this attribute for its own timeout.
        self.connection_init_wait_timeout = timedelta(seconds=self.view.settings.websocket_init_timeout_seconds)
        self.init_received = False

    async def handle_connection_init(self, message: Any) -> None:
        self.init_received = True
        try:
            # Strawberry's, after this mixin: it calls the view's on_ws_connect, which claims the token's slot.
            await super().handle_connection_init(message)  # type: ignore[misc]
        except SocketLimitReached as full:
            await self.websocket.close(*refusal(full))


class TransportWSHandler(_Hardened, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws: Strawberry times out a socket that never initialises itself."""


class LegacyWSHandler(_Hardened, BaseGraphQLWSHandler[Context, None]):
    """graphql-ws (subscriptions-transport-ws), which Strawberry does not time out."""

    async def handle(self) -> None:
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.connection_init_wait_timeout.total_seconds())
        if not self.init_received:
            await self.websocket.close(*INIT_TIMEOUT)
