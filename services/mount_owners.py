"""A lake's identity, and which lake owns each of its mounts (storage/ownership.py says why it matters).

The lake id is made the first time a lake's database is opened, and kept beside its schema record
(STATE_COLLECTION, `_id: "lake"`). Backups leave STATE_COLLECTION out and a restore writes only the
schema record there, so a restore into another database (a drill, a copy, or a lake rebuilt after
its database was lost) is a lake of a new id, owning none of the mounts of the lake backed up; a
restore over a lake (`--replace`) keeps that lake's id, and with it its mounts.

The first lake to open a mount that names no owner claims it. A lake that finds another's id there
reads the mount and changes nothing on it, until an operator adopts it for this lake
(`graphlake mounts adopt NAME`, after a disaster restore: the lake backed up is gone for good).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from migrations import STATE_COLLECTION
from storage import LocalStore, ObjectStore, StoreUnavailable
from storage.ownership import OWNER_FILE
from storage.signing import UrlSigner

log = logging.getLogger("graphlake.storage")

LAKE_ID = "lake"  # the `_id` of the lake's identity in STATE_COLLECTION
# In that record: the folders of the local mounts this lake has owned. One of them found with no owner
# file is not a mount nobody owns, to be claimed: its file system is not mounted (yet), and the folder
# is the empty place it goes on (see settle_owners).
CLAIMED_ROOTS = "local_roots"
UNREADABLE = "unknown (its owner file is unreadable)"  # an owner file no lake wrote: owned by none of them
ASK_SECONDS = 10.0  # for a mount's owner, each time it is settled


async def lake_id(db: AsyncDatabase) -> str:
    """This lake's id, made now if its database has none yet (every process of the lake reads the same)."""
    return str((await _lake_record(db))["lake_id"])


async def _lake_record(db: AsyncDatabase) -> dict[str, Any]:
    """This lake's record: its id (made now if its database has none yet) and CLAIMED_ROOTS."""
    state = db[STATE_COLLECTION]
    record = await state.find_one({"_id": LAKE_ID})
    if record is None:
        try:  # an insert, not an upsert: of processes starting together, the unique `_id` lets one win
            await state.insert_one({"_id": LAKE_ID, "lake_id": uuid.uuid4().hex, "made_at": datetime.now(UTC)})
        except DuplicateKeyError:
            pass
        record = await state.find_one({"_id": LAKE_ID})
    assert record is not None
    return record


def _owner_record(lake: str, db: AsyncDatabase, **more: str | None) -> bytes:
    """What a mount's owner file holds: the lake's id, and for the operator who reads it, where it was claimed."""
    return json.dumps({"lake": lake, "database": db.name, "host": socket.gethostname(),
                       "claimed_at": datetime.now(UTC).isoformat(), **more}, indent=1).encode()


def owner_of(data: bytes) -> str:
    """The lake id an owner file names (UNREADABLE for one no lake wrote: nobody's, so not ours)."""
    try:
        lake = json.loads(data).get("lake")
    except (ValueError, AttributeError):
        return UNREADABLE
    return lake if isinstance(lake, str) and lake else UNREADABLE


async def read_owner(store: ObjectStore) -> str | None:
    """The id of the lake that owns the mount of `store`; None while none does. StoreUnavailable
    when the store cannot say now."""
    data = await store.read_owner_file()
    return None if data is None else owner_of(data)


def owner_readers(roots: Mapping[str, Path]) -> dict[str, LocalStore]:
    """Stores of the local mounts at `roots` (by name), to be asked for their owner file and nothing
    else (they sign no URL). Never opened: opening a local store makes its root and its marker file,
    and a restore drill on a host where a mount was read-only failed there, or where it was not
    mounted made an empty directory in its place (the real one then mounted over it, or a lake
    writing into the root disk). Asked, one whose root does not exist has no owner, and nothing is made."""
    return {name: LocalStore(name, root, UrlSigner(os.urandom(32), "http://127.0.0.1")) for name, root in roots.items()}


async def owners(stores: Mapping[str, ObjectStore]) -> dict[str, str | StoreUnavailable | None]:
    """Each mount's owner (None: it has none yet), or the StoreUnavailable saying why its store cannot
    tell now; every store asked at once, each for at most ASK_SECONDS. What `graphlake mounts list`
    shows, and what a restore checks before it writes into a mount (others)."""
    async def ask(store: ObjectStore) -> str | StoreUnavailable | None:
        try:
            async with asyncio.timeout(ASK_SECONDS):
                return await read_owner(store)
        except StoreUnavailable as error:
            return error
        except TimeoutError:
            return StoreUnavailable(f"mount {store.name!r}: no answer within {ASK_SECONDS:g} s")

    return dict(zip(stores, await asyncio.gather(*(ask(store) for store in stores.values())), strict=True))


