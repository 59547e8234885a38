"""GraphQL over Server-Sent Events (graphql-sse, distinct connections): subscriptions and single
results stream as `next` / `complete`, with heartbeats, the WebSockets' slots and token watch, and
no subscriber left behind when the client goes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from documents.api_token import ApiToken
from documents.clock import utcnow
from documents.roles import Role
from graphlake import PROJECT_ROOT
from graphlake.settings import Settings
from resolvers.context import AppState
from tests.conftest import MakeToken, Served
from tests.operations import Api, document
from tests.processes import start_server_process
from tests.waiting import live_subscribers, wait_for

SSE = {"Accept": "text/event-stream"}


@dataclass
class Stream:
    """One SSE response, read message by message (comments are counted, not returned)."""

    response: httpx.Response
    comments: int = 0
    lines: AsyncIterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = self.response.aiter_lines()

    async def message(self, timeout: float = 10) -> tuple[str, dict | None]:  # noqa: ASYNC109
        """The next event's name and its data (None when it carries none)."""
        return await asyncio.wait_for(self._message(), timeout)

    async def _message(self) -> tuple[str, dict | None]:
        event, data = None, []
        async for line in self.lines:
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif not line and event is not None:
                text = "\n".join(data)
                return event, json.loads(text) if text else None
        raise EOFError("the stream ended")


@asynccontextmanager
async def sse(base_url: str, operation: str, variables: dict | None = None, *, token: str | None = None,
              query: str | None = None, method: str = "POST") -> AsyncIterator[Stream]:
    headers = {**SSE, **({"Authorization": f"Bearer {token}"} if token else {})}
    body = {"query": query or document(operation), "operationName": operation, "variables": variables or {}}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        if method == "GET":
            params = {**body, "variables": json.dumps(body["variables"])}
            request = client.build_request("GET", "/graphql", params=params, headers=headers)
        else:
            request = client.build_request("POST", "/graphql", json=body, headers=headers)
        response = await client.send(request, stream=True)
        try:
            yield Stream(response)
        finally:
            await response.aclose()


async def log(api: Api, token: str, *messages: str, event_type: str = "SSE_CHECK") -> list[str]:
    inputs = [{"eventType": event_type, "message": m} for m in messages]
    return (await api.data("LogEvents", {"inputs": inputs}, token=token))["logEvents"]["ids"]


async def test_a_subscription_streams_events_and_ends_with_the_client(
        served: Served, state: AppState, api: Api, viewer: str, contributor: str) -> None:
    async with sse(served.base_url, "EventStream", {"filter": {"eventTypes": ["SSE_CHECK"]}}, token=viewer) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-cache, no-transform"
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the SSE subscription to listen")
        assert state.sockets.open_count == 1  # it holds a slot, as a WebSocket does
        await log(api, contributor, "one", "two")
        await log(api, contributor, "other", event_type="SSE_OTHER")
        await log(api, contributor, "three")
        got = [await stream.message() for _ in range(3)]
        assert [event for event, _ in got] == ["next"] * 3
        assert [data["data"]["events"]["message"] for _, data in got] == ["one", "two", "three"]
    # The client went: its subscriber leaves the broadcast and its slot is given back.
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the SSE subscriber to be let go")
    await wait_for(lambda: state.sockets.open_count == 0, what="the SSE stream's slot to be given back")


async def test_a_stopping_server_ends_its_sse_streams(settings: Settings, viewer: str, tmp_path: Path) -> None:
    """uvicorn waits for every HTTP response to end before it stops, and a subscription's stream never
    does: one open stream held `graphlake serve` after SIGTERM for as long as its client stayed. It now
    ends, without `complete` (the operation did not finish: a client subscribes again), and the
    process exits."""
    process, base = await start_server_process(settings.mongodb_url.get_secret_value(), settings.database, tmp_path)
    try:
        async with sse(base, "Heartbeat", {"intervalSeconds": 0.1}, token=viewer) as stream:
            assert (await stream.message())[0] == "next"
            process.send_signal(signal.SIGTERM)
            events = []
            with pytest.raises(EOFError):  # the stream ends (a deadline: it never ended before)
                while True:
                    events.append((await stream.message(timeout=20))[0])
        assert "complete" not in events
        # uvicorn raises the signal again once it has shut down gracefully: the exit says SIGTERM.
        assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGTERM
    finally:
        if process.returncode is None:
            process.kill()


async def test_a_stopping_server_lets_queries_and_mutations_over_sse_finish(served: Served, state: AppState,
                                                                           contributor: str) -> None:
    """Only subscriptions end when the server stops: a mutation cut short could be half done, and a
    graphql-sse client would send it again."""
    state.stopping.set()
    try:
        mutation = "mutation M { storeValue(input: {name: \"during a stop\", value: 1}) { name } }"
        for method, query, operation in (("POST", mutation, "M"), ("GET", "query Me { me { role } }", "Me")):
            async with sse(served.base_url, operation, token=contributor, query=query, method=method) as stream:
                first, data = await stream.message()
                assert first == "next" and data is not None and data["data"], (method, data)
                assert (await stream.message())[0] == "complete"
        async with sse(served.base_url, "Heartbeat", {"intervalSeconds": 0.1}, token=contributor) as stream:
            with pytest.raises(EOFError):  # a subscription ends at once, without complete
                await stream.message()
    finally:
        state.stopping.clear()


