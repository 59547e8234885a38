"""Session-wide real services (FerretDB or MongoDB, MinIO), one app, and a clean database per test.

Give running services instead with GRAPHLAKE_TEST_MONGODB_URL and GRAPHLAKE_TEST_S3_ENDPOINT
(+ _ACCESS_KEY, _SECRET_KEY, _BUCKET).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandListener, CommandStartedEvent, CommandSucceededEvent
from starlette.applications import Starlette

from documents.event import AUDIT, FEED_COLLECTION
from documents.registry import DOCUMENT_MODELS
from documents.roles import Role
from graphlake.app import create_app, in_background
from graphlake.local_services import find_binary, free_port, start_ferretdb, start_minio
from graphlake.settings import S3MountSettings, Settings
from resolvers.context import AppState
from services.auth import create_token
from services.events.feed import WRITERS_COLLECTION
from services.schedules import SCHEDULES
from services.uploads.reconciler import STRANDED_POSITION
from storage import S3Store
from storage.ownership import OWNER_FILE
from tests import watchdog
from tests.operations import Api
from tests.processes import serving
from tests.waiting import live_subscribers, wait_for
from tests.watchdog import pytest_runtest_call  # noqa: F401 (a hook: pytest finds it in this module)


@dataclass(frozen=True)
class S3Service:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def read_only_credentials(self) -> dict[str, str]:
        """AWS_* variables of credentials that may read the bucket and write nothing there: MinIO gives
        its root user temporary ones narrowed by a session policy. Skips the test where the store gives none."""
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{self.bucket}", f"arn:aws:s3:::{self.bucket}/*"]}]}
        sts = boto3.client("sts", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                           aws_secret_access_key=self.secret_key, region_name="us-east-1")
        try:
            credentials = sts.assume_role(RoleArn="arn:minio:iam:::role/read-only", RoleSessionName="read-only",
                                          Policy=json.dumps(policy), DurationSeconds=900)["Credentials"]
        except ClientError as error:
            pytest.skip(f"this S3 store gives no read-only session credentials: {error}")
        return {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"]}


def mount_at(s3: S3Service, name: str, prefix: str = "", **changed: object) -> S3Store:
    """A store (not opened) of the test MinIO's bucket under `prefix`, with `changed` settings (a wrong
    secret, another endpoint, a timeout, ...)."""
    return S3Store(name, **{"bucket": s3.bucket, "prefix": prefix, "endpoint_url": s3.endpoint,
                            "access_key_id": s3.access_key, "secret_access_key": s3.secret_key, **changed})


@pytest.fixture(scope="session", autouse=True)
async def watched_loop() -> None:
    """The loop a stuck test's tasks run on, for tests/watchdog.py to print them."""
    watchdog.session_loop = asyncio.get_running_loop()


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("GRAPHLAKE_TEST_MONGODB_URL"):
        yield url
        return
    service = start_ferretdb(find_binary("ferretdb"), tmp_path_factory.mktemp("ferretdb"))
    watchdog.logs.append(service.log_path)
    yield f"mongodb://127.0.0.1:{service.port}/"
    service.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    if endpoint := os.environ.get("GRAPHLAKE_TEST_S3_ENDPOINT"):
        service = None
        s3 = S3Service(endpoint, os.environ["GRAPHLAKE_TEST_S3_ACCESS_KEY"],
                       os.environ["GRAPHLAKE_TEST_S3_SECRET_KEY"], os.environ.get("GRAPHLAKE_TEST_S3_BUCKET", "graphlake-test"))
    else:
        service = start_minio(find_binary("minio"), tmp_path_factory.mktemp("minio"), "graphlake", "graphlake-secret")
        s3 = S3Service(f"http://127.0.0.1:{service.port}", "graphlake", "graphlake-secret", "graphlake-test")
    client = s3.client()
    if s3.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=s3.bucket)
    elif service is None:
        # A bucket kept between sessions names the lake of an earlier one as its owner: this session's
        # lake (a new database) would then only read it (storage/ownership.py). Claimed afresh instead.
        client.delete_object(Bucket=s3.bucket, Key=OWNER_FILE)
    yield s3
    if service:
        service.stop()


@pytest.fixture(scope="session")
def settings(mongodb_url: str, s3: S3Service, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_url=mongodb_url,
        database=f"graphlake_test_{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("data"),
        mounts={"lab": S3MountSettings(
            bucket=s3.bucket, endpoint_url=s3.endpoint, access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
        )},
        bootstrap_admin_token=False,
        log_level="INFO",
        port=free_port(),  # chosen now: signed local URLs must name the port the server listens on
        # As on the embedded default (this FerretDB is reached by URL, where the default is off).
        audit_journal=True,
        # The served app's own maintenance runs its round at start and then not again in a session:
        # tests that run a round themselves (tests/test_schedules.py, test_asset_referrers.py) clear
        # a daily job's claim and then run it, and a background round every 300 s could take the
        # claim in between (a window of milliseconds, so failing at random).
        reconcile_interval_seconds=86_400,
    )


