"""Logging events (CONTRIBUTOR)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import strawberry

from documents.common import Ownership
from documents.event import LEVELS, RESERVED_TYPES
from resolvers.common import encode_json
from resolvers.context import AppState, Info, ServerSettings
from resolvers.events.audit import StoredEvents
from resolvers.events.types import Event, EventInput, LogEventsPayload
from resolvers.permissions import CanWrite, IsAdmin
from services.auth import with_person
from services.errors import BadUserInput
from services.events import log as service
from services.node_ids import NodeType, decode_object_ids, encode_id


def _new_event(where: str, event: EventInput, settings: ServerSettings, actor: str | None) -> service.NewEvent:
    """`event`, named `where` in its errors (`inputs[3]` of logEvents, `input` of logEvent), its
    source's userId the caller's when it names none (`actor`: services/auth.with_person)."""
    if event.event_type.strip().upper() in RESERVED_TYPES:  # in any case: "audit" must not pass for AUDIT
        raise BadUserInput(f"{event.event_type.strip()} events are written by Graphlake itself", field=f"{where}.eventType")
    return service.NewEvent(
        event_type=event.event_type, level=event.level.value if event.level else LEVELS["INFO"], message=event.message,
        data=encode_json(event.data if event.data is not None else {}, field=f"{where}.data",
                         max_bytes=settings.max_event_data_bytes),
        source=with_person(event.source.to_value() if event.source else Ownership(), actor), timestamp=event.timestamp,
        alert=bool(event.alert), trace_id=event.trace_id, span_id=event.span_id, key=event.key,
    )


def _counter(state: AppState) -> Callable[[list[int]], None] | None:
    """The metrics' count of events stored, by level (an event sent again under its key was counted
    when it was first stored)."""
    return state.metrics.count_events if state.metrics is not None else None


async def _logged(info: Info, events: list[service.NewEvent], **how: bool) -> service.Logged:
    """log_events for a mutation: what it stores is counted, and audited should the call then fail
    (StoredEvents; AuditTrail audits it when it succeeds)."""
    state = info.context.state
    stored = StoredEvents(info.context, info.field_name, _counter(state))
    try:
        return await service.log_events(state.feed, events, state.settings, state.background, on_stored=stored, **how)
    except BaseException as error:
        await stored.failed(error)
        raise


@strawberry.type
class EventMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Log one event.")
    async def log_event(
        self, info: Info, input: Annotated[EventInput, strawberry.argument(description="The event.")],
    ) -> Event:
        logged = await _logged(info, [_new_event("input", input, info.context.settings, info.context.actor)], one=True)
        return Event.from_document(logged.events[0])

    @strawberry.mutation(permission_classes=[CanWrite], description=(
        "Log a batch of events: all are checked, then stored with one bulk write. Safe to send again when every "
        "event has a `key`: an event the lake holds under its key is not stored again, and its ID is returned."))
    async def log_events(
        self, info: Info,
        inputs: Annotated[list[EventInput], strawberry.argument(description=(
            "The events: 1 to GRAPHLAKE_MAX_EVENTS_PER_BATCH (10,000 by default)."))],
    ) -> LogEventsPayload:
        settings = info.context.settings
        logged = await _logged(info, [_new_event(f"inputs[{i}]", e, settings, info.context.actor)
                                      for i, e in enumerate(inputs)])
        return LogEventsPayload(count=len(logged.events), stored=len(logged.stored),
                                ids=[encode_id(NodeType.EVENT, e.id) for e in logged.events])

    @strawberry.mutation(permission_classes=[IsAdmin], description=(
        "Archive events by ID: they leave default queries and stay retrievable (`includeArchived: true`); with "
        "`archived: false`, bring archived ones back. Returns how many changed. ADMIN. (By age: `graphlake events "
        "archive --older-than DAYS`, or GRAPHLAKE_EVENT_ARCHIVE_AFTER_DAYS.)"))
    async def archive_events(
        self, info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description=(
            "The events: 1 to GRAPHLAKE_MAX_BATCH_ITEMS; an ID no event has is NOT_FOUND and changes nothing."))],
        archived: Annotated[bool, strawberry.argument(description="True archives them (default); false un-archives.")] = True,
    ) -> int:
        return await service.set_archived(decode_object_ids(ids, NodeType.EVENT, field="ids"), archived,
                                          info.context.settings.max_batch_items)
