"""Connecting to MongoDB (or FerretDB) and binding the Beanie documents to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from beanie import Document, init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from documents.api_token import ApiToken
from documents.indexes import On, embedded_filter, servers_of, with_filter
from documents.registry import DOCUMENT_MODELS
from graphlake import __version__
from graphlake.database_access import SchemaNotCurrent, close_client, new_client
from migrations import SchemaMismatch, check_schema
from services.availability import no_time_limit


async def connect(url: str, database: str, listeners: Sequence[CommandListener] = (),
                  timeout_seconds: float | None = None) -> AsyncMongoClient:
    """A client whose dates come back timezone-aware, with every document model and its indexes ready.
    SchemaNotCurrent unless the database is at this code's schema version (an empty one is recorded at it).

    With `timeout_seconds` (the server's), every operation (server selection, waiting, the
    server's own work through maxTimeMS) ends by then (PyMongo's client-side operation timeout);
    work that may rightly take longer runs under `no_time_limit()`.
    """
    client = new_client(
        url,
        appname="graphlake",
        serverSelectionTimeoutMS=10_000,
        event_listeners=list(listeners),
        **({"timeoutMS": round(timeout_seconds * 1000)} if timeout_seconds else {}),
    )
    with no_time_limit():  # building an index on a large collection takes what it takes
        try:
            await check_schema(client[database], __version__)  # before any index or document is touched
        except SchemaMismatch as mismatch:
            await close_client(client)
            raise SchemaNotCurrent(mismatch) from None
        await init_beanie(database=client[database], document_models=DOCUMENT_MODELS, skip_indexes=True)
        servers, partial = await index_choice(client[database])
        for model in DOCUMENT_MODELS:
            await ensure_indexes(model, servers=servers, partial=partial)
    return client


class _Listeners(CommandListener):
    """The shared client's one command listener: it tells the listeners of every user of the client
    now (each app's metrics and tracing, a test's counter), since PyMongo takes listeners only when
    a client is made. A command is not anyone's in particular: each is told of all."""

    def __init__(self) -> None:
        self.users: tuple[CommandListener, ...] = ()  # replaced, never changed: events may arrive meanwhile

    def started(self, event: CommandStartedEvent) -> None:
        for listener in self.users:
            listener.started(event)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        for listener in self.users:
            listener.succeeded(event)

    def failed(self, event: CommandFailedEvent) -> None:
        for listener in self.users:
            listener.failed(event)


@dataclass
class _Shared:
    client: AsyncMongoClient
    loop: asyncio.AbstractEventLoop  # an async client serves the loop it was made on
    listeners: _Listeners
    users: int = 0


# Beanie binds each document class to one database for the whole process (init_beanie sets it on
# the class), and services query through those classes. So every app in a process uses the same
# database, through one client: closing one app must not leave the others' documents bound to a
# client it closed. Apps and CLI commands get theirs from `connected`, which counts its users.
_shared: dict[tuple[str, str], _Shared] = {}
_opening = asyncio.Lock()


def _host(url: str) -> str:
    """Where a MongoDB URL points, without its credentials."""
    return url.rsplit("@", 1)[-1].split("/", 1)[0].removeprefix("mongodb://").removeprefix("mongodb+srv://")


@asynccontextmanager
async def connected(url: str, database: str, listeners: Sequence[CommandListener] = (),
                    timeout_seconds: float | None = None) -> AsyncIterator[AsyncMongoClient]:
    """The process's client of `database` (made by the first user, with its time limit: a later
    user's is not applied; closed when the last one leaves). Each user's command `listeners` are told
    of every command while it uses the client. Another database while one is in use is refused: Beanie
    could serve only one of them."""
    key = (url, database)
    async with _opening:
        if _shared and key not in _shared:
            served_url, served = next(iter(_shared))
            raise RuntimeError(f"this process already serves database {served!r} at {_host(served_url)}; Beanie binds "
                               f"documents to one database per process, so {database!r} at {_host(url)} needs a "
                               "process of its own")
        entry = _shared.get(key)
        if entry is None:
            hub = _Listeners()
            entry = _shared[key] = _Shared(await connect(url, database, [hub], timeout_seconds),
                                           asyncio.get_running_loop(), hub)
        elif entry.loop is not asyncio.get_running_loop():
            raise RuntimeError("the database is in use from another event loop of this process; run one loop per process")
        entry.users += 1
        entry.listeners.users += tuple(listeners)
    try:
        yield entry.client
    finally:
        entry.listeners.users = tuple(u for u in entry.listeners.users if not any(u is mine for mine in listeners))
        entry.users -= 1
        if entry.users == 0:
            del _shared[key]
            await close_client(entry.client)


