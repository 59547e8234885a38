"""Health: the `health` query, /healthz, /readyz, and what they say when a mount is down."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from graphlake import __version__
from migrations import SCHEMA_VERSION
from resolvers.context import AppState
from services.health import probe
from services.mount_owners import settle_owners
from services.uploads import mounts
from storage import LocalStore
from storage import local as local_storage
from storage.ownership import OWNER_FILE
from storage.signing import UrlSigner
from tests import factories
from tests.conftest import S3Service, mount_at
from tests.operations import Api


async def test_status_query_answers_with_a_token(api: Api, admin: str) -> None:
    data = await api.data("Status", token=admin)
    assert data["health"] == {"ok": True, "database": True, "storage": True, "version": __version__,
                              "schemaVersion": SCHEMA_VERSION}
    assert data["me"]["role"] == "ADMIN"


async def test_health_needs_no_token_but_me_is_null(api: Api) -> None:
    data = await api.data("Status")
    assert data["health"]["ok"] is True
    assert data["me"] is None


async def test_liveness_and_readiness(http: httpx.AsyncClient) -> None:
    live = await http.get("/healthz")
    assert live.status_code == 200 and live.json()["ok"] is True
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ok": True, "database": True, "storage": True, "failing": [], "notOwned": []}


async def test_readiness_names_an_unreachable_mount(
    http: httpx.AsyncClient, api: Api, admin: str, state: AppState, s3: S3Service, caplog: pytest.LogCaptureFixture
) -> None:
    broken = mount_at(s3, "broken", bucket="no-such-bucket")
    await broken.open()
    state.stores["broken"] = broken
    state.health.forget()  # a report of the mounts from before is reused for a second
    try:
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["ok"] is False and body["database"] is True and body["storage"] is False
        assert body["failing"] == ["mount broken"]  # by name: no endpoint or bucket to a caller without a token
        assert "no-such-bucket" not in ready.text and s3.endpoint not in ready.text
        assert any("no-such-bucket" in r.getMessage() for r in caplog.records)  # the operator's log has it
        # Once while it lasts (again a minute on), not a line per call: anyone may ask, as often as they like.
        for _ in range(5):
            state.health.forget()
            assert (await http.get("/readyz")).status_code == 503
        assert sum("not ready" in r.getMessage() for r in caplog.records) == 1, caplog.text
        health = (await api.data("Status", token=admin))["health"]
        assert health["ok"] is False and health["storage"] is False and health["database"] is True
    finally:
        del state.stores["broken"]
        state.health.forget()
        await broken.close()
    assert (await http.get("/readyz")).status_code == 200


async def test_a_mount_whose_check_fails_unexpectedly_is_not_ready(
    http: httpx.AsyncClient, api: Api, admin: str, state: AppState, s3: S3Service, caplog: pytest.LogCaptureFixture
) -> None:
    """A store's check that raised anything but StoreUnavailable or a timeout (here a closed store's:
    AttributeError) made /readyz answer 500, naming nothing, and the `health` query fail. It is 503
    naming the mount, said once in the log while it lasts, as any other failure."""
    closed = mount_at(s3, "closed")
    await closed.open()
    await closed.close()
    state.stores["closed"] = closed
    try:
        for _ in range(5):
            state.health.forget()
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["failing"] == ["mount closed"], ready.text
        assert sum("not ready" in r.getMessage() and "'closed'" in r.getMessage() for r in caplog.records) == 1, caplog.text
        health = (await api.data("Status", token=admin))["health"]
        assert health["ok"] is False and health["storage"] is False and health["database"] is True
    finally:
        del state.stores["closed"]
        state.health.forget()
    assert (await http.get("/readyz")).status_code == 200


async def test_readiness_names_a_mount_its_credentials_cannot_write(
    http: httpx.AsyncClient, state: AppState, s3: S3Service, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """/readyz promises every mount can be written: with read-only credentials the bucket answered
    its HEAD, the mount was reported ready, and every upload to it failed. The write probe it takes
    instead leaves nothing behind where the credentials can write."""
    for variable, value in s3.read_only_credentials().items():  # through the default credential chain
        monkeypatch.setenv(variable, value)
    prefix = f"probe-{uuid.uuid4().hex[:8]}"
    read_only = mount_at(s3, "read-only", prefix, access_key_id=None, secret_access_key=None)
    writable = mount_at(s3, "writable", prefix)
    await read_only.open()
    await writable.open()
    state.stores.update({"read-only": read_only, "writable": writable})
    state.health.forget()
    try:
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failing"] == ["mount read-only"], ready.text
        assert any("writing the probe object" in r.getMessage() and "AccessDenied" in r.getMessage() for r in caplog.records), caplog.text
        assert s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount") == 0
        # Another lake's mount (a restored copy given the original's bucket, read-only): this lake only
        # reads it, so it is ready as long as the bucket answers, and no probe is written there.
        read_only.ownership.lake, read_only.ownership.owner = "this-lake", "the-original"
        state.health.forget()
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and "read-only" in ready.json()["notOwned"], ready.text
        assert s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount") == 0
    finally:
        del state.stores["read-only"], state.stores["writable"]
        state.health.forget()
        await read_only.close()
        await writable.close()


async def test_callers_share_one_probe_a_second(http: httpx.AsyncClient, api: Api, state: AppState) -> None:
    """/readyz and `health` need no token: a client calling them in a loop must not cost a database
    ping and a call to every store each time."""
    state.health.forget()
    before, max_age = state.health.probes, state.health.max_age
    state.health.max_age = 600  # the forty requests may take longer than a second on a loaded machine
    try:
        answers = await asyncio.gather(*(http.get("/readyz") for _ in range(20)),
                                       *(api.data("Status") for _ in range(20)))
        assert all(a.status_code == 200 for a in answers[:20]) and all(a["health"]["ok"] for a in answers[20:])
        assert state.health.probes - before == 1  # one probe for forty callers
        state.health.forget()
        assert (await http.get("/readyz")).status_code == 200 and state.health.probes - before == 2
    finally:
        state.health.max_age = max_age


async def test_request_id_is_echoed_or_made(http: httpx.AsyncClient) -> None:
    given = await http.get("/healthz", headers={"X-Request-ID": "job-42.step-1"})
    assert given.headers["x-request-id"] == "job-42.step-1"
    hostile = await http.get("/healthz", headers={"X-Request-ID": "bad id\\nwith newline"})
    assert hostile.headers["x-request-id"] != "bad id\\nwith newline" and len(hostile.headers["x-request-id"]) == 32


async def test_a_local_mount_whose_file_system_is_not_mounted_is_not_ready_and_not_claimed_again(
        http: httpx.AsyncClient, api: Api, contributor: str, state: AppState, caplog: pytest.LogCaptureFixture) -> None:
    """A local mount's folder is often where a file system (a NAS, a disk) is mounted. Not mounted (a
    server started at boot before its NAS, a disk gone while it ran), the folder is an empty one on the
    disk below: the probe file was written there and /readyz said ready; the next maintenance round
    found no owner file and claimed the folder, and uploads went onto the disk below while every stored
    file was missing. Now it is not ready and not claimed, and takes no upload, until it is back."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    root, away = store.root, store.root.with_name(store.root.name + "-unmounted")
    stored = await factories.value_asset(api, contributor)  # any lake's first round has claimed the mount
    assert stored and (await http.get("/readyz")).status_code == 200
    root.rename(away)
    root.mkdir()  # the empty place the file system goes on
    try:
        state.health.forget()
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failing"] == ["mount local"]  # at once, before a round
        with caplog.at_level(logging.WARNING, logger="graphlake.storage"):
            await settle_owners(state.db, state.stores)  # the maintenance round's first step
        assert "is gone: is its file system not mounted?" in caplog.text
        assert list(root.iterdir()) == []  # nothing claimed, nothing written on the disk below
        state.health.forget()
        assert (await http.get("/readyz")).status_code == 503
        refused = await api.error("CreateUpload", {"input": {"name": "x.bin", "sizeBytes": 1, "mount": "local",
                                                             "mediaType": "application/octet-stream"}},
                                  token=contributor, status=503)
        assert refused["extensions"]["code"] == "UNAVAILABLE" and refused["extensions"]["field"] == "mount", refused
        # A server started meanwhile (a store opened anew on the folder) claims nothing either.
        fresh = LocalStore("local", root, UrlSigner(b"k" * 32, "http://graphlake.test"))
        await fresh.open()
        assert await settle_owners(state.db, {"local": fresh}) == {"local": None}
        assert not (root / OWNER_FILE).exists()
    finally:
        root.rmdir()
        away.rename(root)  # mounted again
    await settle_owners(state.db, state.stores)
    state.health.forget()
    assert (await http.get("/readyz")).status_code == 200
    assert (await api.data("CreateUpload", {"input": {"name": "x.bin", "sizeBytes": 1, "mount": "local",
                                                      "mediaType": "application/octet-stream"}}, token=contributor))


