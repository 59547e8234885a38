"""Which GraphQL calls the client sends again (graphlake_client/retries.py): any call that never
reached the server (a server restarting), a query also when its answer was lost or the server was
UNAVAILABLE; never a mutation whose answer was lost (it may have run). What is left after the
retries is a GraphlakeClientError, so one `except` catches whatever stopped a call."""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from graphlake.settings import Settings
from graphlake_client import Client, GraphlakeClientError, ResumeState, ServerUnreachable
from graphlake_client import operations as ops
from resolvers.context import AppState
from tests.conftest import S3Service, Served, mount_at
from tests.operations import Api
from tests.test_s3_failures import mounted, refusal_of_the_servers_credentials
from tests.test_uploads import MIB, multipart_from_one_mib, payload, start


class Failing(httpx.AsyncHTTPTransport):
    """Fails the first `times` GraphQL requests whose body holds `operation`, in the way given:
    `refused` before sending (nothing ran), `lost` after the server answered (it ran),
    `unavailable` (the server's own 503 UNAVAILABLE answer), or `gateway` (a proxy's 502, no JSON)."""

    def __init__(self, operation: str, how: str, times: int) -> None:
        super().__init__()
        self.operation, self.how, self.times, self.ran = operation.encode(), how, times, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        failing = self.operation in request.content and self.times > 0
        if failing and self.how == "refused":
            self.times -= 1
            raise httpx.ConnectError("simulated: connection refused", request=request)
        if failing and self.how == "gateway":
            self.times -= 1
            return httpx.Response(502, text="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
        if failing and self.how == "unavailable":
            self.times -= 1
            return httpx.Response(503, json={"data": None, "errors": [
                {"message": "the database did not answer in time; retry shortly", "extensions": {"code": "UNAVAILABLE"}}]})
        response = await super().handle_async_request(request)
        if self.operation in request.content:
            self.ran += 1
        if failing:  # lost
            self.times -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("simulated: the answer never arrived", request=request)
        return response


def lake(served: Served, token: str, tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None) -> Client:
    client = Client(served.base_url, token, retries=3, graphql_transport=transport,
                    resume=ResumeState(tmp_path / "resume.json"))
    client.backoff_seconds = 0.01
    return client


@pytest.mark.parametrize("how", ["refused", "lost", "unavailable"])
async def test_a_query_is_asked_again(served: Served, contributor: str, tmp_path: Path, how: str) -> None:
    async with lake(served, contributor, tmp_path) as plain:
        stored = await plain.store_value({"t": 1}, name="reading")
    failing = Failing("asset(id:", how, times=2)
    async with lake(served, contributor, tmp_path, failing) as flaky:
        found = await flaky.get_asset(stored["id"])
    assert found["value"] == {"t": 1} and failing.times == 0


async def test_a_mutation_is_sent_again_only_if_it_never_left(served: Served, api: Api, contributor: str,
                                                              tmp_path: Path) -> None:
    refused = Failing("storeValue(", "refused", times=2)
    async with lake(served, contributor, tmp_path, refused) as flaky:
        await flaky.store_value({"t": 1}, name="first")
    assert refused.ran == 1  # stored once, after two refusals

    lost = Failing("storeValue(", "lost", times=1)
    async with lake(served, contributor, tmp_path, lost) as flaky:
        with pytest.raises(ServerUnreachable, match=r"^no answer from .* \(the request may have run\)") as raised:
            await flaky.store_value({"t": 2}, name="second")
    assert lost.ran == 1 and raised.value.code == "UNAVAILABLE"  # ran once, not sent again

    unavailable = Failing("storeValue(", "unavailable", times=1)
    async with lake(served, contributor, tmp_path, unavailable) as flaky:
        with pytest.raises(GraphlakeClientError) as refused_once:
            await flaky.store_value({"t": 3}, name="third")
    assert refused_once.value.code == "UNAVAILABLE" and unavailable.ran == 0
    names = {e["node"]["name"] for e in (await api.data("Assets", {"first": 10}, token=contributor))["assets"]["edges"]}
    assert names == {"first", "second"}


@pytest.mark.parametrize("how", ["lost", "gateway", "unavailable"])
async def test_keyed_events_are_sent_again_and_stored_once(served: Served, api: Api, contributor: str,
                                                           tmp_path: Path, how: str) -> None:
    """A batch whose every event has a key is safe to send twice: its answer lost (after it ran), a
    gateway's 502 or the server's UNAVAILABLE, it is sent again and answers with the ids stored."""
    failing = Failing("logEvents(", how, times=1)
    async with lake(served, contributor, tmp_path, failing) as flaky:
        ids = await flaky.log_events([{"eventType": "KEYED", "message": f"m{i}", "key": f"{how}-{i}"} for i in range(3)])
        again = await flaky.log_event("KEYED", "m0", key=f"{how}-0")
    assert failing.ran == 2 + (how == "lost")  # the batch (twice if its answer was lost), the single event
    assert again == ids[0]
    stored = (await api.data("Events", {"filter": {"eventTypes": ["KEYED"]}, "first": 10}, token=contributor))
    assert sorted(e["node"]["id"] for e in stored["events"]["edges"]) == sorted(ids)

    unkeyed = Failing("logEvents(", "lost", times=1)  # one event without a key: not sent again
    async with lake(served, contributor, tmp_path, unkeyed) as flaky:
        with pytest.raises(ServerUnreachable):
            await flaky.log_events([{"eventType": "KEYED", "key": "k"}, {"eventType": "KEYED"}])
    assert unkeyed.ran == 1


async def test_no_server_at_all_is_one_client_error_naming_where(contributor: str, tmp_path: Path) -> None:
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    async with Client(f"http://127.0.0.1:{port}", contributor, retries=2,
                      resume=ResumeState(tmp_path / "resume.json")) as nowhere:
        nowhere.backoff_seconds = 0.01
        with pytest.raises(GraphlakeClientError, match=rf"^cannot reach http://127.0.0.1:{port}/: ") as raised:
            await nowhere.get_asset("reading")
    assert raised.value.code == "UNAVAILABLE" and isinstance(raised.value.__cause__, httpx.ConnectError)


async def test_a_mutation_after_a_fragment_is_still_a_mutation(served: Served, api: Api, contributor: str,
                                                               tmp_path: Path) -> None:
    """Told by its keyword anywhere outside a selection set: a fragment (or a comma) first made it a
    query, sent again after a lost answer, storing it twice."""
    document = ('fragment Stored on Asset { id name }\n'
                'mutation ($input: StoreValueInput!) { storeValue(input: $input) { ...Stored } }')
    lost = Failing("storeValue(", "lost", times=1)
    async with lake(served, contributor, tmp_path, lost) as flaky:
        with pytest.raises(ServerUnreachable):
            await flaky.execute(document, {"input": {"name": "once", "value": 1}})
    assert lost.ran == 1
    assert (await api.data("Assets", {"first": 10}, token=contributor))["assets"]["totalCount"] == 1


async def test_what_is_not_a_graphql_answer_is_a_client_error_too(served: Served, contributor: str, tmp_path: Path) -> None:
    gateway = Failing("asset(id:", "gateway", times=9)  # more than the retries
    async with lake(served, contributor, tmp_path, gateway) as flaky:
        with pytest.raises(GraphlakeClientError, match="answered HTTP 502 without a GraphQL answer") as proxied:
            await flaky.get_asset("QXNzZXQ6NmIxM2Y1M2EzYjJiNzlkNjVmZWVjNTIw")
        assert proxied.value.code == "UNAVAILABLE" and gateway.times == 9 - 4  # the first and 3 retries
        with pytest.raises(GraphlakeClientError, match="cannot be sent as JSON") as unsendable:
            await flaky.store_text("\ud800", name="surrogate")  # a lone surrogate: no UTF-8 for it
        assert unsendable.value.code == "BAD_USER_INPUT"


class Counting(httpx.AsyncHTTPTransport):
    """Counts the requests sent to the server, by what they ask (GraphQL, or an asset's content)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent["content" if request.url.path.endswith("/content") else "graphql"] += 1
        return await super().handle_async_request(request)


async def test_a_query_the_server_says_no_retry_mends_is_asked_once(
        served: Served, api: Api, contributor: str, state: AppState, settings: Settings, s3: S3Service,
        tmp_path: Path) -> None:
    """An S3 mount refusing the server's own credentials (a secret rotated since it started) answers
    UNAVAILABLE with `extensions.retry: false`: only the server's operator can mend it. The client
    asked again all the same, `retries` times with its backoff, as it does for a store down for a
    moment; it raises it at once now, saying so (`retry` False)."""
    prefix = f"rotated-{uuid.uuid4().hex[:8]}"
    async with mounted(state, mount_at(s3, "rotating", prefix)):
        with multipart_from_one_mib(settings):  # its session lists the parts received: a request to the store
            session = await start(api, contributor, payload(2 * MIB), "rotating")
        async with mounted(state, mount_at(s3, "rotating", prefix, secret_access_key="rotated-since")):
            counting = Counting()
            async with lake(served, contributor, tmp_path, counting) as client:
                with pytest.raises(GraphlakeClientError, match="the server's operator must fix") as refused:
                    await client.execute(ops.SESSION, {"id": session["id"]})
    assert refused.value.code == "UNAVAILABLE" and refused.value.retry is False
    assert counting.sent == {"graphql": 1}  # not 1 + 3 retries


async def test_no_call_retries_what_the_server_says_no_retry_mends(
        served: Served, contributor: str, state: AppState, s3: S3Service, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A query, a keyed write, a download and a follow retried every UNAVAILABLE (a download's 503
    from the content route, a follow's reconnects); one saying no retry will help is raised at once
    by each. The refusal is MinIO's own, met here by the token's lookup: every call meets it."""
    refusal = await refusal_of_the_servers_credentials(s3)

    async def refused(secret: str) -> None:
        raise refusal

    monkeypatch.setattr(state.tokens, "authenticate", refused)

    async def follow(client: Client) -> None:
        async for _ in client.follow_events():
            pass

    calls: dict[str, Callable[[Client], Awaitable[object]]] = {
        "graphql": lambda client: client.get_asset("some-alias"),
        "keyed": lambda client: client.log_events([{"eventType": "KEYED", "key": "k"}]),
        "content": lambda client: client.download("some-alias", tmp_path),
        "follow": follow}
    sent, raised = {}, {}
    for name, call in calls.items():
        counting = Counting()
        async with lake(served, contributor, tmp_path, counting) as client:
            with pytest.raises(GraphlakeClientError) as error:
                await call(client)
        sent[name] = sum(counting.sent.values())
        raised[name] = (error.value.code, error.value.retry, "the server's operator must fix" in str(error.value))
    assert sent == dict.fromkeys(calls, 1)  # not 1 + 3 retries
    assert raised == dict.fromkeys(calls, ("UNAVAILABLE", False, True))  # the server's own words
