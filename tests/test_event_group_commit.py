"""Group commit of the event log: writes that arrive while an insert is in flight go in the next insert
together (services/events/feed.py, FeedWriter.write). Each is stored once, reaches subscribers once in
its own order, and learns its own outcome as if it had been inserted alone."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pymongo.errors import BulkWriteError

from documents.event import Event, new_event_id
from resolvers.context import AppState
from services.events.feed import GROUP_EVENTS
from tests.conftest import Served
from tests.operations import document
from tests.waiting import wait_for
from tests.ws_client import Subscriber, last_comes_next, next_events

CLIENTS = 16
EACH = 5


def event_inserts(served: Served) -> int:
    return served.commands.tally("events")["insert"]


async def test_concurrent_mutations_share_inserts_and_every_event_arrives_once_in_order(
        app, served: Served, state: AppState, viewer: str, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen clients each log one event at a time. Which writes find an insert in flight depended on
    how long an insert took against the CPU each request spends around it, so a count of inserts passed
    or failed by the machine's speed: each insert of these events is held here until every client with
    a write left has sent it, and then the writes that share an insert follow from the design alone."""
    feed, admission = state.feed, app.state.admission
    slots = admission.concurrent  # mutations run at once (GRAPHLAKE_MAX_CONCURRENT_REQUESTS); the rest queue
    insert = feed._insert
    sizes: list[int] = []  # how many of the clients' writes each insert took, in order
    taken: dict[int, int] = {}  # client -> the index of its latest write an insert took
    # Why a held insert failed (the wait below timing out, say): the clients see only the masked
    # error the server answers, so their assertion shows this too.
    problems: list[BaseException] = []

    def clients_of(events: list[Event]) -> dict[int, int]:
        return dict(tuple(map(int, e.message.split("-"))) for e in events if e.event_type == "GROUPED")

    def waiting_writes() -> int:
        return sum(1 for waiting in feed._waiting if clients_of(waiting.events))

    async def held(events: list[Event], writes: list[int]) -> None:
        inserted = clients_of(events)
        if inserted:
            sizes.append(len(inserted))
            taken.update(inserted)
            left = sum(1 for k in range(CLIENTS) if k not in inserted and taken.get(k, -1) < EACH - 1)

            def all_sent() -> bool:
                # Every other client with a write left has sent it: those holding a slot wait for this
                # insert, the others for a slot. So what waits now is all that ever joins the next insert.
                waiting = waiting_writes()
                return waiting == min(slots - len(inserted), left) and waiting + admission.waiting == left

            try:
                await wait_for(all_sent, what="the other clients' writes to wait for this insert")
            except BaseException as error:
                problems.append(error)
                raise
        await insert(events, writes)

    monkeypatch.setattr(feed, "_insert", held)
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStream", {"filter": {"eventTypes": ["GROUPED"]}})
        await wait_for(lambda: state.events.has_subscribers, what="the subscription")
        served.commands.clear()

        async def client(k: int) -> None:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://graphlake.test",
                                         headers={"Authorization": f"Bearer {contributor}"}) as http:
                for i in range(EACH):  # one at a time, as an instrument logs
                    response = await http.post("/graphql", json={
                        "query": document("LogEvent"), "operationName": "LogEvent",
                        "variables": {"input": {"eventType": "GROUPED", "message": f"{k}-{i}", "source": {"nodeId": f"n{k}"}}}})
                    assert not response.json().get("errors"), (response.text[:300], problems)

        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
        mutations = CLIENTS * EACH
        # Each mutation's event and its AUDIT event are one write; alone, each write is one insert. The
        # first goes alone, and the other mutations holding a slot wait for it and go in the next insert
        # together; as that one is inserted, the slot the first gave back takes the next client's write,
        # and so on: every `slots` writes take two inserts rather than `slots`.
        assert sizes == [1, slots - 1] * (mutations // slots), sizes
        assert event_inserts(served) == len(sizes), served.commands.commands
        got = []
        while len(got) < mutations:
            message = await asyncio.wait_for(ws.receive(), 15)
            got.append(message["payload"]["data"]["events"])
    assert len({e["id"] for e in got}) == mutations  # none twice, none lost
    for k in range(CLIENTS):  # in order per source
        assert [e["message"] for e in got if e["source"]["nodeId"] == f"n{k}"] == [f"{k}-{i}" for i in range(EACH)]
    stored = await Event.get_pymongo_collection().count_documents({"event_type": "GROUPED"})
    assert stored == mutations


async def test_a_failing_write_fails_alone_and_the_writes_after_it_are_stored(served: Served, state: AppState) -> None:
    feed = state.feed
    taken = Event.model_construct(id=new_event_id(), event_type="ONCE", level=20, message="first")
    await feed.write([taken])  # numbered as it is stored: `taken.id` is the ID it was stored under

    def event(message: str) -> list[Event]:
        return [Event.model_construct(id=new_event_id(), event_type="ONCE", level=20, message=message)]

    served.commands.clear()
    in_flight = asyncio.create_task(feed.write(event("in flight")))
    await asyncio.sleep(0)  # its insert has started: the three below wait for it, then go in one insert
    assert feed.inserting
    # The clash keeps the ID it is given (`numbered`), which an event holds already: the database refuses it.
    before, clash, after = (asyncio.create_task(feed.write(events, numbered=True)) for events in (
        event("before"), [Event.model_construct(id=taken.id, event_type="ONCE", level=20, message="again")], event("after")))
    # Bounded: a write left waiting (not put back after the clash) fails here rather than hanging.
    results = await asyncio.wait_for(asyncio.gather(in_flight, before, clash, after, return_exceptions=True), 30)
    assert results[0] is None and results[1] is None and results[3] is None, results
    assert isinstance(results[2], BulkWriteError), results
    messages = sorted([e["message"] async for e in Event.get_pymongo_collection().find({"event_type": "ONCE"})])
    assert messages == ["after", "before", "first", "in flight"]
    # The one in flight; the three together, which stored "before" and stopped at the clash; "after" again.
    assert event_inserts(served) == 3, served.commands.commands
    assert not feed.inserting and not feed._waiting


async def test_a_write_refused_part_way_leaves_nothing_of_it(served: Served, state: AppState, viewer: str) -> None:
    """A write is stored whole or not at all: the events it had stored before the refused one are
    taken out again, and no subscriber is told of them; in a group, the writes before it stay."""
    feed = state.feed
    taken = Event.model_construct(id=new_event_id(), event_type="HALF", level=20, message="held")
    await feed.write([taken])

    def event(message: str) -> Event:
        return Event.model_construct(id=new_event_id(), event_type="HALF", level=20, message=message)

    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStream", {"filter": {"eventTypes": ["HALF"]}})
        await wait_for(lambda: state.events.has_subscribers, what="the subscription")
        # Written under the ID it is given (`numbered`), which an event holds already: the database refuses it.
        clash = Event.model_construct(id=taken.id, event_type="HALF", level=20, message="clash")
        with pytest.raises(BulkWriteError) as refused:
            await feed.write([event("a"), event("b"), clash, event("c")], numbered=True)
        assert [e["code"] for e in refused.value.details["writeErrors"]] == [11000]  # the clash, not another failure
        # In a group: the write before the clash stays, the one holding it goes whole.
        in_flight = asyncio.create_task(feed.write([event("in flight")]))
        await asyncio.sleep(0)
        assert feed.inserting
        before = asyncio.create_task(feed.write([event("before")]))
        holding = asyncio.create_task(feed.write([event("d"), clash], numbered=True))
        results = await asyncio.wait_for(asyncio.gather(in_flight, before, holding, return_exceptions=True), 30)
        assert results[:2] == [None, None] and isinstance(results[2], BulkWriteError), results
        got = [e["message"] for e in await next_events(ws, 2)]
        assert got == ["in flight", "before"]  # "a", "b" and "d" were never news
        await last_comes_next(ws, lambda: feed.write([event("last")]))  # nor anything after them
    messages = sorted([e["message"] async for e in Event.get_pymongo_collection().find({"event_type": "HALF"})])
    assert messages == ["before", "held", "in flight", "last"]


async def test_a_group_holds_at_most_group_events(served: Served, state: AppState) -> None:
    """Waiting writes are inserted together only up to GROUP_EVENTS events, so a group takes about as
    long as one big write (and the database's time limit per operation still fits it)."""
    feed = state.feed

    def events(count: int) -> list[Event]:
        return [Event.model_construct(id=new_event_id(), event_type="BIG", level=20, message=str(i)) for i in range(count)]

    served.commands.clear()
    in_flight = asyncio.create_task(feed.write(events(1)))
    await asyncio.sleep(0)
    assert feed.inserting
    size = GROUP_EVENTS * 3 // 5
    waiting = [asyncio.create_task(feed.write(events(size))) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(in_flight, *waiting), 60)
    assert await Event.get_pymongo_collection().count_documents({"event_type": "BIG"}) == 1 + 3 * size
    assert event_inserts(served) == 4, served.commands.commands  # the one in flight, then one group per write


def one(message: str, event_type: str = "THEN") -> list[Event]:
    return [Event.model_construct(id=new_event_id(), event_type=event_type, level=20, message=message)]


async def test_a_write_whose_caller_stops_waiting_is_stored_and_its_then_runs(state: AppState) -> None:
    """A request cancelled while its events wait for the insert in flight: they are stored anyway
    (the insert is not the request's to cancel), and what was to follow them (an alert) follows."""
    feed, ran = state.feed, []
    in_flight = asyncio.create_task(feed.write(one("in flight")))
    await asyncio.sleep(0)
    assert feed.inserting
    waiter = asyncio.create_task(feed.write(one("left"), then=[lambda: ran.append("left")]))
    await asyncio.sleep(0)  # it is queued behind the insert in flight
    waiter.cancel()
    await in_flight
    await wait_for(lambda: ran == ["left"], what="the cancelled writer's callback")
    assert waiter.cancelled()
    stored = [e["message"] async for e in Event.get_pymongo_collection().find({"event_type": "THEN"})]
    assert sorted(stored) == ["in flight", "left"]


async def test_a_group_cancelled_before_it_starts_answers_its_writes_and_the_writer_goes_on(state: AppState) -> None:
    """As the server stops, the group's task can be cancelled before its first step, which would
    otherwise leave its writes waiting forever and the writer busy (close() would wait 30 s)."""
    feed = state.feed
    # The leader's callback runs right after it started the group's task, before that task's first step.
    in_flight = asyncio.create_task(feed.write(one("leader"), then=[lambda: feed._group.cancel()]))
    await asyncio.sleep(0)
    assert feed.inserting
    grouped = asyncio.create_task(feed.write(one("grouped")))
    results = await asyncio.wait_for(asyncio.gather(in_flight, grouped, return_exceptions=True), 30)
    assert results[0] is None
    assert isinstance(results[1], RuntimeError) and "cancelled" in str(results[1]), results
    await wait_for(lambda: not feed.inserting, what="the writer idle again")
    await asyncio.wait_for(feed.write(one("after")), 30)  # the writer is usable: not stuck "inserting"
    stored = [e["message"] async for e in Event.get_pymongo_collection().find({"event_type": "THEN"})]
    assert sorted(stored) == ["after", "leader"]


async def test_what_follows_an_empty_write_inside_a_block_waits_for_the_block(state: AppState) -> None:
    feed, ran = state.feed, []
    async with feed.together():
        await feed.write(one("in the block"))
        await feed.write([], then=[lambda: ran.append("after")])
        assert ran == []  # the block's events are not stored yet
    assert ran == ["after"]
    stored = [e["message"] async for e in Event.get_pymongo_collection().find({"event_type": "THEN"})]
    assert stored == ["in the block"]