INDEX_NOT_FOUND = 27  # MongoDB's (and FerretDB's) code for dropping an index that is not there

# The first build of our FerretDB (scripts/build-services.sh) whose indexes serve filters and sorts.
PUSHDOWN_BUILD = 3
# The first that makes partial indexes (`embedded_partial` ones: documents/indexes.py).
PARTIAL_BUILD = 13


async def index_choice(db: AsyncDatabase) -> tuple[On | None, bool]:
    """Which declared indexes serve this server (documents/indexes.py): MongoDB's, the embedded
    default's, or None for a FerretDB that is not our build (it answers only `_id` lookups from an
    index, so there a secondary index only slows every write: just the unique ones are made); and
    whether it makes the `embedded_partial` ones partial (our build from PARTIAL_BUILD on)."""
    build = await served_build(db)
    if build is None:
        return On.MONGODB, False
    return (On.EMBEDDED if build >= PUSHDOWN_BUILD else None), build >= PARTIAL_BUILD


async def index_servers(db: AsyncDatabase) -> On | None:
    """index_choice's servers alone."""
    return (await index_choice(db))[0]


async def served_build(db: AsyncDatabase) -> int | None:
    """None on MongoDB; else the number of our FerretDB build serving `db`, 0 for a FerretDB not ours.
    Our build names itself in `explain`; ask it about one of our own collections."""
    if "ferretdbVersion" not in await db.client.admin.command("buildInfo"):
        return None
    probe = ApiToken.get_pymongo_collection().name  # one of ours: made now if new, it is needed anyway
    names = await db.list_collection_names()
    if probe not in names:
        try:
            await db.create_collection(probe)
        except (CollectionInvalid, OperationFailure):  # another process made it first
            pass
    plan = await db.command("explain", {"find": probe, "filter": {}})
    return int(plan.get("graphlakeBuild", 0))


async def ensure_indexes(model: type[Document], *, servers: On | None = On.MONGODB, partial: bool = False) -> None:
    """Create the indexes a document declares for `servers` that do not exist yet, drop a declared one
    that is not for them (left by an earlier start on another kind of server or build), and make
    again one whose fields have changed since it was made.

    On the embedded default, an index also is made again when its partial filter is not the one it
    should have: with `partial` (the build makes partial indexes, PARTIAL_BUILD) those declared
    `embedded_partial` hold only the documents with their first field (documents/indexes.py), and
    the others every document. MongoDB's indexes are compared by their fields alone, as before.

    Beanie re-sends every index, old and new, in one createIndexes command; FerretDB v1.24
    panics on such a command when two or more of them exist already (every restart). Creating
    only the missing ones, one per command, is idempotent and equally right on MongoDB.
    With `servers` None (a FerretDB not ours), only the embedded default's unique indexes are kept
    (they enforce rules).
    """
    collection = model.get_pymongo_collection()
    information = await collection.index_information()
    existing = {name: [(key, int(direction)) for key, direction in info["key"]] for name, info in information.items()}
    for field in model.get_settings().indexes or []:
        index = field.index
        if servers is None:  # a FerretDB not ours: it takes the unique indexes the embedded default has
            wanted = index.document.get("unique", False) and bool(servers_of(index) & On.EMBEDDED)
        else:
            wanted = bool(servers_of(index) & servers)
        declared = [(key, int(direction)) for key, direction in index.document["key"].items()]
        partial_filter = embedded_filter(index) if partial and servers == On.EMBEDDED else None
        if field.name in existing and (not wanted or existing[field.name] != declared or (
                servers == On.EMBEDDED and information[field.name].get("partialFilterExpression") != partial_filter)):
            try:
                await collection.drop_index(field.name)  # not for this server, or its fields or filter changed since
            except OperationFailure as error:
                # Another process starting at the same moment (a second server on the same database,
                # after an upgrade) dropped it first: what both wanted. It then makes it again, as
                # this one does below: the same index, which the server takes twice as one.
                if error.code != INDEX_NOT_FOUND:
                    raise
            existing.pop(field.name)
        if wanted and field.name not in existing:
            await collection.create_indexes([with_filter(index, partial_filter)])
