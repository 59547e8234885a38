"""Strawberry's two WebSocket protocol handlers, with what Graphlake adds to both.

- A socket must send `connection_init` within `GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS`, whichever
  protocol it speaks. Strawberry times out only graphql-transport-ws; a legacy graphql-ws socket
  that never sent it stayed open for good. It is closed as graphql-transport-ws closes one: 4408.
- A token may hold `GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN` sockets (the process
  `GRAPHLAKE_MAX_WEBSOCKETS`, counted by the view as sockets open): see `refusal` for the codes.
- A socket's token is authenticated once, at connection_init; it is then watched (through the
  token cache: no database call per event) and the socket is ended when the token is revoked or
  expires: see `_Hardened.end_unauthenticated`.

The parts of Strawberry's handlers used here are gathered in resolvers/internals.py (with a canary).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from strawberry.exceptions import ConnectionRejectionError

from resolvers.context import Context
from resolvers.document_cache import MAX_TEXT
from resolvers.internals import BaseGraphQLTransportWSHandler, BaseGraphQLWSHandler
from services.auth import bearer_secret
from services.errors import Unauthenticated, Unavailable
from services.socket_slots import SocketLimitReached

if TYPE_CHECKING:
    from graphlake.view import GraphQLView

log = logging.getLogger("graphlake.websockets")

# graphql-transport-ws's code and reason for a socket that never initialised; Strawberry sends it there.
INIT_TIMEOUT = (4408, "Connection initialisation timeout")
# For a socket whose token stopped being valid (see end_unauthenticated for why this code).
TOKEN_REFUSED = (4401, "Unauthorized: the API token is no longer valid")

# Names a client may use for the token in its `connection_init` payload.
_TOKEN_KEYS = ("Authorization", "authorization", "authToken", "token")


def authorization(params: Mapping[str, Any] | None) -> str | None:
    """The `Bearer <token>` a connection_init payload carries, if any (a bare token under `authToken` works too)."""
    params = params or {}
    value = next((params[key] for key in _TOKEN_KEYS if params.get(key)), None)
    if value is not None and not isinstance(value, str):
        raise ConnectionRejectionError({"message": "the token must be a string", "code": "UNAUTHENTICATED"})
    if value and not value.lower().startswith("bearer "):
        value = f"Bearer {value}"
    return value


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


STRAWBERRY_LIMIT_MESSAGE = "Subscription limit reached"  # what Strawberry's handlers send, both protocols

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
        self.ending = False  # set once the socket is being ended: nothing else is sent or handled
        self.token_watch: asyncio.Task | None = None

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            if self.token_watch is not None:
                self.token_watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.token_watch

    async def handle_message(self, message: Any) -> None:
        if not self.ending:
            await super().handle_message(message)

    async def send_message(self, message: Any) -> None:
        # Every message Strawberry sends (results, completions, keep-alives) passes here.
        if not self.ending:
            await super().send_message(self._limit_named(message))

    def _limit_named(self, message: Any) -> Any:
        """Strawberry's refusal of an operation past the per-connection limit says only "Subscription
        limit reached", with no code: it gets the code and the setting every other limit's error has."""
        if not isinstance(message, dict) or message.get("type") != "error":
            return message
        payload = message.get("payload")
        for error in payload if isinstance(payload, list) else [payload]:
            if isinstance(error, dict) and error.get("message") == STRAWBERRY_LIMIT_MESSAGE:
                error["message"] = (f"this connection runs {self.max_subscriptions_per_connection} operations already "
                                    "(GRAPHLAKE_MAX_SUBSCRIPTIONS_PER_CONNECTION): complete one, or open another connection")
                error["extensions"] = {"code": "BAD_USER_INPUT"}
        return message

    async def handle_connection_init(self, message: Any) -> None:
        self.init_received = True
        try:
            # Strawberry's, after this mixin: it calls the view's on_ws_connect, which claims the token's slot.
            await super().handle_connection_init(message)
        except SocketLimitReached as full:
            await self.websocket.close(*refusal(full))
            return
        if self.token_watch is not None:  # graphql-ws lets a client initialise again, maybe with another token
            self.token_watch.cancel()
            self.token_watch = None
        if self.connection_acknowledged and self.context.principal is not None:
            # Read as on_ws_connect read it; a principal means it was there and well formed.
            secret = bearer_secret(authorization(self.context.connection_params))
            if secret:
                self.token_watch = asyncio.create_task(self._end_when_refused(secret))

    async def _end_when_refused(self, secret: str) -> None:
        try:
            refused = await self.context.state.tokens.wait_until_refused(secret)
            await self.end_unauthenticated(refused)
        except Exception:  # a bug here must not go unseen, nor take the connection's handler with it
            log.exception("watching a WebSocket's token failed")

    async def end_unauthenticated(self, refused: Unauthenticated) -> None:
        """End a socket whose token is revoked or expired: each operation under way gets an
        UNAUTHENTICATED error (the code any request with that token now gets), then the socket closes.

        The error, because a close code carries no GraphQL error: clients hand it to each subscription
        as they would one over HTTP. Then the close, because the socket is no one's now, and closing it
        stops keep-alives and refuses anything sent on it. With 4401, not the 4403 of a token refused at
        connection_init: the npm graphql-ws client (the common graphql-transport-ws client) retries
        4403 ("might grant access after retry"), reconnecting with the same dead token until its
        retries run out, but treats 4401 as final and reports it at once.
        """
        self.ending = True  # synchronously, before any await: no result can follow the errors below
        self.context.principal, self.context.auth_error = None, str(refused)
        error = {"message": str(refused), "extensions": refused.extensions}
        ids = self.operation_ids()
        log.info("ending a WebSocket (%d operation(s)): %s", len(ids), refused)
        # The client may have gone meanwhile: then Strawberry is ending the connection too.
        with contextlib.suppress(Exception):
            for operation_id in ids:
                for message in self.final_messages(operation_id, error):
                    await self.websocket.send_json(message)
        for operation_id in ids:
            await self.cleanup_operation(operation_id)  # Strawberry's: cancels its task
        with contextlib.suppress(Exception):
            await self.websocket.close(*TOKEN_REFUSED)

    def operation_ids(self) -> list[str]:
        raise NotImplementedError

    def final_messages(self, operation_id: str, error: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError


def _is_subscription(query: object, operation_name: object, max_tokens: int) -> bool:
    """Whether the operation a socket's `subscribe` message names is a subscription. True for anything
    else than a document of at most `max_tokens` tokens that names one operation: Strawberry refuses
    those itself, as before, and none takes a slot. Parsed within the token limit the schema's own
    parse keeps (resolvers/guests.py TokenBudget): unbounded, a 2 MB message of `{ a a a ... }`
    held the event loop 16 s."""
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return True
    if len(query) <= MAX_TEXT:
        return _parsed_kind(query, operation_name, max_tokens)
    return _parsed_kind.__wrapped__(query, operation_name, max_tokens)


# A socket's clients send the same few documents again and again: the answer is kept per text, so
# each is parsed here once, not at every operation (Strawberry's own parse follows, memoized by the
# schema's document cache, which keeps texts up to the same length).
@functools.lru_cache(maxsize=256)
def _parsed_kind(query: str, operation_name: str | None, max_tokens: int) -> bool:
    try:
        operation = get_operation_ast(parse(query, max_tokens=max_tokens), operation_name)
    except GraphQLError:
        return True
    return operation is None or operation.operation is OperationType.SUBSCRIPTION


class TransportWSHandler(_Hardened, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws: Strawberry times out a socket that never initialises itself."""

    async def handle_message(self, message: Any) -> None:
        # PROTOCOL.md's ids are `'<unique-operation-id>'`: graphql-ws's own validateMessage refuses a
        # number or an empty string, which Strawberry ran (1 and "1" side by side). And a
        # connection_init's payload may be null (`Record<string, unknown> | null`), which Strawberry
        # refused with 4400: it is an init without a token.
        if isinstance(message, dict):
            kind = message.get("type")
            if kind in ("subscribe", "complete") and not (isinstance(message.get("id"), str) and message["id"]):
                await self.handle_invalid_message(f"Invalid message: a {kind} message's id must be a non-empty string")
                return
            if kind == "connection_init" and message.get("payload", {}) is None:
                message = {**message, "payload": {}}
        await super().handle_message(message)

    async def run_operation(self, operation: Any) -> None:
        """A query or mutation sent on the socket waits for one of the process's request slots, as over
        HTTP (graphlake/admission.py): 50 sockets of a token, 20 operations each, ran 1,000 heavy
        operations at once past them. A subscription takes none: it holds its socket for hours (a
        document that does not parse goes Strawberry's way, which closes the socket naming why)."""
        if _is_subscription(operation.query, operation.operation_name, self.view.settings.max_tokens):
            await super().run_operation(operation)
            return
        async with contextlib.AsyncExitStack() as admitted:
            try:
                await admitted.enter_async_context(self.view.admission.slot())
            except Unavailable as busy:
                await operation.send_initial_errors([GraphQLError(str(busy), extensions=busy.extensions)])
                return
            await super().run_operation(operation)

    def operation_ids(self) -> list[str]:
        return list(self.operations)

    def final_messages(self, operation_id: str, error: dict[str, Any]) -> list[dict[str, Any]]:
        # `error` ends the operation: "execution errors ... no further messages will be sent" (PROTOCOL.md).
        return [{"id": operation_id, "type": "error", "payload": [error]}]


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

    def operation_ids(self) -> list[str]:
        return list(self.tasks)

    def final_messages(self, operation_id: str, error: dict[str, Any]) -> list[dict[str, Any]]:
        # This protocol's `error` is for operations that never ran; errors while running come in
        # `data`, and `complete` ends the operation (as Strawberry ends a stream that raised).
        return [{"type": "data", "id": operation_id, "payload": {"data": None, "errors": [error]}},
                {"type": "complete", "id": operation_id}]
