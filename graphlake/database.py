"""Connecting to MongoDB (or FerretDB) and binding the Beanie documents to it."""

from __future__ import annotations

from collections.abc import Sequence

from beanie import Document, init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.monitoring import CommandListener

from documents import DOCUMENT_MODELS
from documents.api_token import ApiToken


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
    secondary = await uses_secondary_indexes(client[database])
    for model in DOCUMENT_MODELS:
        await ensure_indexes(model, secondary=secondary)
    return client


async def uses_secondary_indexes(db: AsyncDatabase) -> bool:
    """Whether the server answers filters on fields other than `_id` from indexes.

    MongoDB does. FerretDB's SQLite backend (the embedded default) does not: it pushes down only
    `_id` lookups and scans for everything else, so there a secondary index serves no query and
    only slows every write (inserting an event updated 12 indexes: twice the time of the insert
    itself). FerretDB says in `explain` whether it pushed a filter down; ask it about a field.
    """
    if "ferretdbVersion" not in await db.client.admin.command("buildInfo"):
        return True
    probe = ApiToken.get_pymongo_collection().name  # one of ours: made now if new, it is needed anyway
    names = await db.list_collection_names()
    if probe not in names:
        try:
            await db.create_collection(probe)
        except (CollectionInvalid, OperationFailure):  # another process made it first
            pass
    if "graphlake_probe" in names:  # the empty collection earlier versions probed with
        await db.drop_collection("graphlake_probe")
    plan = await db.command("explain", {"find": probe, "filter": {"field": 1}})
    return bool(plan.get("filterPushdown"))


async def ensure_indexes(model: type[Document], *, secondary: bool = True) -> None:
    """Create the indexes a document declares in `Settings.indexes` that do not exist yet.

    Beanie re-sends every index, old and new, in one createIndexes command; FerretDB v1.24
    panics on such a command when two or more of them exist already (every restart). Creating
    only the missing ones, one per command, is idempotent and equally right on MongoDB.
    Without `secondary`, only unique indexes are kept (they enforce rules); a declared
    non-unique one left by an earlier start is dropped.
    """
    collection = model.get_pymongo_collection()
    existing = set(await collection.index_information())
    for index in model.get_settings().indexes or []:
        wanted = secondary or index.index.document.get("unique", False)
        if wanted and index.name not in existing:
            await collection.create_indexes([index.index])
        elif not wanted and index.name in existing:
            await collection.drop_index(index.name)


async def ping(db: AsyncDatabase) -> None:
    await db.command("ping")


def is_duplicate_key(error: PyMongoError) -> bool:
    """A unique index refused the write. MongoDB says so with code 11000; FerretDB v1 does too on
    insert, but reports a violation by an update as InternalError (code 1) naming the SQLite
    constraint, so both are recognised here and nowhere else."""
    if isinstance(error, DuplicateKeyError):
        return True
    return isinstance(error, OperationFailure) and "UNIQUE constraint failed" in str(error)


def duplicates_only(error: BulkWriteError) -> list[int]:
    """The positions an unordered bulk insert skipped because a unique index holds them already;
    re-raises the error if anything else went wrong."""
    errors = error.details.get("writeErrors", [])
    if any(e.get("code") != 11000 for e in errors):
        raise error
    return [e["index"] for e in errors]