async def others(db: AsyncDatabase, stores: Mapping[str, ObjectStore]) -> dict[str, str | StoreUnavailable]:
    """The mounts of `stores` this lake may not write into now: by name, the id of the other lake that
    owns it, or why its owner cannot be known now. One that has no owner yet is not among them. Writes
    nothing: a database with no lake id yet (a restore's, before it writes) owns no mount."""
    record = await db[STATE_COLLECTION].find_one({"_id": LAKE_ID}) if stores else None
    lake = record["lake_id"] if record else None
    return {name: owner for name, owner in (await owners(stores)).items() if owner is not None and owner != lake}


async def noted_roots(db: AsyncDatabase, stores: Mapping[str, ObjectStore]) -> dict[str, Any]:
    """Tell each local store, before it opens, whether this lake has used its folder before: one it
    has, found missing, is an operator's file system not mounted (yet), and opening it made an empty
    folder on the disk below, where the file system was then mounted over (or the lake wrote there).
    A new lake's new mount's folder is made as it opens. Returns the lake's record as read (empty
    while there is none), for settle_owners a moment later: the lake opening reads it once."""
    record = await db[STATE_COLLECTION].find_one({"_id": LAKE_ID}) or {}
    noted = set(record.get(CLAIMED_ROOTS, []))
    for store in stores.values():
        if isinstance(store, LocalStore):
            store.used_before = str(store.root) in noted
    return record


def missing_roots(stores: Mapping[str, ObjectStore]) -> list[str]:
    """What to tell of each local mount whose folder this lake used before and finds missing now
    (noted_roots told the store): a file system not mounted (yet), which nothing makes anew."""
    return [f"local mount {store.name!r} at {store.root}: the folder this lake used before is missing: is its file "
            "system not mounted? Mount it and run this again (nothing was made in its place); if the mount has a new, "
            f"empty place, make that folder and run `graphlake mounts adopt {store.name}`"
            for store in stores.values() if isinstance(store, LocalStore) and store.used_before and not store.root.exists()]


async def settle_owners(db: AsyncDatabase, stores: Mapping[str, ObjectStore],
                        record: Mapping[str, Any] | None = None) -> dict[str, str | None]:
    """Tell each store this lake's id and its mount's owner, claiming each mount that has none.
    Run as the lake opens and again each maintenance round: a mount adopted by another lake meanwhile
    (or by this one, from the command line) is seen within a round. A store that cannot be asked
    keeps what it knew (at the start: nothing, so it changes nothing until it is asked again).
    Returns each mount's owner as now known.

    A local mount's folder this lake owned before, found without its owner file, is not claimed
    again: its file system is not mounted (a server started at boot before its NAS, a disk gone
    while it ran), and claiming the empty folder below made the lake ready, writing uploads onto
    the disk below, with every stored file missing. Its owner is unknown then, so nothing is written
    or deleted there and /readyz names it, until the file system is back (or `graphlake mounts
    adopt` says the empty folder is the mount's new place).

    `record`: the lake's record as noted_roots read it as the lake opens; read here otherwise (once:
    the lake's id and the folders it claimed are in the one record)."""
    if not record or "lake_id" not in record:  # a new lake's: its id is made here
        record = await _lake_record(db)
    lake = str(record["lake_id"])
    claimed = set(record.get(CLAIMED_ROOTS, []))

    async def settle(store: ObjectStore) -> None:
        store.ownership.lake = lake
        try:
            # Bounded: an S3 store that does not answer held the server's start for botocore's retries.
            async with asyncio.timeout(ASK_SECONDS):
                owner = await read_owner(store)
                if owner is None and isinstance(store, LocalStore) and str(store.root) in claimed:
                    store.ownership.owner = None  # known before: writes stop now, not onto the disk below
                    store.mount_id = None  # and no client is told to write directly where the server cannot see
                    # In a thread: a stat of a path on a file system gone away may hang.
                    if await asyncio.to_thread(store.root.is_dir):
                        gone, adopt = (f"the {OWNER_FILE} this lake wrote there is gone",
                                       f"if this empty folder is the mount's new place, `graphlake mounts adopt {store.name}`")
                    else:  # none to adopt: the advice names the step before
                        gone, adopt = ("the folder is missing", "if the mount has a new place, make that folder and run "
                                                                f"`graphlake mounts adopt {store.name}`")
                    store.ownership.unknown_because = (
                        f"local mount {store.name!r} at {store.root}: {gone}: is its file system not mounted? This lake "
                        f"writes and deletes nothing there until it is back; {adopt}")
                    log.warning("%s", store.ownership.unknown_because)
                    return
                if owner is None:
                    if await store.write_owner_file(_owner_record(lake, db), replace=False):
                        log.info("mount %r had no owner: it is this lake's (%s) now", store.name, lake)
                    owner = await read_owner(store)  # ours, or a lake's that claimed it a moment before
        except (StoreUnavailable, TimeoutError) as error:
            log.warning("the owner of mount %r is unknown for now (%s): this lake changes nothing there until it is "
                        "known", store.name, str(error) or f"no answer within {ASK_SECONDS:g} s")
            return
        if owner != lake and store.ownership.owner != owner:  # said once, not every round
            log.warning("mount %r belongs to lake %s, not to this one (%s): this lake reads it and never writes, "
                        "deletes or sets aside anything there. A restored copy of that lake? If it replaces that "
                        "lake for good, take the mount over: graphlake mounts adopt %s", store.name, owner, lake,
                        store.name)
        store.ownership.owner, store.ownership.unknown_because = owner, None
        if isinstance(store, LocalStore):
            if owner == lake:
                await _note_root(store)
            await _load_marker(store)

    await asyncio.gather(*(settle(store) for store in stores.values()))
    await _remember_roots(db, lake, stores, claimed)
    return {name: store.ownership.owner for name, store in stores.items()}


