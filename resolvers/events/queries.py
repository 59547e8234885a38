"""Reading events: one, the filtered timeline (newest first), utilization; and the live stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from documents.clock import utcnow
from documents.event import Event as EventDocument
from resolvers.common import json_filters
from resolvers.context import Info
from resolvers.events.types import Event, EventFilter, EventOrder, UtilizationGroup, UtilizationRow
from resolvers.loaders import Loaders
from resolvers.pagination import DESCENDING, paginate, sorted_list_connection
from resolvers.permissions import CanRead
from resolvers.relay import Connection
from services.broadcast import SubscriberOverflow
from services.errors import Unavailable
from services.events import log as service
from services.node_ids import NodeType, decode_object_id


def events_query(filter: EventFilter | None) -> dict:
    f = filter or EventFilter()
    return service.event_query(
        min_level=f.min_level.value if f.min_level else None, event_types=f.event_types,
        source=f.source.to_filter("source") if f.source else None, after=f.after, before=f.before,
        alert_only=bool(f.alert_only), data=json_filters("data", f.data, input_field="filter.data"),
        include_archived=f.include_archived,
    )


class SubscriptionDropped(Unavailable):
    """A live subscriber fell too far behind; others go on. Not a bug: the client may subscribe
    again (and read what it missed with `events(filter: {after: ...})`)."""


@strawberry.type
class EventQueries:
    @strawberry.field(permission_classes=[CanRead], description="An event by ID; null if none.")
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        doc = await info.context.loaders.by_id(EventDocument).load(decode_object_id(id, NodeType.EVENT))
        return Event.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="Events, newest first. Cursors stay valid while new events arrive.")
    async def events(self, info: Info, filter: EventFilter | None = None, first: int | None = None,
                     after: str | None = None, order_by: EventOrder = EventOrder.TIMESTAMP) -> Connection[Event]:
        # An event's id is made by the server as it stores the event: newest ids are the latest received.
        sort = [("timestamp", DESCENDING)] if order_by is EventOrder.TIMESTAMP else [("_id", DESCENDING)]
        return await paginate(
            EventDocument.get_pymongo_collection(), query=events_query(filter), sort=sort,
            page=info.context.page(first, after),
            to_node=lambda raw: Event.from_document(EventDocument.model_validate(raw)),
        )

    @strawberry.field(permission_classes=[CanRead], description="Busy time per node, workflow or user in [from, to), "
                                                                 "from start/stop event pairs (NODE_START/NODE_STOP, WORKFLOW_START/WORKFLOW_COMPLETE); "
                                                                 "groups in name order.")
    async def utilization(self, info: Info, from_: Annotated[datetime, strawberry.argument(name="from")],
                          to: datetime | None = None, group_by: UtilizationGroup = UtilizationGroup.NODE,
                          first: int | None = None, after: str | None = None) -> Connection[UtilizationRow]:
        page = info.context.page(first, after)
        rows = {r.group: UtilizationRow(group=r.group, busy_seconds=r.busy_seconds, sessions=r.sessions, utilization=r.utilization)
                for r in await service.utilization(from_, to or utcnow(), group_by.value)}

        async def load(groups: list[str]) -> list[UtilizationRow]:
            return [rows[g] for g in groups]

        return await sorted_list_connection(sorted(rows), page, load)


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(permission_classes=[CanRead], description="Events as they are logged, by any server process, "
                                                                        "in order per source. A subscriber that falls too far behind is dropped with an error.")
    async def events(self, info: Info, filter: EventFilter | None = None) -> AsyncGenerator[Event, None]:
        accept = (lambda event: filter.accepts(event.doc)) if filter else (lambda _: True)
        try:
            # Every subscriber receives the same Event object, so it is executed once per distinct
            # subscription (resolvers/fanout.py).
            async for event in info.context.state.events.subscribe(accept):
                info.context.loaders = Loaders(info.context.state.metrics)  # per event: the connection's context outlives caches
                yield event
        except SubscriberOverflow as overflow:
            raise SubscriptionDropped(f"subscription dropped: it {overflow}") from None
