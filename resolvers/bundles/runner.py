"""Running a bundle import for prepareBundleImport and commitBundleImport.

The import is the Python client's (graphlake_client/bundle_import.py), run in this process against
this server's own GraphQL API (an ASGI transport, no socket) with the caller's token. So the command
and the mutations share one implementation, and every write of a server-side import passes the same
checks, permissions and audit as the caller's own requests: the server holds no second importer
written against the services that could drift from the first.

Each step of the import is a request of its own, which takes one of the process's request slots
(graphlake/admission.py) while the mutation holds another: at most all but one slot run imports at
once, so their steps always find one free. A bundle on a local mount is read in place; one on an S3
mount is first copied (streamed) into a temporary directory on the server; under the reference
policy its files are registered where they lie on that mount (EXTERNAL assets), the copy only read.
"""

from __future__ import annotations

import asyncio
import tempfile
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request

from graphlake_client import Client, GraphlakeClientError, ResumeState
from graphlake_client.bundle_format import MANIFEST, named_payloads, parse_manifest
from graphlake_client.bundle_import import import_bundle
from resolvers.context import Context
from services.auth import bearer_secret
from services.checks import check_no_controls
from services.errors import BadUserInput, Conflict, GraphlakeError, NotFound, Unavailable
from storage import LocalStore, ObjectStore, StoreAnswered, as_s3, unreachable

if TYPE_CHECKING:
    from storage.s3 import S3Store

LISTED_AT_MOST = 1_000_000  # objects of one bundle on an S3 mount
MAX_PATH = 1024
_ERRORS: dict[str | None, type[GraphlakeError]] = {"BAD_USER_INPUT": BadUserInput, "NOT_FOUND": NotFound,
                                                   "CONFLICT": Conflict, "INTEGRITY": Conflict, "UNAVAILABLE": Unavailable}
_gates: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _relative(path: str) -> PurePosixPath:
    # The project's one check (DEL and C1 too: `ord(c) < 32` here let them through to the mount).
    check_no_controls(path, "input.path")
    relative = PurePosixPath(path.strip())
    if (not path.strip() or relative.is_absolute() or ".." in relative.parts or str(relative) == "."
            or len(path) > MAX_PATH):
        raise BadUserInput(f"must be a path inside the mount: relative, without `..` or control characters, at most "
                           f"{MAX_PATH} characters", field="input.path")
    return relative


@asynccontextmanager
async def located(store: ObjectStore, path: str) -> AsyncIterator[Path]:
    """The bundle at `path` on the mount, as a local directory or tar for the importer to read."""
    relative = _relative(path)
    if isinstance(store, LocalStore):
        try:
            target = (store.root / relative).resolve()
            there = target.is_relative_to(store.root) and target.exists()  # a link must not lead out of the mount
        except OSError:  # a name too long for the filesystem, say
            there = False
        if not there:
            raise NotFound(f"no bundle at {relative} on mount {store.name!r}", field="input.path")
        yield target
        return
    s3 = as_s3(store)
    if s3 is None:
        raise BadUserInput(f"mount {store.name!r} is neither local nor S3", field="input.mount")
    with tempfile.TemporaryDirectory(prefix="graphlake-bundle-") as scratch:
        try:
            await _stage(s3, relative, Path(scratch))
        except StoreAnswered as answered:  # not "cannot be reached", which a retry would mend
            # A listing's refusal, or a HEAD's or a read's 4xx (no permission, the bucket gone): the
            # bundle's path is the asker's, and so is what the store refuses of it.
            if answered.refused or (answered.status is not None and answered.status < 500):
                raise BadUserInput(f"cannot read {relative} on mount {store.name!r}: {answered.reason}",
                                   field="input.path") from None
            raise Unavailable(f"mount {store.name!r} answered {answered.code} to a read of {relative}; retry shortly",
                              field="input.mount") from None
        except Exception as error:
            if unreachable(error):
                raise Unavailable(f"mount {store.name!r} cannot be reached; retry shortly", field="input.mount") from None
            raise
        yield Path(scratch) / relative.name if relative.name.endswith(".tar") else Path(scratch)


async def _stage(store: S3Store, relative: PurePosixPath, scratch: Path) -> None:
    """Copy the bundle (a tar's one object, or the manifest under the directory and the payloads it
    names) into `scratch`."""
    if relative.name.endswith(".tar"):
        if await store.stat(str(relative)) is None:
            raise NotFound(f"no bundle at {relative} on mount {store.name!r}", field="input.path")
        keys = {str(relative): scratch / relative.name}
    else:
        base = store.object_key(f"{relative}/")
        listed = await store.list_objects(store.bucket, base, limit=LISTED_AT_MOST)
        keys = {f"{relative}/{o['Key'][len(base):]}": scratch / o["Key"][len(base):] for o in listed}
        manifest = f"{relative}/{MANIFEST}"
        if manifest not in keys:
            raise NotFound(f"no bundle under {relative}/ on mount {store.name!r} (no {MANIFEST})", field="input.path")
        # The manifest first, checked, then only the payloads it names: any prefix of a mount was
        # copied whole to the server's disk before its manifest was read (or found missing).
        await _copy_objects(store, {manifest: keys[manifest]}, scratch)
        try:  # in a thread: a manifest of 100,000 records is tens of MB of JSON
            checked = await asyncio.to_thread(lambda: parse_manifest(keys[manifest].read_bytes(), str(manifest)))
            named = named_payloads(checked)
        except GraphlakeClientError as error:
            raise BadUserInput(str(error), field="input.path") from None
        keys = {key: target for key, target in keys.items() if key[len(str(relative)) + 1:] in named}
    await _copy_objects(store, keys, scratch)