async def _note_root(store: LocalStore) -> None:
    """Have the store note the folder its owner file was read in (LocalStore.note_root): writes go
    there or nowhere until the next round notes it again (a file system mounted anew is another
    directory to the kernel, with the same owner file)."""
    try:
        async with asyncio.timeout(ASK_SECONDS):
            await asyncio.to_thread(store.note_root)
    except (OSError, TimeoutError) as error:  # gone since its owner was read: the next round asks again
        log.warning("the folder of mount %r could not be noted (%s): its last one is kept", store.name,
                    str(error) or f"no answer within {ASK_SECONDS:g} s")


async def _load_marker(store: LocalStore) -> None:
    """The mount's direct-write marker, read again now that its owner is known (LocalStore.load_marker):
    made by a process started while its file system was not mounted, it would name the folder below."""
    try:
        async with asyncio.timeout(ASK_SECONDS):
            await store.load_marker()
    except (OSError, ValueError, TimeoutError) as error:  # ValueError: a link in its place (UnsafeKey)
        store.mount_id = None  # no id shown: clients write over HTTP
        log.warning("the direct-write marker of mount %r cannot be read (%s): clients upload over HTTP until it "
                    "can", store.name, str(error) or f"no answer within {ASK_SECONDS:g} s")


async def _remember_roots(db: AsyncDatabase, lake: str, stores: Mapping[str, ObjectStore],
                          claimed: set[str] | None = None) -> None:
    """Note in the lake's record the folders of the local mounts it owns that it had not noted yet."""
    roots = [str(store.root) for store in stores.values()
             if isinstance(store, LocalStore) and store.ownership.owner == lake and str(store.root) not in (claimed or ())]
    if roots:
        await db[STATE_COLLECTION].update_one({"_id": LAKE_ID}, {"$addToSet": {CLAIMED_ROOTS: {"$each": roots}}})


async def adopt(db: AsyncDatabase, store: ObjectStore) -> str | None:
    """Make this lake the owner of the mount of `store` (whoever owned it: the lake a disaster
    restore replaces); returns the previous owner's id (None: it had none). StoreUnavailable when
    the owner file cannot be read or written, whatever the mount's backend."""
    lake = await lake_id(db)
    previous = await read_owner(store)
    if previous != lake:
        await store.write_owner_file(_owner_record(lake, db, adopted_from=previous), replace=True)
    store.ownership.lake = store.ownership.owner = lake
    store.ownership.unknown_because = None
    if isinstance(store, LocalStore):
        await _note_root(store)
    await _remember_roots(db, lake, {store.name: store})
    return previous
