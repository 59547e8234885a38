"""Strawberry's two WebSocket protocol handlers, with what Graphlake adds to both.

- A socket must send `connection_init` within `GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS`, whichever
  protocol it speaks. Strawberry times out only graphql-transport-ws; a legacy graphql-ws socket
  that never sent it stayed open for good. It is closed as graphql-transport-ws closes one: 4408.

The parts of Strawberry's handlers used here are gathered in resolvers/internals.py (with a canary).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from resolvers.context import Context
from resolvers.internals import BaseGraphQLTransportWSHandler, BaseGraphQLWSHandler

if TYPE_CHECKING:
    from graphlake.view import GraphQLView

# graphql-transport-ws's code and reason for a socket that never initialised; Strawberry sends it there.
INIT_TIMEOUT = (4408, "Connection initialisation timeout")


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
        await super().handle_connection_init(message)  # type: ignore[misc]  # Strawberry's, after this mixin


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
