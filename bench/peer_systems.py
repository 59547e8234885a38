"""The peer bench's two systems: MADSci's data manager (its virtual environment, made on first use,
and its process) and Graphlake (`graphlake serve` in a process of its own), each on a FerretDB of
its own, and each as a client sees it, over httpx (bench/peer.py times the same work on both)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from documents.roles import Role
from graphlake.database import connect
from graphlake.local_services import (
    find_binary,
    free_port,
    start_ferretdb,
)
from graphlake_client import Client, ResumeState
from services.auth import create_token
from tests.processes import start_server_process

PEER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "graphlake" / "peer-venv"
PEER_REQUIREMENTS = ["madsci-data-manager==0.8.1", "pydantic==2.10.*"]
DATABASE = "peer_bench"
CLIENTS = 8  # concurrent clients of the second step
FILE_CONCURRENCY = 4  # graphlake_client.Client's default; MADSci's uploads and both fetches get the same
GROUPS = 100  # value i is in group i % GROUPS, so a group is 1% of the values
PAGE = 500  # Graphlake's maximum page size
CHUNK = 1024 * 1024

# What a MADSci datapoint carries, asked of Graphlake too so both answers hold the same things.
FIELDS = "id name kind value dataTimestamp owner { userId experimentId workflowId projectId }"
STORE_VALUE = f"mutation StoreValue($input: StoreValueInput!) {{ storeValue(input: $input) {{ {FIELDS} }} }}"
GET_VALUE = f"query AssetById($id: ID!) {{ asset(id: $id) {{ {FIELDS} }} }}"
VALUES_WHERE = f"""query ValuesWhere($filter: AssetFilter, $first: Int, $after: String) {{
  assets(filter: $filter, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {FIELDS} }} }}
  }}
}}"""
# MADSci runs through its own entry point (DataManager().run_server()); uvicorn's log level is
# that of `graphlake serve` here (WARNING), so neither writes a line per request.
MADSCI_MAIN = "from madsci.data_manager.data_server import DataManager; DataManager().run_server(log_level='warning')"


def value_of(sample: int) -> dict[str, int]:
    return {"sample": sample, "group": sample % GROUPS}


# --- the peer's environment and the services


def peer_python() -> Path:
    """The python of MADSci's virtual environment, made and filled on first use; reused after
    (a marker file records the requirements it was filled with)."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".graphlake-peer-requirements"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        print(f"creating MADSci's virtual environment in {PEER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    print(f"installing {' '.join(PEER_REQUIREMENTS)} into it from PyPI (once) ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_REQUIREMENTS],
                   check=True)
    marker.write_text(wanted)
    return python


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_madsci(python: Path, mongodb_url: str, home: Path) -> tuple[asyncio.subprocess.Process, str]:
    """MADSci's data manager on a free port, ready. Its settings come from DATA_* variables; with no
    OBJECT_STORAGE_ENDPOINT it keeps files on the local disk (DATA_FILE_STORAGE_PATH). Its own
    directory (`.madsci/`: logs, registry) is found from MADSCI_SETTINGS_DIR, here under `home`."""
    (home / ".madsci").mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DATA_", "OBJECT_STORAGE_", "MADSCI_"))},
           "MADSCI_SETTINGS_DIR": str(home), "DATA_SERVER_URL": url, "DATA_DB_URL": mongodb_url,
           "DATA_DATABASE_NAME": DATABASE, "DATA_FILE_STORAGE_PATH": str(home / "files"),
           # a lab-wide identity registry: nothing to do with storing data, and it writes outside `home` otherwise
           "DATA_ENABLE_REGISTRY_RESOLUTION": "false"}
    with (home / "madsci.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(str(python), "-c", MADSCI_MAIN, env=env, cwd=home,
                                                       stdout=log, stderr=subprocess.STDOUT)
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                health = await http.get(f"{url}/health")
                if health.status_code == 200 and health.json().get("healthy"):
                    return process, url
            if process.returncode is not None:
                break
            await asyncio.sleep(0.1)
    await stop_process(process)
    tail = (home / "madsci.log").read_text(errors="replace")[-3000:]  # the directory goes with the bench
    raise RuntimeError(f"MADSci's data manager did not start; its log ends:\n{tail}")


# --- the two systems, as a client sees them


