"""What every resolver gets: who is calling, the settings, the database and the stores.

The app shell (graphlake/runtime.py, graphlake/view.py) builds these; resolvers only read them.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import strawberry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from resolvers.loaders import Loaders
from resolvers.pagination import Page
from services.broadcast import Broadcast
from services.events.log import EventSettings
from services.health import SharedProbe
from services.schema_watch import SchemaWatch
from services.socket_slots import SocketSlots
from services.uploads.sessions import UploadSettings
from storage import ObjectStore

if TYPE_CHECKING:
    from services.auth import Principal
    from services.events.feed import FeedWriter
    from services.metrics import Metrics
    from services.thumbnails import Thumbnailer
    from services.token_cache import TokenCache
    from storage.signing import UrlSigner


class ServerSettings(UploadSettings, EventSettings, Protocol):
    """What resolvers and the services they call read from the server's settings: graphlake/settings.py
    defines each; this names them so that no resolver imports the app shell."""

    default_page_size: int
    max_page_size: int
    max_value_bytes: int
    max_metadata_bytes: int
    max_event_data_bytes: int
    max_text_bytes: int
    max_download_url_seconds: int
    anonymous_read: bool
    introspection: bool
    max_tokens: int
    max_tokens_unauthenticated: int
    max_selections: int
    max_merge_cost: int
    max_request_nodes: int
    max_query_depth: int
    max_aliases: int
    max_query_string_chars: int
    max_query_list_items: int
    max_event_replay: int
    metrics: str


@dataclass
class AppState:
    """Built once by the lifespan; shared by every request."""

    settings: ServerSettings
    client: AsyncMongoClient
    db: AsyncDatabase
    stores: dict[str, ObjectStore]
    started_at: datetime
    # Events logged by any process (ASSET_STATUS ones feed `assetStatusChanged` too): this process's
    # own as it stores them, the others' through its tail of the event feed.
    events: Broadcast
    # How this process stores events and publishes them live (see services/events/feed.py).
    feed: FeedWriter
    # Tokens accepted lately (services/token_cache.py).
    tokens: TokenCache
    # The server's release, as `health` reports it.
    version: str
    # Database and store reachability, probed at most once a second (services/health.py).
    health: SharedProbe
    # Thumbnails of image assets: the signer of their URLs and what makes them (services/thumbnails.py).
    thumbnail_signer: UrlSigner
    thumbnailer: Thumbnailer
    # Fire-and-forget work (alert deliveries) kept referenced until it finishes.
    background: set[asyncio.Task] = field(default_factory=set)
    # The WebSockets open on this process, in all and per token (services/socket_slots.py).
    sockets: SocketSlots = field(default_factory=SocketSlots)
    # What /metrics exposes (services/metrics.py); None when GRAPHLAKE_METRICS is off: nothing is recorded.
    metrics: Metrics | None = None
    # Set as the server begins to shut down (graphlake/http_server.Server): live SSE streams end then,
    # as uvicorn closes WebSockets (1012), rather than hold the shutdown open for as long as a client stays.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Whether the database still holds the schema this server started on; writes stop once it does not.
    schema_watch: SchemaWatch = field(default_factory=SchemaWatch)


_operation_loaders: ContextVar[Loaders | None] = ContextVar("graphlake_operation_loaders", default=None)


@dataclass
class Context:
    """One per HTTP request, or one per WebSocket connection (its principal is set at connection_init)."""

    state: AppState
    request: Request | WebSocket
    response: Response | None
    request_id: str
    principal: Principal | None = None
    # A token was presented but is not valid: reads of public fields still work, the rest say why.
    auth_error: str | None = None
    # Filled by Strawberry from the `connection_init` payload of a WebSocket.
    connection_params: dict[str, Any] | None = field(default=None)
    # Outside any operation (FreshLoaders gives each its own: see `loaders`).
    connection_loaders: Loaders = field(default_factory=Loaders)

    @property
    def loaders(self) -> Loaders:
        """The running operation's loaders (resolvers/loaders.FreshLoaders makes them as it starts): a
        DataLoader cache, and a request's budget of part URLs, must not outlive the operation they
        were filled for, nor be another's. A WebSocket's context is the connection's, shared by the
        operations it runs at once, each in a task of its own; an attribute of the context, each
        operation's start replaced the loaders of those running, their caches and their budgets."""
        return _operation_loaders.get() or self.connection_loaders

    @loaders.setter
    def loaders(self, loaders: Loaders) -> None:
        _operation_loaders.set(loaders)  # this task's, and the tasks it starts (a loader's batch)

    @property
    def settings(self) -> ServerSettings:
        return self.state.settings

    @property
    def db(self) -> AsyncDatabase:
        return self.state.db

    @property
    def stores(self) -> dict[str, ObjectStore]:
        return self.state.stores

    @property
    def actor(self) -> str | None:
        """How audit fields (createdBy, addedBy, ...) name the caller."""
        return self.principal.actor if self.principal else None

    def page(self, first: int | None, after: str | None, last: int | None = None, before: str | None = None) -> Page:
        """`first`/`after` (or `last`/`before`) validated against this server's page-size limits."""
        return Page.of(first, after, last, before, default_size=self.settings.default_page_size,
                       max_size=self.settings.max_page_size)


Info: TypeAlias = strawberry.Info[Context, None]
