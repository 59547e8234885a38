"""Keyed events: a batch sent again under its keys is found, not stored twice (services/events/keys.py).
Through GraphQL on the suite's real database, and through the served app for what races."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from pymongo.errors import NetworkTimeout

from documents.common import Ownership
from documents.event import Event
from resolvers.context import AppState
from services.events import alerts, keys
from services.events import log as log_service
from services.node_ids import NodeType, encode_id
from tests.conftest import Served
from tests.operations import Api, document, object_id
from tests.waiting import wait_for
from tests.ws_client import Subscriber, last_comes_next, next_events


def keyed(event_type: str = "PLATE_READ", **fields: object) -> dict:
    return {"eventType": event_type, "key": str(uuid.uuid4()), **fields}


# An unkeyed event logged after the ones a test watches (tests/ws_client.last_comes_next).
LAST = {"eventType": "PLATE_READ", "message": "last"}


async def log(api: Api, token: str, events: list[dict]) -> dict:
    return (await api.data("LogEvents", {"inputs": events}, token=token))["logEvents"]


async def stored_keys(event_type: str = "PLATE_READ") -> list[str]:
    return sorted([d.get("key") async for d in Event.get_pymongo_collection().find({"event_type": event_type})],
                  key=str)


async def test_a_keyed_batch_sent_twice_is_stored_once_and_answers_with_the_same_ids(api: Api, contributor: str) -> None:
    events = [keyed(message=f"plate {i}", data={"od600": i / 10}, source={"nodeId": "reader-1"},
                    timestamp=f"2026-01-0{i + 1}T00:00:00.123Z") for i in range(3)]
    first = await log(api, contributor, events)
    again = await log(api, contributor, events)
    assert (first["count"], first["stored"]) == (3, 3)
    assert (again["count"], again["stored"]) == (3, 0)
    assert again["ids"] == first["ids"]
    assert await stored_keys() == sorted(e["key"] for e in events)
    # Without a timestamp the first was stamped by the server; a resend (stamped later) is still the same event.
    bare = keyed(message="no clock")
    [bare_id] = (await log(api, contributor, [bare]))["ids"]
    await asyncio.sleep(0.01)
    assert (await log(api, contributor, [bare]))["ids"] == [bare_id]
    shown = await api.data("Events", {"filter": {"key": events[1]["key"]}}, token=contributor)
    assert [e["node"]["id"] for e in shown["events"]["edges"]] == [first["ids"][1]]
    assert shown["events"]["edges"][0]["node"]["key"] == events[1]["key"]
    one = await api.data("LogEvent", {"input": events[0]}, token=contributor)
    assert one["logEvent"]["id"] == first["ids"][0] and one["logEvent"]["message"] == "plate 0"


async def test_the_same_key_with_other_content_is_a_conflict_naming_it_and_stores_nothing(api: Api,
                                                                                       contributor: str) -> None:
    held = keyed(message="plate 7", data={"od600": 0.42, "well": "A1"})
    [held_id] = (await log(api, contributor, [held]))["ids"]
    same_data_other_order = {**held, "data": {"well": "A1", "od600": 0.42}}  # JSON objects: order is no content
    assert (await log(api, contributor, [same_data_other_order]))["ids"] == [held_id]
    for changed in ({"message": "plate 8"}, {"data": {"od600": 0.43, "well": "A1"}}, {"level": "ERROR"},
                    {"source": {"nodeId": "reader-2"}}, {"timestamp": "2026-01-01T00:00:00Z"}):
        fresh = keyed(message="new")
        error = await api.error("LogEvents", {"inputs": [fresh, {**held, **changed}]}, token=contributor)
        assert error["extensions"]["code"] == "CONFLICT", (changed, error)
        assert error["extensions"]["field"] == "inputs[1].key", error
        assert error["extensions"]["event"] == held_id
        assert await stored_keys() == [held["key"]], changed  # the new event of that batch was not stored either
    twice = keyed()
    error = await api.error("LogEvents", {"inputs": [twice, {**twice, "message": "x"}]}, token=contributor)
    assert error["extensions"] == {**error["extensions"], "code": "BAD_USER_INPUT", "field": "inputs[1].key"}
    for bad in ("", " ", "k" * 201):
        error = await api.error("LogEvent", {"input": {"eventType": "X", "key": bad}}, token=contributor)
        assert error["extensions"]["field"] == "input.key", error


async def test_a_mixed_batch_stores_the_new_and_finds_the_old(api: Api, contributor: str, state: AppState,
                                                              viewer: str, served: Served,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    alerted: list[str] = []

    async def notify(events: list[Event], *_: object) -> None:
        alerted.extend(e.message or "" for e in events)

    monkeypatch.setattr(alerts, "notify", notify)
    old = [keyed(message=f"old {i}", level="ERROR") for i in range(2)]
    first = await log(api, contributor, old)
    await wait_for(lambda: sorted(alerted) == ["old 0", "old 1"], what="the first alerts")
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStream", {"filter": {"eventTypes": ["PLATE_READ"]}})
        await wait_for(lambda: state.events.has_subscribers, what="the subscription")
        new = keyed(message="new", level="ERROR")
        batch = [old[0], new, {"eventType": "PLATE_READ", "message": "unkeyed"}, old[1]]
        logged = await log(api, contributor, batch)
        assert (logged["count"], logged["stored"]) == (4, 2)
        assert [logged["ids"][0], logged["ids"][3]] == first["ids"]
        assert len(set(logged["ids"])) == 4
        assert sorted(e["message"] for e in await next_events(ws, 2)) == ["new", "unkeyed"]  # the old ones are not news again
        await last_comes_next(ws, lambda: log(api, contributor, [LAST]))  # nothing came between
    messages = sorted([d["message"] async for d in Event.get_pymongo_collection().find({"event_type": "PLATE_READ"})])
    assert messages == ["last", "new", "old 0", "old 1", "unkeyed"]
    # The old ERROR events were alerted when stored; sent again they alert nothing, the new one once.
    await wait_for(lambda: "new" in alerted, what="the new event's alert")
    assert sorted(alerted) == ["new", "old 0", "old 1"]
    # Unkeyed events sent again are stored again, as before keys.
    plain = {"eventType": "PLATE_READ", "message": "unkeyed"}
    assert (await log(api, contributor, [plain]))["ids"] != logged["ids"][2:3]
    assert await Event.get_pymongo_collection().count_documents({"message": "unkeyed"}) == 2


async def log_events_over_http(app, token: str, inputs: list[dict]) -> dict:
    """logEvents sent as a client of its own would (its own connection, through the whole app): its answer."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://graphlake.test",
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.post("/graphql", json={"query": document("LogEvents"), "operationName": "LogEvents",
                                                      "variables": {"inputs": inputs}})
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]["logEvents"]


