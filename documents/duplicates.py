"""Recognising writes a unique index refused, alike on MongoDB and FerretDB."""

from __future__ import annotations

from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError


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
