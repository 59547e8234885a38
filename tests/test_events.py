"""Events: logging and querying, the live stream (Python and npm clients), overflow, alerts,
the audit trail, utilization and archival."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
import os
import shutil
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from bson import ObjectId
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from documents.event import Event
from graphlake import PROJECT_ROOT
from graphlake.local_services import free_port
from graphlake.settings import Settings
from resolvers.context import AppState
from resolvers.events.types import Event as EventType
from services.node_ids import NodeType, decode_object_id, encode_id
from tests import factories
from tests.conftest import Served
from tests.operations import Api
from tests.waiting import live_subscribers, wait_for
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, Subscriber, last_comes_next


def ev(event_type: str = "LOG_INFO", **fields: object) -> dict:
    return {"eventType": event_type, **fields}


async def log(api: Api, token: str, *events: dict) -> list[str]:
    return (await api.data("LogEvents", {"inputs": list(events)}, token=token))["logEvents"]["ids"]


async def lake_command(settings: Settings, tmp_path: Path, *args: str) -> tuple[bytes, bytes]:
    """Run `graphlake ARGS` on the suite's lake (stdout, stderr); it must succeed."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_MONGODB_URL": settings.mongodb_url.get_secret_value(), "GRAPHLAKE_DATABASE": settings.database,
           "GRAPHLAKE_DATA_DIR": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", *args, env=env, cwd=tmp_path,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    return out, err


async def types(api: Api, token: str, filter: dict | None = None) -> list[str]:
    data = await api.data("Events", {"filter": {"eventTypes": None, **(filter or {})}, "first": 100}, token=token)
    return [e["node"]["eventType"] for e in data["events"]["edges"] if e["node"]["eventType"] != "AUDIT"]


async def test_log_and_query_with_every_filter(api: Api, contributor: str) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await log(api, contributor,
              ev("NODE_START", level="INFO", source={"nodeId": "robot-1", "workflowId": "wf-9"}, timestamp=t0.isoformat(),
                 data={"temperature": 21.5, "tags": ["a"]}),
              ev("NODE_ERROR", level="ERROR", message="gripper jam", source={"nodeId": "robot-1"},
                 timestamp=(t0 + timedelta(minutes=1)).isoformat(), data={"code": 17}, traceId="t-1", spanId="s-1"),
              ev("LOG_DEBUG", level="DEBUG", source={"nodeId": "robot-2"}, timestamp=(t0 + timedelta(minutes=2)).isoformat()),
              ev("CUSTOM", level="WARNING", alert=True, timestamp=(t0 + timedelta(minutes=3)).isoformat(), data={"temperature": 80}))
    assert await types(api, contributor) == ["CUSTOM", "LOG_DEBUG", "NODE_ERROR", "NODE_START"]  # newest first
    assert await types(api, contributor, {"minLevel": "WARNING"}) == ["CUSTOM", "NODE_ERROR"]
    assert await types(api, contributor, {"eventTypes": ["NODE_START", "LOG_DEBUG"]}) == ["LOG_DEBUG", "NODE_START"]
    assert await types(api, contributor, {"source": {"nodeId": "robot-1"}}) == ["NODE_ERROR", "NODE_START"]
    assert await types(api, contributor, {"after": (t0 + timedelta(minutes=1)).isoformat(),
                                          "before": (t0 + timedelta(minutes=3)).isoformat()}) == ["LOG_DEBUG", "NODE_ERROR"]
    assert await types(api, contributor, {"alertOnly": True}) == ["CUSTOM"]
    assert await types(api, contributor, {"data": [{"path": "temperature", "op": "GT", "value": 50}]}) == ["CUSTOM"]
    assert await types(api, contributor, {"data": [{"path": "tags", "op": "CONTAINS", "value": "a"}]}) == ["NODE_START"]
    error_event = (await api.data("Events", {"filter": {"eventTypes": ["NODE_ERROR"]}}, token=contributor))["events"]["edges"][0]["node"]
    assert error_event["level"] == "ERROR" and error_event["levelNumber"] == 40 and error_event["traceId"] == "t-1"
    assert error_event["data"] == {"code": 17} and error_event["source"]["nodeId"] == "robot-1"
    fetched = (await api.data("Event", {"id": error_event["id"]}, token=contributor))["event"]
    assert fetched["message"] == "gripper jam"


async def test_origin_tells_what_clients_logged_from_the_lakes_own_events(api: Api, contributor: str, admin: str) -> None:
    await log(api, contributor, ev("NODE_START"))
    await api.data("StoreValue", {"input": {"name": "reading", "value": {"plate": 7}}}, token=contributor)  # AUDIT
    await log(api, contributor, ev("NODE_STOP"))

    async def listed(origin: str | None, order: str) -> list[tuple[str, str]]:
        data = await api.data("Events", {"filter": {"origin": origin}, "first": 50, "orderBy": order}, token=admin)
        return [(e["node"]["eventType"], e["node"]["origin"]) for e in data["events"]["edges"]]

    for order in ("TIMESTAMP", "RECEIVED"):
        assert await listed("CLIENT", order) == [("NODE_STOP", "CLIENT"), ("NODE_START", "CLIENT")]
        lake = await listed("LAKE", order)
        assert lake and {t for t, _ in lake} == {"AUDIT"} and {o for _, o in lake} == {"LAKE"}
        assert len(await listed(None, order)) == 2 + len(lake)