async def test_concurrent_senders_of_the_same_keys_store_each_once(app, contributor: str) -> None:
    """Clients retrying while their first attempt is still in flight: every call answers with the same
    ids, each event is stored once, whatever order the calls send the keys in."""
    events = [keyed(message=f"m{i}") for i in range(20)]

    async def send(order: list[dict]) -> list[str]:
        answer = await log_events_over_http(app, contributor, order)
        by_key = dict(zip([e["key"] for e in order], answer["ids"], strict=True))
        return [by_key[e["key"]] for e in events]

    for _ in range(3):
        orders = [events, events[::-1], events[5:] + events[:5], events[::2] + events[1::2]] * 2
        answers = await asyncio.gather(*(send(order) for order in orders))
        assert all(answer == answers[0] for answer in answers), answers
        assert await stored_keys() == sorted(e["key"] for e in events)
        assert sorted(await _ids()) == sorted(object_id(i) for i in answers[0])
        events = [keyed(message=f"m{i}") for i in range(20)]
        await Event.get_pymongo_collection().delete_many({"event_type": "PLATE_READ"})


async def _ids() -> list:
    return [d["_id"] async for d in Event.get_pymongo_collection().find({"event_type": "PLATE_READ"}, {"_id": 1})]


async def test_a_round_refused_part_way_keeps_its_keyed_events_and_counts_them_its_own(
        api: Api, contributor: str, served: Served, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another call stores one of a batch's keys between the batch's lookup and its write: the write
    is refused at that key, and what it stored before it stays. Taken out again, a resend looking in
    between was answered with ids that then named nothing (a review's reproduction: the take-out held
    here until the resend has answered). The next round finds those events by the ids it gave them:
    every sender answers with the same ids, each event is stored and delivered once."""
    first, second = keyed(message="one"), keyed(message="two")
    [second_id] = (await log(api, contributor, [second]))["ids"]  # the other call's
    lookups = first_lookup_empty(monkeypatch)  # it ran before `second` was stored
    collection_class = type(Event.get_pymongo_collection())
    real_delete, resent, deleting = collection_class.delete_many, asyncio.Event(), asyncio.Event()

    async def delete_after_the_resend(self, *args, **kwargs):
        if self.name == "events":
            deleting.set()
            await resent.wait()
        return await real_delete(self, *args, **kwargs)

    monkeypatch.setattr(collection_class, "delete_many", delete_after_the_resend)
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {contributor}"})
        await ws.subscribe("EventStream", {"filter": {"eventTypes": ["PLATE_READ"]}})
        await wait_for(lambda: state.events.has_subscribers, what="the subscription")
        sending = asyncio.create_task(log(api, contributor, [first, second]))
        # Until the refused round would take its events out, or has answered, keeping them.
        await asyncio.wait([sending, asyncio.create_task(deleting.wait())], return_when=asyncio.FIRST_COMPLETED,
                           timeout=15)
        resend = await log(api, contributor, [first, second])
        resent.set()
        answer = await sending
        # "one" once; "two" was the other call's, before the subscription.
        assert [event["message"] for event in await next_events(ws, 1)] == ["one"]
        await last_comes_next(ws, lambda: log(api, contributor, [LAST]))
    assert lookups() >= 3
    assert answer["ids"] == resend["ids"] and answer["ids"][1] == second_id
    assert answer["stored"] + resend["stored"] == 1
    assert sorted([d["_id"] async for d in Event.get_pymongo_collection().find({"key": first["key"]})]) == [
        object_id(answer["ids"][0])]


async def test_a_conflict_found_after_a_refused_round_names_what_that_round_stored(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key another call stored in between holds other content: the batch is a CONFLICT, and the
    events its refused round stored stay (a third sender may have been answered with their ids), named
    in the error, and counted in the metrics as stored; the batch sent again without the conflicting
    event finds them (and counts nothing again)."""
    assert state.metrics is not None

    def ingested() -> float:
        return state.metrics.registry.get_sample_value("graphlake_events_ingested_total", {"level": "INFO"}) or 0

    first, second = keyed(message="one"), keyed(message="two")
    await log(api, contributor, [{**second, "message": "two, as the other call has it"}])
    before = ingested()
    first_lookup_empty(monkeypatch)
    error = await api.error("LogEvents", {"inputs": [first, second]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and error["extensions"]["field"] == "inputs[1].key", error
    [kept] = error["extensions"]["stored"]
    assert [d["_id"] async for d in Event.get_pymongo_collection().find({"key": first["key"]})] == [object_id(kept)]
    assert ingested() - before == 1
    again = await log(api, contributor, [first])
    assert (again["ids"], again["stored"]) == ([kept], 0)
    assert ingested() - before == 1


def collect(state: AppState) -> tuple[list, asyncio.Task]:
    """What this process's live subscribers are handed, as they are handed it."""
    got: list = []

    async def run() -> None:
        async for event in state.events.subscribe():
            got.append(event)

    return got, asyncio.create_task(run())


def first_lookup_empty(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """The batch's first lookup ran before another call stored one of its keys; how many lookups ran."""
    lookups = 0
    real = keys._held

    async def held(wanted: list[str]) -> dict:
        nonlocal lookups
        lookups += 1
        return {} if lookups == 1 else await real(wanted)

    monkeypatch.setattr(keys, "_held", held)
    return lambda: lookups


def alerts_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []

    async def notify(events, *_):
        sent.extend(e.message or "" for e in events)

    monkeypatch.setattr(alerts, "notify", notify)
    return sent


async def test_what_a_call_stored_before_it_gave_up_is_delivered_alerted_and_keeps_its_id(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused at a key another call stored, with no time left to look again (UNAVAILABLE): the keyed
    event its write stored stays, and is news once, alerted once, under the id it went out with."""
    sent = alerts_sent(monkeypatch)
    first, second = keyed(message="one", level="ERROR"), keyed(message="two")
    await log(api, contributor, [second])
    first_lookup_empty(monkeypatch)
    monkeypatch.setattr(keys, "WAIT_SECONDS", 0.0)
    got, task = collect(state)
    await wait_for(lambda: state.events.has_subscribers, what="the subscription")
    error = await api.error("LogEvents", {"inputs": [first, second]}, token=contributor, status=503)
    assert error["extensions"]["code"] == "UNAVAILABLE" and error["extensions"]["field"] == "inputs"
    again = await log(api, contributor, [first, second])
    await wait_for(lambda: sent, what="the alert")
    task.cancel()
    [doc] = [d async for d in Event.get_pymongo_collection().find({"key": first["key"]})]
    assert again["stored"] == 0 and object_id(again["ids"][0]) == doc["_id"]
    assert sent == ["one"]
    [live] = [e for e in got if e.message == "one"]
    assert live.doc.id == doc["_id"]  # delivered as stored: a round after it never renumbers what went out


async def test_a_keyed_write_whose_answer_was_lost_after_it_stored_is_news_all_the_same(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database stored the batch and its answer never came (a time limit, a dropped connection):
    the call looks, finds it stored, and hands it to subscribers and alerts as any stored event;
    the resend finds it by key."""
    sent = alerts_sent(monkeypatch)
    collection_class = type(Event.get_pymongo_collection())
    real_insert = collection_class.insert_many
    cut = False

    async def insert_then_time_out(self, docs, *args, **kwargs):
        nonlocal cut
        result = await real_insert(self, docs, *args, **kwargs)
        if self.name == "events" and not cut and any(d.get("key") for d in docs):
            cut = True
            raise NetworkTimeout("timed out after the server stored it", 50)
        return result

    monkeypatch.setattr(collection_class, "insert_many", insert_then_time_out)
    got, task = collect(state)
    await wait_for(lambda: state.events.has_subscribers, what="the subscription")
    event = keyed(message="critical", level="CRITICAL")
    error = await api.error("LogEvents", {"inputs": [event]}, token=contributor, status=503)
    assert error["extensions"]["code"] == "UNAVAILABLE"
    again = await log(api, contributor, [event])
    await wait_for(lambda: sent, what="the alert")
    task.cancel()
    assert again["stored"] == 0 and [e.message for e in got if e.event_type == "PLATE_READ"] == ["critical"]
    assert sent == ["critical"]


async def audits(mutation: str = "logEvents") -> list[dict]:
    """The data of the AUDIT events of `mutation` (once the audit journal has stored them)."""
    return [json.loads(d["data"]["json"]) async for d in Event.get_pymongo_collection().find(
        {"event_type": "AUDIT"}, sort=[("_id", 1)]) if json.loads(d["data"]["json"]).get("mutation") == mutation]


async def test_every_sender_of_a_keyed_batch_is_audited_once_naming_every_event(app, state: AppState,
                                                                               contributor: str) -> None:
    """Senders of the same keys at once (a retry while the first attempt is still in flight): one
    stores the batch, the others find it. Each call is audited once, naming every event it answered
    with, stored or found (AuditTrail audits every call that succeeds, by the IDs it answers with),
    so none of the events is without an AUDIT event naming who logged it."""
    events = [keyed(message=f"m{i}") for i in range(5)]

    answers = await asyncio.gather(*(log_events_over_http(app, contributor, events) for _ in range(8)))
    assert sum(a["stored"] for a in answers) == 5 and all(a["ids"] == answers[0]["ids"] for a in answers)
    await state.feed.settled()
    entries = await audits()
    assert len(entries) == 8 and len({e["requestId"] for e in entries}) == 8  # one per call, none twice
    assert all(e["ids"] == answers[0]["ids"] and "failed" not in e for e in entries)


async def test_a_keyed_batch_stored_without_its_audit_entry_gets_one_from_its_resend(api: Api, contributor: str,
                                                                                   state: AppState) -> None:
    """The server stopped between storing a keyed batch (before the answer) and writing the call's
    AUDIT event (as the mutation ends): written here as the mutation's first half writes them,
    outside any mutation. The resend finds them, and its own AUDIT event names each of them once."""
    events = [keyed(message=f"m{i}", source={"userId": "robot-3"}) for i in range(3)]
    first_half = await log_service.log_events(state.feed, [log_service.NewEvent(
        event_type=e["eventType"], message=e["message"], key=e["key"], source=Ownership(user_id="robot-3"))
        for e in events], state.settings)
    await state.feed.settled()
    assert await audits() == []
    again = await log(api, contributor, events)
    assert again["stored"] == 0 and again["ids"] == [encode_id(NodeType.EVENT, e.id) for e in first_half.events]
    await state.feed.settled()
    [entry] = await audits()
    assert entry["ids"] == again["ids"] and "failed" not in entry


async def test_a_keyed_call_that_fails_after_it_stored_events_audits_them(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyed batch refused at a key another call stored meanwhile keeps what its write stored (a
    sender may hold those IDs), and then ends in CONFLICT (that key held with other content) or
    UNAVAILABLE (refused for WAIT_SECONDS); a write whose answer was lost after the database stored
    it is found stored, and the call fails. AuditTrail audits only calls that succeed: those events
    had no AUDIT event saying who logged them, unless a resend succeeded later. The failed call's
    own entry names them now (`failed`: its code), and only them, once."""
    first, second = keyed(message="one"), keyed(message="two")
    await log(api, contributor, [{**second, "message": "two, as the other call has it"}])
    first_lookup_empty(monkeypatch)
    error = await api.error("LogEvents", {"inputs": [first, second]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT"
    kept = error["extensions"]["stored"]

    third, fourth = keyed(message="three"), keyed(message="four")
    await log(api, contributor, [fourth])
    first_lookup_empty(monkeypatch)
    monkeypatch.setattr(keys, "WAIT_SECONDS", 0.0)
    error = await api.error("LogEvents", {"inputs": [third, fourth]}, token=contributor, status=503)
    assert error["extensions"]["code"] == "UNAVAILABLE"
    monkeypatch.undo()
    [doc] = [d async for d in Event.get_pymongo_collection().find({"key": third["key"]})]

    collection_class = type(Event.get_pymongo_collection())
    real_insert = collection_class.insert_many

    async def insert_then_time_out(self, docs, *args, **kwargs):
        result = await real_insert(self, docs, *args, **kwargs)
        if self.name == "events" and any(d.get("key") for d in docs):
            raise NetworkTimeout("timed out after the server stored it", 50)
        return result

    monkeypatch.setattr(collection_class, "insert_many", insert_then_time_out)
    lost = keyed(message="lost")
    error = await api.error("LogEvent", {"input": lost}, token=contributor, status=503)
    monkeypatch.undo()
    [lost_doc] = [d async for d in Event.get_pymongo_collection().find({"key": lost["key"]})]

    await state.feed.settled()
    failed = [(e["failed"], e["ids"]) for mutation in ("logEvents", "logEvent") for e in await audits(mutation)
              if "failed" in e]
    assert failed == [("CONFLICT", kept), ("UNAVAILABLE", [encode_id(NodeType.EVENT, doc["_id"])]),
                      ("UNAVAILABLE", [encode_id(NodeType.EVENT, lost_doc["_id"])])]
    # A resend that finds them is audited as any call that succeeds.
    again = await log(api, contributor, [first])
    await state.feed.settled()
    assert again["ids"] == kept and (await audits())[-1]["ids"] == kept
