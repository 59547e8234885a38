"""Direct writes: a client sharing the local mount's filesystem writes the file in place itself;
completion trusts nothing about it but what it checks (a regular file, its size, its SHA-256)."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.upload import UploadSession
from graphlake.app import in_background
from graphlake.settings import Settings
from graphlake_client import Client, ResumeState
from graphlake_client.direct import MARKER, shares_directory, write_in_place
from resolvers.context import AppState
from services.errors import BadUserInput
from services.mount_owners import settle_owners
from services.uploads import sessions
from storage import LocalStore
from storage.local import SHA256_ATTR, UnsafeKey
from storage.protocol import STRAY_DIR
from storage.signing import UrlSigner
from tests.conftest import Served
from tests.operations import Api, object_id
from tests.test_uploads import linked_away

MIB = 1024 * 1024


async def start_direct(api: Api, token: str, data: bytes, **fields: object) -> dict:
    variables = {"input": {"name": "frame.raw", "sizeBytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                           "mount": "local", "direct": True, **fields}}
    return (await api.data("CreateUpload", variables, token=token))["createUpload"]


async def test_a_direct_write_is_verified_and_served_like_an_upload(api: Api, contributor: str, settings: Settings,
                                                                   tmp_path: Path) -> None:
    [local] = [m for m in (await api.data("Mounts", token=contributor))["mounts"] if m["name"] == "local"]
    assert (Path(local["localRoot"]) / MARKER).read_text() == local["localId"]  # how a client knows it shares the disk
    data = os.urandom(3 * MIB)
    settings.multipart_threshold_bytes = MIB  # above it, yet one file: a direct write has no parts
    try:
        session = await start_direct(api, contributor, data)
    finally:
        settings.multipart_threshold_bytes = 64 * MIB
    assert session["url"] is None and session["parts"] is None
    target = Path(session["directPath"])
    assert target.is_relative_to(local["localRoot"]) and target.parent.is_dir()
    source = tmp_path / "frame.raw"
    source.write_bytes(data)
    write_in_place(source, target)

    asset = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
    assert asset["status"] == "ACTIVE" and asset["sizeBytes"] == len(data) and asset["sha256"] == hashlib.sha256(data).hexdigest()
    async with httpx.AsyncClient() as http:
        assert (await http.get(asset["downloadUrl"])).content == data
    fetched = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
    assert fetched["status"] == "COMPLETED" and fetched["directPath"] is None  # nothing more to write


async def test_a_direct_write_must_be_a_regular_file_of_the_declared_bytes(api: Api, contributor: str,
                                                                          tmp_path: Path) -> None:
    data = b"calibration frame" * 1000
    other = tmp_path / "secret.txt"
    other.write_bytes(b"not yours")

    linked = await start_direct(api, contributor, data)
    os.symlink(other, linked["directPath"])  # a link is never followed: not even to read its size
    error = await api.error("CompleteUpload", {"input": {"id": linked["id"]}}, token=contributor)
    assert error["extensions"]["field"] == "id" and "no regular file" in error["message"]
    assert other.read_bytes() == b"not yours"

    forged = await start_direct(api, contributor, data)
    target = Path(forged["directPath"])
    target.write_bytes(data[::-1])  # the same size, other bytes...
    try:  # ...carrying the digest the server would record for the right ones
        os.setxattr(target, SHA256_ATTR, hashlib.sha256(data).hexdigest().encode())
    except OSError:
        pass  # no user xattrs on this filesystem: the check below still must hold
    error = await api.error("CompleteUpload", {"input": {"id": forged["id"]}}, token=contributor)
    assert error["extensions"]["field"] == "sha256" and "FAILED" in error["message"]
    assert not target.exists()  # removed, as any mismatched upload


async def test_direct_writes_only_where_a_mount_takes_them(api: Api, contributor: str, settings: Settings,
                                                           state: AppState, tmp_path: Path) -> None:
    error = await api.error("CreateUpload", {"input": {"name": "a", "sizeBytes": 1, "mount": "lab", "direct": True}},
                            token=contributor)
    assert error["extensions"] == {**error["extensions"], "code": "BAD_USER_INPUT", "field": "direct"}
    inputs = [{"name": "a", "sizeBytes": 1, "mount": "local", "direct": True},
              {"name": "b", "sizeBytes": 1, "mount": "lab", "direct": True}]
    error = await api.error("CreateUploads", {"inputs": inputs}, token=contributor)
    assert error["extensions"]["field"] == "inputs[1].direct"
    assert await UploadSession.find_all().count() == 0  # nothing of the batch was stored

    closed = LocalStore("closed", tmp_path / "closed", UrlSigner(b"k", "http://x"), direct_writes=False)
    await closed.open()
    assert not (tmp_path / "closed" / MARKER).exists()  # nothing for a client to recognise
    with pytest.raises(BadUserInput) as refused:
        await sessions.create_uploads([sessions.UploadRequest(name="a", size_bytes=1, mount="closed", direct=True)],
                                     {"closed": closed}, settings, None, part_urls=sessions.PartUrls(), batch=False)
    assert refused.value.extensions["field"] == "direct"


async def test_the_client_writes_directly_where_it_shares_the_mount(served: Served, contributor: str,
                                                                    state: AppState, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(MIB + 17))
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
        asset = await lake.upload_file(source)
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    session = await UploadSession.find_one({"asset_id": object_id(asset["id"])})
    assert session.direct
    folder = tmp_path / "run"  # a directory: every file of the batch, not only the first to ask
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.bin").write_bytes(os.urandom(1000 + i))
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
        batch = await lake.upload_paths([folder])
    sessions = await UploadSession.find({"asset_id": {"$in": [object_id(a["id"]) for a in batch]}}).to_list()
    assert len(sessions) == 3 and all(s.direct for s in sessions)

    # A machine that does not see the same directory (its marker holds another id) goes over HTTP.
    marker = state.stores["local"].root / MARKER
    original = marker.read_text()
    marker.write_text("another machine's mount")
    try:
        async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
            asset = await lake.upload_file(source)
    finally:
        marker.write_text(original)
    session = await UploadSession.find_one({"asset_id": object_id(asset["id"])})
    assert asset["status"] == "ACTIVE" and not session.direct


async def test_a_direct_write_without_a_declared_digest_gets_one_from_the_reconciler(
        api: Api, contributor: str, state: AppState, tmp_path: Path) -> None:
    """Completion does not read a direct write back unless a SHA-256 was declared; the reconciler
    reads the undeclared ones later, so every file on a local mount ends up with its digest."""
    from services.uploads.reconciler import fill_digests

    data = os.urandom(MIB + 3)
    session = await start_direct(api, contributor, data, sha256=None)
    source = tmp_path / "frame.raw"
    source.write_bytes(data)
    write_in_place(source, Path(session["directPath"]))
    asset = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
    assert asset["status"] == "ACTIVE" and asset["sha256"] is None  # not read back while the client waited

    changed = await start_direct(api, contributor, data, sha256=None)
    write_in_place(source, Path(changed["directPath"]))
    await api.data("CompleteUpload", {"input": {"id": changed["id"]}}, token=contributor)
    os.truncate(changed["directPath"], 10)  # changed behind the server's back: no digest is better than a wrong one

    assert await fill_digests(state.stores) == 1
    assert await fill_digests(state.stores) == 0  # nothing left that can be filled
    fetched = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]
    assert fetched["sha256"] == hashlib.sha256(data).hexdigest()
    assert (await api.data("Asset", {"id": changed["asset"]["id"]}, token=contributor))["asset"]["sha256"] is None


async def test_files_whose_digest_cannot_be_read_do_not_hold_up_new_ones(
        api: Api, contributor: str, state: AppState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that went missing is tried once, marked with why, and left for a day, so the next
    round reads the digests of newer files instead of retrying it every time."""
    from documents.asset import Asset
    from documents.clock import utcnow
    from services.uploads import reconciler

    monkeypatch.setattr(reconciler, "DIGEST_FILES_PER_ROUND", 1)
    # The server's own maintenance round (every reconcile interval) would read these digests too,
    # and a round falling inside this test took its turns: it waits until the test is done.
    fill_digests = reconciler.fill_digests

    async def not_in_background(stores: dict) -> int:
        return 0 if in_background.get() else await fill_digests(stores)

    monkeypatch.setattr(reconciler, "fill_digests", not_in_background)
    data = os.urandom(1000)
    source = tmp_path / "frame.raw"
    source.write_bytes(data)
    ids = []
    for _ in range(2):
        session = await start_direct(api, contributor, data, sha256=None)
        write_in_place(source, Path(session["directPath"]))
        await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
        ids.append(session["asset"]["id"])
    broken_id = ids[0]
    broken, fine = map(object_id, ids)
    broken_file = state.stores["local"].path((await Asset.get(broken)).storage.key)
    broken_file.unlink()

    assert await reconciler.fill_digests(state.stores) == 0  # the oldest first: it is missing
    marked = await Asset.get(broken)
    assert marked.sha256 is None and marked.digest_error == "its file is missing" and marked.digest_failed_at
    shown = (await api.data("Asset", {"id": broken_id}, token=contributor))["asset"]
    assert (shown["sha256"], shown["digestError"]) == (None, "its file is missing")  # users see why, too
    assert await reconciler.fill_digests(state.stores) == 1  # not tried again: the newer file's turn
    assert (await Asset.get(fine)).sha256 == hashlib.sha256(data).hexdigest()
    assert await reconciler.fill_digests(state.stores) == 0

    # A day later it is tried again (the file is back, say, restored from a backup).
    write_in_place(source, broken_file)
    await Asset.get_pymongo_collection().update_one(
        {"_id": broken}, {"$set": {"digest_failed_at": utcnow() - reconciler.DIGEST_RETRY - timedelta(minutes=1)}})
    assert await reconciler.fill_digests(state.stores) == 1
    restored = await Asset.get(broken)
    assert restored.sha256 == hashlib.sha256(data).hexdigest() and restored.digest_error is None
    shown = (await api.data("Asset", {"id": broken_id}, token=contributor))["asset"]
    assert (shown["sha256"], shown["digestError"]) == (restored.sha256, None)


