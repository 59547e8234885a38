"""The database going away under a writer: no acknowledged write is lost, every request during the
outage gets UNAVAILABLE (HTTP 503) rather than a 500, and writes work again soon after it is back.

The server runs as a process of its own on a FerretDB of its own (Beanie binds this test process to
the suite's database), which the test kills and restarts on the same files and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from graphlake.local_services import Service, find_binary, start_ferretdb
from tests.operations import document
from tests.processes import start_server_process
from tests.waiting import wait_for

WRITERS = 4
DATABASE = "faults"


def create_token(url: str, data_dir: Path) -> str:
    """A CONTRIBUTOR token made by the CLI on the test's own database."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_MONGODB_URL": url, "GRAPHLAKE_DATABASE": DATABASE, "GRAPHLAKE_DATA_DIR": str(data_dir)}
    made = subprocess.run([sys.executable, "-m", "graphlake", "token", "create", "writer", "--role", "CONTRIBUTOR"],
                          env=env, cwd=data_dir, capture_output=True, text=True, check=True)
    return made.stdout.strip().splitlines()[-1]


@dataclass
class Lake:
    """A server process on a FerretDB of its own, with a CONTRIBUTOR token."""

    binary: Path
    ferret: Service
    url: str
    http: httpx.AsyncClient
    process: asyncio.subprocess.Process | None = None


@contextlib.asynccontextmanager
async def own_lake(tmp_path: Path, **settings: str) -> AsyncIterator[Lake]:
    binary = find_binary("ferretdb")
    lake = Lake(binary, start_ferretdb(binary, tmp_path / "ferretdb"), "", None)  # type: ignore[arg-type]
    lake.url = f"mongodb://127.0.0.1:{lake.ferret.port}/"
    (tmp_path / "server").mkdir()
    process = None
    try:
        token = await asyncio.to_thread(create_token, lake.url, tmp_path / "server")
        process, base = await start_server_process(lake.url, DATABASE, tmp_path / "server", **settings)
        lake.process = process
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            lake.http = http
            yield lake
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        lake.ferret.stop()


async def post(http: httpx.AsyncClient, operation: str, variables: dict) -> httpx.Response:
    return await http.post("/graphql", json={"query": document(operation), "operationName": operation,
                                             "variables": variables})


async def test_database_outage_loses_no_acknowledged_write_and_answers_unavailable(tmp_path: Path) -> None:
    async with own_lake(tmp_path, DATABASE_TIMEOUT_SECONDS="1", TOKEN_CACHE_SECONDS="0.5") as lake:
        await write_through_an_outage(lake, tmp_path)


async def write_through_an_outage(lake: Lake, tmp_path: Path) -> None:
    acknowledged: list[str] = []
    refused: list[tuple[int, list[str]]] = []  # (HTTP status, error codes) of each failed write
    stop = asyncio.Event()

    async def write(writer: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            response = await post(lake.http, "StoreValue",
                                   {"input": {"name": f"w{writer}-{n}", "value": {"writer": writer, "n": n}}})
            answer = response.json()  # a JSON body always: never a plain-text 500
            if answer.get("errors"):
                refused.append((response.status_code, [e.get("extensions", {}).get("code") for e in answer["errors"]]))
            else:
                assert response.status_code == 200
                acknowledged.append(answer["data"]["storeValue"]["id"])

    writers = [asyncio.create_task(write(w)) for w in range(WRITERS)]
    try:
        await wait_for(lambda: len(acknowledged) >= 50, timeout=30, what="writes before the outage")
        lake.ferret.stop()
        # Past the token cache, authentication needs the database too: both paths answer UNAVAILABLE.
        await wait_for(lambda: len(refused) >= 3 * WRITERS, timeout=30, what="writes refused during the outage")
        assert (await lake.http.get("/healthz")).status_code == 200  # the process itself stays responsive
        before_restart = len(acknowledged)
        lake.ferret = start_ferretdb(lake.binary, tmp_path / "ferretdb", lake.ferret.port)
        await wait_for(lambda: len(acknowledged) >= before_restart + 10, timeout=10,
                       what="writes to work again after the database is back")
    finally:
        stop.set()
        await asyncio.gather(*writers)

    assert refused and all(status == 503 and codes == ["UNAVAILABLE"] for status, codes in refused), refused
    found: set[str] = set()
    for start in range(0, len(acknowledged), 500):
        answer = (await post(lake.http, "Nodes", {"ids": acknowledged[start:start + 500]})).json()
        found |= {node["id"] for node in answer["data"]["nodes"] if node}
    assert found == set(acknowledged)  # every acknowledged write survived the outage


async def test_a_query_past_the_time_limit_is_stopped_with_unavailable(tmp_path: Path) -> None:
    # The token cached for longer than the test: once the first query has looked it up, the query's
    # own command is the only thing the second one asks of the database.
    async with own_lake(tmp_path, DATABASE_TIMEOUT_SECONDS="0.3", TOKEN_CACHE_SECONDS="60") as lake:
        query = {"filter": {"nameContains": "no-such-name"}, "first": 10}
        answered = await post(lake.http, "Assets", query)
        assert answered.status_code == 200, answered.json()  # the same query, on a database that answers
        # A database that does not answer at all, not one made slow enough with many assets to scan:
        # whether a scan outlasts the limit depends on the machine (15,000 once took under 0.3 s).
        with stalled(lake.ferret):
            response = await post(lake.http, "Assets", query)
        answer = response.json()
        assert response.status_code == 503, answer
        assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAVAILABLE"]
        assert "time limit" in answer["errors"][0]["message"]


@contextlib.contextmanager
def stalled(ferret: Service) -> Iterator[None]:
    """FerretDB stopped (SIGSTOP) for the block: its connections stay open and every command sent
    waits unanswered, as on a database too busy to answer in time, however fast the machine is.
    It is continued (SIGCONT) however the block ends, so a failing test leaves no FerretDB stopped."""
    assert ferret.process is not None
    ferret.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        ferret.process.send_signal(signal.SIGCONT)


async def test_a_server_whose_database_is_gone_stops_soon_after_sigterm(tmp_path: Path) -> None:
    """Stopping does not wait on a database that is not there: closing the client asks the server to
    end its sessions, which PyMongo waits 10 s for when no server answers (graphlake/database.py);
    a server whose database had gone took that long to stop, past many process managers' patience."""
    async with own_lake(tmp_path, DATABASE_TIMEOUT_SECONDS="1") as lake:
        assert lake.process is not None
        lake.ferret.stop()
        await wait_for(lambda: ready_status(lake.http, 503), timeout=30, what="/readyz to report the database gone")
        lake.process.send_signal(signal.SIGTERM)
        # Below the 10 s PyMongo would wait, with room for a normal stop on a loaded 2-core CI machine
        # (2-3 s there): 5 s left so little that the machine's speed, not that wait, could fail it.
        await asyncio.wait_for(lake.process.wait(), timeout=8)


async def ready_status(http: httpx.AsyncClient, status: int) -> bool:
    return (await http.get("/readyz")).status_code == status