class CommandCounter(CommandListener):
    """Counts the database commands the app sends (driver housekeeping excluded)."""

    HOUSEKEEPING = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "saslStart",
                              "saslContinue", "getMore"})

    def __init__(self) -> None:
        self.commands: list[str] = []  # command names, in order
        self.collections: list[str] = []  # the collection each names, alongside
        self.returned: Counter[str] = Counter()  # documents finds answered with, by collection
        self.finds: list[dict] = []  # the find commands themselves, for their query plans
        self.updates: list[tuple[str, dict]] = []  # (collection, filter) of each update statement sent
        # The size of each command, for tests that check none is unbounded: (find or getMore, collection,
        # documents it answered with) of each reply, and (collection, documents it carried) of each insert.
        self.batches: list[tuple[str, str, int]] = []
        self.inserts: list[tuple[str, int]] = []
        # (command, collection, its maxTimeMS or None) of each: the time limit the driver sent it under.
        self.limits: list[tuple[str, str, int | None]] = []

    def clear(self) -> None:
        self.commands.clear()
        self.collections.clear()
        self.returned.clear()
        self.finds.clear()
        self.updates.clear()
        self.batches.clear()
        self.inserts.clear()
        self.limits.clear()

    def tally(self, collection: str | None = None) -> Counter[str]:
        """The commands sent since the last clear, counted: each as "find assets" (its name and
        collection), or, of one `collection` only, by name alone."""
        sent = zip(self.commands, self.collections, strict=True)
        if collection is not None:
            return Counter(command for command, target in sent if target == collection)
        return Counter(f"{command} {target}" for command, target in sent)

    def started(self, event: CommandStartedEvent) -> None:
        # The event feed's tail runs in the background of every server; its commands are not a request's.
        target = (event.command.get(event.command_name), event.command.get("collection"))
        on_feed = FEED_COLLECTION in target or WRITERS_COLLECTION in target
        # So does the maintenance task, every reconcile interval: a count that met it once failed at random.
        # And a mutation's AUDIT event alone is journaled and stored moments after the answer, several
        # together (services/events/journal.py): an insert of AUDIT events only is not a request's.
        journaled = event.command_name == "insert" and target[0] == "events" and all(
            doc.get("event_type") == AUDIT for doc in event.command.get("documents", [{}]))
        if event.command_name not in self.HOUSEKEEPING and not on_feed and not in_background.get() and not journaled:
            self.commands.append(event.command_name)
            self.collections.append(str(target[0]))
            self.limits.append((event.command_name, str(target[0]), event.command.get("maxTimeMS")))
            if event.command_name == "find":
                self.finds.append(dict(event.command))
            if event.command_name == "update":
                self.updates += [(str(target[0]), dict(u.get("q", {}))) for u in event.command.get("updates", [])]
            if event.command_name == "insert":
                self.inserts.append((str(target[0]), len(event.command.get("documents", []))))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor") if event.command_name in ("find", "getMore") else None
        if cursor is not None:
            collection = cursor.get("ns", "").partition(".")[2]
            if collection not in (FEED_COLLECTION, WRITERS_COLLECTION):
                answered = len(cursor.get("firstBatch", cursor.get("nextBatch", [])))
                self.returned[collection] += answered
                self.batches.append((event.command_name, collection, answered))

    def failed(self, event: object) -> None:
        pass


@dataclass(frozen=True)
class Served:
    app: Starlette
    base_url: str
    commands: CommandCounter

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/graphql"


@pytest.fixture(scope="session")
async def served(settings: Settings) -> AsyncIterator[Served]:
    """The app, served by uvicorn on a free port: WebSocket tests need a real socket, and HTTP tests
    reach the same app object (and so the same lifespan state) through the ASGI transport."""
    counter = CommandCounter()
    app = create_app(settings, command_listeners=[counter])
    # On the port the settings name: signed local URLs carry it.
    async with serving(app, settings.port, log_level="info") as port:
        yield Served(app=app, base_url=f"http://127.0.0.1:{port}", commands=counter)


@pytest.fixture
async def scratch_db(mongodb_url: str) -> AsyncIterator[AsyncDatabase]:
    """A database of its own on the test server, dropped afterwards: for code that works below the
    documents (migrations, backups) or servers started in their own processes."""
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"graphlake_scratch_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture
def app(served: Served) -> Starlette:
    return served.app


@pytest.fixture
def state(app: Starlette) -> AppState:
    return app.state.graphlake


@pytest.fixture(autouse=True)
async def clean_database(served: Served) -> None:
    await wipe(served)


async def wipe(served: Served) -> None:
    """Every test starts on empty collections (their indexes kept), no token remembered, and no live
    subscription left over: the test before closed its sockets, but the server ends their subscriptions
    a moment later, and a test that waits for its own to be listening counts them. The test before's
    journaled AUDIT events are stored first, so none lands in this test's log. (Also for a module's
    shared setup, which starts from what the test before it left.)"""
    await served.app.state.graphlake.feed.settled()
    for model in DOCUMENT_MODELS:
        await model.get_pymongo_collection().delete_many({})
    # Where the reconciler's walks stopped, in a collection kept (the daily jobs' claims): in the
    # last test's documents, which a test dating its own back would be behind.
    await served.app.state.graphlake.db[SCHEDULES].delete_one({"_id": STRANDED_POSITION})
    served.app.state.graphlake.tokens.clear()
    await wait_for(lambda: live_subscribers(served.app.state.graphlake.events) == 0,
                   what="the subscriptions of earlier tests to end")


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://graphlake.test") as client:
        yield client


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)


MakeToken = Callable[..., Awaitable[str]]


@pytest.fixture
def make_token() -> MakeToken:
    """Creates a token with a role and returns its secret."""

    async def make(role: Role = Role.VIEWER, name: str | None = None, **options: object) -> str:
        _, secret = await create_token(name or f"{role.value.lower()}-{uuid.uuid4().hex[:6]}", role, **options)
        return secret

    return make


@pytest.fixture
async def viewer(make_token: MakeToken) -> str:
    return await make_token(Role.VIEWER)


@pytest.fixture
async def contributor(make_token: MakeToken) -> str:
    return await make_token(Role.CONTRIBUTOR)


@pytest.fixture
async def admin(make_token: MakeToken) -> str:
    return await make_token(Role.ADMIN)