async def test_a_mount_marker_that_is_a_link_is_refused_not_shown(tmp_path: Path) -> None:
    """The marker's text is the mount's `localId`, which writers are shown: a writer who put a link
    to the signing key in its place had the server read the key and show it. Now the server reads
    it through no link, and refuses to open such a mount."""
    secret = tmp_path / "signing.key"
    secret.write_text("the server's own secret")
    root = tmp_path / "mount"
    root.mkdir()
    (root / MARKER).symlink_to(secret)
    store = LocalStore("linked", root, UrlSigner(b"k", "http://x"), direct_writes=True)
    with pytest.raises(UnsafeKey, match="symbolic link"):
        await store.open()
    assert store.mount_id is None


async def test_a_stored_file_is_hashed_and_read_through_no_link(api: Api, contributor: str, state: AppState,
                                                                tmp_path: Path) -> None:
    """Completion reads a direct write back for its declared SHA-256, and the reconciler for a
    missing one, a moment after stat judged the entry a regular file: read by its path, a link a
    writer swapped in meanwhile (one staying inside the mount passed every check) was followed, and
    its target's digest recorded. Now what is read is opened through no link."""
    data = b"frame" * 1000
    session = await start_direct(api, contributor, data)
    target = Path(session["directPath"])
    target.write_bytes(data)
    asset = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
    store = state.stores["local"]
    key = asset["storage"]["key"]
    target.rename(tmp_path / "aside")
    target.symlink_to(store.root / MARKER)  # inside the mount
    try:
        with pytest.raises(UnsafeKey):
            await store.sha256(key)
        with pytest.raises(UnsafeKey):
            [chunk async for chunk in store.read(key)]
    finally:
        target.unlink()
        (tmp_path / "aside").rename(target)
    assert await store.sha256(key) == hashlib.sha256(data).hexdigest()


