"""Services started for tests and benches: `graphlake serve` as a separate process on a shared
database (the second server of the cluster tests, the servers of bench/events.py, whose clients
must not share their event loop), and the database a bench runs on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from graphlake.http_server import serve
from graphlake.local_services import find_binary, free_port, start_ferretdb
from tests.waiting import wait_for


async def start_server_process(mongodb_url: str, database: str, data_dir: Path,
                               **settings: str) -> tuple[asyncio.subprocess.Process, str]:
    """A server on a free port, ready; returns the process and its base URL. `settings` are
    extra GRAPHLAKE_* variables, e.g. MAX_SUBSCRIPTIONS_PER_CONNECTION="20"."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_MONGODB_URL": mongodb_url, "GRAPHLAKE_DATABASE": database, "GRAPHLAKE_PORT": str(port),
           "GRAPHLAKE_DATA_DIR": str(data_dir), "GRAPHLAKE_BOOTSTRAP_ADMIN_TOKEN": "false", "GRAPHLAKE_LOG_LEVEL": "WARNING",
           **{f"GRAPHLAKE_{name}": value for name, value in settings.items()}}
    # Its log goes to server.log in its data dir: a server that fails to start says why there.
    with open(data_dir / "server.log", "ab") as log:  # noqa: ASYNC230 (opening a local file is instant)
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", "serve", env=env, cwd=data_dir,
                                                       stdout=asyncio.subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        if process.returncode is not None:
            log = (data_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"graphlake serve exited ({process.returncode}) before it was ready on port {port}:\n{log}")
        try:
            return (await http.get(f"{url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False  # not listening yet

    try:
        async with httpx.AsyncClient() as http:
            await wait_for(ready, timeout=60, interval=0.1, what=f"graphlake serve to be ready on port {port}")
    except BaseException:
        process.kill()
        raise
    return process, url


@contextlib.contextmanager
def bench_database(tmp: Path) -> Iterator[str]:
    """The MongoDB URL a bench runs on: GRAPHLAKE_BENCH_MONGODB_URL, else a FerretDB from the build
    cache with its files under `tmp`, stopped when the bench is done."""
    url = os.environ.get("GRAPHLAKE_BENCH_MONGODB_URL")
    if url:
        yield url
        return
    ferret = start_ferretdb(find_binary("ferretdb"), tmp / "ferretdb")
    try:
        yield f"mongodb://127.0.0.1:{ferret.port}/"
    finally:
        ferret.stop()


@contextlib.asynccontextmanager
async def serving(app, port: int | None = None, log_level: str = "warning") -> AsyncIterator[int]:
    """`app` served by uvicorn in this process while the block runs, on `port` or a free one; yields
    the port. (A bench's clients then share this event loop: fine for sequential timings.)"""
    port = port or free_port()
    # As `graphlake serve` runs it (WebSocket implementation, limits, compression), with the app's settings.
    server = serve(app, app.state.settings, host="127.0.0.1", port=port, log_level=log_level)
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done() and not server.started:
            task.result()  # startup failed: raise its error here
            raise RuntimeError("uvicorn stopped before it served (see the log)")
        return server.started

    await wait_for(started, timeout=60, what="the app to start serving")
    try:
        yield port
    finally:
        server.should_exit = True
        await task