def forget_reachability(store: LocalStore) -> None:
    """Drop what uploads remember of the mount's last check (services/uploads/mounts.py keeps it a few
    seconds): the app, and so the store, lives as long as the test session."""
    mounts._checked.pop(store, None)


async def test_a_local_mount_whose_owner_file_cannot_be_read_is_unavailable(
        http: httpx.AsyncClient, api: Api, contributor: str, state: AppState) -> None:
    """Only a missing owner file made the mount unavailable: any other error reading it (a file system
    gone bad, permissions changed) escaped the check, and an upload choosing the mount failed whole
    (INTERNAL) instead of being refused as unavailable, or going to a fallback. Worse, the check only
    looked at the name, so a file it cannot read passed. Made unreadable here by a directory in its
    place (IsADirectoryError on reading: permissions do not stop root, whom the tests may run as)."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore) and store.ownership.owner is not None  # settled as the lake opened
    owner_file = store.root / OWNER_FILE
    kept = owner_file.read_bytes()
    assert (await http.get("/readyz")).status_code == 200
    owner_file.unlink()
    owner_file.mkdir()
    forget_reachability(store)
    try:
        state.health.forget()
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failing"] == ["mount local"], ready.text
        said = (await probe(None, {"local": store})).mount_errors["local"] or ""
        assert said.startswith(f"local mount 'local' at {store.root}: its {OWNER_FILE} cannot be read: ") \
            and "Is a directory" in said, said
        refused = await api.error("CreateUpload", {"input": {"name": "x.bin", "sizeBytes": 1, "mount": "local",
                                                             "mediaType": "application/octet-stream"}},
                                  token=contributor, status=503)
        assert refused["extensions"]["code"] == "UNAVAILABLE" and refused["extensions"]["field"] == "mount", refused
        assert "Is a directory" in refused["message"]
    finally:
        owner_file.rmdir()
        owner_file.write_bytes(kept)
        forget_reachability(store)
    state.health.forget()
    assert (await http.get("/readyz")).status_code == 200


async def test_a_local_mount_whose_file_system_fails_is_unavailable_not_an_error(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network file system gone bad answers EIO (or ESTALE) for the owner file: that error escaped
    the mount's check, so the probe said "its check failed" and an upload choosing the mount failed
    with INTERNAL. Now it is StoreUnavailable with the error's text: the mount is unavailable."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore) and store.ownership.owner is not None

    class FailingOwnerFile:  # storage/local.py's `os`, whose file system fails for the owner file alone
        def __getattr__(self, name: str) -> object:
            found = getattr(os, name)
            if name not in ("open", "lstat", "stat"):
                return found

            def failing(path: object, *args: object, **kwargs: object) -> object:
                if str(path).endswith(OWNER_FILE):
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                return found(path, *args, **kwargs)
            return failing

    forget_reachability(store)
    monkeypatch.setattr(local_storage, "os", FailingOwnerFile())
    try:
        said = (await probe(None, {"local": store})).mount_errors["local"] or ""
        refused = await api.error("CreateUpload", {"input": {"name": "x.bin", "sizeBytes": 1, "mount": "local",
                                                             "mediaType": "application/octet-stream"}},
                                  token=contributor, status=503)
    finally:
        monkeypatch.undo()
        forget_reachability(store)
    assert said.startswith(f"local mount 'local' at {store.root}: its {OWNER_FILE} cannot be read: ") \
        and "Input/output error" in said, said
    assert refused["extensions"]["code"] == "UNAVAILABLE" and refused["extensions"]["field"] == "mount", refused
    assert "Input/output error" in refused["message"]


async def test_a_local_mount_on_a_full_disk_is_not_ready(tmp_path: Path) -> None:
    """The probe made an empty file, which a full disk still takes (an inode, no block): /readyz said
    ready while every upload failed with ENOSPC. Needs a small file system of its own to fill: a
    tmpfs, which only root may mount."""
    folder = tmp_path / "small"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    if os.geteuid() != 0 or (await asyncio.to_thread(subprocess.run, mount, capture_output=True)).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        store = LocalStore("small", folder, UrlSigner(b"k" * 32, "http://graphlake.test"))
        await store.open()
        assert (await probe(None, {"small": store})).ok
        with (folder / "filler").open("wb") as filler, contextlib.suppress(OSError):
            filler.write(b"\0" * 1024 * 1024)  # until the disk is full
        report = await probe(None, {"small": store})
        assert not report.ok and "No space left on device" in (report.mount_errors["small"] or "")
        assert not [p for p in folder.iterdir() if p.name.startswith(".probe-")]  # no probe left behind
        (folder / "filler").unlink()
        assert (await probe(None, {"small": store})).ok
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(folder)], check=True)


async def test_a_probe_whose_close_fails_is_not_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a network file system a full disk may be told only when the probe file is closed (its byte
    written back then): the mount was rightly not ready, but the probe file stayed in the mount's root,
    one more at every probe for as long as the disk was full."""
    store = LocalStore("small", tmp_path, UrlSigner(b"k" * 32, "http://graphlake.test"))
    await store.open()
    real_close = os.close

    class FullOnClose:  # storage/local.py's `os`, whose close says ENOSPC as such a file system does
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def close(fd: int) -> None:
            real_close(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local_storage, "os", FullOnClose())
    report = await probe(None, {"small": store})
    monkeypatch.undo()
    assert not report.ok and "No space left on device" in (report.mount_errors["small"] or "")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".probe-")] == []
