"""The WebSockets this process holds open, in all and per API token, counted against their caps.

Every open socket holds a task, a connection context and its subscriptions' queues, so one client
(or a leak in one) could otherwise take them all. A WebSocket that has not sent `connection_init`
yet holds no slot: it waits among at most a few (`await_init`), the oldest closed to make room for
a new one, and takes the process's slot and its token's once its `connection_init` is accepted. A
slot taken at the handshake let a client with no token hold all 1,000 of them with sockets that
never said a word, each until its init timeout, locking out every subscriber; evicting the oldest
waiting socket means such a flood must outrun the moment a real client takes to send its init.
An SSE stream is authenticated by its request and takes its slots at once (`open`). Both are
given back as the socket closes. The caps are passed at each claim: the server reads them from
its settings per connection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class SocketLimitReached(Exception):
    """No slot: `per_token` says whether the token's cap (else the process's) was reached."""

    def __init__(self, limit: int, *, per_token: bool) -> None:
        super().__init__(f"{'this token has' if per_token else 'this process has'} {limit} WebSockets open already")
        self.limit = limit
        self.per_token = per_token


class SocketSlots:
    def __init__(self) -> None:
        self._token_of: dict[object, str | None] = {}  # each socket holding a slot -> the token it presented, if any
        self._per_token: Counter[str] = Counter()
        self._awaiting: dict[object, Callable[[], None]] = {}  # sockets before connection_init, oldest first -> evict

    @property
    def open_count(self) -> int:
        """Sockets open now, awaiting their init or not (tests wait on it: a client is not told when the
        server let go of one)."""
        return len(self._token_of) + len(self._awaiting)

    def await_init(self, socket: object, *, limit: int, evict: Callable[[], None]) -> None:
        """A WebSocket just opened, holding no slot until `open` (at its connection_init). Of at most
        `limit` such, the one waiting longest is evicted (`evict` closes it) to make room."""
        while len(self._awaiting) >= limit:
            oldest = next(iter(self._awaiting))
            self._awaiting.pop(oldest)()
        self._awaiting[socket] = evict

    def open(self, socket: object, *, limit: int) -> None:
        """Take the process's slot for a socket (once; a WebSocket initialised again keeps its own), or
        raise SocketLimitReached."""
        self._awaiting.pop(socket, None)
        if socket in self._token_of:
            return
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
        self._awaiting.pop(socket, None)
        self._unbind(socket)
        self._token_of.pop(socket, None)

    def _unbind(self, socket: object) -> None:
        token_id = self._token_of.get(socket)
        if token_id is not None:
            self._per_token[token_id] -= 1
            if not self._per_token[token_id]:
                del self._per_token[token_id]
