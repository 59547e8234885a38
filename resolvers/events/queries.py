"""Reading events: one, the filtered timeline (either way, from a position), utilization; and the live
stream, which can resume from a position: what was logged since, then live."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

import strawberry
from bson import ObjectId
from pymongo import ASCENDING

from documents.clock import utcnow
from documents.event import Event as EventDocument
from documents.lean import lean
from resolvers.common import OrderDirection, json_filters
from resolvers.context import Info
from resolvers.events.types import (
    Event,
    EventFilter,
    EventOrder,
    EventOrigin,
    TimeBucket,
    UtilizationBucket,
    UtilizationGroup,
    UtilizationRow,
    UtilizationSession,
)
from resolvers.list_filters import refuse_empty_lists
from resolvers.loaders import Loaders
from resolvers.pagination import (
    Page,
    decode_cursor,
    keyset_filter,
    paginate,
    paginate_by,
    sorted_list_connection,
    with_tiebreaker,
)
from resolvers.permissions import CanRead
from resolvers.relay import After, Before, Connection, First, Last
from services.broadcast import SubscriberOverflow
from services.errors import BadUserInput, Unavailable
from services.events import log as service
from services.node_ids import NodeType, decode_object_id, is_node_id


def events_query(filter: EventFilter | None, *, include_archived: bool | None = None) -> dict:
    f = filter or EventFilter()
    refuse_empty_lists(f, "filter")
    return service.event_query(
        min_level=f.min_level.value if f.min_level else None, event_types=f.event_types,
        source=f.source.to_filter("source") if f.source else None, after=f.after, before=f.before,
        alert_only=bool(f.alert_only), data=json_filters("data", f.data, input_field="filter.data"),
        include_archived=f.include_archived if include_archived is None else include_archived,
        by_lake=None if f.origin is None else f.origin is EventOrigin.LAKE, key=f.key,
    )


def _sort_keys(order_by: EventOrder) -> list[str]:
    # An event's id is made by the server as it stores the event: the greatest ids are the latest received.
    return ["timestamp", "_id"] if order_by is EventOrder.TIMESTAMP else ["_id"]


def _position(value: str, order_by: EventOrder, *, field: str) -> ObjectId | list[Any]:
    """An event's ID (returned as its ObjectId), or the sort-key values of a cursor of `events` in
    this order, newest or oldest first; BAD_USER_INPUT naming `field` otherwise."""
    if is_node_id(value):
        return decode_object_id(value, NodeType.EVENT, field=field)
    keys = _sort_keys(order_by)
    for direction in (OrderDirection.DESC, OrderDirection.ASC):
        try:
            return decode_cursor(value, [(key, direction.value) for key in keys], field,
                                 scope=EventDocument.get_pymongo_collection().name)
        except BadUserInput:
            continue
    raise BadUserInput(f"is neither an event's ID nor a cursor of events(orderBy: {order_by.name})", field=field)


async def _newer_than(info: Info, value: str, order_by: EventOrder) -> dict[str, Any]:
    """The filter for the events after a position in `order_by`, oldest to newest."""
    position = _position(value, order_by, field="newerThan")
    if isinstance(position, ObjectId):
        if order_by is EventOrder.RECEIVED:
            position = [position]
        else:
            doc = await info.context.loaders.by_id(EventDocument).load(position)
            if doc is None:
                raise BadUserInput("names no stored event", field="newerThan")
            position = [doc.timestamp, doc.id]
    return keyset_filter([(key, ASCENDING) for key in _sort_keys(order_by)], position)


# Several event types are read one run of the types' index each, merged, up to this many types.
# One `$in` over them was a walk of the timeline testing each event, so a page of two rare types
# read the whole log (0.45 s at 100,000 events, growing with it); each run is a range of its type.
MERGED_TYPES = 8


def _event_node(raw: dict[str, Any]) -> Event:
    return Event.from_document(lean(EventDocument).model_validate(raw))


def _runs(filter: EventFilter, order_by: EventOrder) -> list[dict[str, Any]] | None:
    """The queries of a list of events read as several index ranges merged (_merged), or None for
    one read: in TIMESTAMP order one per type of several (MERGED_TYPES at most: the types' index is
    a timeline per type; in RECEIVED order no index holds the types, so each run would walk the
    whole log and one walk is better), and with `includeArchived` one for the archived events and
    one for the others, as every index of events leads with `archived` (the list without it pins
    it; with it, unpinned, a page scanned and sorted the whole log: 0.6 s at 100,000 events). A
    lookup by key is one event: one read."""
    if filter.key is not None:
        return None
    types = list(dict.fromkeys(filter.event_types or []))
    split = order_by is EventOrder.TIMESTAMP and 1 < len(types) <= MERGED_TYPES
    per_type = [[event_type] for event_type in types] if split else [filter.event_types]
    states: list[bool | None] = [False, True] if filter.include_archived else [None]
    if len(per_type) == 1 and states == [None]:
        return None
    runs = []
    for event_types in per_type:
        one = events_query(dataclasses.replace(filter, event_types=event_types))
        runs += [one if state is None else {"$and": [one, {"archived": state}]} for state in states]
    return runs


async def _merged(runs: list[dict[str, Any]], position: dict[str, Any] | None, query: dict[str, Any],
                  sort: list[tuple[str, int]], page: Page) -> Connection[Event]:
    """A page of the events of `runs` (each with `position`, as given): each run's next events read
    at once through its index, merged in the page's order. The cursors are paginate's, so a page of
    one read may follow a page of the other; `totalCount` counts `query`."""
    collection = EventDocument.get_pymongo_collection()
    if position is not None:
        runs = [{"$and": [run, position]} for run in runs]

    async def read(read_sort: list[tuple[str, int]], start: list[Any] | None, limit: int) -> list[dict[str, Any]]:
        past = keyset_filter(read_sort, start) if start is not None else None
        found = await asyncio.gather(*(collection.find({"$and": [run, past]} if past else run, sort=read_sort,
                                                       limit=limit).to_list() for run in runs))
        keys = [key for key, _ in read_sort]  # one direction for all of them (the list's, or its reverse)
        merged = heapq.merge(*found, key=lambda doc: tuple(doc[key] for key in keys), reverse=read_sort[0][1] < 0)
        return list(itertools.islice(merged, limit))

    async def count() -> int:
        return await collection.count_documents(query)

    return await paginate_by(read, sort=sort, page=page, to_node=_event_node, count=count, scope=collection.name)


class SubscriptionDropped(Unavailable):
    """A live subscriber fell too far behind; others go on. Not a bug: the client may subscribe
    again (and read what it missed with `events(filter: {after: ...})`)."""


@strawberry.type
class EventQueries:
    @strawberry.field(permission_classes=[CanRead], description="An event by ID; null if none.")
    async def event(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The event's ID.")],
    ) -> Event | None:
        await info.context.state.feed.settled()  # this process's journaled AUDIT events are in the log
        doc = await info.context.loaders.by_id(EventDocument).load(decode_object_id(id, NodeType.EVENT))
        return Event.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="Events, newest first (or oldest first, with "
                                                                 "`direction: ASC`). Cursors stay valid while new events arrive.")
    async def events(
        self, info: Info,
        filter: Annotated[EventFilter | None, strawberry.argument(description=(
            "Which events; null for all but archived ones."))] = None,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
        order_by: Annotated[EventOrder, strawberry.argument(description=(
            "Newest by the sender's clock (TIMESTAMP, the default) or by the server's (RECEIVED)."))] = EventOrder.TIMESTAMP,
        direction: Annotated[OrderDirection, strawberry.argument(
            description="DESC (default): newest first; ASC: oldest first, to read forward from a position.")
        ] = OrderDirection.DESC,
        newer_than: Annotated[str | None, strawberry.argument(
            description="Only events newer, in `orderBy`, than this position: an event's ID or a cursor of `events` "
                        "in the same `orderBy` (either direction). With `orderBy: RECEIVED, direction: ASC`, what "
                        "was logged since that event, in the order it arrived.")] = None,
    ) -> Connection[Event]:
        await info.context.state.feed.settled()  # this process's journaled AUDIT events are in the log
        sort = with_tiebreaker([(key, direction.value) for key in _sort_keys(order_by)])
        position = await _newer_than(info, newer_than, order_by) if newer_than is not None else None
        query = events_query(filter)
        if position is not None:
            query = {"$and": [query, position]} if query else position
        page = info.context.page(first, after, last, before)
        if filter is not None and (runs := _runs(filter, order_by)):
            return await _merged(runs, position, query, sort, page)
        return await paginate(EventDocument.get_pymongo_collection(), query=query, sort=sort, page=page, to_node=_event_node)

    @strawberry.field(permission_classes=[CanRead], description="Busy time per node, workflow or user in [from, to), "
                                                                 "from start/stop event pairs (NODE_START/NODE_STOP, WORKFLOW_START/WORKFLOW_COMPLETE); "
                                                                 "overlapping sessions of a group count once, so utilization stays within 0..1; "
                                                                 "groups in name order.")
    async def utilization(
        self, info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from", description="The window's start (inclusive).")],
        to: Annotated[datetime | None, strawberry.argument(description=(
            "The window's end (exclusive), after `from`; null is now."))] = None,
        group_by: Annotated[UtilizationGroup, strawberry.argument(description=(
            "What to group sessions by (default NODE)."))] = UtilizationGroup.NODE,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
        bucket: Annotated[TimeBucket | None, strawberry.argument(
            description=f"Also cut each row's busy time by hour, day, week or month (`buckets`); at most "
                        f"{service.MAX_BUCKETS} buckets in the window.")] = None,
        time_zone: Annotated[str | None, strawberry.argument(description=(
            "The IANA time zone whose calendar the buckets follow (`Europe/Berlin`: days from its midnight, "
            "23 or 25 hours long across a change of daylight saving time); null is UTC."))] = None,
    ) -> Connection[UtilizationRow]:
        zone = service.time_zone(time_zone)
        page = info.context.page(first, after, last, before)
        rows = {
            r.group: UtilizationRow(
                group=r.group, busy_seconds=r.busy_seconds, sessions=r.sessions, utilization=r.utilization,
                buckets=[UtilizationBucket(start=b.start, end=b.end, busy_seconds=b.busy_seconds, utilization=b.utilization)
                         for b in r.buckets],
                session_rows=[UtilizationSession(start=s.start, end=s.end, open=s.open, workflow_id=s.workflow_id)
                              for s in r.session_list])
            for r in await service.utilization(from_, to or utcnow(), group_by.value, bucket.value if bucket else None,
                                               zone)}

        async def load(groups: list[str]) -> list[UtilizationRow]:
            return [rows[g] for g in groups]

        return await sorted_list_connection(sorted(rows), page, load, scope=f"utilization:{group_by.value}")


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(permission_classes=[CanRead], description="Events as they are logged, by any server process, "
                                                                        "in order per source. A subscriber that falls too far behind is dropped with an error. "
                                                                        "With `after`, first the events received since that one, in the order they arrived, then live.")
    async def events(
        self, info: Info,
        filter: Annotated[EventFilter | None, strawberry.argument(description=(
            "Which events to send; null for all."))] = None,
        after: Annotated[str | None, strawberry.argument(
            description="Resume here: the ID of the last event received (or a cursor of events(orderBy: RECEIVED)). "
                        "The matching events received since it are replayed in the order they arrived, then the "
                        "stream goes live, with none missed or repeated at the seam.")] = None,
    ) -> AsyncGenerator[Event, None]:
        if filter is not None:
            # Its predicates checked now, as a query's are, rather than at each event (where a pattern
            # too costly to run, or one that cannot run, reached the fan-out of every event logged).
            events_query(filter, include_archived=True)
        accepts = filter.acceptor() if filter else None  # made once: it runs on every event logged meanwhile
        accept = (lambda event: accepts(event.doc)) if accepts is not None else (lambda _: True)
        state = info.context.state
        try:
            if after is None:
                # Every subscriber receives the same Event object, so it is executed once per distinct
                # subscription (resolvers/fanout.py).
                async for event in state.events.subscribe(accept):
                    info.context.loaders = Loaders(state.metrics)  # per event: the connection's context outlives caches
                    yield event
                return
            position = _position(after, EventOrder.RECEIVED, field="after")
            since = position if isinstance(position, ObjectId) else position[0]
            # Listening first, then reading the log: whatever is stored from here on arrives live, and
            # what arrives live that the log already gave is skipped (by id). The announcement makes other
            # processes send their events here from now on (their writers look again after each insert).
            async with state.events.listen(accept) as live:
                await state.feed.heartbeat()
                replayed: set[ObjectId] = set()
                # Archived or not: the live stream knows no archive, and nothing may go missing.
                query = events_query(filter, include_archived=True)
                async for doc in service.received_since(query, since, limit=state.settings.max_event_replay):
                    replayed.add(doc.id)
                    info.context.loaders = Loaders(state.metrics)
                    yield Event.from_document(doc)
                async for event in live:
                    if event.doc.id <= since:
                        # Received at or before the position: not news to this subscriber. Another process's
                        # copy of an event stored before the subscription can still be on its way here.
                        continue
                    if replayed and event.doc.id in replayed:
                        replayed.discard(event.doc.id)  # each arrives live at most once
                        continue
                    info.context.loaders = Loaders(state.metrics)
                    yield event
        except SubscriberOverflow as overflow:
            raise SubscriptionDropped(f"subscription dropped: it {overflow}") from None
