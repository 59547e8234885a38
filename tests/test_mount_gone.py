"""A local mount's file system gone while the server runs (unmounted, its folder replaced), or not
mounted as the server starts: nothing is written into whatever folder is at its path then, /readyz
names it, and it is used again once it is back, with no restart."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from graphlake.settings import Settings
from graphlake_client.direct import MARKER
from resolvers.context import AppState
from services.health import probe
from services.mount_owners import noted_roots, settle_owners
from services.uploads import mounts
from storage import LocalStore, StoreUnavailable
from storage.ownership import OWNER_FILE
from storage.signing import UrlSigner
from tests.operations import Api
from tests.test_direct_writes import start_direct
from tests.test_uploads import MIB, multipart_from_one_mib, put

PLAIN = "application/octet-stream"


def checked_a_moment_ago(store: LocalStore) -> None:
    """What uploads remember of the mount's last check says it was fine (services/uploads/mounts.py keeps
    it a few seconds): the file system goes away between that check and the writes."""
    mounts._checked[store] = (time.monotonic() + 60, None)


async def test_a_mount_gone_while_the_server_runs_takes_no_write_until_it_is_back(
        api: Api, contributor: str, state: AppState, http: httpx.AsyncClient, settings: Settings,
        tmp_path: Path) -> None:
    """The store kept going by the path: from the moment the file system went to the next maintenance
    round, a signed PUT wrote its bytes into the empty folder below, an ingest copied files there, a
    direct write's completion found no file, and the marker's id stayed shown after that round. And
    createUpload, the mount's check remembered from a moment before, stored a session and handed out
    a URL that every PUT then refused."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore) and store.direct_writes
    await settle_owners(state.db, state.stores)  # as every round does: the folder its owner file is in, noted
    mount_id = store.mount_id
    assert mount_id
    data = b"written while the disk was away"
    sent = {"name": "a.bin", "sizeBytes": len(data), "mediaType": PLAIN, "mount": "local",
            "sha256": hashlib.sha256(data).hexdigest()}
    kept = (await api.data("CreateUpload", {"input": sent}, token=contributor))["createUpload"]
    assert (await put(kept["url"], data, kept["headers"])).status_code == 200
    download = (await api.data("CompleteUpload", {"input": {"id": kept["id"]}}, token=contributor)
                )["completeUpload"]["downloadUrl"]
    upload = (await api.data("CreateUpload", {"input": sent}, token=contributor))["createUpload"]
    direct = await start_direct(api, contributor, data)
    Path(direct["directPath"]).write_bytes(data)  # written while the file system was there
    ingest_root = tmp_path / "instrument"
    ingest_root.mkdir()
    (ingest_root / "frame.raw").write_bytes(data)
    ingest = {"inputs": [{"source": str(ingest_root / "frame.raw"), "sizeBytes": len(data)}]}
    settings.ingest_roots = [ingest_root]

    root, away = store.root, store.root.with_name(store.root.name + "-unmounted")
    root.rename(away)
    root.mkdir()  # the empty place the file system goes on
    try:
        checked_a_moment_ago(store)
        state.health.forget()
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failing"] == ["mount local"]

        async with httpx.AsyncClient() as client:  # a stored file is not said to be missing: the mount is away
            away_now = await client.get(download)
        assert away_now.status_code == 503 and "local mount 'local'" in away_now.text, away_now.text
        response = await put(upload["url"], data, upload["headers"])
        assert response.status_code == 503 and "local mount 'local'" in response.text, response.text
        sessions = await state.db.upload_sessions.count_documents({})
        for operation, variables in (("CreateUpload", {"input": sent}), ("CreateUpload", {"input": {**sent, "direct": True}}),
                                     ("CompleteUpload", {"input": {"id": direct["id"]}}), ("IngestFiles", ingest)):
            checked_a_moment_ago(store)
            refused = await api.error(operation, variables, token=contributor, status=503)
            assert refused["extensions"]["code"] == "UNAVAILABLE" and "local mount 'local'" in refused["message"], refused
            assert "is not the one this lake's owner file was read in" in refused["message"], refused
        with multipart_from_one_mib(settings):
            checked_a_moment_ago(store)
            refused = await api.error("CreateUpload", {"input": {**sent, "sizeBytes": 2 * MIB, "sha256": None}},
                                      token=contributor, status=503)
        assert (refused["extensions"]["code"], refused["extensions"]["field"]) == ("UNAVAILABLE", "mount"), refused
        assert await state.db.upload_sessions.count_documents({}) == sessions  # no session the client never heard of
        with pytest.raises(StoreUnavailable, match="local mount 'local'"):  # what a thumbnail is written into
            store.stage("thumbnails/x/256.webp")
        assert list(root.iterdir()) == []  # nothing written on the disk below
        said = (await probe(None, {"local": store})).mount_errors["local"] or ""
        assert said.startswith(f"local mount 'local' at {root}: the folder there is not the one") and "not mounted" in said

        await settle_owners(state.db, state.stores)  # a maintenance round meanwhile
        assert store.mount_id is None  # no client told to write directly into a folder the server cannot see
        assert list(root.iterdir()) == []
    finally:
        shutil.rmtree(root)
        away.rename(root)  # mounted again
        settings.ingest_roots = []
        await settle_owners(state.db, state.stores)  # the session's store as it was, whatever failed above

    # Back: the very folder noted takes writes again at once; the next round shows its marker again.
    await settle_owners(state.db, state.stores)
    assert store.mount_id == mount_id
    state.health.forget()
    assert (await http.get("/readyz")).status_code == 200
    assert (await put(upload["url"], data, upload["headers"])).status_code == 200
    completed = (await api.data("CompleteUpload", {"input": {"id": direct["id"]}}, token=contributor))["completeUpload"]
    assert completed["status"] == "ACTIVE"
    async with httpx.AsyncClient() as client:
        assert (await client.get(download)).content == data


