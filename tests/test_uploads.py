"""Uploads through signed URLs, on the local mount and on MinIO: single and multipart, resume,
verification, expiry and reconciliation, tampered URLs, fallback mounts, external data."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from bson import ObjectId

from documents import clock
from documents.asset import Asset, StorageRef
from documents.clock import utcnow
from documents.common import AssetKind, AssetStatus
from documents.upload import UploadSession
from graphlake.settings import Settings
from graphlake_client.direct import direct_temp_path
from resolvers.context import AppState
from services.assets import delete_asset
from services.errors import BadUserInput
from services.uploads import completion, finishing, reconciler
from services.uploads.downloads import download_url, download_url_now_or_later
from services.uploads.reconciler import reconcile, sweep_closed, sweep_temp_files
from services.uploads.sessions import SIGN_AT_ONCE
from storage import S3Store
from storage.local import PUT_TEMP_PREFIX, STAGED_PREFIX, StagedFile, UnsafeKey
from tests import factories
from tests.conftest import S3Service, Served
from tests.operations import Api, object_id
from tests.waiting import live_subscribers, wait_for
from tests.ws_client import Subscriber

MOUNTS = ["local", "lab"]  # lab: the MinIO bucket
MIB = 1024 * 1024


def payload(size: int, seed: int = 0) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


async def start(api: Api, token: str, data: bytes, mount: str, **fields: object) -> dict:
    variables = {"input": {"name": "scan.bin", "sizeBytes": len(data), "mediaType": "application/x-scan", "mount": mount,
                           "sha256": hashlib.sha256(data).hexdigest(), **fields}}
    return (await api.data("CreateUpload", variables, token=token))["createUpload"]


@contextmanager
def multipart_from_one_mib(settings: Settings) -> Iterator[None]:
    """Uploads of 1 MiB or more go in parts while the block runs (the server's default is 64 MiB)."""
    settings.multipart_threshold_bytes = MIB
    try:
        yield
    finally:
        settings.multipart_threshold_bytes = 64 * MIB


def deleted_once_read(monkeypatch: pytest.MonkeyPatch, module: object, reader: str, asset_id: ObjectId,
                      state: AppState) -> None:
    """Make `module.reader` (a read of assets) delete `asset_id` right after it read it: a delete
    landing between a read of the asset and the write that follows."""
    read = getattr(module, reader)

    async def read_then_deleted(*args: object) -> object:
        found = await read(*args)
        await delete_asset(asset_id, False, state.stores)
        return found

    monkeypatch.setattr(module, reader, read_then_deleted)


def deletes_leave_uploads_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deletes stop before they close their asset's open upload: one cut short there, or one whose
    upload a completion held at the time (services/uploads/closing.py)."""
    import services.assets

    async def stops_first(asset_id: ObjectId, stores: object) -> None:
        pass

    monkeypatch.setattr(services.assets, "close_open_upload", stops_first)


async def put(url: str, data: bytes | AsyncIterator[bytes], headers: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.put(url, content=data, headers=headers or {})


async def complete(api: Api, token: str, session_id: str) -> dict:
    return (await api.data("CompleteUpload", {"input": {"id": session_id}}, token=token))["completeUpload"]


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_delete_cut_short_after_the_flip_still_loses_the_bytes(api: Api, contributor: str, state: AppState,
                                                                       monkeypatch: pytest.MonkeyPatch, mount: str) -> None:
    """A delete (deleteAsset, a privacy erase, the collector) that dies, or whose store fails, between
    marking the asset DELETED and deleting its bytes left them for good: its upload is marked first,
    and the reconciler's sweep deletes them. A file stored without an upload (ingested) alike. (A
    store that fails no longer fails the delete, which took effect: it answers, audited.)"""
    made = []
    for seed in (21, 22):
        data = payload(20_000, seed=seed)
        session = await start(api, contributor, data, mount)
        assert (await put(session["url"], data, session["headers"])).status_code == 200
        made.append(await complete(api, contributor, session["id"]))
    # The second as an ingest stores a file: no upload session at all.
    await UploadSession.get_pymongo_collection().delete_one({"_id": object_id(made[1]["id"])})
    store = state.stores[mount]

    async def dies(key: str) -> None:
        raise RuntimeError("the server died here")

    monkeypatch.setattr(store, "delete", dies)
    for asset in made:
        assert (await api.data("DeleteAsset", {"id": asset["id"]}, token=contributor))["deleteAsset"]["deleted"]
    monkeypatch.undo()
    left = [await state.db.assets.find_one({"_id": object_id(a["id"])}) for a in made]
    assert all(a["status"] == "DELETED" for a in left)
    stored = [a["storage"]["key"] for a in left]
    assert all([await store.stat(key) is not None for key in stored])  # the bytes outlived the delete
    long_ago = utcnow() - timedelta(hours=1)  # past every URL's life: the sweep may run
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": long_ago, "finished_at": long_ago}})
    assert await sweep_closed(state.stores) == 2
    assert [await store.stat(key) for key in stored] == [None, None]


@pytest.mark.parametrize("mount", MOUNTS)
async def test_single_upload_and_download(api: Api, contributor: str, mount: str) -> None:
    data = payload(100_000)
    session = await start(api, contributor, data, mount)
    assert session["status"] == "OPEN" and session["parts"] is None and session["asset"]["status"] == "PENDING"
    assert session["asset"]["storage"]["mount"] == mount
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sizeBytes"] == len(data)
    assert asset["sha256"] == hashlib.sha256(data).hexdigest() and asset["mediaType"] == "application/x-scan"

    async with httpx.AsyncClient() as http:
        whole = await http.get(asset["downloadUrl"])
        assert whole.status_code == 200 and whole.content == data
        assert "scan.bin" in whole.headers["content-disposition"]
        part = await http.get(asset["downloadUrl"], headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
    again = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert again["extensions"]["code"] == "CONFLICT"


@pytest.mark.parametrize("mount", MOUNTS)
async def test_multipart_upload_resumes_after_an_interrupted_part(api: Api, contributor: str, settings: Settings,
                                                                  mount: str) -> None:
    with multipart_from_one_mib(settings):
        data = payload(17 * MIB, seed=1)
        session = await start(api, contributor, data, mount)
    size = session["partSizeBytes"]
    assert size == 8 * MIB and [p["partNumber"] for p in session["parts"]] == [1, 2, 3]
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    for number in (1, 3):  # part 2 "fails"
        response = await put(session["parts"][number - 1]["url"], chunks[number - 1])
        assert response.status_code == 200, response.text
    if mount == "local":  # a part cut short is refused and stays missing (parts are written in place)
        response = await put(session["parts"][1]["url"], chunks[1][: MIB])
        assert response.status_code == 400 and "must be" in response.text

    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["missingParts"] == [2]
    resumed = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
    assert [p["uploaded"] for p in resumed["parts"]] == [True, False, True]
    assert (await put(resumed["parts"][1]["url"], chunks[1])).status_code == 200

    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sizeBytes"] == len(data)
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.get(asset["downloadUrl"])).content == data


@pytest.mark.parametrize("mount", MOUNTS)
async def test_size_mismatch_fails_the_asset_and_removes_the_object(api: Api, contributor: str, state: AppState,
                                                                    mount: str, tmp_path: Path) -> None:
    data = payload(5000)
    session = await start(api, contributor, data, mount, sha256=None)
    short = await put(session["url"], data[:4000], session["headers"])
    # S3 checks the Content-Length signed into the URL; the local route the size signed into its own.
    assert short.status_code == (400 if mount == "local" else 403), short.text
    # A store that took it all the same (one that does not check a signed length): completion still finds it.
    (tmp_path / "short").write_bytes(data[:4000])
    await state.stores[mount].write(session["asset"]["storage"]["key"], tmp_path / "short")
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "declared 5000 bytes, stored 4000" in error["message"]
    asset = (await api.data("Asset", {"id": session["asset"]["id"]}, token=contributor))["asset"]
    assert asset["status"] == "FAILED"
    assert await state.stores[mount].stat(session["asset"]["storage"]["key"]) is None


async def test_local_upload_is_hashed_on_the_way_in(api: Api, contributor: str, state: AppState,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The local route hashes a single PUT as it writes it, so completion never reads it back."""
    store = state.stores["local"]
    probe = store.root / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.probe", b"1")
    except (OSError, AttributeError):  # AttributeError: no xattr calls on this platform (macOS)
        pytest.skip("this filesystem keeps no user extended attributes (completion reads objects back there)")
    finally:
        probe.unlink()

    async def no_read_back(key: str) -> str:
        raise AssertionError("completion read the object back")

    monkeypatch.setattr(store, "sha256", no_read_back)
    data = payload(300_000, seed=9)
    session = await start(api, contributor, data, "local")
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()
    tampered = await start(api, contributor, data, "local", sha256=None)  # its digest given at completion
    assert (await put(tampered["url"], data[:-1] + b"!", tampered["headers"])).status_code == 200
    error = await api.error("CompleteUpload", {"input": {"id": tampered["id"], "sha256": hashlib.sha256(data).hexdigest()}},
                            token=contributor)
    assert error["extensions"]["field"] == "sha256"  # the recorded digest is of the bytes received


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_put_of_other_bytes_than_declared_stores_nothing_and_can_be_sent_again(
        api: Api, contributor: str, state: AppState, mount: str) -> None:
    """A single PUT of fewer bytes than declared, or of another SHA-256, was stored by the local
    route (create-only): the right file sent again got 412, and completion could only turn the asset
    FAILED. S3 refuses both at the PUT; the local route now does too, and the upload goes on."""
    data = payload(5000, seed=4)
    session = await start(api, contributor, data, mount)
    key = session["asset"]["storage"]["key"]
    short = await put(session["url"], data[:4000], session["headers"])
    assert short.status_code in (400, 403), short.text  # S3: the signed Content-Length; local: the signed size
    tampered = await put(session["url"], bytes([data[0] ^ 1]) + data[1:], session["headers"])
    assert tampered.status_code == 400, tampered.text
    if mount == "local":
        assert "nothing was stored" in short.text and "not the one declared" in tampered.text
        # The URL carries a keyed tag of the declared digest, never the digest (access logs keep URLs).
        assert hashlib.sha256(data).hexdigest() not in session["url"] and "digest=" in session["url"]
    assert await state.stores[mount].stat(key) is None
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()


async def test_checksum_mismatch_local(api: Api, contributor: str) -> None:
    """A digest given at completion is checked against what the PUT stored (no URL carried it)."""
    data = payload(4096)
    session = await start(api, contributor, data, "local", sha256=None)
    tampered = bytes([data[0] ^ 1]) + data[1:]
    assert (await put(session["url"], tampered, session["headers"])).status_code == 200
    error = await api.error("CompleteUpload", {"input": {"id": session["id"], "sha256": hashlib.sha256(data).hexdigest()}},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "sha256"}
    assert hashlib.sha256(tampered).hexdigest() in error["message"]


async def test_checksum_mismatch_s3(api: Api, contributor: str, settings: Settings) -> None:
    data = payload(4096)
    session = await start(api, contributor, data, "lab")
    tampered = bytes([data[0] ^ 1]) + data[1:]
    refused = await put(session["url"], tampered, session["headers"])  # the store checks the signed checksum
    assert refused.status_code == 400
    # multipart objects have no whole-object checksum: the server reads them back to compare
    with multipart_from_one_mib(settings):
        big = payload(9 * MIB, seed=2)
        session = await start(api, contributor, big, "lab", sha256=hashlib.sha256(b"other").hexdigest())
    size = session["partSizeBytes"]
    for part in session["parts"]:
        start_at = (part["partNumber"] - 1) * size
        assert (await put(part["url"], big[start_at:start_at + size])).status_code == 200
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["field"] == "sha256" and hashlib.sha256(big).hexdigest() in error["message"]