async def test_a_subscription_resumed_while_the_server_stops_ends_and_lets_its_subscriber_go(
        served: Served, state: AppState, api: Api, contributor: str, viewer: str) -> None:
    """A stream resumed with `after` as the server stops is ended at once, its operation cancelled
    while it was announcing itself to the feed (a database write). That cancellation was lost on the
    way (Python 3.11's asyncio.wait_for inside PyMongo's send) and the subscription went on to wait
    for live events for good: the stream never ended and its subscriber stayed."""
    logged = (await api.data("LogEvents", {"inputs": [{"eventType": "RESUMED", "message": "a"}]},
                             token=contributor))["logEvents"]["ids"]
    state.stopping.set()
    try:
        async with sse(served.base_url, "EventStreamFrom", {"filter": {"eventTypes": ["RESUMED"]}, "after": logged[0]},
                       token=viewer) as stream:
            with pytest.raises(EOFError):  # ended, without complete (it waited for good before)
                await stream.message(timeout=10)
    finally:
        state.stopping.clear()
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the resumed subscriber to be let go")


async def test_a_costly_pattern_is_refused_before_the_stream_starts(served: Served, viewer: str) -> None:
    """A 483-character pattern of sixty `a{1,999}` passed the length limit; matched against an event's
    10,000-character string in a live subscription it held the server's event loop for seconds."""
    costly = {"filter": {"data": [{"path": "s", "op": "REGEX", "value": "a{1,999}" * 60 + "bq<i>"}]}}
    async with sse(served.base_url, "EventStream", costly, token=viewer) as stream:
        event, data = await stream.message()
    assert event == "next" and data is not None
    [error] = data["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "the limit is 200" in error["message"], error


async def test_an_unknown_operation_name_over_sse_is_bad_user_input(served: Served, viewer: str) -> None:
    async with sse(served.base_url, "B", token=viewer, query="query A { me { role } }") as stream:
        event, data = await stream.message()
    assert event == "next" and data is not None
    [error] = data["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "operationName"}, data


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_query_over_sse_is_one_next_then_complete(served: Served, state: AppState, viewer: str,
                                                          method: str) -> None:
    async with sse(served.base_url, "Me", token=viewer, query="query Me { me { role } }", method=method) as stream:
        assert await stream.message() == ("next", {"data": {"me": {"role": "VIEWER"}}})
        assert await stream.message() == ("complete", None)
        with pytest.raises(EOFError):
            await stream.message()
    await wait_for(lambda: state.sockets.open_count == 0, what="the stream's slot to be given back")


async def test_a_client_that_prefers_json_gets_json_though_it_lists_event_streams(served: Served, viewer: str) -> None:
    """urql sends every type it reads, JSON first: it was answered with a stream and showed "No Content"."""
    urql = ("application/graphql-response+json, application/graphql+json, application/json, text/event-stream, "
            "multipart/mixed")
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        answer = await http.post("/graphql", json={"query": "{ me { role } }"},
                                 headers={"Accept": urql, "Authorization": f"Bearer {viewer}"})
        assert answer.headers["content-type"].startswith("application/graphql-response+json"), answer.headers
        assert answer.json() == {"data": {"me": {"role": "VIEWER"}}}
        streamed = await http.post("/graphql", json={"query": "{ me { role } }"},
                                   headers={"Accept": "application/json;q=0.5, text/event-stream",
                                            "Authorization": f"Bearer {viewer}"})
        assert streamed.headers["content-type"].startswith("text/event-stream"), streamed.headers


async def test_a_mutation_over_sse_works_by_post_and_is_refused_by_get(served: Served, contributor: str) -> None:
    variables = {"inputs": [{"eventType": "SSE_CHECK", "message": "by sse"}]}
    async with sse(served.base_url, "LogEvents", variables, token=contributor) as stream:
        event, data = await stream.message()
        assert event == "next" and data["data"]["logEvents"]["count"] == 1
        assert await stream.message() == ("complete", None)
    async with sse(served.base_url, "LogEvents", variables, token=contributor, method="GET") as stream:
        event, data = await stream.message()
        assert event == "next" and data.get("data") is None
        assert data["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", data
        assert await stream.message() == ("complete", None)


async def test_errors_over_sse_carry_a_code(served: Served, viewer: str) -> None:
    # A document that does not validate: the error comes in the stream, as graphql-sse's server does.
    async with sse(served.base_url, "Bad", token=viewer, query="subscription Bad { heartbeat { nope } }") as stream:
        event, data = await stream.message()
        assert event == "next" and [e["extensions"]["code"] for e in data["errors"]] == ["BAD_USER_INPUT"]
        assert await stream.message() == ("complete", None)
    # No token: the subscription is refused as any read is.
    async with sse(served.base_url, "EventStream") as stream:
        event, data = await stream.message()
        assert event == "next" and data["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", data
        assert await stream.message() == ("complete", None)
    # A body that is not JSON: a plain GraphQL error, not a stream.
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        response = await client.post("/graphql", content=b"{nope", headers={**SSE, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_subscription_over_plain_http_is_refused_with_a_code(api: Api, viewer: str) -> None:
    """Without `Accept: text/event-stream` (or a WebSocket) a subscription cannot stream: say so."""
    body = await api.run("EventStream", {"filter": None}, token=viewer, status=400)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "text/event-stream" in error["message"]


async def test_an_idle_stream_sends_heartbeats(served: Served, settings: Settings, viewer: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "sse_heartbeat_seconds", 0.1)
    async with sse(served.base_url, "Heartbeat", {"intervalSeconds": 0.5}, token=viewer) as stream:
        ticks = [await stream.message() for _ in range(2)]  # 0.5 s apart; a comment every 0.1 s between them
        assert [data["data"]["heartbeat"]["sequence"] for _, data in ticks] == [1, 2]
        assert stream.comments >= 2, stream.comments


async def test_a_revoked_token_ends_the_stream_with_unauthenticated(
        served: Served, state: AppState, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 0.3)  # GRAPHLAKE_TOKEN_CACHE_SECONDS, short
    secret = await make_token(Role.VIEWER, name="sse-watched")
    async with sse(served.base_url, "EventStream", {"filter": None}, token=secret) as stream:
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the SSE subscription to listen")
        await ApiToken.find_one({"name": "sse-watched"}).update({"$set": {"revoked_at": utcnow()}})
        event, data = await stream.message()
        assert event == "next" and data["data"] is None
        assert [e["extensions"] for e in data["errors"]] == [{"code": "UNAUTHENTICATED"}]
        assert await stream.message() == ("complete", None)
        with pytest.raises(EOFError):
            await stream.message()
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the refused stream's subscriber to be let go")
    assert state.sockets.open_count == 0


async def test_streams_count_against_the_websocket_caps(served: Served, state: AppState, settings: Settings,
                                                       make_token: MakeToken, monkeypatch: pytest.MonkeyPatch) -> None:
    await wait_for(lambda: state.sockets.open_count == 0, what="the streams of earlier tests to be let go")
    monkeypatch.setattr(settings, "max_websockets_per_token", 1)
    monkeypatch.setattr(settings, "max_websockets", 2)
    busy, other, third = await make_token(), await make_token(), await make_token()
    variables = {"filter": None}
    async with sse(served.base_url, "EventStream", variables, token=busy) as first:
        assert first.response.status_code == 200
        async with sse(served.base_url, "EventStream", variables, token=busy) as over:
            assert over.response.status_code == 429
            body = json.loads(await over.response.aread())
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            assert "GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN" in body["errors"][0]["message"]
        async with sse(served.base_url, "EventStream", variables, token=other) as second:
            assert second.response.status_code == 200
            async with sse(served.base_url, "EventStream", variables, token=third) as full:
                assert full.response.status_code == 503 and full.response.headers["retry-after"] == "1"
                body = json.loads(await full.response.aread())
                assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
                assert "GRAPHLAKE_MAX_WEBSOCKETS" in body["errors"][0]["message"]
    await wait_for(lambda: state.sockets.open_count == 0, what="the streams' slots to be given back")
    async with sse(served.base_url, "EventStream", variables, token=busy) as again:
        assert again.response.status_code == 200


async def test_the_npm_graphql_sse_client_receives_live_events(served: Served, state: AppState, api: Api,
                                                              viewer: str, contributor: str) -> None:
    node = shutil.which("node")
    modules = PROJECT_ROOT / "assets" / "node_modules"
    assert node and (modules / "graphql-sse").is_dir(), "make installs Node.js packages into assets/node_modules"
    process = await asyncio.create_subprocess_exec(
        node, str(PROJECT_ROOT / "tests" / "js" / "subscribe_events_sse.cjs"), served.base_url + "/graphql", viewer,
        "3", "SSE_NPM", env={**os.environ, "ASSETS_NODE_MODULES": str(modules)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await wait_for(lambda: live_subscribers(state.events) == 1, timeout=20, what="the npm client's subscription")
        await log(api, contributor, "m0", "m1", "m2", event_type="SSE_NPM")
        lines = [json.loads(await asyncio.wait_for(process.stdout.readline(), 10)) for _ in range(3)]
        assert await asyncio.wait_for(process.wait(), 10) == 0, await process.stderr.read()
    finally:
        if process.returncode is None:
            process.kill()
    assert [line["message"] for line in lines] == ["m0", "m1", "m2"]
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the npm client's subscriber to be let go")
