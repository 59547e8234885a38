"""Events: the structured log every instrument, workflow and service writes, and its live feed."""

from __future__ import annotations

from datetime import datetime

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.common import Ownership
from documents.indexes import Index
from documents.json_value import StoredJson, json_indexes

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
# Event types only Graphlake itself writes: clients cannot log them, so the audit trail and the
# status notifications built on them cannot be forged.
AUDIT = "AUDIT"  # every successful mutation: who, which mutation, which ids
ASSET_STATUS = "ASSET_STATUS"  # an asset turned ACTIVE or FAILED (feeds `assetStatusChanged`)
ALERT_DELIVERY_FAILED = "ALERT_DELIVERY_FAILED"  # an alert could not be delivered
RESERVED_TYPES = frozenset({AUDIT, ASSET_STATUS, ALERT_DELIVERY_FAILED})
# The capped collection live events travel through to every server process (see services/events/feed.py).
FEED_COLLECTION = "event_feed"


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
            IndexModel([("level", ASCENDING), ("timestamp", DESCENDING)], name="level_time"),
            IndexModel([("alert", ASCENDING), ("timestamp", DESCENDING)], name="alert_time"),
            IndexModel([("source.node_id", ASCENDING), ("timestamp", DESCENDING)], name="node_time"),
            IndexModel([("source.workflow_id", ASCENDING), ("timestamp", DESCENDING)], name="workflow_time"),
            IndexModel([("source.user_id", ASCENDING), ("timestamp", DESCENDING)], name="user_time"),
            IndexModel([("source.experiment_id", ASCENDING), ("timestamp", DESCENDING)], name="experiment_time"),
            IndexModel("trace_id", name="trace"),
            *json_indexes("data"),
        ]