async def test_reconciler_settles_assets_a_crash_left_pending_after_their_session_closed(
        api: Api, contributor: str, state: AppState) -> None:
    """A crash between closing a session and flipping its asset must not leave the asset PENDING."""
    from documents.asset import Asset

    coll = await factories.collection(api, contributor, "crash")
    good, lost = payload(700, seed=21), payload(800, seed=22)
    completed = await start(api, contributor, good, "local", collectionId=coll["id"], path="kept.bin")
    await put(completed["url"], good, completed["headers"])
    aborted = await start(api, contributor, lost, "local")
    fresh = await start(api, contributor, lost, "local")  # closed just now: maybe still being finished
    long_ago = utcnow() - timedelta(minutes=10)
    sessions = UploadSession.get_pymongo_collection()
    for session, status, when in ((completed, "COMPLETED", long_ago), (aborted, "ABORTED", long_ago), (fresh, "ABORTED", utcnow())):
        await sessions.update_one({"_id": object_id(session["id"])}, {"$set": {"status": status, "finished_at": when}})
    await Asset.get_pymongo_collection().update_many({}, {"$set": {"created_at": long_ago}})

    await reconcile(state.stores, state.feed)
    statuses = {s["id"]: (await api.data("UploadSession", {"id": s["id"]}, token=contributor))["uploadSession"]["asset"]["status"]
                for s in (completed, aborted, fresh)}
    assert statuses == {completed["id"]: "ACTIVE", aborted["id"]: "FAILED", fresh["id"]: "PENDING"}
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert [e["node"]["path"] for e in items] == ["kept.bin"]  # filed, as completion would have