class Madsci:
    """MADSci's data manager over its REST API."""

    name = "MADSci"

    def __init__(self, url: str) -> None:
        self.clients = [httpx.AsyncClient(base_url=url, timeout=300) for _ in range(CLIENTS)]
        self.processes: dict[str, int] = {}  # "server" and "database": their process ids (started_systems)

    async def close(self) -> None:
        for http in self.clients:
            await http.aclose()

    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    async def store_value(self, http: httpx.AsyncClient, sample: int) -> str:
        datapoint = {"data_type": "json", "label": f"sample-{sample}", "value": value_of(sample)}
        return self._ok(await http.post("/datapoint", data={"datapoint": json.dumps(datapoint)}))["_id"]

    async def get_value(self, http: httpx.AsyncClient, datapoint_id: str) -> Any:
        return self._ok(await http.get(f"/datapoint/{datapoint_id}"))["value"]

    async def query_group(self, http: httpx.AsyncClient, group: int) -> list[Any]:
        found = self._ok(await http.post("/datapoints/query", json={"value.group": group}))
        return [datapoint["value"] for datapoint in found.values()]

    async def store_files(self, paths: list[Path]) -> dict[str, str]:
        http, gate = self.clients[0], asyncio.Semaphore(FILE_CONCURRENCY)

        async def store(path: Path) -> str:
            async with gate:
                datapoint = {"data_type": "file", "label": path.name, "path": path.name}
                body = await asyncio.to_thread(path.read_bytes)
                response = await http.post("/datapoint", data={"datapoint": json.dumps(datapoint)},
                                           files=[("files", (path.name, body, "application/octet-stream"))])
                return self._ok(response)["_id"]

        ids = await asyncio.gather(*(store(path) for path in paths))
        return {path.name: datapoint_id for path, datapoint_id in zip(paths, ids, strict=True)}

    async def fetch_files(self, ids: dict[str, str], dest: Path) -> None:
        http, gate = self.clients[0], asyncio.Semaphore(FILE_CONCURRENCY)

        async def fetch(name: str, datapoint_id: str) -> None:
            async with gate, http.stream("GET", f"/datapoint/{datapoint_id}/value") as response:
                response.raise_for_status()
                with (dest / name).open("wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        out.write(chunk)

        await asyncio.gather(*(fetch(name, datapoint_id) for name, datapoint_id in ids.items()))


class Graphlake:
    """Graphlake over GraphQL; files through its Python client."""

    name = "Graphlake"

    def __init__(self, url: str, token: str, resume_state: Path) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.clients = [httpx.AsyncClient(base_url=url, timeout=300, headers=headers) for _ in range(CLIENTS)]
        # Over HTTP, as MADSci's files go: not the direct write a client on the server's own
        # disk would make. The resume state lives with the bench's other files, not in the user's cache.
        self.lake = Client(url, token, concurrency=FILE_CONCURRENCY, direct_writes=False,
                           resume=ResumeState(path=resume_state))
        self.processes: dict[str, int] = {}  # "server" and "database": their process ids (started_systems)

    async def close(self) -> None:
        for http in self.clients:
            await http.aclose()
        await self.lake.__aexit__()

    @staticmethod
    async def _data(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"Graphlake: {body['errors'][0]['message']}")
        return body["data"]

    async def store_value(self, http: httpx.AsyncClient, sample: int) -> str:
        stored = await self._data(http, STORE_VALUE, {"input": {"name": f"sample-{sample}", "value": value_of(sample)}})
        return stored["storeValue"]["id"]

    async def get_value(self, http: httpx.AsyncClient, asset_id: str) -> Any:
        return (await self._data(http, GET_VALUE, {"id": asset_id}))["asset"]["value"]

    async def query_group(self, http: httpx.AsyncClient, group: int) -> list[Any]:
        variables: dict[str, Any] = {"filter": {"value": [{"path": "group", "op": "EQ", "value": group}]}, "first": PAGE}
        values = []
        while True:
            page = (await self._data(http, VALUES_WHERE, variables))["assets"]
            values += [edge["node"]["value"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return values
            variables["after"] = page["pageInfo"]["endCursor"]

    async def store_files(self, paths: list[Path]) -> dict[str, str]:
        assets = await self.lake.upload_paths([paths[0].parent])  # a directory, as `graphlake upload DIR` does
        if any(asset["status"] != "ACTIVE" for asset in assets):
            raise RuntimeError("Graphlake: an uploaded file is not ACTIVE")
        return {asset["name"]: asset["id"] for asset in assets}

    async def fetch_files(self, ids: dict[str, str], dest: Path) -> None:
        gate = asyncio.Semaphore(FILE_CONCURRENCY)

        async def fetch(asset_id: str) -> None:
            async with gate:
                await self.lake.download(asset_id, dest)

        await asyncio.gather(*(fetch(asset_id) for asset_id in ids.values()))


System = Madsci | Graphlake


@contextlib.asynccontextmanager
async def started_systems(tmp: Path) -> AsyncIterator[list[System]]:
    """Both systems, each on a FerretDB of its own; everything stopped on the way out."""
    python = peer_python()
    binary = find_binary("ferretdb")
    print(f"FerretDB: {binary.name}; MADSci: {PEER_VENV}", flush=True)
    async with contextlib.AsyncExitStack() as stack:
        madsci_db = start_ferretdb(binary, tmp / "madsci" / "ferretdb")
        stack.callback(madsci_db.stop)
        lake_db = start_ferretdb(binary, tmp / "graphlake" / "ferretdb")
        stack.callback(lake_db.stop)
        lake_url = f"mongodb://127.0.0.1:{lake_db.port}/"

        madsci_process, madsci_url = await start_madsci(python, f"mongodb://127.0.0.1:{madsci_db.port}/", tmp / "madsci")
        stack.push_async_callback(stop_process, madsci_process)

        database = await connect(lake_url, DATABASE)  # the token goes straight into Graphlake's database
        stack.push_async_callback(database.close)
        _, token = await create_token("bench-peer", Role.CONTRIBUTOR)
        (tmp / "graphlake" / "data").mkdir(parents=True)
        # Its FerretDB is reached by URL (so both systems run the same build alike), where the audit
        # journal is off unless asked; on the embedded default it is on.
        process, lake_base = await start_server_process(lake_url, DATABASE, tmp / "graphlake" / "data",
                                                        AUDIT_JOURNAL="true")
        stack.push_async_callback(stop_process, process)

        madsci = Madsci(madsci_url)
        stack.push_async_callback(madsci.close)
        madsci.processes = {"server": madsci_process.pid, "database": madsci_db.process.pid}
        lake = Graphlake(lake_base, token, tmp / "uploads.json")
        stack.push_async_callback(lake.close)
        lake.processes = {"server": process.pid, "database": lake_db.process.pid}
        yield [madsci, lake]
