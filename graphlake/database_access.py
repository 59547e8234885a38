"""Reaching the database below the documents: its URL (the embedded FerretDB's, started on demand,
or the one configured), a raw PyMongo handle, closing a client, and the schema gate.

Apart from graphlake/database.py (which binds the Beanie documents) and graphlake/runtime.py (the
whole app's state), so the commands that need only these (`check`, `db`, `backup`, `restore`) do not
import Beanie, every model and Strawberry first: seconds on a slow machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from graphlake import __version__, driver_waits
from graphlake.data_dir import owner_only_dir
from graphlake.local_services import EmbeddedDatabase, ServiceError, embedded_database
from graphlake.mounts import build_stores
from graphlake.settings import Settings
from migrations import SCHEMA_VERSION, SchemaMismatch, check_schema
from services.mount_owners import noted_roots
from storage import LocalStore, ObjectStore


class SchemaNotCurrent(Exception):
    """The database must be migrated (or this code changed) before Graphlake can serve it; the message says how."""

    def __init__(self, mismatch: SchemaMismatch) -> None:
        state = mismatch.state
        if state.restoring:
            how = f"run `graphlake restore {state.restoring.get('source')} --replace` again"
        elif state.interrupted:
            how = ("run `graphlake db migrate` to finish it (or `graphlake db downgrade --to N` to go back); "
                   "`graphlake db status` shows where it stopped")
        elif state.version is not None and state.version < SCHEMA_VERSION:
            how = ("upgrade it with `graphlake db migrate` (it backs the database up first); "
                   "`graphlake db status` lists the steps")
        else:
            # The schema version, not only the release's name: releases have shared one version string.
            how = (f"it was written by Graphlake {state.written_by or '(unknown)'}: run a release that reads schema "
                   f"version {state.version} (`graphlake db status` says which it reads), or run "
                   f"`graphlake db downgrade --to {SCHEMA_VERSION}` with it first")
        super().__init__(f"{mismatch}; {how}")


# Closing a client first tells the server to end the client's sessions: a courtesy (a server drops
# idle sessions by itself after 30 minutes), which PyMongo waits for as long as it waits for any server,
# 10 s here. A server whose database had gone took that long to stop.
CLOSE_SECONDS = 1.0


async def close_client(client: AsyncMongoClient) -> None:
    """Close `client`, waiting at most CLOSE_SECONDS for an unreachable server to end its sessions."""
    with pymongo.timeout(CLOSE_SECONDS):
        await client.close()


def new_client(url: str, **options: Any) -> AsyncMongoClient:
    """A client of the database whose dates come back timezone-aware, waiting for replies as
    graphlake/driver_waits.py does: every client of the server and the CLI is made here."""
    driver_waits.install()
    return AsyncMongoClient(url, tz_aware=True, **options)


@asynccontextmanager
async def raw_database(settings: Settings) -> AsyncIterator[AsyncDatabase]:
    """The database alone, as PyMongo sees it: no schema check, no document binding, no index
    made. For the commands that work below the documents (migrations, backups, restores)."""
    owner_only_dir(settings.data_dir)
    async with AsyncExitStack() as stack:
        url = database_url(settings, stack)
        client = new_client(url, appname="graphlake-admin", serverSelectionTimeoutMS=10_000)
        stack.push_async_callback(close_client, client)
        yield client[settings.database]


@asynccontextmanager
async def for_checking(settings: Settings, seconds: float) -> AsyncIterator[tuple[AsyncDatabase | str, dict]]:
    """What `graphlake check` probes: the database through a client of its own that gives up after
    `seconds` (not the 30 s PyMongo waits for a server by default), or why it could not even be
    started, and every mount, opened. No schema check, no index made: a check must not need them."""
    owner_only_dir(settings.data_dir)
    async with AsyncExitStack() as stack:
        db: AsyncDatabase | str
        try:
            url = database_url(settings, stack)
        except ServiceError as error:  # the embedded FerretDB did not start
            db = f"database: {error}"
        else:
            client = new_client(
                url, appname="graphlake-check", serverSelectionTimeoutMS=int(seconds * 1000),
                connectTimeoutMS=int(seconds * 1000), socketTimeoutMS=int(seconds * 1000))
            stack.push_async_callback(close_client, client)
            db = client[settings.database]
        stores = build_stores(settings)
        await _note_roots(db, stores, seconds)
        for store in stores.values():
            await store.open()
            stack.push_async_callback(store.close)
        yield db, stores


async def _note_roots(db: AsyncDatabase | str, stores: dict[str, ObjectStore], seconds: float) -> None:
    """Tell the local stores which folders this lake used before, as the server does before it opens
    them (services/mount_owners.noted_roots): a check that made every missing folder made the empty
    place of a file system not mounted (yet), which the server then took for the mount. Where the
    database cannot say, no missing folder is made: it may be one of those."""
    if not isinstance(db, str):
        try:
            async with asyncio.timeout(seconds):
                await noted_roots(db, stores)
            return
        except (PyMongoError, TimeoutError):
            pass  # the check reports the database's failure itself
    for store in stores.values():
        if isinstance(store, LocalStore):
            store.used_before = True


def database_url(settings: Settings, stack: AsyncExitStack) -> str:
    """The MongoDB URL set, or the embedded FerretDB's (started now unless it runs; stopped with `stack`)."""
    if settings.mongodb_url:
        return settings.mongodb_url.get_secret_value()
    return embedded(settings, stack).url


def embedded(settings: Settings, stack: AsyncExitStack) -> EmbeddedDatabase:
    """The embedded FerretDB (started now unless it runs), used until `stack` closes."""
    database = embedded_database(settings.ferretdb_bin, settings.data_dir, sync_every_commit=settings.ferretdb_sync_every_commit)
    stack.callback(database.stop)
    return database


async def require_current_schema(settings: Settings) -> None:
    """SchemaNotCurrent, saying what to run, unless the database is at this code's schema version
    (an empty one is recorded at it). The server checks this again when it opens the database."""
    async with raw_database(settings) as db:
        try:
            await check_schema(db, __version__)
        except SchemaMismatch as mismatch:
            raise SchemaNotCurrent(mismatch) from None