async def test_a_file_system_mounted_anew_is_used_once_its_owner_file_is_read_there(
        api: Api, contributor: str, state: AppState, http: httpx.AsyncClient) -> None:
    """Mounted anew, a file system's root is another directory to the kernel, holding the same owner
    file: refused until the next round reads that file there, then used with no restart."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    await settle_owners(state.db, state.stores)
    root, away = store.root, store.root.with_name(store.root.name + "-old")
    root.rename(away)
    root.mkdir()  # another directory, holding the same owner file and marker (what else earlier tests left is
    for name in (OWNER_FILE, MARKER):  # no matter here, and may hold what no copy takes: a FIFO)
        if (away / name).exists():
            shutil.copy2(away / name, root / name)
    try:
        state.health.forget()
        assert (await http.get("/readyz")).status_code == 503
        with pytest.raises(StoreUnavailable, match="is not the one this lake's owner file was read in"):
            store.stage("thumbnails/x/256.webp")
        await settle_owners(state.db, state.stores)  # reads this lake's owner file in the new folder
        state.health.forget()
        assert (await http.get("/readyz")).status_code == 200
        store.stage("thumbnails/x/256.webp").close()
    finally:
        shutil.rmtree(root)
        away.rename(root)  # the session's own folder back, with all the other tests' files
        await settle_owners(state.db, state.stores)
        state.health.forget()


async def test_a_new_lakes_mount_folder_is_made_as_it_opens(scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    root = tmp_path / "new" / "mount"
    store = LocalStore("new", root, UrlSigner(b"k" * 32, "http://x"))
    await noted_roots(scratch_db, {"new": store})
    await store.open()
    assert root.is_dir()
    await settle_owners(scratch_db, {"new": store})  # claimed, and its folder noted
    assert (root / OWNER_FILE).is_file()


async def test_a_mount_folder_the_lake_used_before_is_not_made_again_as_it_opens(
        scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    """An operator's disk not mounted yet as the server starts: opening its store made an empty folder
    in its place on the disk below (the disk then mounted over it, or the lake writing there)."""
    root, away = tmp_path / "nas", tmp_path / "nas-unmounted"
    first = LocalStore("nas", root, UrlSigner(b"k" * 32, "http://x"), direct_writes=True)
    await noted_roots(scratch_db, {"nas": first})
    await first.open()
    await settle_owners(scratch_db, {"nas": first})  # claimed: the lake notes its folder
    root.rename(away)  # not mounted, and nothing in its place
    try:
        restarted = LocalStore("nas", root, UrlSigner(b"k" * 32, "http://x"), direct_writes=True)
        await noted_roots(scratch_db, {"nas": restarted})
        await restarted.open()
        assert not root.exists()  # left missing
        assert await settle_owners(scratch_db, {"nas": restarted}) == {"nas": None}
        assert not root.exists() and restarted.mount_id is None
        # No empty folder to adopt: the advice says to make the new one first.
        assert restarted.ownership.unknown_because == (
            f"local mount 'nas' at {root}: the folder is missing: is its file system not mounted? This lake writes "
            "and deletes nothing there until it is back; if the mount has a new place, make that folder and run "
            "`graphlake mounts adopt nas`")
        said = (await probe(None, {"nas": restarted})).mount_errors["nas"] or ""
        assert said == f"local mount 'nas' at {root}: the folder is missing: is its file system not mounted?", said
        with pytest.raises(StoreUnavailable):
            restarted.stage("assets/x")
        assert not root.exists()
    finally:
        away.rename(root)  # mounted
    await settle_owners(scratch_db, {"nas": restarted})  # the next round: no restart needed
    assert (await probe(None, {"nas": restarted})).mount_errors["nas"] is None
    assert restarted.mount_id == (root / MARKER).read_text()
