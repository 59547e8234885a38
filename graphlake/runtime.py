"""Opening and closing everything Graphlake runs on: shared by the app's lifespan and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from pymongo.monitoring import CommandListener

from documents.clock import utcnow
from graphlake import __version__
from graphlake.database import connected
from graphlake.local_services import embedded_database
from graphlake.mounts import build_stores
from graphlake.settings import Settings
from resolvers.context import AppState
from resolvers.events.types import Event
from services.broadcast import Broadcast
from services.events.feed import FeedWriter
from services.token_cache import TokenCache


@asynccontextmanager
async def open_state(settings: Settings, listeners: Sequence[CommandListener] = ()) -> AsyncIterator[AppState]:
    """The database (starting the embedded FerretDB when no URL is set) and every mount, opened.

    Closed in reverse order on exit, also when opening fails half-way.
    """
    async with AsyncExitStack() as stack:
        url = settings.mongodb_url.get_secret_value() if settings.mongodb_url else None
        if url is None:
            embedded = embedded_database(settings.ferretdb_bin, settings.data_dir, settings.ferretdb_port,
                                          sync_every_commit=settings.ferretdb_sync_every_commit)
            stack.callback(embedded.stop)
            url = embedded.url
        client = await stack.enter_async_context(connected(url, settings.database, listeners))
        stores = build_stores(settings)
        for store in stores.values():
            await store.open()
            stack.push_async_callback(store.close)
        db = client[settings.database]
        events = Broadcast(settings.subscriber_queue_size, present=Event.from_document)
        yield AppState(settings=settings, client=client, db=db, stores=stores, started_at=utcnow(),
                       events=events, feed=FeedWriter(db, events), tokens=TokenCache(settings.token_cache_seconds), version=__version__)
