"""GET /metrics: what moves when clients send operations, and who may read it (GRAPHLAKE_METRICS).

Every request goes through the real app over HTTP (or a real WebSocket); the scrapes are parsed
with prometheus_client's own parser, and each check compares a scrape before with one after.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette

from documents.roles import Role
from graphlake.admission import Admission
from graphlake.app import create_app
from graphlake.settings import Settings
from graphlake_client import Client
from resolvers.context import AppState
from services.schedules import SCHEDULES
from tests.conftest import MakeToken, Served
from tests.factories import value_asset
from tests.operations import Api, document
from tests.processes import serving
from tests.test_admission import every_slot_taken
from tests.waiting import wait_for
from tests.ws_client import Subscriber

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Samples:
    response = await http.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def total(samples: Samples, metric: str, /, **labels: str) -> float:
    """The sum over every sample of `metric` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, sample_labels), v in samples.items() if n == metric and wanted <= sample_labels)


@asynccontextmanager
async def app_with(settings: Settings, **changes: object) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A second app on the same lake with other settings, served on a port of its own, and a client of it."""
    app = create_app(settings.model_copy(update=changes))
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield app, http


def client(app: Starlette, host: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 40000)), base_url="http://graphlake.test")


async def test_the_python_clients_calls_are_counted_by_their_names(served: Served, contributor: str) -> None:
    """The client's documents named no operation, so every call it made (an import's thousands) was
    counted as `anonymous`, though the README said the client names its operations."""
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        before = await scrape(http)
        async with Client(served.base_url, contributor) as lake:
            stored = await lake.store_value({"n": 1}, name="named")
            await lake.get_asset(stored["id"])
        after = await scrape(http)

    def moved(metric: str, /, **labels: str) -> float:
        return total(after, metric, **labels) - total(before, metric, **labels)

    assert moved("graphlake_operations_total", type="mutation", name="StoreValue", outcome="ok") == 1
    assert moved("graphlake_operations_total", type="query", outcome="ok") >= 1
    assert moved("graphlake_operations_total", name="anonymous") == 0


async def test_operations_are_counted_by_name_and_outcome(settings: Settings, contributor: str, viewer: str) -> None:
    # An app of its own: the session's shared one has kept the names of every test before, up to
    # its cap (GRAPHLAKE_METRICS_MAX_OPERATION_NAMES), past which this test's new name is `other`.
    async with app_with(settings) as (_, http):
        api = Api(http)
        before = await scrape(http)
        stored = await value_asset(api, contributor, "counted")
        for _ in range(2):
            await api.data("Asset", {"id": stored["id"]}, token=viewer)
        missing = await api.error("Asset", {"id": stored["id"][:-2] + "AA"}, token=viewer)
        await api.data("LogEvents", {"inputs": [{"eventType": "METRICS", "level": "WARNING"},
                                                {"eventType": "METRICS", "level": "ERROR"},
                                                {"eventType": "METRICS", "level": "ERROR"}]}, token=contributor)
        anonymous = await http.post("/graphql", json={"query": "{ me { role } }"}, headers={"Authorization": f"Bearer {viewer}"})
        assert anonymous.status_code == 200 and "errors" not in anonymous.json()
        refused = await api.error("StoreValue", {"input": {"name": "no", "value": 1}}, token=viewer)
        misspelt = await http.post("/graphql", json={"query": "query Misspelt { asets { totalCount } }"},
                                   headers={"Authorization": f"Bearer {viewer}"})
        assert misspelt.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        after = await scrape(http)

    def moved(metric: str, /, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert moved("graphlake_operations_total", type="query", name="Asset", outcome="ok") == 2
    code = missing["extensions"]["code"]
    assert moved("graphlake_operations_total", type="query", name="Asset", outcome=code) == 1
    assert moved("graphlake_operations_total", type="mutation", name="StoreValue", outcome="ok") == 1
    assert moved("graphlake_operations_total", type="mutation", name="StoreValue",
                 outcome=refused["extensions"]["code"]) == 1
    assert moved("graphlake_operations_total", type="query", name="anonymous", outcome="ok") == 1
    # A document the server refuses is counted under the code its client got, not as "other".
    assert moved("graphlake_operations_total", type="query", name="Misspelt", outcome="BAD_USER_INPUT") == 1
    assert moved("graphlake_operation_seconds_count", type="query", name="Asset") == 3
    assert moved("graphlake_operation_seconds_count", type="mutation", name="LogEvents") == 1
    assert moved("graphlake_events_ingested_total", level="ERROR") == 2
    assert moved("graphlake_events_ingested_total", level="WARNING") == 1
    # The reads went through DataLoaders and the database; every command was timed.
    assert total(after, "graphlake_dataloader_batch_size_count") > total(before, "graphlake_dataloader_batch_size_count")
    assert total(after, "graphlake_database_command_seconds_count", command="find") > \
        total(before, "graphlake_database_command_seconds_count", command="find")
    assert total(after, "graphlake_database_command_seconds_count", command="insert") > \
        total(before, "graphlake_database_command_seconds_count", command="insert")
    assert value(after, "process_cpu_seconds_total") > 0


async def test_uploads_to_s3_count_bytes_and_time_the_store(api: Api, http: httpx.AsyncClient, contributor: str) -> None:
    data = b"metrics" * 10_000
    before = await scrape(http)
    session = (await api.data("CreateUpload", {"input": {"name": "m.bin", "sizeBytes": len(data), "mount": "lab",
                                                         "sha256": hashlib.sha256(data).hexdigest()}},
                              token=contributor))["createUpload"]
    async with httpx.AsyncClient(timeout=60) as raw:
        assert (await raw.put(session["url"], content=data, headers=session["headers"])).status_code == 200
    asset = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
    assert asset["status"] == "ACTIVE"
    assert (await http.get("/readyz")).status_code == 200  # asks each mount: a HeadBucket through botocore
    after = await scrape(http)

    assert value(after, "graphlake_upload_bytes_total", mount="lab") - value(before, "graphlake_upload_bytes_total", mount="lab") == len(data)
    assert value(after, "graphlake_uploads_completed_total", mount="lab", outcome="ACTIVE") - \
        value(before, "graphlake_uploads_completed_total", mount="lab", outcome="ACTIVE") == 1
    # The completion's HEAD (signed by Graphlake itself) was timed as an S3 request of the mount.
    assert total(after, "graphlake_s3_request_seconds_count", mount="lab", operation="HeadObject", outcome="ok") > \
        total(before, "graphlake_s3_request_seconds_count", mount="lab", operation="HeadObject", outcome="ok")
    # And so was a call made through botocore (timed by its events).
    assert total(after, "graphlake_s3_request_seconds_count", mount="lab", operation="HeadBucket", outcome="ok") > \
        total(before, "graphlake_s3_request_seconds_count", mount="lab", operation="HeadBucket", outcome="ok")


async def test_websockets_and_subscriptions_are_gauged(served: Served, http: httpx.AsyncClient, viewer: str) -> None:
    state = served.app.state.graphlake
    before = await scrape(http)
    async with Subscriber(served.ws_url) as socket:
        await socket.connect({"Authorization": f"Bearer {viewer}"})
        await socket.subscribe("EventStream", {"filter": {"eventTypes": ["GAUGED"]}})
        await wait_for(lambda: state.events.has_subscribers, what="the subscription")
        during = await scrape(http)
        assert value(during, "graphlake_websockets_open") == value(before, "graphlake_websockets_open") + 1
        assert value(during, "graphlake_subscriptions_active") == value(before, "graphlake_subscriptions_active") + 1

    async def settled() -> bool:
        now = await scrape(http)
        return (value(now, "graphlake_websockets_open") == value(before, "graphlake_websockets_open")
                and value(now, "graphlake_subscriptions_active") == value(before, "graphlake_subscriptions_active"))

    # The server ends the subscription a moment after the socket closes.
    await wait_for(settled, what="the gauges to fall back once the socket closed")
    after = await scrape(http)
    assert value(after, "graphlake_operations_total", type="subscription", name="EventStream", outcome="ok") == \
        value(before, "graphlake_operations_total", type="subscription", name="EventStream", outcome="ok") + 1


async def test_operation_names_are_capped(settings: Settings, viewer: str) -> None:
    async with app_with(settings, metrics_max_operation_names=2) as (_, http):
        for name in ("First", "Second", "Third", "Fourth", "First"):
            response = await http.post("/graphql", json={"query": f"query {name} {{ me {{ role }} }}"},
                                       headers={"Authorization": f"Bearer {viewer}"})
            assert "errors" not in response.json()
        samples = await scrape(http)
    names = {dict(labels)["name"]: v for (name, labels), v in samples.items() if name == "graphlake_operations_total"}
    assert names == {"First": 2, "Second": 1, "other": 2}


async def test_callers_without_a_token_add_no_operation_name(settings: Settings, viewer: str) -> None:
    """A guest's names once took the slots first: the lake's own clients then all counted as `other`."""
    async with app_with(settings, metrics_max_operation_names=2) as (_, http):
        for name, token in (("Junk1", None), ("Junk2", None), ("First", viewer), ("Second", viewer), ("First", None)):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await http.post("/graphql", json={"query": f"query {name} {{ me {{ role }} }}"}, headers=headers)
            assert "errors" not in response.json(), response.text
        samples = await scrape(http)
    names = {dict(labels)["name"]: v for (name, labels), v in samples.items() if name == "graphlake_operations_total"}
    assert names == {"other": 2, "First": 2, "Second": 1}  # a known name is counted as itself, whoever sends it


async def test_loopback_mode_refuses_other_hosts(app: Starlette) -> None:
    async with client(app, host="203.0.113.9") as remote:
        response = await remote.get("/metrics")
    assert response.status_code == 403 and "loopback" in response.text
    async with client(app, host="::1") as local:
        assert (await local.get("/metrics")).status_code == 200


async def test_token_mode_takes_an_admin_or_the_metrics_token(settings: Settings, make_token: MakeToken) -> None:
    admin, viewer = await make_token(Role.ADMIN), await make_token(Role.VIEWER)
    async with app_with(settings, metrics="token", metrics_token=SecretStr("scraper-secret")) as (_, http):
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics")).headers["www-authenticate"] == "Bearer"
        assert (await http.get("/metrics", headers={"Authorization": "Bearer not-a-token"})).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})).status_code == 403
        await scrape(http, {"Authorization": f"Bearer {admin}"})
        await scrape(http, {"Authorization": "Bearer scraper-secret"})
        # The metrics token opens /metrics, nothing else.
        response = await http.post("/graphql", json={"query": "{ me { role } }"},
                                   headers={"Authorization": "Bearer scraper-secret"})
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_off_serves_nothing_and_records_nothing(settings: Settings, viewer: str) -> None:
    async with app_with(settings, metrics="off") as (app, http):
        assert app.state.graphlake.metrics is None
        assert (await http.get("/metrics")).status_code == 404
        response = await http.post("/graphql", json={"query": "{ me { role } }"},
                                   headers={"Authorization": f"Bearer {viewer}"})
        assert response.json()["data"]["me"]["role"] == "VIEWER"


async def test_background_tasks_count_their_outcomes(settings: Settings, state: AppState, tmp_path: Path) -> None:
    # At start the app runs a maintenance round (and its reconcile step) and checks whether a
    # scheduled backup is due: with none taken yet (an earlier test's schedule forgotten), it is.
    await state.db[SCHEDULES].delete_one({"_id": "backup"})
    async with app_with(settings, backup_every_hours=24.0, backup_dir=tmp_path) as (_, http):
        async def ran() -> Samples | None:
            samples = await scrape(http)
            done = (value(samples, "graphlake_background_runs_total", task="maintenance", outcome="ok") >= 1
                    and value(samples, "graphlake_scheduled_backups_total", outcome="written") == 1
                    and value(samples, "graphlake_background_runs_total", task="backup", outcome="ok") >= 1)
            return samples if done else None

        samples = await wait_for(ran, timeout=30, what="the first maintenance round and scheduled backup")
    assert value(samples, "graphlake_background_runs_total", task="reconcile", outcome="ok") >= 1
    assert total(samples, "graphlake_background_runs_total", outcome="error") == 0
    assert [p.name.startswith("scheduled-") for p in tmp_path.iterdir()] == [True]



async def test_requests_waiting_for_a_slot_and_refused_for_want_of_one_are_shown(app: Starlette,
                                                                                  http: httpx.AsyncClient,
                                                                                  viewer: str) -> None:
    """A request refused as the server is busy (GRAPHLAKE_REQUEST_QUEUE_SECONDS) never runs, so it is
    no operation answered: overload showed in no metric at all."""
    admission: Admission = app.state.admission
    status = {"query": document("Status"), "operationName": "Status"}
    before = await scrape(http)
    async with every_slot_taken(admission, wait_seconds=0.5):
        sent = asyncio.create_task(http.post("/graphql", json=status, headers={"Authorization": f"Bearer {viewer}"}))
        await wait_for(lambda: admission.waiting == 1, what="the request to queue for a slot")
        during = await scrape(http)  # /metrics takes no slot
        refused = await sent
    assert refused.status_code == 503
    after = await scrape(http)
    assert value(during, "graphlake_requests_waiting") == 1
    assert value(during, "graphlake_requests_running") == admission.concurrent
    assert value(after, "graphlake_requests_waiting") == value(after, "graphlake_requests_running") == 0
    assert value(after, "graphlake_request_slot_timeouts_total") == \
        value(before, "graphlake_request_slot_timeouts_total") + 1


async def test_the_readme_lists_every_metric_the_server_exposes(http: httpx.AsyncClient) -> None:
    """The README's table of metrics is what operators write their alerts and dashboards from. And
    no `_created` gauge beside each counter and histogram child, doubling the counters' series."""
    response = await http.get("/metrics")
    exposed = {line.split()[2] for line in response.text.splitlines() if line.startswith("# TYPE graphlake_")}
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("Each process keeps its own counts"):readme.index("### Tracing")]
    listed = set(re.findall(r"`(graphlake_[a-z0-9_]+)`", table))
    assert exposed == listed, f"exposed, not in the README: {exposed - listed}; listed, not exposed: {listed - exposed}"