async def test_reconciler_files_none_of_the_stranded_uploads_deleted_as_it_settles_them(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconciler settles completed uploads a crash left PENDING and files them into their
    collection. One deleted between its read and its write stays DELETED and is not filed; the
    other upload of the same collection still is (a failed filing of one failed them all)."""
    from documents.asset import Asset

    coll = await factories.collection(api, contributor, "stranded")
    files = [payload(500, seed=40 + i) for i in range(2)]
    sessions = [await start(api, contributor, data, "local", collectionId=coll["id"], path=f"s{i}.bin")
                for i, data in enumerate(files)]
    for session, data in zip(sessions, files, strict=True):
        await put(session["url"], data, session["headers"])
    long_ago = utcnow() - timedelta(minutes=10)
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {
        "status": "COMPLETED", "finished_at": long_ago, "to_file": True}})
    await Asset.get_pymongo_collection().update_many({}, {"$set": {"created_at": long_ago}})
    victim = object_id(sessions[0]["asset"]["id"])
    deleted_once_read(monkeypatch, finishing, "assets_of", victim, state)
    await reconcile(state.stores, state.feed)
    statuses = [(await api.data("UploadSession", {"id": s["id"]}, token=contributor))["uploadSession"]["asset"]["status"]
                for s in sessions]
    assert statuses == ["DELETED", "ACTIVE"]
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert [e["node"]["path"] for e in items] == ["s1.bin"]
    assert not await UploadSession.get_pymongo_collection().count_documents({"to_file": True})


async def test_reconciler_ends_open_sessions_by_what_a_crash_left_their_assets(
        api: Api, contributor: str, state: AppState) -> None:
    """Completion closes the session and flips the asset at once; a crash after the flip alone
    leaves an open session whose asset is settled. At expiry that session ends as its asset did:
    an ACTIVE asset keeps its object and is filed; it is never expired and deleted."""
    from documents.asset import Asset

    coll = await factories.collection(api, contributor, "crash")
    kept, failed = payload(700, seed=23), payload(800, seed=24)
    active = await start(api, contributor, kept, "local", collectionId=coll["id"], path="kept.bin")
    await put(active["url"], kept, active["headers"])
    broken = await start(api, contributor, failed, "local")
    assets = Asset.get_pymongo_collection()
    for session, status in ((active, "ACTIVE"), (broken, "FAILED")):
        await assets.update_one({"_id": object_id(session["asset"]["id"])}, {"$set": {"status": status}})
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})

    assert await reconcile(state.stores, state.feed) == 0  # neither was expired
    ended = {s["id"]: (await api.data("UploadSession", {"id": s["id"]}, token=contributor))["uploadSession"]
             for s in (active, broken)}
    assert [(e["status"], e["asset"]["status"]) for e in ended.values()] == [("COMPLETED", "ACTIVE"), ("ABORTED", "FAILED")]
    assert (await state.stores["local"].stat(active["asset"]["storage"]["key"])).size == len(kept)
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert [e["node"]["path"] for e in items] == ["kept.bin"]


async def test_reconciler_files_an_upload_a_crash_left_unfiled(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after an upload turned ACTIVE but before it was filed into its collection: its
    session stays marked, and the reconciler files it once no completion can still be at it."""
    from services import collections

    coll = await factories.collection(api, contributor, "crash")
    data, other = payload(600, seed=26), payload(700, seed=27)
    crashed = await start(api, contributor, data, "local", collectionId=coll["id"], path="late.bin")
    await put(crashed["url"], data, crashed["headers"])
    finished = await start(api, contributor, other, "local", collectionId=coll["id"], path="on-time.bin")
    await put(finished["url"], other, finished["headers"])
    assert (await complete(api, contributor, finished["id"]))["status"] == "ACTIVE"

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patched:
        patched.setattr(collections, "add_items", crash)
        error = await api.error("CompleteUpload", {"input": {"id": crashed["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "INTERNAL"
    marks = {s["_id"]: s["to_file"] for s in await UploadSession.get_pymongo_collection().find().to_list()}
    assert marks == {object_id(crashed["id"]): True, object_id(finished["id"]): False}

    def paths() -> list[str]:
        return [e["node"]["path"] for e in items["collection"]["items"]["edges"]]

    await reconcile(state.stores, state.feed)
    items = await api.data("Collection", {"id": coll["id"]}, token=contributor)
    assert paths() == ["on-time.bin"]  # too young: a completion could still be filing it
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"finished_at": utcnow() - timedelta(minutes=10)}})
    await reconcile(state.stores, state.feed)
    items = await api.data("Collection", {"id": coll["id"]}, token=contributor)
    assert sorted(paths()) == ["late.bin", "on-time.bin"]
    assert not await UploadSession.get_pymongo_collection().count_documents({"to_file": True})


async def test_a_completion_joins_its_collection_as_it_settles_and_leaves_a_deleted_one(
        api: Api, contributor: str, state: AppState) -> None:
    """Completing an upload settles its asset and joins it to its collection in one write; the item
    follows. A collection deleted before the completion takes nothing: the asset is ACTIVE, the
    error names the collection, and the asset holds no trace of it."""
    assets = state.db.assets
    coll = await factories.collection(api, contributor, "joined")
    data = payload(500, seed=31)
    session = await start(api, contributor, data, "local", collectionId=coll["id"], path="a.bin")
    await put(session["url"], data, session["headers"])
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
    stored = await assets.find_one({"_id": object_id(session["asset"]["id"])})
    assert stored["status"] == "ACTIVE" and stored["collection_ids"] == [object_id(coll["id"])]
    listed = (await api.data("Assets", {"filter": {"collectionId": coll["id"]}}, token=contributor))["assets"]
    assert [e["node"]["id"] for e in listed["edges"]] == [session["asset"]["id"]]

    gone = await factories.collection(api, contributor, "gone")
    late = payload(600, seed=32)
    orphan = await start(api, contributor, late, "local", collectionId=gone["id"], path="b.bin")
    await put(orphan["url"], late, orphan["headers"])
    await api.data("DeleteCollection", {"id": gone["id"]}, token=contributor)
    error = await api.error("CompleteUpload", {"input": {"id": orphan["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "NOT_FOUND" and error["extensions"]["field"] == "collectionId", error
    stored = await assets.find_one({"_id": object_id(orphan["asset"]["id"])})
    assert stored["status"] == "ACTIVE" and stored["collection_ids"] == []
    assert not await UploadSession.get_pymongo_collection().count_documents({"to_file": True})


async def test_a_batch_completion_reports_an_upload_its_deleted_collection_could_not_take(
        api: Api, contributor: str, state: AppState) -> None:
    """One upload of a batch names a collection deleted before completion: it alone reports NOT_FOUND
    on collectionId, and its asset is listed ACTIVE, in no collection; the others are filed."""
    kept = await factories.collection(api, contributor, "kept")
    gone = await factories.collection(api, contributor, "gone-before-completion")
    files = [payload(700, seed=40 + i) for i in range(3)]
    inputs = [{"name": f"b{i}", "sizeBytes": len(d), "mount": "local", "sha256": hashlib.sha256(d).hexdigest(),
               "collectionId": (gone if i == 1 else kept)["id"], "path": f"b{i}.bin"} for i, d in enumerate(files)]
    sessions = (await api.data("CreateUploads", {"inputs": inputs}, token=contributor))["createUploads"]
    for session, data in zip(sessions, files, strict=True):
        await put(session["url"], data, session["headers"])
    await api.data("DeleteCollection", {"id": gone["id"]}, token=contributor)
    ids = [s["id"] for s in sessions]
    done = (await api.data("CompleteUploads", {"ids": ids}, token=contributor))["completeUploads"]
    assert [a["name"] for a in done["assets"]] == ["b0", "b1", "b2"]
    assert [[e["node"]["id"] for e in a["collections"]["edges"]] for a in done["assets"]] == [[kept["id"]], [], [kept["id"]]]
    (failure,) = done["failures"]
    assert (failure["uploadId"], failure["code"], failure["field"]) == (ids[1], "NOT_FOUND", "collectionId")
    assert failure["message"].startswith("collectionId: the upload completed, but it could not be filed")
    orphan = await state.db.assets.find_one({"_id": object_id(sessions[1]["asset"]["id"])})
    assert orphan["status"] == "ACTIVE" and orphan["collection_ids"] == []
    assert not await UploadSession.get_pymongo_collection().count_documents({"to_file": True})


async def test_a_rerun_after_a_completion_cut_short_before_filing_sends_nothing_twice(
        api: Api, contributor: str, state: AppState) -> None:
    """A crash between an upload's completion (ACTIVE) and its filing into its collection left it
    unfiled until the reconciler came by; a rerun asked first, sent the file again, and two assets
    ended up at one path. The rerun files it, and is answered with it, unchanged."""
    coll = await factories.collection(api, contributor, "run-7")
    data = payload(800, seed=51)
    sha = hashlib.sha256(data).hexdigest()
    upload = {"name": "p.bin", "sizeBytes": len(data), "mount": "local", "sha256": sha, "collectionId": coll["id"],
              "path": "plates/p.bin"}
    [session] = (await api.data("CreateUploads", {"inputs": [upload]}, token=contributor))["createUploads"]
    await put(session["url"], data, session["headers"])
    await complete(api, contributor, session["id"])
    # Back to where the crash left it: ACTIVE and joined to its collection, its item not yet written.
    await state.db.collection_items.delete_many({"asset_id": object_id(session["asset"]["id"])})
    await UploadSession.get_pymongo_collection().update_one({"_id": object_id(session["id"])}, {"$set": {"to_file": True}})

    [again] = (await api.data("CreateUploads", {"inputs": [upload]}, token=contributor))["createUploads"]
    assert (again["id"], again["status"]) == (session["id"], "COMPLETED")  # nothing to send
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert [(i["node"]["path"], i["node"]["asset"]["id"]) for i in items] == [("plates/p.bin", session["asset"]["id"])]
    assert not await UploadSession.get_pymongo_collection().count_documents({"to_file": True})
    assert await state.db.assets.count_documents({"sha256": sha}) == 1


async def test_reconciler_leaves_a_session_alone_while_a_completion_holds_it(
        api: Api, contributor: str, state: AppState) -> None:
    """A completion that verified just before expiry still holds its claim: expiring the session
    under it would delete an object it is about to declare ACTIVE."""
    from documents.upload import UploadClaim

    data = payload(900, seed=25)
    session = await start(api, contributor, data, "local")
    await put(session["url"], data, session["headers"])
    await UploadClaim.get_pymongo_collection().insert_one({"_id": object_id(session["id"]), "claimed_at": utcnow()})
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})

    assert await reconcile(state.stores, state.feed) == 0
    assert (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]["status"] == "OPEN"
    await UploadClaim.get_pymongo_collection().delete_many({})  # the completion ended (or its claim went stale)
    assert await reconcile(state.stores, state.feed) == 1
    assert await state.stores["local"].stat(session["asset"]["storage"]["key"]) is None


async def test_reconciler_expires_a_session_whose_asset_a_crash_never_stored(
        api: Api, contributor: str, state: AppState) -> None:
    """createUpload stores the session and the asset at once: a crash between the two can leave a
    session with no asset, which must expire like any other instead of stopping every reconciliation."""
    from documents.asset import Asset

    session = await start(api, contributor, b"abc", "local")
    await Asset.get_pymongo_collection().delete_many({})
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    assert await reconcile(state.stores, state.feed) == 1
    assert (await UploadSession.get(object_id(session["id"]))).status.value == "EXPIRED"


async def test_reconciler_fails_an_asset_whose_session_a_crash_never_stored(
        api: Api, contributor: str, state: AppState) -> None:
    """The other half of that crash: a PENDING asset with no session. Nothing could ever complete
    it, so once it is older than a completion can take it turns FAILED; a young one is left alone."""
    from documents.asset import Asset

    old, young = await start(api, contributor, b"abc", "local"), await start(api, contributor, b"defg", "local")
    await UploadSession.get_pymongo_collection().delete_many({})
    await Asset.get_pymongo_collection().update_one({"_id": object_id(old["asset"]["id"])},
                                                    {"$set": {"created_at": utcnow() - timedelta(minutes=10)}})
    await reconcile(state.stores, state.feed)
    statuses = {a["_id"]: a["status"] for a in await Asset.get_pymongo_collection().find().to_list()}
    assert statuses == {object_id(old["asset"]["id"]): "FAILED", object_id(young["asset"]["id"]): "PENDING"}
    events = await api.data("Events", {"filter": {"eventTypes": ["ASSET_STATUS"]}}, token=contributor)
    assert [e["node"]["data"]["status"] for e in events["events"]["edges"]] == ["FAILED"]


async def test_a_reconcile_round_reads_what_it_can_settle_not_every_upload_in_flight(
        api: Api, contributor: str, served: Served, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads stay open up to their expiry (a day by default), and every round read the PENDING asset
    and the session of each one older than 30 s, to settle none of them (2,000 in flight: 2,000 of
    each, every round, in every process). A round reads on from where the last one stopped: uploads in
    flight once, a bounded number a round, then only what closed or was created since; what a crash
    left half-finished is still settled, over several rounds when it is more than a round reads."""
    from services.uploads import reconciler

    monkeypatch.setattr(reconciler, "STRANDED_PAGE", 10)
    monkeypatch.setattr(reconciler, "STRANDED_PER_ROUND", 20)

    async def create(n: int, prefix: str) -> list[ObjectId]:
        inputs = [{"name": f"{prefix}{i}", "sizeBytes": 3, "mount": "local", "sha256": hashlib.sha256(b"abc").hexdigest()}
                  for i in range(n)]
        created = (await api.data("CreateUploads", {"inputs": inputs}, token=contributor))["createUploads"]
        return [object_id(s["asset"]["id"]) for s in created]

    async def round_reads() -> tuple[int, int]:
        served.commands.clear()
        await reconcile(state.stores, state.feed)
        return served.commands.returned["assets"], served.commands.returned["upload_sessions"]

    assets, sessions = Asset.get_pymongo_collection(), UploadSession.get_pymongo_collection()
    in_flight = await create(100, "open")
    await assets.update_many({}, {"$set": {"created_at": utcnow() - timedelta(hours=1)}})
    # Read once, 20 a round (and each one's session, to tell it from one a crash left without any).
    catching_up = [await round_reads() for _ in range(6)]
    assert all(a <= 20 and s <= 20 for a, s in catching_up) and catching_up[-1] == (0, 0), catching_up

    # A crash left 25 sessions closed over PENDING assets (5 completed, 20 aborted) and 5 assets without one.
    completed, aborted, orphans = await create(5, "done"), await create(20, "gone"), await create(5, "lone")
    a_while_ago = utcnow() - timedelta(minutes=6)
    for ids, status in ((completed, "COMPLETED"), (aborted, "ABORTED")):
        await sessions.update_many({"asset_id": {"$in": ids}}, {"$set": {"status": status, "finished_at": a_while_ago}})
    await sessions.delete_many({"asset_id": {"$in": orphans}})
    await assets.update_many({"_id": {"$in": completed + aborted + orphans}}, {"$set": {"created_at": a_while_ago}})
    settling = [await round_reads() for _ in range(3)]
    # Each round reads at most a round of the closed sessions and of the new PENDING files, and those
    # of the first read it settles (a finish reads its assets, a filing its collection's): never the 100 in flight.
    assert all(a <= 3 * 20 and s <= 3 * 20 for a, s in settling) and settling[-1] == (0, 0), settling
    statuses = {a["_id"]: a["status"] for a in await assets.find({}, {"status": 1}).to_list()}
    assert [statuses[i] for i in in_flight] == ["PENDING"] * 100
    assert [statuses[i] for i in completed] == ["ACTIVE"] * 5
    assert [statuses[i] for i in aborted + orphans] == ["FAILED"] * 25


async def test_a_backlog_of_expiries_and_filings_goes_a_bounded_number_a_round(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of abandoned uploads, or of uploads a crash left unfiled, was read whole by one round
    (and every one's asset with it): a round takes a bounded number, the rest the next ones."""
    from services.uploads import reconciler

    monkeypatch.setattr(reconciler, "EXPIRE_PER_ROUND", 2)
    monkeypatch.setattr(reconciler, "FILE_PER_ROUND", 2)
    coll = await factories.collection(api, contributor, "backlog")
    inputs = [{"name": f"f{i}", "sizeBytes": 3, "mount": "local", "sha256": hashlib.sha256(b"abc").hexdigest(),
               **({"collectionId": coll["id"], "path": f"f{i}.bin"} if i < 5 else {})} for i in range(10)]
    created = (await api.data("CreateUploads", {"inputs": inputs}, token=contributor))["createUploads"]
    unfiled, abandoned = [object_id(s["asset"]["id"]) for s in created[:5]], [object_id(s["id"]) for s in created[5:]]
    long_ago = utcnow() - timedelta(hours=1)
    sessions = UploadSession.get_pymongo_collection()
    await sessions.update_many({"asset_id": {"$in": unfiled}}, {"$set": {
        "status": "COMPLETED", "finished_at": long_ago, "to_file": True}})
    await Asset.get_pymongo_collection().update_many({"_id": {"$in": unfiled}}, {"$set": {"status": "ACTIVE"}})
    await sessions.update_many({"_id": {"$in": abandoned}}, {"$set": {"expires_at": long_ago}})
    assert [await reconciler.file_unfiled() for _ in range(4)] == [2, 2, 1, 0]
    assert [await reconcile(state.stores, state.feed) for _ in range(4)] == [2, 2, 1, 0]
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert sorted(e["node"]["path"] for e in items) == [f"f{i}.bin" for i in range(5)]
    assert await sessions.count_documents({"_id": {"$in": abandoned}, "status": "EXPIRED"}) == 5


@pytest.mark.parametrize("mount", MOUNTS)
async def test_completion_asks_the_store_while_it_reads_the_session(
        api: Api, served: Served, contributor: str, state: AppState, mount: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """For an upload this process started, the store is asked what it holds before the session is
    read, not after (a HEAD on S3 is a round trip of its own); elsewhere, after. Both complete."""
    from services.uploads import stat_hints

    store = state.stores[mount]
    sessions_read_at_stat: list[int] = []

    async def stat(key: str) -> object:
        sessions_read_at_stat.append(served.commands.returned["upload_sessions"])
        return await type(store).stat(store, key)

    monkeypatch.setattr(store, "stat", stat)
    for elsewhere in (False, True):
        data = payload(2000, seed=31)
        session = await start(api, contributor, data, mount)
        await put(session["url"], data, session["headers"])
        if elsewhere:  # as if another server process had started it
            monkeypatch.setattr(stat_hints, "stored_here", stat_hints.StoredHere())
        served.commands.clear()
        assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
    assert sessions_read_at_stat == [0, 1]


@pytest.mark.parametrize("mount", MOUNTS)
async def test_expiry_and_reconciliation(api: Api, contributor: str, state: AppState, settings: Settings,
                                         mount: str) -> None:
    with multipart_from_one_mib(settings):
        data = payload(9 * MIB, seed=3)
        multipart = await start(api, contributor, data, mount)
    assert (await put(multipart["parts"][0]["url"], data[: 8 * MIB])).status_code == 200
    single = await start(api, contributor, b"abc", mount)
    assert (await put(single["url"], b"abc", single["headers"])).status_code == 200
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})

    error = await api.error("CompleteUpload", {"input": {"id": single["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and "expired" in error["message"]
    assert await reconcile(state.stores, state.feed) == 2
    assert await reconcile(state.stores, state.feed) == 0  # idempotent
    for session in (multipart, single):
        fetched = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
        assert fetched["status"] == "EXPIRED" and fetched["asset"]["status"] == "FAILED"
    store = state.stores[mount]
    stored = await UploadSession.get(object_id(multipart["id"]))
    assert await store.list_parts(stored.key, stored.multipart_id) == []
    assert await store.stat(single["asset"]["storage"]["key"]) is None


async def test_the_sweep_removes_temp_files_of_uploads_that_died(api: Api, contributor: str, state: AppState) -> None:
    """A server that dies mid-PUT, or a direct writer that dies mid-copy, leaves its temp file
    beside the objects. Once nobody has written to one for the upload expiry, no session can own
    it, and the sweep removes it; anything else there stays."""
    data = payload(1000)
    session = await start(api, contributor, data, "local")
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    key = (await complete(api, contributor, session["id"]))["storage"]["key"]
    store = state.stores["local"]
    folder = store.path(key).parent
    # And a file the server was making (a version's content, a thumbnail: LocalStore.stage) when it stopped.
    versions = store.root / "versions"
    versions.mkdir(exist_ok=True)
    dead = [folder / f"{PUT_TEMP_PREFIX}k2j4x9", direct_temp_path(folder / "6b04f9"), versions / f"{STAGED_PREFIX}6b"]
    live = [folder / f"{PUT_TEMP_PREFIX}p0q8r1", direct_temp_path(folder / "6b04fa"), versions / f"{STAGED_PREFIX}6c"]
    other = folder / ".notes"  # not an upload's temp name, however old
    for path in [*dead, *live, other]:
        path.write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    for path in [*dead, other]:
        os.utime(path, (two_hours_ago, two_hours_ago))

    assert await sweep_temp_files(state.stores, timedelta(hours=1)) == 3
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in [*live, other]) and (await store.stat(key)).size == len(data)
    assert await sweep_temp_files(state.stores, timedelta(hours=1)) == 0
    for path in live:  # the mount is the session's: other tests look for leftovers
        path.unlink()


async def test_abort_removes_parts(api: Api, contributor: str, state: AppState) -> None:
    data = payload(1000)
    session = await start(api, contributor, data, "lab")
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    aborted = (await api.data("AbortUpload", {"id": session["id"]}, token=contributor))["abortUpload"]
    assert aborted["status"] == "ABORTED" and aborted["asset"]["status"] == "FAILED"
    assert await state.stores["lab"].stat(session["asset"]["storage"]["key"]) is None


async def test_tampered_expired_and_hostile_local_urls(api: Api, contributor: str, state: AppState) -> None:
    data = payload(64)
    session = await start(api, contributor, data, "local")
    url = session["url"]
    forged = re.sub(r"sig=[^&]*", "sig=%C3%A9", url)  # not ASCII: once a 500 from compare_digest
    for bad in [url.replace("sig=", "sig=x"), url.replace("size=64", "size=9999"),
                url.replace("/assets/", "/assets/other-"), url.replace("exp=", "exp=1"), forged]:
        assert (await put(bad, data, session["headers"])).status_code == 403, bad
    store = state.stores["local"]
    expired = store.signer.sign("PUT", "local", session["asset"]["storage"]["key"], -5, size="64")
    assert (await put(expired, data)).status_code == 403
    for hostile in ["../outside", "a/../../outside", "/etc/passwd", "a\x00b", ".multipart/x"]:
        signed = store.signer.sign("PUT", "local", hostile, 60, size="64")
        response = await put(signed, data)  # refused by the route (400), or never routed to it
        assert not response.is_success, (hostile, response.status_code)
    assert not (store.root.parent / "outside").exists()
    assert (await put(url, data, session["headers"])).status_code == 200  # the genuine URL still works


@contextmanager
def linked_away(path: Path, target: Path) -> Iterator[None]:
    """`path`, a file or folder of the session's local mount, replaced by a link to `target` while the
    block runs, as a direct writer sharing the mount (possibly as another OS user) could do; put back after."""
    aside = path.with_name(path.name + ".aside")
    existed = path.exists()
    if existed:
        path.rename(aside)
    path.symlink_to(target)
    try:
        yield
    finally:
        path.unlink()
        if existed:
            aside.rename(path)


async def multipart_upload(api: Api, token: str, state: AppState, settings: Settings, data: bytes) -> tuple[dict, Path]:
    """A local upload of `data` in parts, and its folder under `.multipart`."""
    with multipart_from_one_mib(settings):
        session = await start(api, token, data, "local")
    return session, state.stores["local"].upload_dir(httpx.URL(session["parts"][0]["url"]).params["upload"])


async def test_a_part_url_writes_into_its_uploads_own_file_or_nowhere(api: Api, contributor: str, state: AppState,
                                                                       settings: Settings, tmp_path: Path) -> None:
    """A part URL wrote into whatever `.multipart/<id>/data` named, links followed: a writer sharing
    the mount who replaced it (or the upload's folder) with a link had the server overwrite any file
    it may write, its signing key say. Now the file is opened through no link: refused (400)."""
    data = payload(9 * MIB, seed=41)
    victim = tmp_path / "signing.key"
    victim.write_bytes(b"the server's own secret")

    linked, upload = await multipart_upload(api, contributor, state, settings, data)
    (upload / "data").unlink()
    (upload / "data").symlink_to(victim)
    response = await put(linked["parts"][1]["url"], data[8 * MIB:])
    assert response.status_code == 400 and "symbolic link" in response.text, response.text
    assert victim.read_bytes() == b"the server's own secret"

    outside = tmp_path / "elsewhere"  # the upload's whole folder swapped for a link to one holding a `data`
    outside.mkdir()
    (outside / "data").write_bytes(b"not the lake's")
    moved, upload = await multipart_upload(api, contributor, state, settings, data)
    with linked_away(upload, outside):
        response = await put(moved["parts"][1]["url"], data[8 * MIB:])
        assert response.status_code == 400 and "symbolic link" in response.text, response.text
    assert (outside / "data").read_bytes() == b"not the lake's" and sorted(os.listdir(outside)) == ["data"]
    for session in (linked, moved):
        await api.data("AbortUpload", {"id": session["id"]}, token=contributor)


async def test_a_parts_marker_is_written_under_a_name_no_one_can_plant_a_link_at(
        api: Api, contributor: str, state: AppState, settings: Settings, tmp_path: Path) -> None:
    """The marker of a part that arrived whole was written through `.00001.tmp`, a name anyone could
    foresee, following links and truncating: a link planted there had the server overwrite its
    target. Now it is made new (O_EXCL, through no link) under an unpredictable name, then renamed."""
    store = state.stores["local"]
    data = payload(9 * MIB, seed=42)
    victim = tmp_path / "signing.key"
    victim.write_bytes(b"the server's own secret")
    session, upload = await multipart_upload(api, contributor, state, settings, data)
    for number in (1, 2):
        (upload / f".{number:05d}.tmp").symlink_to(victim)
    for number, chunk in ((1, data[:8 * MIB]), (2, data[8 * MIB:])):
        assert (await put(session["parts"][number - 1]["url"], chunk)).status_code == 200
    assert victim.read_bytes() == b"the server's own secret"
    assert [(p.number, p.size) for p in await store.list_parts("k", upload.name)] == [(1, 8 * MIB), (2, MIB)]
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_completion_never_takes_parts_from_a_folder_a_link_leads_to(
        api: Api, contributor: str, state: AppState, settings: Settings, tmp_path: Path) -> None:
    """An upload's folder swapped for a link to one outside holding a `data` file and part markers:
    completion had listed those, then moved that `data` into the lake as the object (taking a file of
    that name from any folder the server may write). Now the folder is not the upload's: its parts
    are missing, a marker that is a link counts for none, and nothing outside is touched."""
    data = payload(9 * MIB, seed=43)
    session, upload = await multipart_upload(api, contributor, state, settings, data)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "data").write_bytes(b"x" * len(data))
    (outside / "00001").write_text(str(8 * MIB))
    (outside / "00002").write_text(str(MIB))
    with linked_away(upload, outside):
        error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["missingParts"] == [1, 2]
    assert sorted(os.listdir(outside)) == ["00001", "00002", "data"] and (outside / "data").stat().st_size == len(data)

    assert (await put(session["parts"][0]["url"], data[:8 * MIB])).status_code == 200
    (upload / "00002").symlink_to(outside / "00002")  # a marker the server did not write
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["missingParts"] == [2]
    (upload / "00002").unlink()
    assert (await put(session["parts"][1]["url"], data[8 * MIB:])).status_code == 200
    assert (await complete(api, contributor, session["id"]))["sha256"] == hashlib.sha256(data).hexdigest()


async def test_uploads_in_parts_never_make_or_remove_folders_through_a_link(
        api: Api, contributor: str, state: AppState, settings: Settings, tmp_path: Path) -> None:
    """`.multipart` swapped for a link: starting an upload in parts made its folder wherever the
    link led, and aborting one removed the folder of its id there. Now neither goes through it: a
    start is UNAVAILABLE naming the mount, an abort leaves what the link leads to alone."""
    store = state.stores["local"]
    data = payload(9 * MIB, seed=44)
    started, upload = await multipart_upload(api, contributor, state, settings, data)
    upload_id = upload.name
    outside = tmp_path / "elsewhere"
    (outside / upload_id).mkdir(parents=True)
    (outside / upload_id / "keep").write_text("not the lake's")
    with linked_away(store.root / ".multipart", outside):
        with multipart_from_one_mib(settings):
            error = await api.error("CreateUpload", {"input": {"name": "x", "sizeBytes": len(data), "mount": "local"}},
                                    token=contributor, status=503)
        assert error["extensions"]["code"] == "UNAVAILABLE" and error["extensions"]["field"] == "mount", error
        aborted = (await api.data("AbortUpload", {"id": started["id"]}, token=contributor))["abortUpload"]
        assert aborted["status"] == "ABORTED"
    assert sorted(os.listdir(outside)) == [upload_id] and (outside / upload_id / "keep").read_text() == "not the lake's"
    await store.abort_multipart("k", upload_id)  # what the abort left of it behind the link
    assert not upload.exists()


async def test_a_put_whose_temporary_file_is_swapped_for_a_link_stores_nothing(
        api: Api, contributor: str, state: AppState, tmp_path: Path) -> None:
    """A PUT's body goes to a temporary file beside the key, which a writer sharing the mount sees.
    Swapped for a link to a file the server may read (its signing key) while the body came, it was
    hard-linked under the key, links followed, and given the digest of the bytes sent: the upload
    completed ACTIVE and its downloads served that file. Now the key gets the file written or nothing
    (409), and the file the link named is untouched."""
    data = payload(100_000, seed=45)
    secret = tmp_path / "signing.key"
    secret.write_bytes(os.urandom(len(data)))  # of the declared size: only the digest could tell
    held = secret.read_bytes()
    session = await start(api, contributor, data, "local")
    key = session["asset"]["storage"]["key"]
    folder = state.stores["local"].root / key.rpartition("/")[0]
    folder.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(folder))

    async def body() -> AsyncIterator[bytes]:
        yield data[:1000]
        temp = await wait_for(lambda: [n for n in os.listdir(folder) if n.startswith(PUT_TEMP_PREFIX) and n not in before],
                              what="the PUT's temporary file")
        (folder / "swap").symlink_to(secret)
        os.replace(folder / "swap", folder / temp[0])
        yield data[1000:]

    response = await put(session["url"], body(), session["headers"])
    assert response.status_code == 409 and "replaced" in response.text, response.text
    assert not os.path.lexists(folder / key.rpartition("/")[2]) and set(os.listdir(folder)) == before
    assert secret.read_bytes() == held and secret.stat().st_nlink == 1
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "nothing has been uploaded" in error["message"]
    assert (await put(session["url"], data, session["headers"])).status_code == 200  # the URL still works
    assert (await complete(api, contributor, session["id"]))["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_signed_get_never_follows_a_link_out_of_the_mount(state: AppState, tmp_path: Path) -> None:
    """A GET URL is signed by the key's text alone (storage/local.py: sign_get); the route resolves
    the path before it serves a byte, so a link placed in the mount cannot lead a download out of it."""
    store = state.stores["local"]
    secret = tmp_path / "secret.txt"
    secret.write_text("not the lake's")
    link = store.root / "links" / "escape.txt"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    try:
        url = await store.sign_get("links/escape.txt", filename="escape.txt", content_type="text/plain", expires_in=60)
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.status_code == 400 and "not the lake's" not in response.text, response.text
        with pytest.raises(UnsafeKey):
            await store.sign_get("../outside", filename="x", content_type=None, expires_in=60)
    finally:
        link.unlink()
        link.parent.rmdir()


async def test_a_local_mount_signs_a_download_url_at_once_and_an_s3_mount_when_awaited(state: AppState) -> None:
    """A page of a version's images asks for hundreds of URLs: a local mount's come without an
    awaitable each (services/uploads/downloads.py); an S3 mount's credentials may need refreshing first."""
    def asset(mount: str, key: str) -> Asset:
        return Asset(kind=AssetKind.FILE, status=AssetStatus.ACTIVE, name="a b.png", media_type="image/png",
                     storage=StorageRef(mount=mount, key=key, uri=state.stores[mount].uri(key)))

    local = download_url_now_or_later(asset("local", "ab/cd/x.png"), state.stores, 60, 3600)
    assert isinstance(local, str)
    url = httpx.URL(local)
    mount, key = url.path.removeprefix("/blobs/").split("/", 1)
    assert (mount, key) == ("local", "ab/cd/x.png")
    assert state.stores["local"].signer.verify("GET", mount, key, dict(url.params))["name"] == "a b.png"
    lab = download_url_now_or_later(asset("lab", "ab/cd/x.png"), state.stores, 60, 3600)
    assert inspect.isawaitable(lab)
    assert "X-Amz-Signature=" in await lab and await download_url(asset("lab", "k"), state.stores, 60, 3600)
    for mount in ("local", "lab"):  # checked before anything is signed, on both paths
        with pytest.raises(BadUserInput) as refused:
            download_url_now_or_later(asset(mount, "k"), state.stores, 0, 3600)
        assert refused.value.extensions["field"] == "expiresInSeconds", mount


@contextlib.asynccontextmanager
async def hung_endpoint() -> AsyncIterator[str]:
    """An address that accepts connections and never answers (a store stuck on a bad day)."""
    stuck: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stuck.append(writer)  # kept open, never written to

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in stuck:
            writer.close()
        server.close()


@pytest.mark.parametrize("outage", ["refused", "hung"])
async def test_fallback_mount_takes_uploads_while_s3_is_down(api: Api, contributor: str, state: AppState, outage: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        endpoint = "http://127.0.0.1:9" if outage == "refused" else await stack.enter_async_context(hung_endpoint())
        flaky = S3Store("flaky", bucket="b", endpoint_url=endpoint, access_key_id="x", secret_access_key="y",
                        fallback="local", timeout=0.5)
        dead = S3Store("dead", bucket="b", endpoint_url=endpoint, access_key_id="x", secret_access_key="y", timeout=0.5)
        for store in (flaky, dead):
            await store.open()
            state.stores[store.name] = store
        try:
            # A hung store once held createUpload for about 4 minutes (botocore's 60 s read timeout,
            # three attempts); the store's timeout bounds it now, and the wait here only stops a hang.
            async with asyncio.timeout(30):
                session = await start(api, contributor, b"data", "flaky")
                assert session["asset"]["storage"]["mount"] == "local"  # where it really lives
                error = await api.error("CreateUpload", {"input": {"name": "x", "sizeBytes": 1, "mount": "dead"}},
                                        token=contributor, status=503)
            assert error["extensions"]["code"] == "UNAVAILABLE"
            assert error["extensions"]["field"] == "mount" and "dead" in error["message"]
        finally:
            for store in (flaky, dead):
                del state.stores[store.name]
                await store.close()


async def test_external_registration_never_copies_or_deletes(api: Api, contributor: str, admin: str, s3: S3Service, settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3.client()
    for name, body in [("ext/run1/a.csv", b"a,b\n1,2\n"), ("ext/run1/b.png", b"PNG")]:
        client.put_object(Bucket=s3.bucket, Key=name, Body=body)
    coll = await factories.collection(api, contributor, "external")
    registered = (await api.data("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "ext/run1/",
                                                                "collectionId": coll["id"], "labels": ["ext"]}},
                                 token=contributor))["registerExternal"]
    assert registered["count"] == 2
    by_name = {a["name"]: a for a in registered["assets"]}
    assert by_name["a.csv"]["kind"] == "EXTERNAL" and by_name["a.csv"]["sizeBytes"] == 8
    assert by_name["a.csv"]["mediaType"] == "text/csv" and by_name["a.csv"]["storage"]["external"] is True
    assert by_name["a.csv"]["storage"]["uri"] == f"s3://{s3.bucket}/ext/run1/a.csv"

    # Registered again: the same objects are recognised (URI and ETag); a changed one is registered anew.
    client.put_object(Bucket=s3.bucket, Key="ext/run1/b.png", Body=b"PNG, retaken")
    again = (await api.data("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "ext/run1/"}},
                            token=contributor))["registerExternal"]
    assert again["unchangedCount"] == 1 and again["unchanged"][0]["id"] == by_name["a.csv"]["id"]
    assert again["count"] == 1 and again["assets"][0]["name"] == "b.png" and again["assets"][0]["id"] != by_name["b.png"]["id"]
    link = (await api.data("DownloadUrl", {"id": by_name["a.csv"]["id"]}, token=contributor))["asset"]["downloadUrl"]
    async with httpx.AsyncClient() as http:
        assert (await http.get(link)).content == b"a,b\n1,2\n"
    await api.data("DeleteAsset", {"id": by_name["a.csv"]["id"], "force": True}, token=admin)
    assert client.get_object(Bucket=s3.bucket, Key="ext/run1/a.csv")["Body"].read() == b"a,b\n1,2\n"

    too_many = {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "ext/"}}
    monkeypatch.setattr(settings, "max_batch_items", 1)
    error = await api.error("RegisterExternal", too_many, token=contributor)
    assert error["extensions"]["field"] == "prefix" and "more than 1 objects" in error["message"]
    monkeypatch.undo()

    url = (await api.data("RegisterExternal", {"input": {"url": "https://data.example.org/files/survey.json"}},
                          token=contributor))["registerExternal"]["assets"][0]
    assert url["name"] == "survey.json" and url["storage"]["uri"] == "https://data.example.org/files/survey.json"
    same = (await api.data("RegisterExternal", {"input": {"url": "https://data.example.org/files/survey.json"}},
                           token=contributor))["registerExternal"]
    assert (same["count"], same["unchangedCount"], same["unchanged"][0]["id"]) == (0, 1, url["id"])
    for bad in ("ftp://x/y", "javascript:alert(1)", "file:///etc/passwd", "http:///no-host"):  # a link in the web app
        error = await api.error("RegisterExternal", {"input": {"url": bad}}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "url"}, bad
    lab = (await api.data("RegisterExternal", {"input": {"url": "http://minio.lab:9000/runs/plate.csv"}},
                          token=contributor))["registerExternal"]["assets"][0]  # a lab server without TLS
    assert lab["storage"]["uri"] == "http://minio.lab:9000/runs/plate.csv"

    # The lake's own objects (an upload's bytes on the lab mount, whose bucket this is) are not external.
    data = payload(64)
    own = await start(api, contributor, data, "lab")
    assert (await put(own["url"], data, own["headers"])).status_code == 200
    await complete(api, contributor, own["id"])
    error = await api.error("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "assets/"}},
                            token=contributor)
    assert error["extensions"]["field"] == "prefix" and "this lake's own" in error["message"], error
    # A name S3 cannot take (botocore refuses it before sending) is the caller's to fix, not INTERNAL,
    # and said plainly: no store answered it.
    for bucket in ("Bad Bucket!", "x/y", "b" * 300):
        error = await api.error("RegisterExternal", {"input": {"mount": "lab", "bucket": bucket}}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "bucket"}, (bucket, error)
        assert f"{bucket!r} is not a bucket name S3 takes" in error["message"] and "\n" not in error["message"], error
        assert "the store answered" not in error["message"], error  # botocore refused it: nothing was sent


async def test_upload_into_a_collection_and_status_subscription(api: Api, served: Served, state: AppState,
                                                                contributor: str) -> None:
    coll = await factories.collection(api, contributor, "incoming")
    data = payload(2048)
    session = await start(api, contributor, data, "local", collectionId=coll["id"], path="day1/scan.bin")
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {contributor}"})
        await ws.subscribe("AssetStatusChanged", {"ids": [session["asset"]["id"]]})
        await wait_for(lambda: live_subscribers(state.events) == 1, what="the subscription to listen")
        await put(session["url"], data, session["headers"])
        asset = await complete(api, contributor, session["id"])
        message = await asyncio.wait_for(ws.receive(), 5)
    assert message["payload"]["data"]["assetStatusChanged"] == {
        "id": session["asset"]["id"], "status": "ACTIVE", "sizeBytes": 2048, "sha256": hashlib.sha256(data).hexdigest()}
    assert [e["node"]["id"] for e in asset["collections"]["edges"]] == [coll["id"]]
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert items[0]["node"]["path"] == "day1/scan.bin"


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_digest_can_be_given_at_completion_instead(api: Api, contributor: str, settings: Settings,
                                                          state: AppState, mount: str) -> None:
    """A client may hash a big file while its parts upload and give the SHA-256 to completeUpload:
    it is checked as a declared one is (a multipart object is read back), and stored on the
    session first, so a retry must give the same one."""
    with multipart_from_one_mib(settings):
        data = payload(9 * MIB, seed=5)
        session = await start(api, contributor, data, mount, sha256=None)
        wrong = await start(api, contributor, data, mount, sha256=None)
    size = session["partSizeBytes"]
    for upload in (session, wrong):
        for part in upload["parts"]:
            offset = (part["partNumber"] - 1) * size
            assert (await put(part["url"], data[offset:offset + size])).status_code == 200
    digest = hashlib.sha256(data).hexdigest()

    error = await api.error("CompleteUpload", {"input": {"id": session["id"], "sha256": "ABC"}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "sha256"}
    asset = (await api.data("CompleteUpload", {"input": {"id": session["id"], "sha256": digest}},
                            token=contributor))["completeUpload"]
    assert asset["status"] == "ACTIVE" and asset["sha256"] == digest
    assert (await UploadSession.get(object_id(session["id"]))).sha256 == digest  # what a crash recovery would use

    other = hashlib.sha256(b"not these bytes").hexdigest()
    error = await api.error("CompleteUpload", {"input": {"id": wrong["id"], "sha256": other}}, token=contributor)
    assert error["extensions"]["field"] == "sha256" and digest in error["message"]
    failed = (await api.data("UploadSession", {"id": wrong["id"]}, token=contributor))["uploadSession"]
    assert failed["asset"]["status"] == "FAILED"
    assert await state.stores[mount].stat(wrong["asset"]["storage"]["key"]) is None  # the object went


async def test_a_digest_given_at_completion_must_match_the_declared_one(api: Api, contributor: str) -> None:
    data = payload(1000)
    session = await start(api, contributor, data, "local")
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    other = hashlib.sha256(b"other").hexdigest()
    error = await api.error("CompleteUpload", {"input": {"id": session["id"], "sha256": other}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "sha256"} and "createUpload declared" in error["message"]
    asset = await complete(api, contributor, session["id"])  # nothing was changed: it completes as declared
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()

    ids = [session["id"], (await start(api, contributor, data, "local"))["id"]]
    for sha256s, field in (([None], "sha256s"), ([None, "xyz"], "sha256s[1]")):
        error = await api.error("CompleteUploads", {"ids": ids, "sha256s": sha256s}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (sha256s, error)


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_digest_in_uppercase_hex_is_taken_at_completion_as_at_creation(api: Api, contributor: str,
                                                                               mount: str) -> None:
    """createUpload took an uppercase SHA-256 (PowerShell's Get-FileHash writes one); completeUpload
    and completeUploads refused the same digest as not lowercase."""
    data = payload(2000, seed=8)
    digest = hashlib.sha256(data).hexdigest()
    sessions = [await start(api, contributor, data, mount, sha256=None) for _ in range(2)]
    for session in sessions:
        assert (await put(session["url"], data, session["headers"])).status_code == 200
    asset = (await api.data("CompleteUpload", {"input": {"id": sessions[0]["id"], "sha256": digest.upper()}},
                            token=contributor))["completeUpload"]
    assert asset["status"] == "ACTIVE" and asset["sha256"] == digest
    done = (await api.data("CompleteUploads", {"ids": [sessions[1]["id"]], "sha256s": [digest.upper()]},
                           token=contributor))["completeUploads"]
    assert not done["failures"] and done["assets"][0]["sha256"] == digest


async def test_register_external_checks_the_name_it_is_given(api: Api, contributor: str, s3: S3Service) -> None:
    """An upload's name is 1 to 500 characters, trimmed; registerExternal stored any it was given
    (blank, 100 kB), and took one with a bucket, whose objects are named by their keys, and ignored it."""
    for name in ("   ", "n" * 501):
        error = await api.error("RegisterExternal", {"input": {"url": "https://example.org/a.bin", "name": name}},
                                token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "name"}, error
    error = await api.error("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "ext/none/",
                                                           "name": "run.csv"}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "name"}, error
    named = (await api.data("RegisterExternal", {"input": {"url": "https://example.org/a.bin", "name": " plate 7.bin "}},
                            token=contributor))["registerExternal"]
    assert named["assets"][0]["name"] == "plate 7.bin"


async def test_a_name_with_a_control_character_is_refused_on_every_path_that_takes_one(
    api: Api, contributor: str, s3: S3Service
) -> None:
    """A newline in a name split the log line, CSV row or export entry naming it, a NUL cut it short:
    every name (and collection path) is refused with one (C0, DEL, C1), naming the field, nothing stored."""
    coll = (await api.data("CreateCollection", {"input": {"name": "odd-names"}}, token=contributor))["createCollection"]
    kept = (await api.data("StoreValue", {"input": {"name": "kept", "value": 1}}, token=contributor))["storeValue"]
    refused = [
        ("CreateUpload", {"input": {"name": "scan\n7.bin", "sizeBytes": 1}}, "name"),
        ("CreateUpload", {"input": {"name": "scan\x007.bin", "sizeBytes": 1}}, "name"),
        ("CreateUpload", {"input": {"name": "ok.bin", "sizeBytes": 1, "collectionId": coll["id"], "path": "a\rb.bin"}}, "path"),
        ("CreateUploads", {"inputs": [{"name": "a.bin", "sizeBytes": 1}, {"name": "b\x7f.bin", "sizeBytes": 1}]},
         "inputs[1].name"),
        ("StoreValue", {"input": {"name": "reading\x1b[31m", "value": 1}}, "name"),
        ("StoreText", {"input": {"name": "notes\x85old", "text": "hi", "mediaType": "text/plain"}}, "name"),
        ("UpdateAsset", {"input": {"id": kept["id"], "name": "kept\tagain"}}, "name"),
        ("RegisterExternal", {"input": {"url": "https://example.org/a.bin", "name": "a\nb"}}, "name"),
        ("RegisterExternal", {"input": {"url": "https://example.org/a\x01b.bin"}}, "url"),  # named by its file name
        ("CreateCollection", {"input": {"name": "raw\n2026"}}, "name"),
        ("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": kept["id"], "path": "x\ny"}]}},
         "items[0].path"),
    ]
    for operation, variables, field in refused:
        error = await api.error(operation, variables, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (operation, variables, error)
        assert "control character" in error["message"], error
    # Objects are named by their keys: a key with one refuses the call, before any object is registered.
    client = s3.client()
    for key in ("ext/odd/fine.bin", "ext/odd/two\nlines.bin"):
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"x")
    error = await api.error("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket, "prefix": "ext/odd/"}},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "prefix"} and "two\\nlines.bin" in error["message"]
    assert await UploadSession.count() == 0 and await Asset.count() == 1  # `kept` alone, its name as it was
    assert (await Asset.find_one()).name == "kept"
    # Spaces are no control characters, and the trimmed ends of a name never were part of it.
    named = (await api.data("StoreValue", {"input": {"name": " café  №7 \n", "value": 1}}, token=contributor))["storeValue"]
    assert named["name"] == "café  №7"


async def test_bad_upload_requests_name_the_field(api: Api, contributor: str, settings: Settings) -> None:
    cases = [
        ({"name": "x", "sizeBytes": -1}, "sizeBytes"),
        ({"name": "x", "sizeBytes": settings.max_upload_bytes + 1}, "sizeBytes"),
        ({"name": "x", "sizeBytes": 1, "sha256": "abc"}, "sha256"),
        ({"name": "x", "sizeBytes": 1, "mediaType": "not a type"}, "mediaType"),
        ({"name": "x", "sizeBytes": 1, "mount": "nowhere"}, "mount"),
        ({"name": "x", "sizeBytes": 1, "path": "../up"}, "path"),
    ]
    for fields, field in cases:
        error = await api.error("CreateUpload", {"input": fields}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == field, (fields, error)
    # A path without a collection was accepted and dropped: the asset went nowhere, and nothing said so.
    error = await api.error("CreateUpload", {"input": {"name": "x", "sizeBytes": 1, "path": "day1/x.bin"}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "path"}, error
    assert error["message"].endswith("a path places the file in a collection: give collectionId too"), error
    error = await api.error("CreateUploads", {"inputs": [{"name": "a", "sizeBytes": 1},
                                                         {"name": "b", "sizeBytes": 1, "path": "b.bin"}]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].path"}, error
    assert await UploadSession.count() == 0


async def _batch(api: Api, served: Served, token: str, files: list[bytes], mount: str, coll_id: str | None,
                 folder: str = "train") -> tuple:
    """createUploads -> PUT each -> completeUploads; the database commands of the two mutations."""
    inputs = [{"name": f"img{i}.png", "sizeBytes": len(data), "mount": mount, "sha256": hashlib.sha256(data).hexdigest(),
               **({"collectionId": coll_id, "path": f"{folder}/img{i}.png"} if coll_id else {})} for i, data in enumerate(files)]
    await api.data("Me", token=token)  # the token's lookup is not the mutations' (it is cached only so long)
    served.commands.clear()
    sessions = (await api.data("CreateUploads", {"inputs": inputs}, token=token))["createUploads"]
    created = served.commands.tally()
    await asyncio.gather(*(put(s["url"], data, s["headers"]) for s, data in zip(sessions, files, strict=True)))
    await api.data("Me", token=token)
    served.commands.clear()
    done = (await api.data("CompleteUploads", {"ids": [s["id"] for s in sessions]}, token=token))["completeUploads"]
    return sessions, done, created, served.commands.tally()


@pytest.mark.parametrize("mount", MOUNTS)
async def test_batch_upload_of_small_files_costs_the_same_commands_for_3_or_30(
    api: Api, served: Served, contributor: str, mount: str
) -> None:
    coll = (await api.data("CreateCollection", {"input": {"name": f"batch-{mount}"}}, token=contributor))["createCollection"]
    few = [payload(1000 + i, seed=i) for i in range(3)]
    many = [payload(2000 + i, seed=100 + i) for i in range(30)]
    # Into folders of their own: a path filed already costs createUploads the reads that find out
    # whether its file is the same (none when no path is), the same for 3 or 30.
    _, _done_few, created_few, completed_few = await _batch(api, served, contributor, few, mount, coll["id"], "few")
    _sessions, done, created_many, completed_many = await _batch(api, served, contributor, many, mount, coll["id"])
    assert done["failures"] == [] and len(done["assets"]) == 30
    assert [a["sizeBytes"] for a in done["assets"]] == [len(d) for d in many]  # in the order given
    assert all(a["status"] == "ACTIVE" and a["collections"]["edges"][0]["node"]["id"] == coll["id"] for a in done["assets"])
    assert [a["sha256"] for a in done["assets"]] == [hashlib.sha256(d).hexdigest() for d in many]
    # Batched writes: 30 files cost what 3 do.
    assert created_many == created_few and completed_many == completed_few, (created_many, completed_many)
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert {e["node"]["path"] for e in items} >= {f"train/img{i}.png" for i in range(30)}


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_single_upload_costs_few_database_commands(api: Api, served: Served, contributor: str, mount: str) -> None:
    """The whole flow for one small file is a handful of round trips; each one added shows here."""
    data = payload(1000, seed=11)
    await api.data("Me", token=contributor)  # the token lookup, remembered from here on
    served.commands.clear()
    session = await start(api, contributor, data, mount)
    created = list(zip(served.commands.commands, served.commands.collections, strict=True))
    served.commands.clear()
    await put(session["url"], data, session["headers"])
    # The local mount's PUT asks once whether its upload is still open: after the body, before the
    # bytes are kept (it asked before the body too, a read per file for nothing); a store's, none.
    sent = list(zip(served.commands.commands, served.commands.collections, strict=True))
    assert sent == ([("find", "upload_sessions")] if mount == "local" else []), sent
    served.commands.clear()
    await complete(api, contributor, session["id"])
    completed = served.commands.tally()
    # The session and its PENDING asset (returned without reading it back); the AUDIT event is
    # journaled and stored after the answer (services/events/journal.py).
    assert created == [("insert", "upload_sessions"), ("insert", "assets")], created
    # Claim, session, asset (read while the store answers), close and flip, the ASSET_STATUS and AUDIT
    # events (one insert), the collections the response asks for; the reconciler drops the claim later.
    assert completed.total() <= 7 and "delete upload_claims" not in completed, completed


async def test_batch_completion_reports_each_failure_and_keeps_the_rest(api: Api, served: Served, contributor: str,
                                                                        state: AppState, tmp_path: Path) -> None:
    files = [payload(5000, seed=i) for i in range(4)]
    inputs = [{"name": f"f{i}", "sizeBytes": len(d), "mount": "local", "sha256": hashlib.sha256(d).hexdigest()}
              for i, d in enumerate(files)]
    sessions = (await api.data("CreateUploads", {"inputs": inputs}, token=contributor))["createUploads"]
    await put(sessions[0]["url"], files[0], sessions[0]["headers"])
    # Same size, other bytes, put there as by a store that does not check a PUT (the local route and
    # MinIO refuse a body whose digest differs from the declared one: test_a_put_of_other_bytes_than_...).
    (tmp_path / "other").write_bytes(files[1][:-1] + b"?")
    await state.stores["local"].write(f"assets/{object_id(sessions[1]['asset']['id'])}", tmp_path / "other")
    # sessions[2]: nothing uploaded
    await put(sessions[3]["url"], files[3], sessions[3]["headers"])
    await api.data("AbortUpload", {"id": sessions[3]["id"]}, token=contributor)
    ids = [s["id"] for s in sessions]
    done = (await api.data("CompleteUploads", {"ids": ids}, token=contributor))["completeUploads"]
    assert [a["name"] for a in done["assets"]] == ["f0"]
    failures = {f["uploadId"]: f for f in done["failures"]}
    assert set(failures) == set(ids[1:])
    assert failures[ids[1]]["code"] == "BAD_USER_INPUT" and failures[ids[1]]["field"] == "sha256"
    assert failures[ids[2]]["code"] == "BAD_USER_INPUT" and "nothing has been uploaded" in failures[ids[2]]["message"]
    assert failures[ids[3]]["code"] == "CONFLICT"
    statuses = [(await api.data("UploadSession", {"id": i}, token=contributor))["uploadSession"]["asset"]["status"] for i in ids]
    assert statuses == ["ACTIVE", "FAILED", "PENDING", "FAILED"]  # the empty one can still be uploaded
    assert await state.stores["local"].stat(f"assets/{object_id(sessions[1]['asset']['id'])}") is None


async def test_a_bad_input_in_a_batch_names_it_and_stores_nothing(api: Api, contributor: str) -> None:
    good = {"name": "ok", "sizeBytes": 1}
    error = await api.error("CreateUploads", {"inputs": [good, good, {"name": "x", "sizeBytes": 1, "sha256": "abc"}]},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[2].sha256"}
    error = await api.error("CreateUploads", {"inputs": [good, {**good, "collectionId": "Q29sbGVjdGlvbjo2NTAwMDAwMDAwMDAwMDAwMDAwMDAwMDA="}]},
                            token=contributor)
    assert error["extensions"]["field"] == "inputs[1].collectionId"
    # One path of a collection twice in a batch: which file it holds would be a race.
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    at = {"collectionId": scans["id"], "path": "a/f.bin"}
    error = await api.error("CreateUploads", {"inputs": [{**good, **at}, {**good, "collectionId": scans["id"], "path": "b.bin"},
                                                        {**good, **at}]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[2].path"}, error
    assert "inputs[0].path" in error["message"]
    for empty in (("CreateUploads", {"inputs": []}, "inputs"), ("CompleteUploads", {"ids": []}, "ids")):
        error = await api.error(empty[0], empty[1], token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": empty[2]}
    assert await UploadSession.count() == 0


@pytest.mark.parametrize("mount", MOUNTS)
async def test_two_completions_at_once_finish_the_upload_once(api: Api, contributor: str, mount: str) -> None:
    coll = await factories.collection(api, contributor, f"race-{mount}")
    data = payload(3000, seed=5)
    session = await start(api, contributor, data, mount, collectionId=coll["id"], path="x.bin")
    await put(session["url"], data, session["headers"])
    results = await asyncio.gather(*(api.run("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
                                     for _ in range(2)))
    finished = [r for r in results if not r.get("errors")]
    refused = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
    assert len(finished) == 1 and refused == ["CONFLICT"], results
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert len(items) == 1  # filed once
    logged = (await api.data("Events", {"filter": {"eventTypes": ["ASSET_STATUS"]}}, token=contributor))["events"]["edges"]
    assert len(logged) == 1  # announced once


async def test_an_asset_deleted_between_a_completions_read_and_write_is_not_reported_done(
        api: Api, contributor: str, state: AppState, monkeypatch) -> None:
    """A completion reads its assets, verifies the bytes, then settles the assets with a write that
    leaves a DELETED one alone. An asset deleted in between stayed DELETED, but its upload was
    reported completed, filed and announced ACTIVE. Now the caller is told of the delete (CONFLICT),
    nothing is filed or announced for it, and its object is gone (the delete removed it); the other
    upload of the batch completes."""
    coll = await factories.collection(api, contributor, "late-delete")
    files = [payload(4000, seed=20 + i) for i in range(2)]
    inputs = [{"name": f"f{i}", "sizeBytes": len(d), "mount": "local", "sha256": hashlib.sha256(d).hexdigest(),
               "collectionId": coll["id"], "path": f"f{i}"} for i, d in enumerate(files)]
    sessions = (await api.data("CreateUploads", {"inputs": inputs}, token=contributor))["createUploads"]
    for session, data in zip(sessions, files, strict=True):
        await put(session["url"], data, session["headers"])
    victim = object_id(sessions[0]["asset"]["id"])
    deleted_once_read(monkeypatch, completion, "assets_by_id", victim, state)
    done = (await api.data("CompleteUploads", {"ids": [s["id"] for s in sessions]}, token=contributor))["completeUploads"]
    assert [a["name"] for a in done["assets"]] == ["f1"]
    [failure] = done["failures"]
    assert failure["uploadId"] == sessions[0]["id"] and failure["code"] == "CONFLICT" and "deleted" in failure["message"]
    fetched = (await api.data("UploadSession", {"id": sessions[0]["id"]}, token=contributor))["uploadSession"]
    assert fetched["asset"]["status"] == "DELETED"
    closed = await UploadSession.get_pymongo_collection().find_one({"_id": object_id(sessions[0]["id"])})
    assert (closed["to_file"], closed["sweep_due"]) == (False, True)  # its key swept later, as the delete asked
    items = (await api.data("Collection", {"id": coll["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert [i["node"]["path"] for i in items] == ["f1"]
    logged = (await api.data("Events", {"filter": {"eventTypes": ["ASSET_STATUS"]}}, token=contributor))["events"]["edges"]
    [status] = [e["node"] for e in logged]  # the filed one's (named by its ID: a file's name may be personal)
    assert status["message"] == f"asset {status['data']['assetId']} is ACTIVE" and status["data"]["assetId"] != fetched["asset"]["id"]
    assert await state.stores["local"].stat(f"assets/{victim}") is None
    # The sweep never takes the object of an asset in use, whatever its session says (a delete undone).
    long_ago = utcnow() - timedelta(hours=1)
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {
        "expires_at": long_ago, "finished_at": long_ago, "sweep_due": True}})
    assert await sweep_closed(state.stores) == 1
    assert await state.stores["local"].stat(f"assets/{object_id(sessions[1]['asset']['id'])}") is not None
    assert not await UploadSession.get_pymongo_collection().count_documents({"sweep_due": True})


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_completion_that_fails_while_its_asset_is_deleted_leaves_the_upload_closed(
        api: Api, contributor: str, state: AppState, mount: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delete leaves the upload a completion holds right then to that completion (closing._close).
    A completion that then failed (here: nothing uploaded yet) released its claim and left the upload
    OPEN under its DELETED asset until it expired, up to a day, its URLs still taking bytes. Now it
    closes it as the delete would have, and says the asset was deleted. The delete lands at a set
    point, inside the completion's claim (as it checks the bytes), never by timing."""
    data = payload(20_000, seed=41)
    session = await start(api, contributor, data, mount)
    checked = completion.verify

    async def deleted_as_it_checks(*args: object) -> object:
        await delete_asset(object_id(session["asset"]["id"]), False, state.stores)
        return await checked(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(completion, "verify", deleted_as_it_checks)
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    monkeypatch.undo()
    assert error["extensions"]["code"] == "CONFLICT" and session["asset"]["id"] in error["message"], error
    fetched = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
    assert (fetched["status"], fetched["asset"]["status"]) == ("ABORTED", "DELETED")
    closed = await UploadSession.get_pymongo_collection().find_one({"_id": object_id(session["id"])})
    assert closed["sweep_due"]  # what a presigned PUT stores after this goes at the sweep
    sent = await put(session["url"], data, session["headers"])
    assert sent.status_code == (200 if mount == "lab" else 409), sent.text  # a presigned S3 URL cannot be revoked


async def test_a_completion_that_can_be_retried_releases_its_claim(api: Api, contributor: str) -> None:
    data = payload(2000, seed=6)
    session = await start(api, contributor, data, "local")
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert "nothing has been uploaded" in error["message"]  # too early: fixable by the client
    await put(session["url"], data, session["headers"])
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"  # not blocked by a stale claim


async def test_a_claim_left_by_a_dead_request_is_taken_over(api: Api, contributor: str) -> None:
    from documents.upload import UploadClaim

    data = payload(1500, seed=7)
    session = await start(api, contributor, data, "local")
    await put(session["url"], data, session["headers"])
    stale = utcnow() - timedelta(minutes=10)
    await UploadClaim.get_pymongo_collection().insert_one({"_id": object_id(session["id"]), "claimed_at": stale})
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
    [claim] = await UploadClaim.get_pymongo_collection().find({}).to_list()
    assert claim["claimed_at"] > stale  # taken over, then kept for the reconciler like any completed upload's


async def test_a_long_completion_keeps_its_claim_fresh(api: Api, contributor: str, state: AppState,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from documents.upload import UploadClaim
    from services.uploads import claims

    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 0.05)
    store = state.stores["local"]
    stat = store.stat
    # The store answers once the test has seen the claim renewed, not after a guessed time: a sleep
    # in the store gave the test a window of a few renewals on a loop it shares with the server.
    answering = asyncio.Event()

    async def slow_stat(key: str):  # reading a huge object back takes a while
        await answering.wait()  # the slow store is what is tested; the claim must be renewed meanwhile
        return await stat(key)

    monkeypatch.setattr(store, "stat", slow_stat)
    data = payload(1000, seed=8)
    session = await start(api, contributor, data, "local")
    await put(session["url"], data, session["headers"])
    completing = asyncio.create_task(complete(api, contributor, session["id"]))
    seen: list = []

    async def claimed_anew() -> bool:  # the claim is there, and newer than when last seen
        claim = await UploadClaim.get_pymongo_collection().find_one({"_id": object_id(session["id"])})
        if claim is None or (seen and claim["claimed_at"] <= seen[-1]):
            return False
        seen.append(claim["claimed_at"])
        return True

    try:
        for _ in range(3):
            await wait_for(claimed_anew, interval=0.01, what=f"the claim to be renewed (seen so far: {seen})")
        assert not completing.done()  # renewed while it works
    finally:
        answering.set()  # also when the renewals never came: the request then ends rather than hangs
    assert seen[0] < seen[1] < seen[2]
    assert (await completing)["status"] == "ACTIVE"


async def test_a_completed_uploads_claim_is_left_to_the_reconciler(api: Api, contributor: str, state: AppState) -> None:
    from documents.upload import UploadClaim
    from services.uploads.claims import CLAIM_SECONDS

    data = payload(1200, seed=9)
    session = await start(api, contributor, data, "local")
    await put(session["url"], data, session["headers"])
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
    claims = UploadClaim.get_pymongo_collection()
    assert await claims.count_documents({}) == 1  # not deleted by the request: one round trip fewer
    again = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert again["extensions"]["code"] == "CONFLICT" and "completed" in again["message"]  # said plainly, not "in progress"
    await reconcile(state.stores, state.feed)
    assert await claims.count_documents({}) == 1  # still fresh
    await claims.update_many({}, {"$set": {"claimed_at": utcnow() - timedelta(seconds=CLAIM_SECONDS + 1)}})
    await reconcile(state.stores, state.feed)
    assert await claims.count_documents({}) == 0


async def test_register_external_tells_a_wrong_bucket_from_an_unreachable_store(api: Api, contributor: str,
                                                                                 state: AppState) -> None:
    error = await api.error("RegisterExternal", {"input": {"mount": "lab", "bucket": "no-such-bucket", "prefix": "x/"}},
                            token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == "bucket"
    assert "NoSuchBucket" in error["message"]
    async with hung_endpoint() as endpoint:
        stuck = S3Store("stuck", bucket="b", endpoint_url=endpoint, access_key_id="x", secret_access_key="y", timeout=0.5)
        await stuck.open()
        state.stores[stuck.name] = stuck
        try:
            async with asyncio.timeout(30):
                error = await api.error("RegisterExternal", {"input": {"mount": "stuck", "bucket": "b", "prefix": "x/"}},
                                        token=contributor, status=503)
            assert error["extensions"]["code"] == "UNAVAILABLE" and error["extensions"]["field"] == "mount"
            assert "stuck" in error["message"]
        finally:
            del state.stores[stuck.name]
            await stuck.close()


@pytest.mark.parametrize("mount", MOUNTS)
async def test_an_asset_deleted_while_it_uploads_stays_deleted(api: Api, contributor: str, state: AppState,
                                                               mount: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Completing, aborting or expiring the upload of an asset deleted meanwhile never brings it back.
    (A delete closes the upload itself; here it died before it did, or a completion held it.)"""
    deletes_leave_uploads_open(monkeypatch)
    data = payload(50_000, seed=7)
    completed, aborted, expired = [await start(api, contributor, data, mount) for _ in range(3)]
    for session in (completed, aborted, expired):
        await api.data("DeleteAsset", {"id": session["asset"]["id"]}, token=contributor)
        assert (await put(session["url"], data, session["headers"])).status_code == 200

    error = await api.error("CompleteUpload", {"input": {"id": completed["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and completed["asset"]["id"] in error["message"], error
    assert await state.stores[mount].stat(completed["asset"]["storage"]["key"]) is None  # removed as it is refused
    await api.data("AbortUpload", {"id": aborted["id"]}, token=contributor)
    await UploadSession.get_pymongo_collection().update_one(
        {"_id": object_id(expired["id"])}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    assert await reconcile(state.stores, state.feed) == 1
    for session, status in ((completed, "ABORTED"), (aborted, "ABORTED"), (expired, "EXPIRED")):
        fetched = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
        assert (fetched["status"], fetched["asset"]["status"]) == (status, "DELETED"), session
    long_ago = utcnow() - timedelta(hours=1)  # every URL of theirs dead: the sweep takes their keys
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": long_ago, "finished_at": long_ago}})
    await sweep_closed(state.stores)
    for session in (completed, aborted, expired):  # no object left behind
        assert await state.stores[mount].stat(session["asset"]["storage"]["key"]) is None


async def test_a_request_is_handed_at_most_10000_part_urls(api: Api, contributor: str, state: AppState) -> None:
    """createUploads refuses a batch whose parts come to more than 10,000 on the `sizeBytes` of the
    first input that does not fit, and starts nothing (no session, no asset, no multipart upload on
    the store); within them every part gets its URL. The limit is the request's, whichever fields
    sign: of two aliases reading one upload of 5 TiB (nearly 10,000 parts), one gets its URLs and
    the other's `parts` is refused on its `id`. A read that does not ask for URLs signs none."""
    gib = 1024**3
    small, big = {"name": "small.bin", "sizeBytes": 1, "mount": "local"}, {"name": "big.bin", "sizeBytes": 40 * gib, "mount": "local"}
    multipart = state.stores["local"].root / ".multipart"
    started_before = len(list(multipart.iterdir())) if multipart.exists() else 0
    error = await api.error("CreateUploads", {"inputs": [small, big, big]}, token=contributor)  # one PUT, 5,120 parts twice
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[2].sizeBytes"}, error
    assert "at most 10000 part URLs" in error["message"] and "needs 5120 (10240 with those before it" in error["message"]
    assert await UploadSession.count() == 0 and await Asset.count() == 0
    assert (len(list(multipart.iterdir())) if multipart.exists() else 0) == started_before

    fits = (await api.data("CreateUploads", {"inputs": [small, big, {**big, "sizeBytes": 30 * gib}]},
                           token=contributor))["createUploads"]
    assert fits[0]["parts"] is None and fits[0]["url"]
    assert [len(s["parts"]) for s in fits[1:]] == [5120, 3840]
    assert [p["partNumber"] for p in fits[2]["parts"]] == list(range(1, 3841)) and all(p["url"] for p in fits[2]["parts"])

    largest = await start(api, contributor, b"", "local", sizeBytes=5 * 1024**4)
    parts = -(-5 * 1024**4 // largest["partSizeBytes"])
    assert len(largest["parts"]) == parts > 5000
    twice = ("query Twice($id: ID!) { a: uploadSession(id: $id) { parts { partNumber } } "
             "b: uploadSession(id: $id) { parts { partNumber } } }")
    body = await api.run("Twice", {"id": largest["id"]}, token=contributor, query=twice)
    [refused] = body["errors"]
    assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}, refused
    answered = [alias for alias in ("a", "b") if body["data"][alias]["parts"] is not None]
    assert len(answered) == 1 and len(body["data"][answered[0]]["parts"]) == parts
    assert refused["path"] == [*(alias for alias in ("a", "b") if alias not in answered), "parts"]
    # Through nodes(ids:), the entry past the limit fails alone (its `parts`); the others are still answered.
    both = ("query Both($ids: [ID!]!) { nodes(ids: $ids) { id ... on UploadSession { status parts { partNumber } } } }")
    body = await api.run("Both", {"ids": [fits[0]["asset"]["id"], fits[1]["id"], largest["id"]]}, token=contributor,
                         query=both)  # signed in the order read: 5,120 part URLs, then the 5 TiB upload's past the limit
    [refused] = body["errors"]
    assert refused["extensions"]["code"] == "BAD_USER_INPUT" and refused["path"] == ["nodes", 2, "parts"], refused
    asset, signed, past = body["data"]["nodes"]
    assert asset["id"] == fits[0]["asset"]["id"] and len(signed["parts"]) == 5120
    assert past == {"id": largest["id"], "status": "OPEN", "parts": None}
    # URLs are signed only when asked for: a read of the sessions' status takes none, however large they are.
    status = ("query Status($ids: [ID!]!) { nodes(ids: $ids) { ... on UploadSession { status partSizeBytes } } "
              "again: uploadSession(id: $one) { status } }").replace("$ids: [ID!]!)", "$ids: [ID!]!, $one: ID!)")
    body = await api.run("Status", {"ids": [fits[1]["id"], fits[2]["id"], largest["id"]], "one": largest["id"]},
                         token=contributor, query=status)
    assert not body.get("errors") and [n["status"] for n in body["data"]["nodes"]] == ["OPEN"] * 3, body


async def test_a_page_of_multipart_sessions_lists_their_parts_only_when_asked_a_few_at_a_time(
        api: Api, contributor: str, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each multipart session's `parts` asks the store which it holds (a call to S3 each): a page of
    sessions read for anything else asks nothing, and one read for its parts asks a few at a time
    (SIGN_AT_ONCE), not one after another."""
    count = SIGN_AT_ONCE + 4
    with multipart_from_one_mib(settings):
        made = (await api.data("CreateUploads", {"inputs": [
            {"name": f"page-{k}.bin", "sizeBytes": 9 * MIB, "mount": "lab"} for k in range(count)]},
            token=contributor))["createUploads"]
    assert all(len(s["parts"]) == 2 for s in made)
    store = state.stores["lab"]
    listed = store.list_parts
    calls, running, most = [], 0, 0

    async def counted(key: str, upload_id: str) -> object:
        nonlocal running, most
        calls.append(key)
        running += 1
        most = max(most, running)
        try:
            return await listed(key, upload_id)
        finally:
            running -= 1

    monkeypatch.setattr(store, "list_parts", counted)
    ids = {"ids": [s["id"] for s in made]}
    page = ("query Page($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on UploadSession {{ status url headers partSizeBytes "
            "expiresAt directPath asset {{ id status }} {} }} }} }}")
    body = await api.run("Page", ids, token=contributor, query=page.format(""))
    assert not body.get("errors") and [n["status"] for n in body["data"]["nodes"]] == ["OPEN"] * count, body
    assert calls == []
    body = await api.run("Page", ids, token=contributor, query=page.format("parts { partNumber uploaded }"))
    assert not body.get("errors") and all(len(n["parts"]) == 2 for n in body["data"]["nodes"]), body
    assert len(calls) == count and 1 < most <= SIGN_AT_ONCE, (len(calls), most)
    for session in made:
        await api.data("AbortUpload", {"id": session["id"]}, token=contributor)

async def _parts_left(state: AppState, mount: str, session: dict) -> bool:
    """Whether the store still holds parts of this multipart upload (local: its folder under
    .multipart; S3: an incomplete multipart upload of its key, which S3 bills for)."""
    stored = await UploadSession.get_pymongo_collection().find_one({"_id": object_id(session["id"])})
    store = state.stores[mount]
    if isinstance(store, S3Store):
        listed = await store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.object_key(stored["key"]))
        return any(u["UploadId"] == stored["multipart_id"] for u in listed.get("Uploads", []))
    return store.upload_dir(stored["multipart_id"]).exists()


@pytest.mark.parametrize("mount", MOUNTS)
async def test_deleting_a_pending_upload_aborts_it_and_removes_its_parts(api: Api, contributor: str, state: AppState,
                                                                        settings: Settings, mount: str) -> None:
    """deleteAsset on a PENDING file left its upload OPEN and the parts already sent in the store
    until the session expired (up to a day; on S3 an incomplete multipart upload, billed), and
    its client could go on sending parts. Now the delete aborts the upload and removes its parts at
    once, as a privacy erase does; a completion after it is refused, naming the asset, and stores nothing."""
    with multipart_from_one_mib(settings):
        data = payload(8 * MIB + 1000, seed=31)
        session = await start(api, contributor, data, mount)
    size = session["partSizeBytes"]
    assert (await put(session["parts"][0]["url"], data[:size])).status_code == 200
    assert await _parts_left(state, mount, session)

    await api.data("DeleteAsset", {"id": session["asset"]["id"]}, token=contributor)
    fetched = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
    assert (fetched["status"], fetched["asset"]["status"]) == ("ABORTED", "DELETED")
    assert not await _parts_left(state, mount, session)
    assert (await put(session["parts"][1]["url"], data[size:])).status_code != 200  # its URLs write nothing
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and session["asset"]["id"] in error["message"], error
    assert not await _parts_left(state, mount, session)
    assert await state.stores[mount].stat(session["asset"]["storage"]["key"]) is None


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_put_sent_after_its_pending_asset_was_deleted_leaves_nothing(api: Api, contributor: str,
                                                                             state: AppState, mount: str) -> None:
    """A single-PUT upload deleted before its PUT: the local mount refuses the PUT (its upload is
    aborted); a presigned S3 URL cannot be revoked and stores it, and the completion that follows
    is refused, naming the asset, and removes it (the reconciler's sweep would, once the URL is dead)."""
    data = payload(30_000, seed=32)
    session = await start(api, contributor, data, mount)
    await api.data("DeleteAsset", {"id": session["asset"]["id"]}, token=contributor)
    sent = await put(session["url"], data, session["headers"])
    assert sent.status_code == (200 if mount == "lab" else 409), sent.text
    key = session["asset"]["storage"]["key"]
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and session["asset"]["id"] in error["message"], error
    assert await state.stores[mount].stat(key) is None
    closed = await UploadSession.get_pymongo_collection().find_one({"_id": object_id(session["id"])})
    assert (closed["status"], closed["sweep_due"]) == ("ABORTED", True)  # and swept once its URL is dead


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_completion_of_an_upload_its_delete_left_open_joins_nothing(
        api: Api, contributor: str, state: AppState, settings: Settings, mount: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A delete that left its asset's multipart upload open (cut short before it closed it, or a
    completion held it then and failed): a completion then joined the parts into an object that
    no one could want, and left it to the sweep a day later. Now it aborts the upload unjoined,
    removes its parts, and answers CONFLICT naming the asset."""
    deletes_leave_uploads_open(monkeypatch)
    with multipart_from_one_mib(settings):
        data = payload(8 * MIB + 1000, seed=33)
        session = await start(api, contributor, data, mount)
    size = session["partSizeBytes"]
    await api.data("DeleteAsset", {"id": session["asset"]["id"]}, token=contributor)
    for number, chunk in ((1, data[:size]), (2, data[size:])):  # the session is open: its parts are taken
        assert (await put(session["parts"][number - 1]["url"], chunk)).status_code == 200
    error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT", error
    assert await state.stores[mount].stat(session["asset"]["storage"]["key"]) is None  # not joined, or removed
    assert not await _parts_left(state, mount, session)
    assert session["asset"]["id"] in error["message"], error
    fetched = (await api.data("UploadSession", {"id": session["id"]}, token=contributor))["uploadSession"]
    assert (fetched["status"], fetched["asset"]["status"]) == ("ABORTED", "DELETED")


def clock_stuck_at(monkeypatch: pytest.MonkeyPatch, at: datetime, *modules: object) -> None:
    """Every `utcnow()` these modules (and documents/clock.py's own helpers) take answers `at`: a
    write made in the very millisecond of `at`, however fast or slow the machine."""
    for module in (clock, *modules):
        monkeypatch.setattr(module, "utcnow", lambda: at)


async def test_an_asset_settled_in_the_millisecond_a_writer_read_it_moves_updated_at_on(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PENDING asset settled (its upload completed, or failed by the reconciler) in the millisecond
    a client read its updatedAt kept that value: the client's updateAsset with expectedUpdatedAt then
    passed over the change. Settling moves updatedAt on by at least a millisecond, as updateAsset does."""
    data = payload(600, seed=60)
    session = await start(api, contributor, data, "local")
    await put(session["url"], data, session["headers"])
    asset_id = object_id(session["asset"]["id"])
    read_at = (await Asset.get(asset_id)).updated_at  # type: ignore[union-attr]
    clock_stuck_at(monkeypatch, read_at, finishing)
    await complete(api, contributor, session["id"])
    monkeypatch.undo()
    error = await api.error("UpdateAsset", {"input": {"id": session["asset"]["id"], "name": "mine",
                                                      "expectedUpdatedAt": read_at.isoformat()}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error

    # A PENDING asset whose session a crash lost: the reconciler fails it.
    stranded = await start(api, contributor, payload(300, seed=61), "local")
    asset_id = object_id(stranded["asset"]["id"])
    await UploadSession.get_pymongo_collection().delete_one({"_id": object_id(stranded["id"])})
    await Asset.get_pymongo_collection().update_one({"_id": asset_id}, {"$set": {"created_at": utcnow() - timedelta(minutes=10)}})
    read_at = (await Asset.get(asset_id)).updated_at  # type: ignore[union-attr]
    clock_stuck_at(monkeypatch, read_at, reconciler, finishing)
    assert await reconciler.settle_stranded(state.feed) == 1
    monkeypatch.undo()
    assert (await Asset.get(asset_id)).status is AssetStatus.FAILED  # type: ignore[union-attr]
    error = await api.error("UpdateAsset", {"input": {"id": stranded["asset"]["id"], "name": "mine",
                                                      "expectedUpdatedAt": read_at.isoformat()}}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedUpdatedAt"}, error


def _noted_on_the_loop(on_the_loop: list[str], name: str, call):  # type: ignore[no-untyped-def]
    """`call`, noting `name` in `on_the_loop` each time it is called on the event loop (not in a worker thread)."""
    def calling(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            asyncio.get_running_loop()
            on_the_loop.append(name)
        except RuntimeError:  # a worker thread runs no loop
            pass
        return call(*args, **kwargs)
    return calling


async def test_a_put_to_a_local_mount_touches_its_files_off_the_event_loop(api: Api, contributor: str, state: AppState,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A signed PUT staged its file, looked at the key's place, linked the file there and closed it on
    the event loop: on a network file system whose server is away (a hard NFS mount) each waits until
    it is back, and every request of the process waited with it. Each is made in a worker thread."""
    store = state.stores["local"]
    on_the_loop: list[str] = []
    watched = functools.partial(_noted_on_the_loop, on_the_loop)

    data = payload(3_000, seed=51)
    session = await start(api, contributor, data, "local")
    for name in ("path", "stage", "record_sha256"):
        monkeypatch.setattr(store, name, watched(name, getattr(store, name)))
    for name in ("taken", "store", "close"):
        monkeypatch.setattr(StagedFile, name, watched(name, getattr(StagedFile, name)))
    assert (await put(session["url"], data, session["headers"])).status_code == 200  # the PUT alone is watched
    monkeypatch.undo()
    assert on_the_loop == []
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"


async def test_an_upload_to_a_local_mount_touches_its_files_off_the_event_loop(
        api: Api, contributor: str, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """createUpload looked at the key's folders (and made an upload's file, or a direct write's folder)
    on the event loop, and completion stat-ed and renamed there: on a network file system whose server
    is away (a hard NFS mount) each waits until it is back, and every request of the process waited
    with it, /healthz too. Each is made in a worker thread, on every way of an upload: one PUT, parts,
    a direct write."""
    store = state.stores["local"]
    on_the_loop: list[str] = []
    watched = functools.partial(_noted_on_the_loop, on_the_loop)

    # Every file-system call of the store goes through one of these (a key's path checked, a folder opened).
    for name in ("path", "_entry", "_open_directory"):
        monkeypatch.setattr(store, name, watched(name, getattr(store, name)))
    single = payload(3_000, seed=52)
    session = await start(api, contributor, single, "local")
    assert (await put(session["url"], single, session["headers"])).status_code == 200
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"

    in_parts = payload(9 * MIB, seed=53)
    with multipart_from_one_mib(settings):
        session = await start(api, contributor, in_parts, "local")
    size = session["partSizeBytes"]
    for part in session["parts"]:
        at = (part["partNumber"] - 1) * size
        assert (await put(part["url"], in_parts[at:at + size])).status_code == 200
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"

    direct = payload(2_000, seed=54)
    session = await start(api, contributor, direct, "local", direct=True)
    Path(session["directPath"]).write_bytes(direct)
    assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
    monkeypatch.undo()
    assert on_the_loop == []