async def test_the_stray_sweep_moves_and_removes_nothing_through_a_link(state: AppState, tmp_path: Path) -> None:
    """The mount's `.stray` swapped for a link: setting a file aside moved the lake's file wherever it
    pointed, and the sweep of what was set aside deleted every old file there. Now neither goes
    through it: UnsafeKey (the sweep logs the mount as not swept), nothing removed."""
    store = state.stores["local"]
    key = f"assets/{ObjectId()}"
    stray = store.root / key
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"named by nothing")
    outside = tmp_path / "elsewhere"
    (outside / "assets").mkdir(parents=True)
    (outside / "assets" / "keep").write_text("not the lake's")
    os.utime(outside / "assets" / "keep", (0, 0))
    try:
        with linked_away(store.root / STRAY_DIR, outside):
            with pytest.raises(UnsafeKey):
                store.set_aside(key)
            assert store.remove_set_aside(0) == 0
        assert stray.read_bytes() == b"named by nothing"
        assert sorted(os.listdir(outside / "assets")) == ["keep"]
    finally:
        stray.unlink()


async def test_no_marker_is_made_on_the_folder_of_a_mount_not_mounted(scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    """A server started while a direct-write mount's file system was not mounted made its marker on
    the empty folder below (on the disk under it) and reported that id: once the file system was
    back, its own marker held another, and no client's direct write matched until a restart. Now the
    marker is made only on a mount known to be the lake's, and read again as its owner is known."""
    root = tmp_path / "nas"
    first = LocalStore("nas", root, UrlSigner(b"k" * 32, "http://x"), direct_writes=True)
    await first.open()
    assert first.mount_id is None  # not known to be the lake's yet: nothing made
    await settle_owners(scratch_db, {"nas": first})  # claimed: the lake notes its folder
    mounted = first.mount_id
    assert mounted and (root / MARKER).read_text() == mounted

    away = tmp_path / "nas-unmounted"
    root.rename(away)
    root.mkdir()  # the empty place the file system goes on
    try:
        restarted = LocalStore("nas", root, UrlSigner(b"k" * 32, "http://x"), direct_writes=True)
        await restarted.open()
        assert await settle_owners(scratch_db, {"nas": restarted}) == {"nas": None}  # its owner file is gone
        assert list(root.iterdir()) == []  # no marker (nor anything) on the disk below
        assert restarted.mount_id is None
    finally:
        root.rmdir()
        away.rename(root)  # mounted again
    await settle_owners(scratch_db, {"nas": restarted})  # the next maintenance round
    assert restarted.mount_id == mounted  # direct writes match again, with no restart
    assert shares_directory(root, restarted.mount_id)
