"""Events: the structured log every instrument, workflow and service writes, and its live feed."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

from beanie import Document
from bson import ObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.common import Ownership
from documents.indexes import Index, On
from documents.json_value import StoredJson, json_indexes

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
# Event types only Graphlake itself writes: clients cannot log them, so the audit trail and the
# status notifications built on them cannot be forged.
AUDIT = "AUDIT"  # every successful mutation: who, which mutation, which ids
ASSET_STATUS = "ASSET_STATUS"  # an asset turned ACTIVE or FAILED (feeds `assetStatusChanged`)
ALERT_DELIVERY_FAILED = "ALERT_DELIVERY_FAILED"  # an alert could not be delivered
BACKUP_COMPLETED = "BACKUP_COMPLETED"  # a scheduled backup was written (services/backups/schedule.py)
BACKUP_FAILED = "BACKUP_FAILED"  # ... or failed: an alert a monitor acts on
RESERVED_TYPES = frozenset({AUDIT, ASSET_STATUS, ALERT_DELIVERY_FAILED, BACKUP_COMPLETED, BACKUP_FAILED})


def lake_mark(event_type: str) -> bool | None:
    """An event's `by_lake`: True for the reserved types, which only Graphlake writes (a client's
    logEvent of one is refused); None, stored as nothing, for every other."""
    return True if event_type in RESERVED_TYPES else None
# The capped collection live events travel through to every server process (see services/events/feed.py).
FEED_COLLECTION = "event_feed"


class _EventIds:
    """Event ids that sort by when they were made to the millisecond, on every process.

    An ObjectId orders by its second, then by a per-process random part: two processes' events of
    one second sort by process, not by time. Events are read in id order when a subscription
    resumes (`events(after:)`) or a list is read in the order received, so here the bytes after the
    second hold its milliseconds, then this process's random part and a counter. Still a valid
    ObjectId: `generation_time` (receivedAt) is unchanged, and within a process ids only grow.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._process = os.urandom(3)
        self._last_ms, self._seq = 0, 0

    def new(self) -> ObjectId:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:  # the same millisecond, or a clock stepped back: keep growing
                ms, self._seq = self._last_ms, self._seq + 1
                if self._seq > 0xFFFFFF:
                    ms, self._seq = ms + 1, 0
            else:
                self._seq = 0
            self._last_ms = ms
            seq = self._seq
        seconds, millis = divmod(ms, 1000)
        return ObjectId(seconds.to_bytes(4, "big") + millis.to_bytes(2, "big") + self._process + seq.to_bytes(3, "big"))


_event_ids = _EventIds()
if hasattr(os, "register_at_fork"):  # a forked worker must not share its parent's random part
    os.register_at_fork(after_in_child=_event_ids._reset)


def new_event_id() -> ObjectId:
    """The id of an event about to be stored (see _EventIds for why not ObjectId())."""
    return _event_ids.new()


class Event(Document):
    event_type: str
    level: int  # 10..50, as Python logging
    message: str | None = None
    data: StoredJson = Field(default_factory=lambda: StoredJson.encode({}))
    source: Ownership = Field(default_factory=Ownership)
    timestamp: datetime = Field(default_factory=utcnow)
    alert: bool = False
    trace_id: str | None = None
    span_id: str | None = None
    # Archived events leave default queries but stay retrievable (`includeArchived`).
    archived: bool = False
    # True on the events Graphlake writes itself (lake_mark: the reserved types): `events(filter:
    # {origin})` tells them from those clients log, which they would bury (every mutation writes an
    # AUDIT event). Derived from the type, but stored, since an index can hold a field and not a
    # set of types: FeedWriter sets it as every event is inserted. Sparse, as nothing on a client's
    # event, so a query for CLIENT pins it to null, which the indexes below hold as a value.
    by_lake: bool | None = None
    # The client's own name for it (a UUID it made per event), unique among the lake's keyed events:
    # an event sent again under its key is found, not stored twice (services/events/keys.py). Sparse:
    # nothing on an unkeyed event. Not its id, which the server makes (received order, live resumes).
    key: str | None = None

    class Settings:
        name = "events"
        indexes = [
            # The timeline. The level rides along so a minimum level is checked in the index, not the document.
            Index([("archived", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING), ("level", ASCENDING)],
                  name="timeline"),
            # The timeline of one type (archived first: every default query pins it, and on the embedded
            # default an index serves a query through the fields it pins in front of the sort keys).
            Index([("archived", ASCENDING), ("event_type", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
                  name="type_timeline"),
            # The order of receipt (`events(orderBy: RECEIVED)`): the server makes each id as it stores the event.
            Index([("archived", ASCENDING), ("_id", DESCENDING)], name="received"),
            # Both orders again with the origin pinned: the events clients logged, or the lake's own.
            Index([("archived", ASCENDING), ("by_lake", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
                  name="origin_timeline"),
            Index([("archived", ASCENDING), ("by_lake", ASCENDING), ("_id", DESCENDING)], name="origin_received"),
            IndexModel([("level", ASCENDING), ("timestamp", DESCENDING)], name="level_time"),
            IndexModel([("alert", ASCENDING), ("timestamp", DESCENDING)], name="alert_time"),
            IndexModel([("source.node_id", ASCENDING), ("timestamp", DESCENDING)], name="node_time"),
            IndexModel([("source.workflow_id", ASCENDING), ("timestamp", DESCENDING)], name="workflow_time"),
            IndexModel([("source.user_id", ASCENDING), ("timestamp", DESCENDING)], name="user_time"),
            IndexModel([("source.experiment_id", ASCENDING), ("timestamp", DESCENDING)], name="experiment_time"),
            IndexModel("trace_id", name="trace"),
            # One event per key. The embedded default lets many events lack a key under a unique index
            # (SQLite's NULLs are distinct) but knows no partial indexes, and answers no query from a
            # unique index: the plain one beside it serves the lookup of a batch's keys (its fields
            # differ from the unique one's, or the server takes it for the same index). On MongoDB the
            # partial unique index does both, and an event without a key costs it nothing. On a build of
            # ours that makes partial indexes both embedded ones are partial on the key's existence
            # (documents/indexes.py): an event without a key costs them nothing either.
            Index([("key", ASCENDING)], name="key_unique", unique=True, on=On.EMBEDDED, embedded_partial=True),
            Index([("key", ASCENDING), ("_id", ASCENDING)], name="key", on=On.EMBEDDED, embedded_partial=True),
            Index([("key", ASCENDING)], name="key_unique_partial", unique=True,
                  partialFilterExpression={"key": {"$type": "string"}}, on=On.MONGODB),
            *json_indexes("data"),
        ]