async def _copy_objects(store: S3Store, keys: Mapping[str, Path], scratch: Path) -> None:
    """Copy each object of `keys` to its file under `scratch`."""
    for key, target in keys.items():
        if not target.resolve().is_relative_to(scratch.resolve()):  # an object named a/../../x
            raise BadUserInput(f"the bundle holds an object whose name leads out of it: {key}", field="input.path")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            try:
                async for chunk in store.read(key):
                    await asyncio.to_thread(out.write, chunk)
            except FileNotFoundError:  # listed, then deleted (the bundle replaced, say): was INTERNAL
                raise Conflict(f"{key} was deleted from mount {store.name!r} while the bundle was read; read it "
                               "again once it is whole", field="input.path") from None


def _locator(store: ObjectStore, path: str) -> Callable[[str], dict[str, Any]] | None:
    """Where the reference policy finds a payload of the bundle: its object on the S3 mount, which
    registerExternal reads through that mount's credentials. None for a local mount or a tar."""
    relative = _relative(path)
    s3 = as_s3(store)
    if s3 is None or relative.name.endswith(".tar"):
        return None
    return lambda payload: {"mount": s3.name, "bucket": s3.bucket, "prefix": s3.object_key(f"{relative}/{payload}")}


def _gate(context: Context, app: Any) -> asyncio.Semaphore:
    """The imports one app runs at once: one fewer than its request slots."""
    slots = context.settings.max_concurrent_requests  # type: ignore[attr-defined]
    if slots < 2:
        raise Unavailable("a bundle import runs its steps as requests of their own: it needs "
                          "GRAPHLAKE_MAX_CONCURRENT_REQUESTS of 2 or more")
    if app not in _gates:
        _gates[app] = asyncio.Semaphore(slots - 1)
    return _gates[app]


class _InternalStores(httpx.AsyncHTTPTransport):
    """The in-process client's requests to signed URLs, sent where this server reaches each store.
    A URL signed for a client names an S3 mount's public endpoint (public_endpoint_url), which the
    server itself may not reach (in a compose network, localhost:9000 is its own container): sent to
    the internal address instead, with the Host header it was signed for, which the store checks."""

    def __init__(self, stores: Mapping[str, ObjectStore]) -> None:
        super().__init__()
        self._internal = dict(address for store in stores.values()
                              if (s3 := as_s3(store)) is not None and (address := s3.internal_address()) is not None)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (internal := self._internal.get(request.url.netloc.decode())) is not None:
            target = httpx.URL(internal)
            # The Host header stays as the request made it (the public host): the signature covers it.
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        return await super().handle_async_request(request)


async def run_import(context: Context, mount: str | None, path: str, policy: str, *, dry_run: bool,
                     dataset: str | None = None) -> dict[str, Any]:
    """Prepare (dry_run) or prepare-and-commit the bundle at `path` on `mount`, as the caller; the report."""
    request = context.request
    if not isinstance(request, Request):
        raise BadUserInput("bundle imports run over HTTP, not over a WebSocket", field="input")
    secret = bearer_secret(request.headers.get("authorization"))
    name = mount or context.settings.default_mount
    store = context.stores.get(name)
    if store is None:
        raise BadUserInput(f"no mount named {name!r}", field="input.mount")
    async with located(store, path) as src, _gate(context, request.app):
        with tempfile.TemporaryDirectory(prefix="graphlake-bundle-resume-") as resume:
            transport = httpx.ASGITransport(app=request.app)
            async with Client("http://graphlake.internal", secret, graphql_transport=transport,
                              storage_transport=_InternalStores(context.stores),
                              resume=ResumeState(Path(resume) / "uploads.json")) as lake:
                try:
                    return await import_bundle(lake, src, policy=policy, dry_run=dry_run, locate=_locator(store, path),
                                               dataset=dataset, confined=True)
                except GraphlakeClientError as error:
                    # The bundle is at fault (a manifest field, a payload file) unless the policy is: name the input;
                    # where the server staged it is no business of the caller's.
                    message = str(error).replace(str(src), f"{name}:{_relative(path)}")
                    field = f"input.{error.field}" if error.field in ("policy", "dataset") else "input.path"
                    raise _ERRORS.get(error.code, Conflict)(message, field=field) from None
