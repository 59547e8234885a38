"""The WebSockets this process holds open, in all and per API token, counted against their caps.

Every open socket holds a task, a connection context and its subscriptions' queues, so one client
(or a leak in one) could otherwise take them all. A socket takes a slot as it opens and its token's
as its `connection_init` names the token; it gives both back as it closes. The caps are passed at
each claim: the server reads them from its settings per connection.
"""

from __future__ import annotations

from collections import Counter


class SocketLimitReached(Exception):
    """No slot: `per_token` says whether the token's cap (else the process's) was reached."""

    def __init__(self, limit: int, *, per_token: bool) -> None:
        super().__init__(f"{'this token has' if per_token else 'this process has'} {limit} WebSockets open already")
        self.limit = limit
        self.per_token = per_token


class SocketSlots:
    def __init__(self) -> None:
        self._token_of: dict[object, str | None] = {}  # each open socket -> the token it presented, if any
        self._per_token: Counter[str] = Counter()

    @property
    def open_count(self) -> int:
        """Sockets open now (tests wait on it: a client is not told when the server let go of one)."""
        return len(self._token_of)

    def open(self, socket: object, *, limit: int) -> None:
        """Take a slot for a socket opening now, or raise SocketLimitReached."""
        if len(self._token_of) >= limit:
            raise SocketLimitReached(limit, per_token=False)
        self._token_of[socket] = None

    def bind_token(self, socket: object, token_id: str, *, limit: int) -> None:
        """Count an open socket against the token it authenticated with, or raise SocketLimitReached."""
        if self._token_of.get(socket) == token_id:
            return
        if self._per_token[token_id] >= limit:
            raise SocketLimitReached(limit, per_token=True)
        self._unbind(socket)
        self._token_of[socket] = token_id
        self._per_token[token_id] += 1

    def close(self, socket: object) -> None:
        """Give back the slots of a socket that closed."""
        self._unbind(socket)
        self._token_of.pop(socket, None)

    def _unbind(self, socket: object) -> None:
        token_id = self._token_of.get(socket)
        if token_id is not None:
            self._per_token[token_id] -= 1
            if not self._per_token[token_id]:
                del self._per_token[token_id]