def test_refused_mount_changes_are_labelled_by_identifiers_the_readme_lists() -> None:
    """The `action` label's values were phrases (`set aside`, `abort the multipart upload`): a query
    had to quote them, and the README named four of them and `...`. Now a fixed set of identifiers,
    each listed."""
    from typing import get_args

    from storage.ownership import ACTION_WORDS, Action

    assert set(get_args(Action)) == set(ACTION_WORDS)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", action) for action in ACTION_WORDS), ACTION_WORDS
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `graphlake_mount_changes_refused_total`")]
    listed = re.findall(r"`([^`]+)`", row.split("`action` (")[1].split(")")[0])
    assert sorted(listed) == sorted(ACTION_WORDS), listed


async def test_http_requests_are_counted_by_route_template_and_status(http: httpx.AsyncClient, viewer: str) -> None:
    """Requests outside GraphQL (signed URLs, content, probes) and GraphQL requests refused before
    they ran (a body too large) were counted nowhere."""
    before = await scrape(http)
    assert (await http.get("/healthz")).status_code == 200
    forged = await http.get("/blobs/local/a/secret-key?exp=9999999999&sig=forged")
    unreadable = await http.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json",
                                                                            "Authorization": f"Bearer {viewer}"})
    assert unreadable.status_code == 400
    await http.get("/no/such/path/a-client-chose")
    after = await scrape(http)

    def moved(**labels: str) -> float:
        return total(after, "graphlake_http_requests_total", **labels) - \
            total(before, "graphlake_http_requests_total", **labels)

    assert moved(method="GET", route="/healthz", status="200") == 1
    assert moved(method="GET", route="/blobs/{mount}/{key:path}", status=str(forged.status_code)) == 1
    assert moved(method="POST", route="/graphql", status="400") == 1
    assert moved(route="none") == 1
    routes = {dict(labels)["route"] for (name, labels) in after if name == "graphlake_http_requests_total"}
    assert not any("secret-key" in route or "a-client-chose" in route for route in routes)  # templates only
