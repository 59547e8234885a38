"""`Client.follow_events` (graphlake_client/follow.py), `SyncClient.follow_events` and `graphlake events
follow`: the event log live over SSE, against the served lake and a server process that restarts.
Each event reaches the caller once, in order, across dropped streams and restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import typer

from documents.api_token import ApiToken
from documents.clock import utcnow
from documents.roles import Role
from graphlake.cli import app
from graphlake.settings import Settings
from graphlake_client import Client, GraphlakeClientError, StreamsFull, SyncClient
from graphlake_client.follow import event_millis, position_at
from graphlake_client.results import Event
from resolvers.context import AppState
from tests.conftest import MakeToken, Served
from tests.processes import start_server_process
from tests.waiting import live_subscribers, wait_for

TYPE = "FOLLOWED"


async def collect(events: AsyncIterator[Event], into: list[Event]) -> None:
    async for event in events:
        into.append(event)


async def log(lake: Client, *messages: str) -> list[str]:
    return await lake.log_events([{"eventType": TYPE, "message": m} for m in messages])


def messages(events: list[Event]) -> list[str | None]:
    return [e["message"] for e in events]


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_events_logged_after_following_starts_arrive_in_order(served: Served, state: AppState, viewer: str,
                                                                    contributor: str) -> None:
    got: list[Event] = []
    async with Client(served.base_url, viewer) as follower, Client(served.base_url, contributor) as lake:
        task = asyncio.create_task(collect(follower.follow_events(event_types=[TYPE]), got))
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the follow to listen")
        ids = await log(lake, "one", "two")
        await lake.log_event("OTHER_TYPE", "not followed")
        ids += await log(lake, "three")
        await wait_for(lambda: len(got) >= 3, what="three events")
        assert [e["id"] for e in got] == ids and messages(got) == ["one", "two", "three"]
        assert got[0]["eventType"] == TYPE and got[0]["level"] == "INFO" and got[0]["origin"] == "CLIENT"
        await stop(task)
    # Cancelled: its stream closed, so the server let its subscriber go.
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the follow's subscriber to be let go")


async def test_after_resumes_without_repeats_and_a_break_closes_the_stream(served: Served, state: AppState,
                                                                          viewer: str, contributor: str) -> None:
    async with Client(served.base_url, viewer) as follower, Client(served.base_url, contributor) as lake:
        first, *_ = await log(lake, "a", "b", "c")
        got: list[Event] = []
        async for event in follower.follow_events(event_types=[TYPE], after=first):
            got.append(event)
            if len(got) == 2:
                await log(lake, "d")
            if len(got) == 3:
                break
        assert messages(got) == ["b", "c", "d"]
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the broken-off follow's subscriber to be let go")


class Network(httpx.AsyncBaseTransport):
    """The client's connections to the served lake, which a test cuts (`cut`: each open event
    stream fails as a broken connection does) and takes down (`down`: no new connection is made)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.cut = asyncio.Event()
        self.down = False
        self.refused = 0  # connections not made while down
        self.statuses: list[int] = []  # of the event streams asked for

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            self.refused += 1
            raise httpx.ConnectError("the network is down", request=request)
        response = await self.inner.handle_async_request(request)
        if request.headers.get("accept") != "text/event-stream":
            return response
        self.statuses.append(response.status_code)
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=CuttableStream(response.stream, self.cut))  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self.inner.aclose()


class CuttableStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, cut: asyncio.Event) -> None:
        self.inner, self.cut = inner, cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self.inner)
        while True:
            step, cut = asyncio.ensure_future(anext(chunks)), asyncio.ensure_future(self.cut.wait())
            await asyncio.wait({step, cut}, return_when=asyncio.FIRST_COMPLETED)
            cut.cancel()
            if not step.done():
                step.cancel()
                raise httpx.ReadError("the connection was cut")
            try:
                yield step.result()
            except StopAsyncIteration:
                return

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_dropped_stream_is_resumed_with_nothing_missed_or_twice(served: Served, state: AppState, viewer: str,
                                                                       contributor: str) -> None:
    """The connection breaks and the network stays down a while: the follow opens again with
    backoff, and resumes a second before its last event, so it gets those of that second again
    (dropped: seen) and what was logged meanwhile."""
    got: list[Event] = []
    network = Network()
    async with Client(served.base_url, viewer, retries=10, graphql_transport=network) as follower, \
            Client(served.base_url, contributor) as lake:
        follower.backoff_seconds = 0.2  # waits of 0.2, 0.4, 0.8 ... s, about 3 minutes in all
        task = asyncio.create_task(collect(follower.follow_events(event_types=[TYPE]), got))
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the follow to listen")
        await log(lake, "before 1", "before 2")
        await wait_for(lambda: len(got) >= 2, what="the events before the drop")
        network.down = True
        network.cut.set()
        await wait_for(lambda: network.refused >= 1, what="the follow to try again while the network is down")
        await wait_for(lambda: live_subscribers(state.events) == 0, what="the server to let the cut stream go")
        await log(lake, "while down 1", "while down 2")
        network.cut.clear()
        network.down = False
        await wait_for(lambda: len(got) >= 4, timeout=60, what="the events logged while the network was down")
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the follow to listen again")
        await log(lake, "after")
        await wait_for(lambda: len(got) >= 5, what="the event after the resume")
        await stop(task)
    assert messages(got) == ["before 1", "before 2", "while down 1", "while down 2", "after"]


