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


async def start_server_process(mongodb_url: str, database: str, data_dir: Path, *, port: int | None = None,
                               **settings: str) -> tuple[asyncio.subprocess.Process, str]:
    """A server on `port` (a free one by default: a restart passes the first's), ready; returns the
    process and its base URL. `settings` are extra GRAPHLAKE_* variables, e.g. MAX_SUBSCRIPTIONS_PER_CONNECTION="20"."""
    port = port or free_port()
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


@contextlib.asynccontextmanager
async def path_proxy(prefix: str, upstream: int) -> AsyncIterator[int]:
    """A reverse proxy on a port of its own that serves what listens on `upstream` under `prefix`
    ("/lake"), stripping it from each request as nginx's `location /lake/ { proxy_pass http://up/; }`
    does (the Host header kept); anything outside it is 404. One request per connection (Connection:
    close, so each request line is read and rewritten), a WebSocket's upgrade piped through as it
    goes. Yields its port."""
    mark = prefix.encode()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()  # either side done: so is the exchange (one request, or the socket closed)

    open_ = set[asyncio.StreamWriter]()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_.add(writer)
        try:
            await exchange(reader, writer)
        finally:
            open_.discard(writer)
            writer.close()

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line, _, fields = head[:-4].partition(b"\r\n")
        method, target, version = line.split(b" ", 2)
        if target != mark and not target.startswith((mark + b"/", mark + b"?")):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\nConnection: close\r\n\r\nnot under it.\n")
            await writer.drain()
            writer.close()
            return
        target = target[len(mark):]
        target = target if target.startswith(b"/") else b"/" + target
        headers = [h for h in fields.split(b"\r\n") if h]
        if not any(h.lower().startswith(b"upgrade:") for h in headers):
            headers = [h for h in headers if not h.lower().startswith(b"connection:")] + [b"Connection: close"]
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        open_.add(up_writer)
        up_writer.write(b"\r\n".join([b" ".join([method, target, version]), *headers]) + b"\r\n\r\n")
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            open_.discard(up_writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in list(open_):  # a WebSocket still open, say
            writer.close()
        await server.wait_closed()
