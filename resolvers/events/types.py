"""GraphQL types and inputs of events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from datetime import datetime
from enum import Enum

import strawberry

from documents.clock import to_millis
from documents.event import Event as EventDocument
from documents.json_value import compile_predicate
from resolvers.common import JsonPredicate, Ownership, OwnershipInput
from resolvers.fanout import SharedResults
from resolvers.inputs import batch_input
from resolvers.list_filters import list_filter
from resolvers.pagination import sorted_list_connection
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import JSON
from services.node_ids import NodeType, encode_id


@strawberry.enum(description="Severity, numbered as Python logging (10..50).")
class LogLevel(Enum):
    DEBUG = strawberry.enum_value(10, description="10: detail for debugging.")
    INFO = strawberry.enum_value(20, description="20: normal operation (the default).")
    WARNING = strawberry.enum_value(30, description="30: something unexpected that did not stop the work.")
    ERROR = strawberry.enum_value(40, description=(
        "40: something failed; at or above GRAPHLAKE_ALERT_LEVEL (ERROR by default) it fires the alert notifiers."))
    CRITICAL = strawberry.enum_value(50, description="50: a failure that stops a workflow, instrument or the lab.")


def level_of(number: int) -> LogLevel:
    """The named level at or below a number (custom numbers round down)."""
    return max((level for level in LogLevel if level.value <= number), key=lambda level: level.value, default=LogLevel.DEBUG)


@strawberry.enum(description="Who wrote an event: a client, or Graphlake itself.")
class EventOrigin(Enum):
    CLIENT = strawberry.enum_value("CLIENT", description=(
        "Logged by a client: `logEvent` / `logEvents`, an instrument, a workflow, the Python log handler."))
    LAKE = strawberry.enum_value("LAKE", description=(
        "Written by Graphlake itself: AUDIT (one per mutation and CLI change), ASSET_STATUS, "
        "ALERT_DELIVERY_FAILED, BACKUP_COMPLETED and BACKUP_FAILED of scheduled backups."))


@strawberry.type(description="One structured event: what happened, how severe, where it came from.")
class Event(Node):
    event_type: str = strawberry.field(description="e.g. LOG_INFO, NODE_START, WORKFLOW_COMPLETE, AUDIT.")
    level: LogLevel = strawberry.field(description="Its severity, named (a custom number rounds down to the level below it).")
    level_number: int = strawberry.field(description="Its severity as a number, as Python logging (10 to 50 for the named levels).")
    message: str | None = strawberry.field(description="A human-readable message, at most 10,000 characters; null if none.")
    source: Ownership = strawberry.field(description="Where it came from: lab, node, workflow, step, user (fields not given are null).")
    timestamp: datetime = strawberry.field(description=(
        "When it happened, by the sender's clock (or when the server stored it, if none was given); UTC, milliseconds."))
    alert: bool = strawberry.field(description="Whether the sender asked to alert on it (events at or above the alert level alert anyway).")
    trace_id: str | None = strawberry.field(description="The distributed trace it belongs to (e.g. W3C trace id); null if none.")
    span_id: str | None = strawberry.field(description="The span within that trace; null if none.")
    archived: bool = strawberry.field(description=(
        "Moved out of default queries by age (`graphlake events archive`); `EventFilter.includeArchived` shows it."))
    origin: EventOrigin = strawberry.field(description="Whether a client logged it or Graphlake wrote it itself.")
    key: str | None = strawberry.field(description=(
        "The name its client gave it (`EventInput.key`), unique among the lake's keyed events; null if none."))
    doc: strawberry.Private[EventDocument]
    # Streamed live, one Event object reaches every subscriber; its fields read nothing per caller.
    shared_results: strawberry.Private[SharedResults] = field(default_factory=SharedResults)

    @strawberry.field(description="Any JSON the sender attached, exactly as sent ({} if none).")
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
                   archived=doc.archived, origin=EventOrigin.LAKE if doc.by_lake else EventOrigin.CLIENT, key=doc.key,
                   doc=doc)


@strawberry.input(description="Which events; every given field must match.")
class EventFilter:
    min_level: LogLevel | None = strawberry.field(default=None, description="Only events at this level or above.")
    event_types: list[str] | None = list_filter("Only events of one of these types (exact).")
    source: OwnershipInput | None = strawberry.field(default=None, description="Only events whose source has every given field equal.")
    after: datetime | None = strawberry.field(default=None, description="At or after (inclusive).")
    before: datetime | None = strawberry.field(default=None, description="Strictly before.")
    alert_only: bool | None = strawberry.field(default=None, description="True: only events sent with `alert: true`.")
    data: list[JsonPredicate] | None = list_filter("Predicates on `data`, all of which must hold.")
    include_archived: bool = strawberry.field(default=False, description="Also archived events (queries only).")
    origin: EventOrigin | None = strawberry.field(default=None, description=(
        "Only the events clients logged (CLIENT), or only Graphlake's own (LAKE: the audit trail, asset status, ...); "
        "null: both."))
    key: str | None = strawberry.field(default=None, description=(
        "Only the event its client logged under this key (`EventInput.key`): the client's own name for it."))

    def acceptor(self) -> Callable[[EventDocument], bool]:
        """The same filter, applied in memory to live events (see events_query for the stored ones).
        Made once per subscription, and its predicates compiled then: it runs on every event logged
        while the subscription lasts, and a logEvents call brings thousands at once."""
        min_level = self.min_level.value if self.min_level is not None else None
        event_types = frozenset(self.event_types) if self.event_types else None
        source = [(k, v) for k, v in vars(self.source).items() if v is not None] if self.source else []
        after = to_millis(self.after) if self.after else None
        before = to_millis(self.before) if self.before else None
        alert_only = bool(self.alert_only)
        by_lake = None if self.origin is None else self.origin is EventOrigin.LAKE
        key = self.key
        predicates = [compile_predicate(p.path, p.op.value, p.value) for p in self.data or []]

        def accepts(event: EventDocument) -> bool:
            return ((min_level is None or event.level >= min_level)
                    and (event_types is None or event.event_type in event_types)
                    and all(getattr(event.source, k) == v for k, v in source)
                    and (after is None or event.timestamp >= after)
                    and (before is None or event.timestamp < before)
                    and (not alert_only or event.alert)
                    and (by_lake is None or bool(event.by_lake) == by_lake)
                    and (key is None or event.key == key)
                    and all(predicate(event.data) for predicate in predicates))

        return accepts


@batch_input  # thousands per logEvents call
@strawberry.input(description="An event to log. `level` defaults to INFO, `timestamp` to now.")
class EventInput:
    event_type: str = strawberry.field(description=(
        "What happened, e.g. NODE_START: 1 to 100 ASCII letters, digits and _ . : / -, starting with a letter or digit. "
        "Types Graphlake writes itself (AUDIT, ASSET_STATUS, ...) are refused, in any case."))
    level: LogLevel | None = strawberry.field(default=None, description="Its severity; null is INFO.")
    message: str | None = strawberry.field(default=None, description="A human-readable message, at most 10,000 characters.")
    data: JSON | None = strawberry.field(default=None, description=(
        "Any JSON to attach, queryable by path; null stores {}. At most GRAPHLAKE_MAX_EVENT_DATA_BYTES (1 MiB by "
        "default) as JSON."))
    source: OwnershipInput | None = strawberry.field(default=None, description="Where it came from; null records nothing.")
    timestamp: datetime | None = strawberry.field(default=None, description=(
        "When it happened; null is now. At most GRAPHLAKE_EVENT_CLOCK_SKEW_SECONDS (300 by default) ahead of the "
        "server's clock."))
    alert: bool | None = strawberry.field(default=None, description=(
        "True fires the alert notifiers whatever the level; null or false leaves it to the level."))
    trace_id: str | None = strawberry.field(default=None, description="The distributed trace it belongs to; null for none.")
    span_id: str | None = strawberry.field(default=None, description="The span within that trace; null for none.")
    key: str | None = strawberry.field(default=None, description=(
        "The client's own name for it, 1 to 200 characters (a UUID it made per event), unique among the lake's keyed "
        "events: sent again under its key, the event is not stored again and the call answers with the event stored "
        "first (its ID); the same key with other content is CONFLICT naming it, and nothing of the batch is stored. "
        "A resend without a timestamp matches the first whatever its timestamp. Null: no key, stored each time sent."))


@strawberry.type(description="How many events a logEvents call was given and stored, and their IDs in order.")
class LogEventsPayload:
    count: int = strawberry.field(description="How many events were given (each is in the lake now).")
    stored: int = strawberry.field(description=(
        "How many of them this call stored: fewer than `count` when the lake held some under their keys already."))
    ids: list[strawberry.ID] = strawberry.field(description=(
        "Their IDs, in the order given: for an event the lake held under its key, that event's."))


@strawberry.enum(description="What `events` is ordered by: newest first, or oldest first with `direction: ASC`.")
class EventOrder(Enum):
    TIMESTAMP = strawberry.enum_value("timestamp", description="By `timestamp`, the sender's clock (default); one "
                                      "at most GRAPHLAKE_EVENT_CLOCK_SKEW_SECONDS ahead of the server's may top it "
                                      "that long.")
    RECEIVED = strawberry.enum_value("received", description="By when the server stored each: the latest events "
                                     "received, which no sender's clock can change.")


@strawberry.enum(description="What utilization groups sessions by. Event types count in upper case or in lower "
                              "case (`node_start`, as MADSci's clients send them).")
class UtilizationGroup(Enum):
    NODE = strawberry.enum_value("NODE", description="By `source.nodeId`: NODE_START to NODE_STOP.")
    WORKFLOW = strawberry.enum_value("WORKFLOW", description=(
        "By `source.workflowId`: WORKFLOW_START to WORKFLOW_COMPLETE, WORKFLOW_FAILED, WORKFLOW_CANCELLED or "
        "WORKFLOW_ABORT."))
    USER = strawberry.enum_value("USER", description="By `source.userId`: the workflows each user ran.")
    EXPERIMENT = strawberry.enum_value("EXPERIMENT", description=(
        "By `source.experimentId`: EXPERIMENT_START to EXPERIMENT_COMPLETE, EXPERIMENT_FAILED or EXPERIMENT_CANCELLED."))


@strawberry.enum(description="How utilization is cut into periods (of `timeZone`'s calendar; UTC by default).")
class TimeBucket(Enum):
    HOUR = strawberry.enum_value("HOUR", description="Each hour of the window.")
    DAY = strawberry.enum_value("DAY", description="Each day of the window, midnight to midnight.")
    WEEK = strawberry.enum_value("WEEK", description="Each week of the window, from Monday.")
    MONTH = strawberry.enum_value("MONTH", description="Each calendar month of the window.")


@strawberry.type(description="One session behind a utilization row: from a start event to its stop event, "
                             "clipped to the window.")
class UtilizationSession:
    start: datetime = strawberry.field(description="When it began, or the window's start if earlier.")
    end: datetime = strawberry.field(description="When it stopped, or the window's end if later (or still open).")
    open: bool = strawberry.field(description="No stop event by the window's end: counted up to it.")
    workflow_id: str | None = strawberry.field(description="The workflow of a USER session (a user's sessions are "
                                                           "the workflows they ran); null otherwise.")


@strawberry.type(description="A group's busy time within one hour, day, week or month of the window.")
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
                                  "says how many there are, and `allSessions` pages through them all.")
    def session_list(self, info: strawberry.Info, first: First = None) -> list[UtilizationSession]:
        page = info.context.page(first, None)
        return self.session_rows[:page.first]

    @strawberry.field(description="The sessions behind the busy time, in the order they began, page by page. A "
                                  "cursor is a position in that order, which sessions logged meanwhile may shift.")
    async def all_sessions(self, info: strawberry.Info, first: First = None, after: After = None, last: Last = None,
                           before: Before = None) -> Connection[UtilizationSession]:
        async def load(positions: list[int]) -> list[UtilizationSession]:
            return [self.session_rows[i] for i in positions]

        return await sorted_list_connection(range(len(self.session_rows)), info.context.page(first, after, last, before),
                                            load, scope=f"utilization sessions:{self.group}")
