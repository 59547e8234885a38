"""GraphQL types and inputs of events."""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from enum import Enum

import strawberry

from documents.clock import to_millis
from documents.event import Event as EventDocument
from documents.json_value import matches
from resolvers.common import JsonPredicate, Ownership, OwnershipInput
from resolvers.fanout import SharedResults
from resolvers.inputs import batch_input
from resolvers.relay import Node
from resolvers.scalars import JSON
from services.node_ids import NodeType, encode_id


@strawberry.enum(description="Severity, numbered as Python logging (10..50).")
class LogLevel(Enum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50


def level_of(number: int) -> LogLevel:
    """The named level at or below a number (custom numbers round down)."""
    return max((level for level in LogLevel if level.value <= number), key=lambda level: level.value, default=LogLevel.DEBUG)


@strawberry.type(description="One structured event: what happened, how severe, where it came from.")
class Event(Node):
    event_type: str = strawberry.field(description="e.g. LOG_INFO, NODE_START, WORKFLOW_COMPLETE, AUDIT.")
    level: LogLevel
    level_number: int
    message: str | None
    source: Ownership
    timestamp: datetime
    alert: bool
    trace_id: str | None
    span_id: str | None
    archived: bool
    doc: strawberry.Private[EventDocument]
    # Streamed live, one Event object reaches every subscriber; its fields read nothing per caller.
    shared_results: strawberry.Private[SharedResults] = field(default_factory=SharedResults)

    @strawberry.field
    def data(self) -> JSON:
        return self.doc.data.decode()

    @strawberry.field(description="When the server stored it, to the second (its id says so; no client's clock "
                                  "sets it), where `timestamp` is when it happened by the sender's clock.")
    def received_at(self) -> datetime:
        return self.doc.id.generation_time

    @classmethod
    def from_document(cls, doc: EventDocument) -> Event:
        return cls(id=encode_id(NodeType.EVENT, doc.id), event_type=doc.event_type, level=level_of(doc.level),
                   level_number=doc.level, message=doc.message, source=Ownership.from_value(doc.source),
                   timestamp=doc.timestamp, alert=doc.alert, trace_id=doc.trace_id, span_id=doc.span_id,
                   archived=doc.archived, doc=doc)


@strawberry.input(description="Which events; every given field must match.")
class EventFilter:
    min_level: LogLevel | None = None
    event_types: list[str] | None = None
    source: OwnershipInput | None = None
    after: datetime | None = strawberry.field(default=None, description="At or after (inclusive).")
    before: datetime | None = strawberry.field(default=None, description="Strictly before.")
    alert_only: bool | None = None
    data: list[JsonPredicate] | None = None
    include_archived: bool = strawberry.field(default=False, description="Also archived events (queries only).")

    def accepts(self, event: EventDocument) -> bool:
        """The same filter, applied in memory to a live event (see events_query for the stored ones)."""
        if self.min_level is not None and event.level < self.min_level.value:
            return False
        if self.event_types and event.event_type not in self.event_types:
            return False
        if self.source and any(getattr(event.source, k) != v for k, v in vars(self.source).items() if v is not None):
            return False
        if self.after and event.timestamp < to_millis(self.after):
            return False
        if self.before and event.timestamp >= to_millis(self.before):
            return False
        if self.alert_only and not event.alert:
            return False
        return all(matches(event.data, p.path, p.op.value, p.value) for p in self.data or [])


@batch_input  # thousands per logEvents call
@strawberry.input(description="An event to log. `level` defaults to INFO, `timestamp` to now.")
class EventInput:
    event_type: str
    level: LogLevel | None = None
    message: str | None = None
    data: JSON | None = None
    source: OwnershipInput | None = None
    timestamp: datetime | None = None
    alert: bool | None = None
    trace_id: str | None = None
    span_id: str | None = None


@strawberry.type(description="How many events a logEvents call stored, and their IDs in order.")
class LogEventsPayload:
    count: int
    ids: list[strawberry.ID]


@strawberry.enum(description="What `events` is ordered by: newest first, or oldest first with `direction: ASC`.")
class EventOrder(Enum):
    TIMESTAMP = strawberry.enum_value("timestamp", description="By `timestamp`, the sender's clock (default); one "
                                      "at most GRAPHLAKE_EVENT_CLOCK_SKEW_SECONDS ahead of the server's may top it "
                                      "that long.")
    RECEIVED = strawberry.enum_value("received", description="By when the server stored each: the latest events "
                                     "received, which no sender's clock can change.")


@strawberry.enum(description="What utilization groups sessions by.")
class UtilizationGroup(Enum):
    NODE = "NODE"
    WORKFLOW = "WORKFLOW"
    USER = "USER"


@strawberry.enum(description="How utilization is cut into periods (UTC).")
class TimeBucket(Enum):
    HOUR = strawberry.enum_value("HOUR", description="Each UTC hour of the window.")
    DAY = strawberry.enum_value("DAY", description="Each UTC day of the window.")


@strawberry.type(description="One session behind a utilization row: from a start event to its stop event, "
                             "clipped to the window.")
class UtilizationSession:
    start: datetime = strawberry.field(description="When it began, or the window's start if earlier.")
    end: datetime = strawberry.field(description="When it stopped, or the window's end if later (or still open).")
    open: bool = strawberry.field(description="No stop event by the window's end: counted up to it.")
    workflow_id: str | None = strawberry.field(description="The workflow of a USER session (a user's sessions are "
                                                           "the workflows they ran); null otherwise.")


@strawberry.type(description="A group's busy time within one hour or day of the window.")
class UtilizationBucket:
    start: datetime = strawberry.field(description="The period's start (the window's, for a first partial one).")
    end: datetime = strawberry.field(description="The period's end (the window's, for a last partial one).")
    busy_seconds: float = strawberry.field(description="Seconds of the period some session covered, each second once.")
    utilization: float = strawberry.field(description="Busy time over the period's length, 0 to 1.")


@strawberry.type(description="Busy time of one node, workflow or user within the asked window.")
class UtilizationRow:
    group: str = strawberry.field(description="The node, workflow or user.")
    busy_seconds: float = strawberry.field(description="Seconds of the window some session of the group covered: "
                                                       "overlapping sessions (a user's workflows at once) count once.")
    sessions: int = strawberry.field(description="How many sessions overlap the window.")
    utilization: float = strawberry.field(description="Busy time over the window's length, 0 to 1.")
    buckets: list[UtilizationBucket] = strawberry.field(
        default_factory=list, description="Busy time per hour or day, when `utilization(bucket:)` asks; else empty.")
    session_rows: strawberry.Private[list[UtilizationSession]] = field(default_factory=list)

    @strawberry.field(description="The sessions behind the busy time, in the order they began: the first `first` "
                                  "(default GRAPHLAKE_DEFAULT_PAGE_SIZE, at most GRAPHLAKE_MAX_PAGE_SIZE); `sessions` "
                                  "says how many there are.")
    def session_list(self, info: strawberry.Info, first: int | None = None) -> list[UtilizationSession]:
        page = info.context.page(first, None)
        return self.session_rows[:page.first]
