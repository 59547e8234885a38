"""GRAPHLAKE_MAX_CONCURRENT_REQUESTS: GraphQL requests over HTTP beyond the slots wait their turn,
give up with UNAVAILABLE (503) past GRAPHLAKE_REQUEST_QUEUE_SECONDS, and never hold up /healthz.
Why: graphlake/admission.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette

from graphlake.admission import QUIET_SECONDS, Admission
from tests.operations import document
from tests.waiting import wait_for

STATUS = {"query": document("Status"), "operationName": "Status"}


@contextlib.asynccontextmanager
async def every_slot_taken(admission: Admission, wait_seconds: float | None = None) -> AsyncIterator[None]:
    """The server as if `admission.concurrent` requests were running; queued ones wait `wait_seconds`."""
    saved = admission.wait_seconds
    admission.wait_seconds = wait_seconds or saved
    try:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(admission.concurrent):
                await held.enter_async_context(admission.slot())
            yield
    finally:
        admission.wait_seconds = saved


async def test_a_request_waits_for_a_free_slot_and_then_runs(app: Starlette, http: httpx.AsyncClient,
                                                             viewer: str) -> None:
    admission: Admission = app.state.admission
    async with every_slot_taken(admission):
        sent = asyncio.create_task(http.post("/graphql", json=STATUS, headers={"Authorization": f"Bearer {viewer}"}))
        await wait_for(lambda: admission.waiting == 1, what="the request to queue for a slot")
        assert not sent.done()
        assert (await http.get("/healthz")).status_code == 200  # health takes no slot
    response = await sent
    assert response.status_code == 200 and response.json()["data"]["health"]["ok"] is True
    assert admission.waiting == 0


async def test_a_request_that_waits_too_long_gets_unavailable(app: Starlette, http: httpx.AsyncClient,
                                                              viewer: str) -> None:
    admission: Admission = app.state.admission
    async with every_slot_taken(admission, wait_seconds=0.2):
        response = await http.post("/graphql", json=STATUS, headers={"Authorization": f"Bearer {viewer}"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "GRAPHLAKE_MAX_CONCURRENT_REQUESTS" in error["message"] and "busy" in error["message"]
    assert "data" not in response.json()
    # The slots are back: the next request runs.
    again = await http.post("/graphql", json=STATUS, headers={"Authorization": f"Bearer {viewer}"})
    assert again.status_code == 200 and again.json()["data"]["health"]["ok"] is True


async def test_a_slowly_sent_body_holds_no_slot(app: Starlette, http: httpx.AsyncClient, viewer: str) -> None:
    admission: Admission = app.state.admission
    more = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"query": "query Status { health { ok } }", '
        await more.wait()  # the rest of the body comes when the test says
        yield b'"operationName": "Status"}'

    sent = asyncio.create_task(http.post("/graphql", content=trickle(), headers={
        "Authorization": f"Bearer {viewer}", "Content-Type": "application/json"}))
    # An absence cannot be awaited: give the server (on this loop) a while with the half-sent
    # request. Before the fix it held a slot within milliseconds.
    for _ in range(30):
        await asyncio.sleep(0.01)
        assert admission.running == 0
    other = await http.post("/graphql", json=STATUS, headers={"Authorization": f"Bearer {viewer}"})
    assert other.status_code == 200 and admission.running == 0
    more.set()
    assert (await sent).json()["data"]["health"]["ok"] is True


async def test_quiet_returns_after_a_pause_with_no_request_running() -> None:
    """What eager background work waits for: a request that runs during the pause starts it again."""
    admission = Admission(2, 1.0)
    async with admission.slot():
        waiter = asyncio.create_task(admission.quiet())
        await asyncio.sleep(QUIET_SECONDS)
        assert not waiter.done()  # a request is running
    await asyncio.sleep(QUIET_SECONDS / 2)
    async with admission.slot():  # another, within the pause
        await asyncio.sleep(0)
    await asyncio.sleep(QUIET_SECONDS * 0.75)  # the first pause would be over by now
    assert not waiter.done()
    await asyncio.wait_for(waiter, QUIET_SECONDS * 4)