@asynccontextmanager
async def holding_a_stream(http: httpx.AsyncClient, base_url: str, token: str) -> AsyncIterator[None]:
    """An SSE subscription open with `token`: one of its slots held."""
    body = json.dumps({"query": "subscription { events { id } }"})
    headers = {"Accept": "text/event-stream", "Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    async with http.stream("POST", f"{base_url}/graphql", content=body, headers=headers) as holder:
        assert holder.status_code == 200
        yield


async def test_a_reconnection_refused_for_the_tokens_stream_cap_is_tried_again(
        served: Served, state: AppState, settings: Settings, make_token: MakeToken, contributor: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A dropped stream can hold its token's slot on the server (half-open, until a heartbeat finds
    it gone): the reconnection's 429 (GRAPHLAKE_MAX_WEBSOCKETS_PER_TOKEN) is tried again with
    backoff, not the follow's end. Here another stream of the token holds the slot meanwhile."""
    await wait_for(lambda: state.sockets.open_count == 0, what="the streams of earlier tests to be let go")
    monkeypatch.setattr(settings, "max_websockets_per_token", 1)
    secret = await make_token(Role.VIEWER, name="follow-capped")
    got: list[Event] = []
    network = Network()
    async with Client(served.base_url, secret, retries=10, graphql_transport=network) as follower, \
            Client(served.base_url, contributor) as lake, httpx.AsyncClient() as other:
        follower.backoff_seconds = 0.2
        async with holding_a_stream(other, served.base_url, secret):  # the first stream's 429 is the caller's
            with pytest.raises(StreamsFull) as refused:
                await anext(follower.follow_events(event_types=[TYPE]))
            assert refused.value.code == "BAD_USER_INPUT"
        await wait_for(lambda: state.sockets.open_count == 0, what="the holding stream to be let go")
        task = asyncio.create_task(collect(follower.follow_events(event_types=[TYPE]), got))
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the follow to listen")
        await log(lake, "before")
        await wait_for(lambda: len(got) >= 1, what="the event before the drop")
        network.down = True
        network.cut.set()
        await wait_for(lambda: state.sockets.open_count == 0, what="the server to let the cut stream go")
        async with holding_a_stream(other, served.base_url, secret):  # as the dropped stream's could be
            network.cut.clear()
            network.down = False
            await wait_for(lambda: 429 in network.statuses or task.done(), what="the follow to be refused a stream")
        await wait_for(lambda: live_subscribers(state.events) == 1 or task.done(), timeout=60,
                       what="the follow to listen again once the slot is free")
        assert not task.done(), task.exception()
        await log(lake, "after")
        await wait_for(lambda: len(got) >= 2, what="the event after the reconnection")
        await stop(task)
    assert messages(got) == ["before", "after"]


async def test_a_restarted_server_is_followed_again(settings: Settings, viewer: str, contributor: str,
                                                    served: Served, tmp_path: Path) -> None:
    """A server process stopped (SIGTERM) and started again on its port: the events stored meanwhile
    (through the other server of the same database) and after come once each, in order."""
    url, database = settings.mongodb_url.get_secret_value(), settings.database
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    process, base = await start_server_process(url, database, tmp_path / "one")
    port = int(base.rsplit(":", 1)[1])
    got: list[Event] = []
    try:
        async with Client(base, viewer, retries=10) as follower, Client(base, contributor) as lake, \
                Client(served.base_url, contributor) as other:
            follower.backoff_seconds = 0.2
            [first] = await log(lake, "first")
            task = asyncio.create_task(collect(follower.follow_events(event_types=[TYPE], after=first), got))
            await log(lake, "before")
            await wait_for(lambda: len(got) >= 1, what="the event before the restart")
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
            await log(other, "down 1", "down 2")
            process, _ = await start_server_process(url, database, tmp_path / "two", port=port)
            await log(lake, "restarted")
            await wait_for(lambda: len(got) >= 4, timeout=60, what="the events of the restart")
            await log(lake, "last")
            await wait_for(lambda: len(got) >= 5, what="the event after them")
            await stop(task)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert messages(got) == ["before", "down 1", "down 2", "restarted", "last"]


async def test_a_revoked_token_stops_the_follow_with_unauthenticated(
        served: Served, state: AppState, make_token: MakeToken, contributor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.tokens, "seconds", 0.3)  # GRAPHLAKE_TOKEN_CACHE_SECONDS, short
    secret = await make_token(Role.VIEWER, name="follow-watched")
    got: list[Event] = []
    async with Client(served.base_url, secret) as follower:
        task = asyncio.create_task(collect(follower.follow_events(), got))
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the follow to listen")
        await ApiToken.find_one({"name": "follow-watched"}).update({"$set": {"revoked_at": utcnow()}})
        with pytest.raises(GraphlakeClientError) as refused:
            await asyncio.wait_for(task, 30)
    assert refused.value.code == "UNAUTHENTICATED", refused.value
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the refused follow's subscriber to be let go")


async def test_a_bad_after_is_refused(served: Served, viewer: str) -> None:
    async with Client(served.base_url, viewer) as follower:
        with pytest.raises(GraphlakeClientError) as refused:
            await anext(follower.follow_events(after="not-a-position"))
    assert (refused.value.code, refused.value.field) == ("BAD_USER_INPUT", "after")


async def test_the_sync_client_follows(served: Served, viewer: str, contributor: str) -> None:
    async with Client(served.base_url, contributor) as lake:
        first, *_ = await log(lake, "a", "b", "c")

    def follow() -> list[str | None]:
        got: list[str | None] = []
        with SyncClient(served.base_url, viewer) as follower:
            for event in follower.follow_events(event_types=[TYPE], after=first):
                got.append(event["message"])
                if len(got) == 2:
                    break
        return got

    assert await asyncio.to_thread(follow) == ["b", "c"]


INTERRUPTED_FOLLOW = """
import sys
from graphlake_client import SyncClient

url, token, first, event_type = sys.argv[1:]
try:
    with SyncClient(url, token) as lake:
        for event in lake.follow_events(event_types=[event_type], after=first):
            print(event["message"], flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""

# The same follow, with its Ctrl-C at the one moment the test above hits only by chance: just as the
# wait for the next event is handed to the client's loop (a signal's KeyboardInterrupt is raised at
# whatever step the main thread is at; raise_signal raises it there at once).
INTERRUPTED_AS_HANDED_OVER = """
import signal, sys, threading
from graphlake_client import SyncClient

url, token, first, event_type = sys.argv[1:]
armed = False
try:
    with SyncClient(url, token) as lake:
        hand_over = lake._loop.call_soon_threadsafe

        def then_ctrl_c(*args):
            global armed
            handle = hand_over(*args)
            if armed and threading.current_thread() is threading.main_thread():
                armed = False
                signal.raise_signal(signal.SIGINT)
            return handle

        lake._loop.call_soon_threadsafe = then_ctrl_c
        for event in lake.follow_events(event_types=[event_type], after=first):
            print(event["message"], flush=True)
            armed = True
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


async def interrupted_follow(served: Served, state: AppState, viewer: str, contributor: str, script: str,
                             *, ctrl_c: bool) -> None:
    """Run `script` following TYPE after "a" (Ctrl-C it once "b" came and the follow listens, if
    `ctrl_c`): it prints "b", then "interrupted", and ends at once, its stream closed."""
    async with Client(served.base_url, contributor) as lake:
        first, *_ = await log(lake, "a", "b")
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, served.base_url, viewer,
                                                   first, TYPE, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"b\n"  # type: ignore[union-attr]
        if ctrl_c:
            await wait_for(lambda: live_subscribers(state.events) == 1, what="the follow to wait for live events")
            process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (process.returncode, out.decode(), err.decode()) == (0, "interrupted\n", "")
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the interrupted follow's subscriber to be let go")


async def test_ctrl_c_on_the_sync_clients_follow_raises_keyboard_interrupt(served: Served, state: AppState,
                                                                           viewer: str, contributor: str) -> None:
    """Ctrl-C while the follow waits for an event: that wait is cancelled on the client's loop, and
    the stream closed once its cleanup ran, not raising "aclose(): asynchronous generator is
    already running" over the KeyboardInterrupt."""
    await interrupted_follow(served, state, viewer, contributor, INTERRUPTED_FOLLOW, ctrl_c=True)


async def test_ctrl_c_as_the_sync_follow_hands_its_wait_over_cancels_that_wait(served: Served, state: AppState,
                                                                               viewer: str, contributor: str) -> None:
    """A Ctrl-C just after SyncClient.run handed the wait for the next event to the client's loop
    (asyncio.run_coroutine_threadsafe's hand-over, before it returned the future run() cancels)
    left that wait running: the iterator's cleanup then waited for it to end, for good, and the
    process hung (the test above, in about a third of its runs under some timings)."""
    await interrupted_follow(served, state, viewer, contributor, INTERRUPTED_AS_HANDED_OVER, ctrl_c=False)


async def test_event_ids_hold_the_millisecond_a_resume_goes_back_from(served: Served, contributor: str) -> None:
    async with Client(served.base_url, contributor) as lake:
        [event_id] = await log(lake, "timed")
        async for page in lake.query_events(event_types=[TYPE]):
            [event] = page.events
    made = event_millis(event_id)
    assert made is not None and made // 1000 == int(datetime.fromisoformat(event["receivedAt"]).timestamp())
    assert event_millis(position_at(made)) == made
    assert event_millis("not an id") is None


async def test_graphlake_events_follow_prints_json_lines(served: Served, state: AppState, contributor: str,
                                                         tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_URL": served.base_url, "GRAPHLAKE_TOKEN": contributor, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", "events", "follow", "--type", TYPE,
                                                   "--level", "warning", env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        await wait_for(lambda: live_subscribers(state.events) == 1, timeout=60, what="the command to listen")
        async with Client(served.base_url, contributor) as lake:
            one, _, two = await lake.log_events([{"eventType": TYPE, "message": m, "level": level}
                                                 for m, level in (("one", "WARNING"), ("below", "INFO"), ("two", "ERROR"))])
        lines = [json.loads(await asyncio.wait_for(process.stdout.readline(), 30)) for _ in (one, two)]  # type: ignore[union-attr]
        assert [(e["id"], e["message"]) for e in lines] == [(one, "one"), (two, "two")]
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert await asyncio.wait_for(process.wait(), 30) == 130
        assert (await process.stderr.read()).decode() == ""  # type: ignore[union-attr]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    await wait_for(lambda: live_subscribers(state.events) == 0, what="the command's subscriber to be let go")


def test_graphlake_events_follow_takes_the_level_as_events_list_does() -> None:
    """`--level`, the name `events list` gives the same filter; `--min-level` still works."""
    command = typer.main.get_command(app)
    follow, listing = (command.commands["events"].commands[name] for name in ("follow", "list"))  # type: ignore[attr-defined]
    [follow_level] = [p for p in follow.params if p.name == "level"]
    [list_level] = [p for p in listing.params if p.name == "level"]
    assert follow_level.opts == ["--level", "--min-level"] and list_level.opts == ["--level"]
