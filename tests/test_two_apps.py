"""Two apps in one process: each holds its own database handle, stores, feed and subscribers on its
state; they share the process's one database client (Beanie binds documents per process), so either
can be closed while the other keeps serving."""

from __future__ import annotations

import asyncio

import httpx

from graphlake.app import create_app
from graphlake.settings import Settings
from tests.conftest import Served
from tests.operations import Api, document
from tests.processes import serving
from tests.waiting import wait_for
from tests.ws_client import Subscriber


async def test_two_apps_serve_one_lake_side_by_side(api: Api, served: Served, settings: Settings, viewer: str,
                                                    contributor: str) -> None:
    second = create_app(settings)
    async with serving(second) as port:
        state_a, state_b = served.app.state.graphlake, second.state.graphlake
        assert state_b is not state_a and state_b.feed is not state_a.feed and state_b.db.name == state_a.db.name
        assert state_b.client is state_a.client  # one client per process and database
        base_b = f"http://127.0.0.1:{port}"
        async with Subscriber(base_b.replace("http", "ws", 1) + "/graphql") as on_b, \
                httpx.AsyncClient(base_url=base_b, timeout=30) as http_b:
            await on_b.connect({"Authorization": f"Bearer {viewer}"})
            await on_b.subscribe("EventStream", {"filter": {"eventTypes": ["TWO_APPS"]}})
            await wait_for(lambda: state_b.events.has_subscribers, what="the subscription on the second app")
            # The second app announces its subscriber in its heartbeat, a write of its own: the first app
            # copies events to the feed once it can read that (a few ms; more on a loaded machine).
            await wait_for(state_a.feed._others_listening, what="the first app to see the second one listening")
            # Logged through the first app, streamed live by the second.
            await api.data("LogEvent", {"input": {"eventType": "TWO_APPS", "message": "from a"}}, token=contributor)
            message = await asyncio.wait_for(on_b.receive(), 15)
            assert message["payload"]["data"]["events"]["message"] == "from a"
            # Stored through the second app, read through the first.
            response = await http_b.post("/graphql", headers={"Authorization": f"Bearer {contributor}"}, json={
                "query": document("StoreValue"), "operationName": "StoreValue",
                "variables": {"input": {"name": "b-side", "value": {"x": 1}}}})
            stored = response.json()["data"]["storeValue"]
    # The second app is closed: the first still reads and writes.
    assert (await api.data("Asset", {"id": stored["id"]}, token=viewer))["asset"]["name"] == "b-side"
    again = await api.data("StoreValue", {"input": {"name": "after", "value": 2}}, token=contributor)
    assert again["storeValue"]["name"] == "after"


async def test_a_second_database_in_one_process_is_refused_clearly(served: Served, settings: Settings) -> None:
    other = create_app(settings.model_copy(update={"database": settings.database + "_other"}))
    try:
        async with other.router.lifespan_context(other):
            raise AssertionError("a second database was opened in the same process")
    except RuntimeError as error:
        assert "one database per process" in str(error)