async def test_a_subscription_for_client_events_gets_no_audit(api: Api, served: Served, state: AppState, viewer: str,
                                                             contributor: str) -> None:
    async with Subscriber(served.ws_url, TRANSPORT_WS) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStream", {"filter": {"origin": "CLIENT"}})
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the subscription to listen")
        await api.data("StoreValue", {"input": {"name": "reading", "value": 1}}, token=contributor)  # its AUDIT first
        await log(api, contributor, ev("NODE_START"))
        got = await asyncio.wait_for(ws.receive(), 10)
        assert (got["payload"]["data"]["events"]["eventType"], got["payload"]["data"]["events"]["origin"]) == (
            "NODE_START", "CLIENT")
        # Not the AUDIT of that LogEvents either: a later client event is the next message.
        await last_comes_next(ws, lambda: log(api, contributor, ev("NODE_STOP", message="last")))


async def test_a_batch_is_checked_whole(api: Api, contributor: str, settings: Settings) -> None:
    before = await Event.find({"event_type": {"$ne": "AUDIT"}}).count()
    error = await api.error("LogEvents", {"inputs": [ev(), ev(""), ev()]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].eventType"}
    limit = settings.max_events_per_batch
    settings.max_events_per_batch = 3
    try:
        error = await api.error("LogEvents", {"inputs": [ev()] * 4}, token=contributor)
    finally:
        settings.max_events_per_batch = limit
    assert error["extensions"]["field"] == "inputs" and "at most 3" in error["message"]
    # Graphlake's own event types cannot be forged: the audit trail and status notifications rely on them.
    # Not in another case, nor with a look-alike or invisible character: event types are plain ASCII.
    for reserved in ("AUDIT", "ASSET_STATUS", "ALERT_DELIVERY_FAILED", "BACKUP_COMPLETED", "backup_failed", "audit",
                     "Asset_Status", "AUDIT\u200b",
                     "\u0410UDIT", "AU DIT", "-AUDIT"):
        error = await api.error("LogEvents", {"inputs": [ev(), ev(reserved)]}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].eventType"}, reserved
    assert await Event.find({"event_type": {"$ne": "AUDIT"}}).count() == before
    await log(api, contributor, ev("run.started:v2/step_1-a"))  # the whole character set is taken


async def test_cursors_stay_stable_while_events_arrive(api: Api, contributor: str) -> None:
    await log(api, contributor, *[ev("TICK", message=str(i)) for i in range(6)])
    first = (await api.data("Events", {"filter": {"eventTypes": ["TICK"]}, "first": 3}, token=contributor))["events"]
    await log(api, contributor, *[ev("TICK", message=f"new{i}") for i in range(3)])
    rest = (await api.data("Events", {"filter": {"eventTypes": ["TICK"]}, "first": 10,
                                      "after": first["pageInfo"]["endCursor"]}, token=contributor))["events"]
    seen = [e["node"]["message"] for e in first["edges"] + rest["edges"]]
    assert sorted(seen) == [str(i) for i in range(6)]  # new events came before page one: nothing shifts


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_python_subscriber_gets_each_matching_event_once_in_order(
    api: Api, served: Served, state: AppState, viewer: str, contributor: str, protocol: str
) -> None:
    async with Subscriber(served.ws_url, protocol) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe("EventStream", {"filter": {"source": {"nodeId": "robot-7"}, "minLevel": "INFO"}})
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the subscription to listen")
        await log(api, contributor, *[ev("STEP", message=str(i), source={"nodeId": "robot-7"}) for i in range(20)],
                  ev("STEP", message="other node", source={"nodeId": "robot-8"}), ev("STEP", level="DEBUG", source={"nodeId": "robot-7"}))
        await log(api, contributor, ev("STEP", message="last", source={"nodeId": "robot-7"}))
        got = [await asyncio.wait_for(ws.receive(), 10) for _ in range(21)]
        # Nothing unmatched, nothing twice: the event logged after them all comes right after the 20.
        assert [m["payload"]["data"]["events"]["message"] for m in got] == [*(str(i) for i in range(20)), "last"]


async def test_npm_graphql_ws_client_receives_live_events(api: Api, served: Served, state: AppState, viewer: str,
                                                          contributor: str) -> None:
    node = shutil.which("node")
    modules = PROJECT_ROOT / "assets" / "node_modules"
    assert node and (modules / "ws").is_dir(), "make installs Node.js packages into assets/node_modules"
    process = await asyncio.create_subprocess_exec(
        node, str(PROJECT_ROOT / "tests" / "js" / "subscribe_events.cjs"), served.ws_url, viewer, "5", "JS_CHECK",
        env={**os.environ, "ASSETS_NODE_MODULES": str(modules)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert (await asyncio.wait_for(process.stdout.readline(), 20)).strip() == b"READY"  # connected
        # Live events reach only subscriptions already listening, and the client's subscribe message may
        # land any time after it connected: the server's count says when it does.
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the npm client's subscription to listen")
        await log(api, contributor, *[ev("JS_CHECK", message=f"m{i}", source={"nodeId": "n"}) for i in range(5)])
        lines = [json.loads(await asyncio.wait_for(process.stdout.readline(), 10)) for _ in range(5)]
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
    assert [line["message"] for line in lines] == [f"m{i}" for i in range(5)]


async def test_slow_subscriber_is_dropped_and_others_continue(api: Api, served: Served, state: AppState,
                                                             viewer: str, contributor: str) -> None:
    async with Subscriber(served.ws_url) as healthy, Subscriber(served.ws_url) as slow:
        await healthy.connect({"Authorization": f"Bearer {viewer}"})
        await healthy.subscribe("EventStream", {"filter": {"eventTypes": ["BURST"]}})
        # Its queue is sized as it starts to listen: with the normal size, so before the change below.
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the healthy subscription to listen")
        size = state.events.queue_size
        state.events.queue_size = 5  # the next subscriber gets a tiny queue
        try:
            await slow.connect({"Authorization": f"Bearer {viewer}"})
            await slow.subscribe("EventStream", {"filter": {"eventTypes": ["BURST"]}})
            await wait_for(lambda: live_subscribers(state.events) == 2, what="the slow subscription to listen")
        finally:
            state.events.queue_size = size
        await log(api, contributor, *[ev("BURST", message=str(i)) for i in range(200)])
        got = [await asyncio.wait_for(healthy.receive(), 10) for _ in range(200)]
        assert [m["payload"]["data"]["events"]["message"] for m in got] == [str(i) for i in range(200)]
        messages = []
        while True:
            message = await asyncio.wait_for(slow.receive(), 10)
            messages.append(message)
            if message["type"] != "next" or message["payload"].get("errors"):
                break
        final = messages[-1]
        errors = final["payload"]["errors"] if final["type"] == "next" else final["payload"]
        assert "dropped" in errors[0]["message"] and "behind" in errors[0]["message"]
        assert errors[0]["extensions"]["code"] == "UNAVAILABLE"  # operational, not a bug
        assert len(messages) - 1 < 200


async def test_a_queue_counts_only_the_events_its_filter_matches(api: Api, served: Served, state: AppState,
                                                                viewer: str, contributor: str) -> None:
    """One large logEvents of unrelated events must not drop an idle subscriber: what it does not
    want never enters its queue."""
    async with Subscriber(served.ws_url) as idle:
        size = state.events.queue_size
        state.events.queue_size = 5  # far fewer than the unrelated burst below
        try:
            await idle.connect({"Authorization": f"Bearer {viewer}"})
            await idle.subscribe("EventStream", {"filter": {"eventTypes": ["WANTED"]}})
            await wait_for(lambda: live_subscribers(state.events) == 1, what="the idle subscription to listen")
        finally:
            state.events.queue_size = size
        await log(api, contributor, *[ev("NOISE", message=str(i)) for i in range(50)])
        await log(api, contributor, ev("WANTED", message="still here"))
        message = await asyncio.wait_for(idle.receive(), 10)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        assert message["payload"]["data"]["events"]["message"] == "still here"


async def test_live_event_is_executed_once_per_distinct_subscription(
    api: Api, served: Served, state: AppState, viewer: str, admin: str, contributor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    executions: list[str] = []
    execute = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counting(self, serially=None):
        if isinstance(self.root_value, EventType):
            executions.append(self.root_value.message)
        return execute(self, serially)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counting)
    narrow = "subscription EventStream($filter: EventFilter) { events(filter: $filter) { eventType message } }"
    same = {"filter": {"eventTypes": ["FANOUT"]}}
    async with Subscriber(served.ws_url) as a, Subscriber(served.ws_url) as b, Subscriber(served.ws_url) as c:
        await a.connect({"Authorization": f"Bearer {viewer}"})
        await b.connect({"Authorization": f"Bearer {viewer}"})
        await c.connect({"Authorization": f"Bearer {admin}"})
        await a.subscribe("EventStream", same)
        await a.subscribe("EventStream", same)
        await b.subscribe("EventStream", same)  # same as both of a's: shares their result
        await b.subscribe("EventStream", same, query=narrow)  # another selection
        await b.subscribe("EventStream", {"filter": {"eventTypes": ["FANOUT", "OTHER"]}})  # other variables
        await c.subscribe("EventStream", same)  # another role
        await wait_for(lambda: live_subscribers(state.events) == 6, what="the six subscriptions to listen")
        await log(api, contributor, *[ev("FANOUT", message=f"m{i}", source={"nodeId": "n"}) for i in range(3)])
        got = {name: [await asyncio.wait_for(ws.receive(), 10) for _ in range(n * 3)] for name, ws, n in
               (("a", a, 2), ("b", b, 3), ("c", c, 1))}
    wide = [m["payload"]["data"]["events"] for m in got["a"] + got["c"]]
    assert all(e["source"] == {"nodeId": "n", "workflowId": None} and e["message"] in ("m0", "m1", "m2") for e in wide)
    narrow_payloads = [m["payload"]["data"]["events"] for m in got["b"] if m["id"] == "2"]
    assert narrow_payloads == [{"eventType": "FANOUT", "message": f"m{i}"} for i in range(3)]
    # Six subscriptions, four distinct (query, variables, role): four executions per event, not six.
    assert sorted(executions) == sorted([f"m{i}" for i in range(3)] * 4)


@pytest.fixture
async def alert_sinks(settings: Settings) -> dict:
    """A local SMTP server and a webhook receiver, and settings pointing alerts at them."""
    mails: list = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            mails.append(envelope)
            return "250 OK"

    smtp = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    hooks: list[tuple[bytes, dict]] = []
    release = asyncio.Event()

    async def receive(request: Request) -> Response:
        hooks.append((await request.body(), dict(request.headers)))
        if request.query_params.get("wait"):
            await release.wait()
        return Response("ok")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", receive, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, what="the webhook receiver to start")
    saved = settings.model_dump()
    settings.alert_smtp_host, settings.alert_smtp_port, settings.alert_smtp_starttls = "127.0.0.1", smtp.port, False
    settings.alert_email_to = ["oncall@lab.example"]
    settings.alert_webhooks = [f"http://127.0.0.1:{port}/hook"]
    settings.alert_webhook_secret = SecretStr("hook-secret")
    try:
        yield {"mails": mails, "hooks": hooks, "port": port, "release": release}
    finally:
        release.set()
        for key in ("alert_smtp_host", "alert_smtp_port", "alert_smtp_starttls", "alert_email_to", "alert_webhooks",
                    "alert_webhook_secret"):
            setattr(settings, key, saved[key])
        server.should_exit = True
        await task
        smtp.stop()


async def test_alerts_email_and_signed_webhooks(api: Api, contributor: str, alert_sinks: dict) -> None:
    await log(api, contributor, ev("LOG_INFO", message="routine"),
              ev("FURNACE", level="CRITICAL", message="overheat", source={"nodeId": "furnace-2", "workflowId": "wf-1"}),
              ev("NOTE", level="INFO", alert=True, message="look at this"))
    await wait_for(lambda: alert_sinks["mails"] and alert_sinks["hooks"], what="an email and a webhook")
    mail = email.message_from_bytes(alert_sinks["mails"][0].content)
    assert alert_sinks["mails"][0].rcpt_tos == ["oncall@lab.example"] and "FURNACE" in mail["Subject"]
    body, headers = alert_sinks["hooks"][0]
    expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert headers["x-graphlake-signature"] == expected
    assert sorted(a["eventType"] for a in json.loads(body)["alerts"]) == ["FURNACE", "NOTE"]
    # The source as the API names it (a receiver reads `source.nodeId`, as of the event), in both.
    [furnace] = [a for a in json.loads(body)["alerts"] if a["eventType"] == "FURNACE"]
    assert furnace["source"] == {"nodeId": "furnace-2", "workflowId": "wf-1"}
    assert furnace in json.loads(mail.get_payload())["alerts"]
    # Each names its event by the id the API knows: a receiver looks it up (or resumes from it).
    for alert in json.loads(body)["alerts"]:
        assert (await api.data("Event", {"id": alert["id"]}, token=contributor))["event"]["eventType"] == alert["eventType"]


async def test_alert_delivery_never_blocks_and_failures_are_logged(api: Api, contributor: str, alert_sinks: dict,
                                                                   settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import retries

    monkeypatch.setattr(retries, "ALERT_FIRST_WAIT", 0.01)
    closed, port = free_port(), alert_sinks["port"]
    settings.alert_webhooks = [f"http://127.0.0.1:{port}/hook?wait=1",
                               f"http://127.0.0.1:{port}/services/T0/B0/SECRET-PATH?key=hunter2",  # answers 404
                               f"http://127.0.0.1:{closed}/services/T1/B1/SECRET-PATH?key=hunter2"]
    settings.alert_smtp_host = None
    # The first webhook hangs until released below: logging returns all the same.
    ids = await log(api, contributor, ev("FAULT", level="ERROR"))
    assert len(ids) == 1
    await wait_for(lambda: len(alert_sinks["hooks"]) == 1, what="the first webhook")  # still in flight
    alert_sinks["release"].set()

    async def failures_logged() -> bool:
        return await Event.find({"event_type": "ALERT_DELIVERY_FAILED"}).count() == 2

    await wait_for(failures_logged, what="two ALERT_DELIVERY_FAILED events to be logged")
    failed = {e.data.decode()["target"]: e for e in await Event.find({"event_type": "ALERT_DELIVERY_FAILED"}).to_list()}
    # Named by their place and host: a webhook's path and query are often its credential, and any reader may read events.
    assert sorted(failed) == [f"webhook 2 (http://127.0.0.1:{port})", f"webhook 3 (http://127.0.0.1:{closed})"]
    assert failed[f"webhook 2 (http://127.0.0.1:{port})"].data.decode()["error"] == "answered HTTP 404"
    for event in failed.values():
        assert event.level == 30 and "SECRET" not in event.model_dump_json() and "hunter2" not in event.model_dump_json()
        assert event.data.decode()["events"] == ids  # the ids logEvents answered, which the API takes


async def test_webhook_urls_stay_out_of_the_server_log(api: Api, contributor: str, alert_sinks: dict, settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A webhook's URL is its credential: httpx wrote each one whole in an INFO line of the server's log."""
    import logging

    from graphlake.logs import configure_logging
    from storage import retries

    monkeypatch.setattr(retries, "ALERT_FIRST_WAIT", 0.01)
    port = alert_sinks["port"]
    settings.alert_webhooks = [f"http://127.0.0.1:{port}/hook?key=hunter2",  # delivered
                               f"http://127.0.0.1:{port}/services/T0/B0/SECRET-PATH"]  # answers 404
    settings.alert_smtp_host = None
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "pymongo")}
    configure_logging("INFO")  # as `graphlake serve` does
    try:
        await log(api, contributor, ev("FAULT", level="ERROR"))
        await wait_for(lambda: len(alert_sinks["hooks"]) == 1, what="the webhook")

        async def failure_logged() -> bool:
            return await Event.find({"event_type": "ALERT_DELIVERY_FAILED"}).count() == 1

        await wait_for(failure_logged, what="the failed webhook's event")
    finally:
        root.handlers[:], _, levels = saved
        root.setLevel(saved[1])
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    # The receiver runs in this process too: its own access lines are the receiver's log, not the server's.
    logged = "\n".join(line for line in capsys.readouterr().err.splitlines() if "uvicorn.access" not in line)
    assert "alert delivery to webhook 2" in logged  # the failure is said, by the webhook's place and host
    assert "hunter2" not in logged and "SECRET-PATH" not in logged, logged


async def test_a_mutations_events_and_its_audit_are_one_insert(api: Api, served: Served, contributor: str,
                                                                 viewer: str) -> None:
    await api.data("Me", token=contributor)  # the token lookup, remembered from here on
    served.commands.clear()
    await log(api, contributor, ev("A"), ev("B"))
    assert served.commands.tally("events") == {"insert": 1}, served.commands.commands
    stored = (await api.data("Events", {"first": 10}, token=viewer))["events"]["edges"]
    assert sorted(e["node"]["eventType"] for e in stored) == ["A", "AUDIT", "B"]


async def test_events_held_for_one_write_are_stored_even_when_the_block_fails(state: AppState) -> None:
    """What a mutation writes (an upload's ASSET_STATUS, say) is held until its block ends, failed or not."""
    with pytest.raises(RuntimeError):
        async with state.feed.together():
            await state.feed.write([Event(event_type="BEFORE_THE_FAILURE", level=20)])
            assert await Event.find({"event_type": "BEFORE_THE_FAILURE"}).count() == 0  # held back
            raise RuntimeError("the mutation failed after its events")
    assert await Event.find({"event_type": "BEFORE_THE_FAILURE"}).count() == 1


async def test_logged_events_are_stored_before_the_answer_even_in_a_mutation(state: AppState,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """logEvents answers with its events' IDs, made as they are stored: so they are stored before it
    answers, not held with the mutation's AUDIT event, and alerted once stored."""
    from services.events import alerts
    from services.events import log as service

    fired: list[list[str]] = []

    async def notify(events, writer, settings) -> None:
        fired.append([e.event_type for e in events])

    monkeypatch.setattr(alerts, "notify", notify)
    async with state.feed.together():
        logged = await service.log_events(state.feed, [service.NewEvent(event_type="MELTDOWN", level=50)], state.settings)
        [stored] = await Event.find({"event_type": "MELTDOWN"}).to_list()
        assert [e.id for e in logged.events] == [stored.id]
    await wait_for(lambda: fired, what="the alert, once the event is stored")
    assert fired == [["MELTDOWN"]]


async def test_events_reach_the_log_and_subscribers_in_id_order(api: Api, served: Served, state: AppState,
                                                               contributor: str) -> None:
    """Keyed batches (a lookup by key before their write) and plain ones logged at once, on one
    process: each event's ID is made as it is stored, so the live stream comes in ID order and a
    resume from any event it gave (`after`, `newerThan`) gives exactly those received after it. Made
    before the lookup, a keyed event went in after plain ones made later, and a resume from one of
    those missed it."""
    race = {"eventTypes": ["RACE"]}
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {contributor}"})
        await ws.subscribe("EventStream", {"filter": race})
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the subscription to listen")

        async def one(name: str, key: str | None) -> None:
            await api.data("LogEvents", {"inputs": [{"eventType": "RACE", "message": name,
                                                     **({"key": key} if key else {})}]}, token=contributor)

        await asyncio.gather(*(one(f"k{i}", f"race-{uuid.uuid4()}") for i in range(30)),
                             *(one(f"p{i}", None) for i in range(30)))
        live = [(await asyncio.wait_for(ws.receive(), 10))["payload"]["data"]["events"]["id"] for _ in range(60)]
    assert live == sorted(live, key=lambda i: decode_object_id(i, NodeType.EVENT)), "the live stream is not in ID order"
    for cut in (5, 20, 41):  # a resume from an event received: exactly the ones received after it
        newer = (await api.data("Events", {"filter": race, "newerThan": live[cut], "first": 100, "orderBy": "RECEIVED",
                                           "direction": "ASC"}, token=contributor))["events"]
        assert [e["node"]["id"] for e in newer["edges"]] == live[cut + 1:]
        async with Subscriber(served.ws_url) as ws:
            await ws.connect({"Authorization": f"Bearer {contributor}"})
            await ws.subscribe("EventStreamFrom", {"filter": race, "after": live[cut]})
            replayed = [(await asyncio.wait_for(ws.receive(), 10))["payload"]["data"]["events"]["id"]
                        for _ in live[cut + 1:]]
        assert replayed == live[cut + 1:]


async def test_every_mutation_is_audited_without_secrets(api: Api, admin: str, contributor: str) -> None:
    stored = (await api.data("StoreValue", {"input": {"name": "secret-recipe", "value": {"pepper": 3}}}, token=contributor))
    created = (await api.data("CreateApiToken", {"input": {"name": "robot", "role": "VIEWER"}}, token=admin))["createApiToken"]
    await api.error("StoreValue", {"input": {"name": "", "value": 1}}, token=contributor)  # failed: not audited
    asset_id = stored["storeValue"]["id"]
    coll = (await api.data("CreateCollection", {"input": {"name": "audited"}}, token=contributor))["createCollection"]
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": asset_id}]}},
                   token=contributor)
    await api.data("RemoveFromCollection", {"collectionId": coll["id"], "assetIds": [asset_id]}, token=contributor)
    audits = (await api.data("Events", {"filter": {"eventTypes": ["AUDIT"]}, "first": 50}, token=admin))["events"]["edges"]
    by_mutation = {a["node"]["data"]["mutation"]: a["node"] for a in audits}
    assert set(by_mutation) == {"storeValue", "createApiToken", "createCollection", "addToCollection", "removeFromCollection"}
    # IDs given as arguments, at the top level and inside input objects, are named too.
    for mutation in ("addToCollection", "removeFromCollection"):
        assert {asset_id, coll["id"]} <= set(by_mutation[mutation]["data"]["ids"])
    assert stored["storeValue"]["id"] in by_mutation["storeValue"]["data"]["ids"]
    assert by_mutation["storeValue"]["data"]["token"].startswith("contributor-")
    assert created["token"]["id"] in by_mutation["createApiToken"]["data"]["ids"]
    everything = json.dumps([a["node"] for a in audits])
    assert created["secret"] not in everything and "pepper" not in everything


async def test_an_audit_entry_says_which_way_a_switch_went(api: Api, contributor: str, admin: str) -> None:
    """Verifying and un-verifying were the same entry: a mutation's Boolean arguments are recorded."""
    (datum,) = await factories.datums(api, contributor, 1, roles=("image",))
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    (record,) = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": datum["roles"][0]["asset"]["id"], "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"}]},
        token=contributor))["addAnnotations"]["records"]
    for verified in (True, False):
        await api.data("VerifyAnnotations", {"ids": [record["id"]], "verified": verified}, token=contributor)
    audits = (await api.data("Events", {"filter": {"eventTypes": ["AUDIT"]}, "first": 50}, token=admin))["events"]["edges"]
    verifies = [a["node"]["data"] for a in audits if a["node"]["data"]["mutation"] == "verifyAnnotations"]
    assert [v["arguments"] for v in verifies] == [{"verified": False}, {"verified": True}]  # newest first
    assert all(v["ids"] == [record["id"]] and v["idCount"] == 1 for v in verifies)
    assert all("arguments" not in a["node"]["data"] for a in audits if a["node"]["data"]["mutation"] == "addAnnotations")


async def test_utilization_from_start_stop_pairs(api: Api, contributor: str, viewer: str, settings: Settings,
                                                 tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)

    def at(minutes: int) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat()

    await log(api, contributor,
              ev("NODE_START", source={"nodeId": "a"}, timestamp=at(-30)),   # started before the window
              ev("NODE_STOP", source={"nodeId": "a"}, timestamp=at(30)),
              ev("NODE_START", source={"nodeId": "a"}, timestamp=at(40)),
              ev("NODE_STOP", source={"nodeId": "a"}, timestamp=at(50)),
              ev("NODE_START", source={"nodeId": "b"}, timestamp=at(90)),    # still running at the end
              ev("WORKFLOW_START", source={"workflowId": "w1", "userId": "ann"}, timestamp=at(0)),
              ev("WORKFLOW_COMPLETE", source={"workflowId": "w1", "userId": "ann"}, timestamp=at(60)))
    window = {"from": at(0), "to": at(120)}
    nodes = {e["node"]["group"]: e["node"]
             for e in (await api.data("Utilization", {**window, "groupBy": "NODE"}, token=viewer))["utilization"]["edges"]}
    assert nodes["a"]["busySeconds"] == 40 * 60 and nodes["a"]["sessions"] == 2
    assert nodes["b"]["busySeconds"] == 30 * 60 and abs(nodes["b"]["utilization"] - 0.25) < 1e-9
    users = (await api.data("Utilization", {**window, "groupBy": "USER"}, token=viewer))["utilization"]
    assert [e["node"] for e in users["edges"]] == [{"group": "ann", "busySeconds": 3600.0, "sessions": 1, "utilization": 0.5}]
    first = (await api.data("Utilization", {**window, "groupBy": "NODE", "first": 1}, token=viewer))["utilization"]
    assert [e["node"]["group"] for e in first["edges"]] == ["a"] and first["totalCount"] == len(nodes)
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await api.data("Utilization", {**window, "groupBy": "NODE", "after": first["pageInfo"]["endCursor"]},
                           token=viewer))["utilization"]
    assert [e["node"]["group"] for e in rest["edges"]] == sorted(nodes)[1:] and not rest["pageInfo"]["hasNextPage"]

    out, _ = await lake_command(settings, tmp_path, "events", "utilization", "--from", at(0), "--to", at(120),
                                "--group-by", "node", "--csv")
    assert out.decode().splitlines() == ["group,busy_seconds,sessions,utilization", "a,2400.000,2,0.333333",
                                         "b,1800.000,1,0.250000"]


async def test_utilization_reads_madsci_event_names(api: Api, contributor: str, viewer: str) -> None:
    """MADSci's clients send its EventType values, in lower case, and end a workflow with workflow_abort."""
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)

    def at(minutes: int) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat()

    await log(api, contributor,
              ev("node_start", source={"nodeId": "n1"}, timestamp=at(0)), ev("node_stop", source={"nodeId": "n1"}, timestamp=at(20)),
              ev("workflow_start", source={"workflowId": "w1", "userId": "bo"}, timestamp=at(10)),
              ev("workflow_abort", source={"workflowId": "w1", "userId": "bo"}, timestamp=at(20)),
              ev("experiment_start", source={"experimentId": "e1"}, timestamp=at(0)),
              ev("EXPERIMENT_COMPLETE", source={"experimentId": "e1"}, timestamp=at(30)),
              ev("experiment_start", source={"experimentId": "e2"}, timestamp=at(50)))  # still running at the end
    window = {"from": at(0), "to": at(60)}

    async def busy(group_by: str) -> dict[str, float]:
        page = (await api.data("Utilization", {**window, "groupBy": group_by}, token=viewer))["utilization"]
        return {e["node"]["group"]: e["node"]["busySeconds"] for e in page["edges"]}

    assert await busy("NODE") == {"n1": 20 * 60}
    assert await busy("WORKFLOW") == {"w1": 10 * 60}  # aborted: not running to the window's end
    assert await busy("USER") == {"bo": 10 * 60}
    assert await busy("EXPERIMENT") == {"e1": 30 * 60, "e2": 10 * 60}


async def test_archived_events_leave_default_queries(api: Api, contributor: str, settings: Settings, tmp_path: Path) -> None:
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    await log(api, contributor, ev("OLD_ONE", timestamp=old), ev("FRESH_ONE"))
    _, err = await lake_command(settings, tmp_path, "events", "archive", "--older-than", "30")
    assert b"archived 1 event" in err
    assert await types(api, contributor, {"eventTypes": ["OLD_ONE", "FRESH_ONE"]}) == ["FRESH_ONE"]
    archived = await types(api, contributor, {"eventTypes": ["OLD_ONE", "FRESH_ONE"], "includeArchived": True})
    assert archived == ["FRESH_ONE", "OLD_ONE"]


async def test_a_backlog_of_old_events_is_archived_a_round_at_a_time(api: Api, contributor: str, served: Served,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Archiving is first turned on over the whole history: one update of every old event held the
    lake's one writer for seconds (60,000 took 12.7 s, and a write beside it waited past a request's
    time limit). Each update names at most a round of events by id, and all old ones are archived."""
    from documents.event import new_event_id
    from services import bulk_deletes
    from services.events import log as events_log

    now = datetime.now(UTC)
    await Event.get_pymongo_collection().insert_many([
        Event(id=new_event_id(), event_type="OLD", level=20, timestamp=now - timedelta(days=40, minutes=i)).model_dump(by_alias=True, exclude_none=True)
        for i in range(1_050)])
    await log(api, contributor, ev("FRESH_ONE"))
    monkeypatch.setattr(bulk_deletes, "DELETE_ROUND", 100)
    served.commands.clear()
    assert await events_log.archive(timedelta(days=30)) == 1_050
    updates = [q for collection, q in served.commands.updates if collection == "events"]
    assert len(updates) == 11 and all(len(q["_id"]["$in"]) <= 100 for q in updates), [
        {k: v for k, v in q.items() if k != "_id"} for q in updates]
    assert await Event.find({"event_type": "OLD", "archived": False}).count() == 0
    assert await types(api, contributor, {"eventTypes": ["OLD", "FRESH_ONE"]}) == ["FRESH_ONE"]


async def test_events_are_archived_by_id_and_archived_ones_purged(api: Api, admin: str, contributor: str,
                                                                 settings: Settings, tmp_path: Path) -> None:
    """As MADSci's archive_events and purge_events: an ADMIN archives events by ID (and back); an
    operator deletes archived ones past an age for good, the audit trail only when asked."""
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    noisy, _ = await log(api, contributor, ev("NOISE", timestamp=old), ev("KEEP", timestamp=old))
    refused = await api.run("ArchiveEvents", {"ids": [noisy]}, token=contributor)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    missing = await api.run("ArchiveEvents", {"ids": [noisy, encode_id(NodeType.EVENT, ObjectId())]}, token=admin)
    assert missing["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "ids[1]"}, missing
    assert (await api.run("ArchiveEvents", {"ids": [noisy]}, token=admin))["data"] == {"archiveEvents": 1}
    assert await types(api, contributor, {"eventTypes": ["NOISE", "KEEP"]}) == ["KEEP"]
    back = await api.run("ArchiveEvents", {"ids": [noisy], "archived": False}, token=admin)
    assert back["data"] == {"archiveEvents": 1}
    assert sorted(await types(api, contributor, {"eventTypes": ["NOISE", "KEEP"]})) == ["KEEP", "NOISE"]
    await api.run("ArchiveEvents", {"ids": [noisy]}, token=admin)

    _, err = await lake_command(settings, tmp_path, "events", "purge", "--older-than", "30")
    assert b"deleted 1 archived event" in err, err
    assert await Event.find({"event_type": "NOISE"}).count() == 0 and await Event.find({"event_type": "KEEP"}).count() == 1

    # The audit trail, archived and old, stays unless --audit-too.
    await Event.get_pymongo_collection().update_many({"event_type": "AUDIT"}, {"$set": {
        "archived": True, "timestamp": datetime.now(UTC) - timedelta(days=40)}})
    trail = await Event.find({"event_type": "AUDIT", "archived": True}).count()

    async def purge(*flags: str) -> bytes:
        return (await lake_command(settings, tmp_path, "events", "purge", "--older-than", "30", *flags))[1]

    assert trail > 0 and b"deleted 0 archived event" in await purge()
    assert await Event.find({"event_type": "AUDIT", "archived": True}).count() == trail
    assert f"deleted {trail} archived event".encode() in await purge("--audit-too")
    assert await Event.find({"event_type": "AUDIT", "archived": True}).count() == 0
    assert await Event.find({"event_type": "AUDIT"}).count() >= 2  # each purge's own entry, new and not archived


async def test_an_event_from_the_future_is_refused(api: Api, contributor: str, settings: Settings) -> None:
    """A far-future timestamp would sit atop every newest-first list: beyond the allowed clock skew it is refused."""
    soon = (datetime.now(UTC) + timedelta(seconds=settings.event_clock_skew_seconds - 60)).isoformat()
    late = (datetime.now(UTC) + timedelta(seconds=settings.event_clock_skew_seconds + 60)).isoformat()
    naive_late = (datetime.now(UTC) + timedelta(days=365)).replace(tzinfo=None).isoformat()
    await log(api, contributor, ev("CLOCK", timestamp=soon))  # a drifting clock is fine
    for when in (late, naive_late):
        error = await api.error("LogEvents", {"inputs": [ev("CLOCK"), ev("CLOCK", timestamp=when)]}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].timestamp"}, when


async def test_the_latest_received_cannot_be_pinned_by_a_senders_clock(api: Api, contributor: str,
                                                                        settings: Settings) -> None:
    """Within the allowed skew a sender's clock still tops the timestamp order; the order of receipt,
    and each event's receivedAt, are the server's."""
    ahead = datetime.now(UTC) + timedelta(seconds=settings.event_clock_skew_seconds - 60)
    [early] = await log(api, contributor, ev("PIN", timestamp=ahead.isoformat()))
    [later] = await log(api, contributor, ev("PIN"))

    async def newest(order: str) -> list[dict]:
        data = await api.data("Events", {"filter": {"eventTypes": ["PIN"]}, "first": 2, "orderBy": order}, token=contributor)
        return [e["node"] for e in data["events"]["edges"]]

    assert [e["id"] for e in await newest("TIMESTAMP")] == [early, later]  # the sender's clock puts it first
    received = await newest("RECEIVED")
    assert [e["id"] for e in received] == [later, early]
    early_node = received[1]
    arrived = datetime.fromisoformat(early_node["receivedAt"])
    assert abs((arrived - datetime.now(UTC)).total_seconds()) < 60  # now, not the timestamp it was sent with
    assert datetime.fromisoformat(early_node["timestamp"]) - arrived > timedelta(seconds=60)


async def test_one_event_logged_alone_is_named_as_its_argument(api: Api, contributor: str) -> None:
    """logEvent's errors name its `input`, not a batch's `inputs[0]` (an argument it does not have)."""
    for event, field in (({"eventType": "bad type!"}, "input.eventType"), ({"eventType": "AUDIT"}, "input.eventType"),
                         ({"eventType": "OK", "message": "m" * 10_001}, "input.message"),
                         ({"eventType": "OK", "timestamp": "2099-01-01T00:00:00Z"}, "input.timestamp")):
        refused = await api.error("LogEvent", {"input": event}, token=contributor)
        assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (event, refused)
    batch = await api.error("LogEvents", {"inputs": [{"eventType": "OK"}, {"eventType": "bad type!"}]}, token=contributor)
    assert batch["extensions"]["field"] == "inputs[1].eventType"


PAGED_EVENTS = """query X($filter: EventFilter, $first: Int, $after: String, $last: Int, $before: String,
                     $orderBy: EventOrder, $direction: OrderDirection) {
  events(filter: $filter, first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy,
         direction: $direction) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { node { id eventType } }
  }
}"""


@pytest.mark.parametrize("archived", [False, True])
async def test_several_event_types_page_as_one_list(api: Api, contributor: str, admin: str, archived: bool) -> None:
    """Several types are read one run of each type's index, merged (one `$in` over them walked the
    whole timeline), and so are archived events and the others with `includeArchived` (every index
    leads with `archived`: unpinned, the whole log was scanned and sorted): every page, forward and
    backward, in either order and direction, is the list's, ties of timestamp broken by id as for
    one read, and a cursor of either read goes on in the other."""
    at = datetime(2026, 5, 1, tzinfo=UTC)
    inputs = [{"eventType": "ABC"[i % 3], "timestamp": (at + timedelta(seconds=i // 4)).isoformat()} for i in range(23)]
    ids = (await api.data("LogEvents", {"inputs": inputs}, token=contributor))["logEvents"]["ids"]
    if archived:  # every third of them, across types and ties
        assert await api.data("ArchiveEvents", {"ids": ids[::3] + ids[1::5]}, token=admin)
    wanted = {"A", "C"}
    for order_by in ("TIMESTAMP", "RECEIVED"):
        for direction in ("DESC", "ASC"):
            everything = await api.run("X", {"first": 100, "orderBy": order_by, "direction": direction,
                                             "filter": {"includeArchived": True}}, query=PAGED_EVENTS, token=contributor)
            expected = [e["node"]["id"] for e in everything["data"]["events"]["edges"] if e["node"]["eventType"] in wanted]
            assert len(expected) == 15
            variables = {"filter": {"eventTypes": ["C", "A", "C"], "includeArchived": archived}, "orderBy": order_by,
                         "direction": direction}
            forward, after = [], None
            while True:
                page = (await api.run("X", {**variables, "first": 3, "after": after}, query=PAGED_EVENTS,
                                      token=contributor))["data"]["events"]
                forward += [e["node"]["id"] for e in page["edges"]]
                assert page["totalCount"] == 15
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            assert forward == expected, (order_by, direction)
            backward, before = [], None
            while True:
                page = (await api.run("X", {**variables, "last": 5, "before": before}, query=PAGED_EVENTS,
                                      token=contributor))["data"]["events"]
                backward = [e["node"]["id"] for e in page["edges"]] + backward
                if not page["pageInfo"]["hasPreviousPage"]:
                    break
                before = page["pageInfo"]["startCursor"]
            assert backward == expected, (order_by, direction)
            # A cursor of the one-type read goes on in the merged one.
            one = (await api.run("X", {"first": 1, "orderBy": order_by, "direction": direction,
                                       "filter": {"eventTypes": ["A"], "includeArchived": archived}},
                                 query=PAGED_EVENTS, token=contributor))
            cursor = one["data"]["events"]["pageInfo"]["endCursor"]
            rest = (await api.run("X", {**variables, "first": 100, "after": cursor}, query=PAGED_EVENTS,
                                  token=contributor))["data"]["events"]
            first_a = one["data"]["events"]["edges"][0]["node"]["id"]
            assert [e["node"]["id"] for e in rest["edges"]] == expected[expected.index(first_a) + 1:]
