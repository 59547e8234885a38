"""Failures of the parts Graphlake runs on, told apart from bugs, and time limits lifted where a
timeout would do harm.

A database that is down or slower than its time limit, or a store that does not answer, is not a
bug: the request may work in a moment. `unavailable(error)` gives the Unavailable the client
should see (code UNAVAILABLE) for such an exception, or None for anything else.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError

import storage
from services.errors import Unavailable


def unavailable(error: BaseException) -> Unavailable | None:
    if isinstance(error, Unavailable):
        return error
    if isinstance(error, PyMongoError) and error.timeout:
        # Server selection and network timeouts are ConnectionFailures with timeout set too:
        # whether the server is gone or slow, the request's time limit ran out.
        return Unavailable("the database did not answer within the time limit; retry shortly, or narrow the request")
    if isinstance(error, ConnectionFailure):
        return Unavailable("the database cannot be reached now; retry shortly")
    if isinstance(error, storage.StoreAnswered) and error.refused:
        return None  # the asker's to fix: its caller says so, naming the field (one that did not is a bug)
    if isinstance(error, storage.StoreUnavailable):
        if (fix := storage.to_fix(error)) is not None:  # the store refuses the server itself: a retry meets the same
            return Unavailable(f"{error}: {fix}", retry=False)
        return Unavailable(f"{error}; retry shortly")  # names the mount
    if storage.unreachable(error):
        return Unavailable("an object store cannot be reached now; retry shortly")
    return None


def no_time_limit() -> AbstractContextManager[None]:
    """A block whose database operations have no time limit (a zero timeout is PyMongo's "none" and
    replaces the client's per-operation one). For work no client waits on (startup, maintenance),
    and for writes that must finish or be undone whole: a batch whose insert timed out on this side
    may still commit on the server, after a rollback that ran too early."""
    return pymongo.timeout(0)
