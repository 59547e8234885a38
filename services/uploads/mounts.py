"""Which mount an upload goes to: the requested one, the default, or a fallback while it is down."""

from __future__ import annotations

import logging
import time
import weakref

from services.errors import BadUserInput, Conflict, Unavailable
from storage import LocalStore, ObjectStore, StoreUnavailable, to_fix
from storage.ownership import MountNotOwned

log = logging.getLogger("graphlake.uploads")

# Whether each store answered lately, and when to ask again: a reachability check is a round trip
# to S3 (about 2 ms, or a whole connect timeout while it is down) that every small upload paid.
# Readiness probes (/readyz) still ask every time.
CHECK_SECONDS = 5.0


_checked: weakref.WeakKeyDictionary[ObjectStore, tuple[float, StoreUnavailable | None]] = weakref.WeakKeyDictionary()


async def check_reachable(store: ObjectStore) -> None:
    """store.check(), its answer (up or down) remembered for CHECK_SECONDS. A local mount's folder is
    looked at every time all the same (LocalStore.check_root): a file system unmounted within those
    seconds had createUpload hand out URLs (and store sessions) for a folder every PUT then refused."""
    now = time.monotonic()
    until, error = _checked.get(store, (0.0, None))
    if until <= now:
        try:
            await store.check()
            error = None
        except StoreUnavailable as failure:
            error = failure
        _checked[store] = (now + CHECK_SECONDS, error)
    if error is not None:
        raise error
    if isinstance(store, LocalStore):
        await store.check_root()


class MountUnavailable(Unavailable):
    """The chosen mount cannot take uploads now, and no fallback can."""


async def choose_store(stores: dict[str, ObjectStore], requested: str | None, default: str,
                       field: str = "mount") -> ObjectStore:
    """The requested (or default) mount, or its fallback while it is unreachable (MADSci's behaviour) or
    owned by another lake (storage/ownership.py: this lake writes nothing there)."""
    name = requested or default
    store = stores.get(name)
    if store is None:
        raise BadUserInput(f"no mount named {name!r} (have: {', '.join(sorted(stores))})", field=field)
    try:
        if not store.ownership.owned:  # another lake's (a restored copy's view of its original's mount)
            raise store.ownership.refused()
        await check_reachable(store)
        return store
    except StoreUnavailable as error:
        if store.fallback and store.fallback in stores and stores[store.fallback].ownership.owned:
            log.warning("mount %s cannot take uploads (%s); uploading to fallback %s", name, error, store.fallback)
            fallback = stores[store.fallback]
            await check_reachable(fallback)
            return fallback
        if isinstance(error, MountNotOwned):  # not a passing state: nothing to retry
            raise Conflict(f"mount {name!r} takes no uploads: {error}", field=field) from None
        raise cannot_take_uploads(name, error, field) from None


def cannot_take_uploads(name: str, error: StoreUnavailable, field: str) -> MountUnavailable:
    """The error of a mount that failed an upload's start, at its check or since."""
    if (fix := to_fix(error)) is not None:  # not "now": the same answer awaits every retry
        return MountUnavailable(f"mount {name!r} cannot take uploads: {error}: {fix}", field=field, retry=False)
    return MountUnavailable(f"mount {name!r} cannot take uploads now: {error}", field=field)
