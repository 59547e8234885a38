"""EventFilter.acceptor: a live subscription's filter, made once as it subscribes, applied in memory to
each event logged (what a query of the stored events selects: tests/test_events.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from documents.common import Ownership
from documents.event import Event as EventDocument
from documents.json_value import InvalidPredicate, StoredJson
from resolvers.common import JsonOp, JsonPredicate, OwnershipInput
from resolvers.events.types import EventFilter, EventOrigin, LogLevel

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event(event_type: str = "STEP", level: int = 20, data: object = None, **fields: object) -> EventDocument:
    # Built as the feed reads one back (model_construct: no database behind the document class here).
    defaults = {"source": Ownership(), "timestamp": NOW, "alert": False, "by_lake": None, "key": None}
    return EventDocument.model_construct(id=ObjectId(), event_type=event_type, level=level,
                                         data=StoredJson.encode({} if data is None else data), **{**defaults, **fields})


EVENTS = {
    "plain": event(),
    "warning": event(level=30),
    "custom level": event(level=35),
    "other type": event("OTHER"),
    "robot": event(source=Ownership(node_id="robot-7", lab_id="lab-2")),
    "other robot": event(source=Ownership(node_id="robot-8", lab_id="lab-2")),
    "earlier": event(timestamp=NOW - timedelta(seconds=1)),
    "alert": event(alert=True),
    "audit": event("AUDIT", by_lake=True),
    "keyed": event(key="k-1"),
    "one": event(data={"x": 1}),
    "true": event(data={"x": True}),
    "many": event(data={"x": [1.0, *(f"leaf {i}" for i in range(999))]}),  # within the 1,000 leaves indexed
}


@pytest.mark.parametrize(("filter", "accepted"), [
    (EventFilter(), set(EVENTS)),
    (EventFilter(min_level=LogLevel.WARNING), {"warning", "custom level"}),
    (EventFilter(event_types=["OTHER", "AUDIT"]), {"other type", "audit"}),
    (EventFilter(event_types=[]), set(EVENTS)),  # an empty list asks for nothing in particular
    (EventFilter(source=OwnershipInput(node_id="robot-7")), {"robot"}),
    (EventFilter(source=OwnershipInput(lab_id="lab-2")), {"robot", "other robot"}),
    (EventFilter(after=NOW), set(EVENTS) - {"earlier"}),
    (EventFilter(before=NOW + timedelta(microseconds=999)), {"earlier"}),  # compared at the millisecond stored
    (EventFilter(alert_only=True), {"alert"}),
    (EventFilter(origin=EventOrigin.LAKE), {"audit"}),
    (EventFilter(origin=EventOrigin.CLIENT), set(EVENTS) - {"audit"}),
    (EventFilter(key="k-1"), {"keyed"}),
    (EventFilter(data=[JsonPredicate(path="x", op=JsonOp.IN, value=[f"item {i}" for i in range(1000)] + [1])]),
     {"one", "many"}),  # 1.0 is 1; true is not
    (EventFilter(data=[JsonPredicate(path="x", op=JsonOp.NIN, value=[1])]), set(EVENTS) - {"one", "many"}),
    (EventFilter(data=[JsonPredicate(path="x", op=JsonOp.EXISTS, value=True),
                       JsonPredicate(path="x", op=JsonOp.REGEX, value="^leaf 99")]), {"many"}),
    (EventFilter(min_level=LogLevel.INFO, data=[JsonPredicate(path="x", op=JsonOp.EQ, value=True)]), {"true"}),
])
def test_a_filter_accepts_the_events_it_describes(filter: EventFilter, accepted: set[str]) -> None:
    accepts = filter.acceptor()
    assert {name for name, doc in EVENTS.items() if accepts(doc)} == accepted


def test_a_predicate_is_refused_as_the_acceptor_is_made() -> None:
    with pytest.raises(InvalidPredicate, match="RE2"):
        EventFilter(data=[JsonPredicate(path="x", op=JsonOp.REGEX, value="(?<=a)b")]).acceptor()
