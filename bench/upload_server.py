"""The upload bench's server side: the app in a child process behind counters of the body bytes and
database time each route costs, MinIO with a bucket, and the settings that join them
(bench/upload.py measures through them)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
import pymongo
import uvicorn
from botocore.config import Config
from pymongo.monitoring import CommandListener
from starlette.responses import JSONResponse

from documents.roles import Role
from graphlake.app import create_app
from graphlake.local_services import find_binary, free_port, start_minio
from graphlake.settings import S3MountSettings, Settings
from services.auth import create_token
from tests.processes import bench_database

MIB = 1024 * 1024
THRESHOLD = 64 * MIB  # the server's multipart threshold (its default): 64 MiB and up go in 8 MiB parts
S3_MOUNT = "lab"
ACCESS_KEY, SECRET_KEY, BUCKET = "bench", "bench-secret-123", "bench"


def s3_config(sign_payload: bool | None = None) -> Config:
    """storage/s3.py's Config, so the baseline signs and checksums as the server's own client does.

    botocore then SHA-256-signs every byte it sends (no checksum header is added), while the
    presigned URLs say UNSIGNED-PAYLOAD; `sign_payload=False` turns that off for comparison.
    """
    s3 = {"addressing_style": "path"} | ({} if sign_payload is None else {"payload_signing_enabled": sign_payload})
    return Config(s3=s3, signature_version="s3v4", request_checksum_calculation="when_required",
                  response_checksum_validation="when_required", retries={"max_attempts": 3, "mode": "standard"})


# --- counting what the server receives, and its database time

_in_graphql_request: ContextVar[bool] = ContextVar("in_graphql_request", default=False)


COUNTERS_PATH = "/bench/counters"


class BodyCounter:
    """ASGI middleware: sums the body bytes of `http.request` messages, per route (graphql, blobs),
    marks GraphQL requests so that only their database commands are timed, and answers
    COUNTERS_PATH with the sums so far (JSON)."""

    def __init__(self, app: Callable, database: DatabaseTime) -> None:
        self.app = app
        self.database = database
        self.received: Counter[str] = Counter()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope.get("path") == COUNTERS_PATH:
            return await JSONResponse(self.counters())(scope, receive, send)
        route = _route(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)

        async def counting_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                self.received[route] += len(message.get("body", b""))
            return message

        token = _in_graphql_request.set(route == "graphql")
        try:
            await self.app(scope, counting_receive, send)
        finally:
            _in_graphql_request.reset(token)

    def counters(self) -> dict[str, float]:
        return {"graphql": self.received["graphql"], "blobs": self.received["blobs"],
                "db_commands": self.database.commands, "db_seconds": self.database.seconds}


def _route(path: str) -> str | None:
    if path == "/graphql":
        return "graphql"
    return "blobs" if path.startswith("/blobs/") else None


class DatabaseTime(CommandListener):
    """Counts the database commands of GraphQL requests and sums their durations (where the flow's
    time goes); the server's background tasks are left out."""

    def __init__(self) -> None:
        self.commands = 0
        self.seconds = 0.0

    def started(self, event: object) -> None:
        pass

    def succeeded(self, event) -> None:
        if _in_graphql_request.get():  # PyMongo reports from the task that sent the command
            self.commands += 1
            self.seconds += event.duration_micros / 1e6

    failed = succeeded


# --- services

def serve(settings: Settings, ready: Connection) -> None:
    """The server process: the app behind the counters; sends a CONTRIBUTOR token's secret once it
    listens, then serves until terminated."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # The event loop `graphlake serve` (uvicorn.run) gets: uvloop where it is installed.
    with asyncio.Runner(loop_factory=uvicorn.Config(app=None).get_loop_factory()) as runner:
        runner.run(_serve(settings, ready))


async def _serve(settings: Settings, ready: Connection) -> None:
    database = DatabaseTime()
    app = create_app(settings, command_listeners=[database])
    server = uvicorn.Server(uvicorn.Config(BodyCounter(app, database), host="127.0.0.1", port=settings.port,
                                           log_level="warning", log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # startup failed: raise its error here
        await asyncio.sleep(0.05)
    _, secret = await create_token("bench", Role.CONTRIBUTOR)
    ready.send(secret)
    await task


@contextlib.contextmanager
def server_process(settings: Settings) -> Iterator[str]:
    """`serve` in a child process; yields the token's secret, and stops the server and drops its
    database at the end."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    process = spawn.Process(target=serve, args=(settings, theirs), name="graphlake-bench-server")
    process.start()
    try:
        if not ours.poll(120):
            raise RuntimeError("the Graphlake server did not start within 120 s")
        yield ours.recv()
    finally:
        process.terminate()
        process.join(30)
        with pymongo.MongoClient(settings.mongodb_url.get_secret_value()) as client:
            client.drop_database(settings.database)


def start_services(tmp: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    """MinIO with a bucket, and FerretDB unless GRAPHLAKE_BENCH_MONGODB_URL; returns (mongodb url, s3 url)."""
    minio = start_minio(find_binary("minio"), tmp / "minio", ACCESS_KEY, SECRET_KEY)
    stack.callback(minio.stop)
    endpoint = f"http://127.0.0.1:{minio.port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                 region_name="us-east-1", config=s3_config()).create_bucket(Bucket=BUCKET)
    return stack.enter_context(bench_database(tmp)), endpoint


def make_settings(tmp: Path, mongodb_url: str, endpoint: str) -> Settings:
    return Settings(
        _env_file=None, mongodb_url=mongodb_url, database=f"graphlake_bench_upload_{uuid.uuid4().hex[:8]}",
        data_dir=tmp / "data", bootstrap_admin_token=False, log_level="WARNING",
        port=free_port(),  # chosen now: the local mount's signed URLs name the port the server listens on
        multipart_threshold_bytes=THRESHOLD,
        mounts={S3_MOUNT: S3MountSettings(bucket=BUCKET, endpoint_url=endpoint, access_key_id=ACCESS_KEY,
                                          secret_access_key=SECRET_KEY)},
    )
