"""Connecting to MongoDB (or FerretDB) and binding the Beanie documents to it."""

from __future__ import annotations

from collections.abc import Sequence

from beanie import Document, init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.monitoring import CommandListener

from documents import DOCUMENT_MODELS


async def connect(url: str, database: str, listeners: Sequence[CommandListener] = ()) -> AsyncMongoClient:
    """A client whose dates come back timezone-aware, with every document model and its indexes ready."""
    client: AsyncMongoClient = AsyncMongoClient(
        url,
        tz_aware=True,
        appname="graphlake",
        serverSelectionTimeoutMS=10_000,
        event_listeners=list(listeners),
    )
    await init_beanie(database=client[database], document_models=DOCUMENT_MODELS, skip_indexes=True)
    for model in DOCUMENT_MODELS:
        await ensure_indexes(model)
    return client


async def ensure_indexes(model: type[Document]) -> None:
    """Create the indexes a document declares in `Settings.indexes` that do not exist yet.

    Beanie re-sends every index, old and new, in one createIndexes command; FerretDB v1.24
    panics on such a command when two or more of them exist already (every restart). Creating
    only the missing ones, one per command, is idempotent and equally right on MongoDB.
    """
    collection = model.get_pymongo_collection()
    existing = set(await collection.index_information())
    for index in model.get_settings().indexes or []:
        if index.name not in existing:
            await collection.create_indexes([index.index])


async def ping(db: AsyncDatabase) -> None:
    await db.command("ping")


def is_duplicate_key(error: PyMongoError) -> bool:
    """A unique index refused the write. MongoDB says so with code 11000; FerretDB v1 does too on
    insert, but reports a violation by an update as InternalError (code 1) naming the SQLite
    constraint, so both are recognised here and nowhere else."""
    if isinstance(error, DuplicateKeyError):
        return True
    return isinstance(error, OperationFailure) and "UNIQUE constraint failed" in str(error)
