"""Each mount names the lake that owns it, and a lake that does not own a mount changes nothing there.

A restored copy of a lake given the same mounts (README, Backups and restores) used to delete the
original's files: its reconciler expired an upload the original had completed after the backup,
and its stray sweep set aside everything the original wrote since.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from documents.clock import utcnow
from graphlake.runtime import open_state
from graphlake.settings import Settings
from migrations import STATE_COLLECTION
from resolvers.context import AppState
from services.backups.reader import restore_backup
from services.backups.writer import write_backup
from services.errors import Conflict
from services.mount_owners import LAKE_ID, adopt, lake_id, read_owner, settle_owners
from services.uploads.reconciler import sweep_stray_copies
from storage import LocalStore, ObjectStore, StoreUnavailable
from storage.ownership import OWNER_FILE
from storage.protocol import STRAY_DIR
from storage.signing import UrlSigner
from tests.conftest import CommandCounter, S3Service, Served, mount_at
from tests.operations import Api
from tests.processes import start_server_process
from tests.test_uploads import complete, payload, put, start
from tests.waiting import wait_for


def _mounts_json(settings: Settings, s3: S3Service, local_root: Path, prefix: str = "") -> str:
    """GRAPHLAKE_MOUNTS for a server given the same mounts as the served lake (its local root, its bucket)."""
    return json.dumps({"local": {"backend": "local", "path": str(local_root)},
                       "lab": {"backend": "s3", "bucket": s3.bucket, "prefix": prefix, "endpoint_url": s3.endpoint,
                               "access_key_id": s3.access_key, "secret_access_key": s3.secret_key}})


async def test_a_restored_copy_given_the_same_mounts_deletes_nothing_of_the_original(
        api: Api, contributor: str, admin: str, state: AppState, settings: Settings, served: Served, s3: S3Service,
        scratch_db: AsyncDatabase, mongodb_url: str, tmp_path: Path) -> None:
    """The auditor's reproduction, on a local mount and an S3 one: an upload under way when the
    backup is taken, completed by the original after it; the copy, restored into another database
    and started on the same mounts, finds the session expired. Its reconciler expires it and leaves
    the original's object alone; the copy says the mounts are another lake's, and takes no upload there."""
    files = {mount: payload(50_000 + n, seed=n) for n, mount in enumerate(("local", "lab"))}
    sessions = {mount: await start(api, contributor, data, mount) for mount, data in files.items()}
    await write_backup(state.db, tmp_path / "backup", graphlake_version="test")  # the sessions OPEN in it
    for mount, session in sessions.items():
        assert (await put(session["url"], files[mount], session["headers"])).status_code == 200
        assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
    keys = {mount: session["asset"]["storage"]["key"] for mount, session in sessions.items()}

    await restore_backup(scratch_db, tmp_path / "backup", local_roots={})
    await scratch_db.upload_sessions.update_many({}, {"$set": {"expires_at": utcnow() - timedelta(hours=1)}})
    local_root = state.stores["local"].root  # type: ignore[attr-defined]
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    process, url = await start_server_process(mongodb_url, scratch_db.name, copy_dir,
                                              MOUNTS=_mounts_json(settings, s3, local_root))
    try:
        # Its maintenance runs a round as it starts: the sessions expire in the copy's records.
        async def expired() -> bool:
            found = await scratch_db.upload_sessions.find({}, {"status": 1}).to_list()
            return len(found) == 2 and all(s["status"] == "EXPIRED" for s in found)
        await wait_for(expired, timeout=60, what="the copy's reconciler to expire the sessions it restored")
        for mount, key in keys.items():
            assert await state.stores[mount].stat(key) is not None, f"the copy deleted the original's object on {mount}"
        async with httpx.AsyncClient(base_url=url) as http:
            ready = (await http.get("/readyz")).json()
            assert ready["ok"] and sorted(ready["notOwned"]) == ["lab", "local"]
            copy_api = Api(http)
            mounts = {m["name"]: m for m in (await copy_api.data("Mounts", token=admin))["mounts"]}
            ours = await lake_id(state.db)
            assert {name: (m["owned"], m["ownerLake"]) for name, m in mounts.items()} == {
                "local": (False, ours), "lab": (False, ours)}
            refused = await copy_api.error("CreateUpload", {"input": {
                "name": "x.bin", "sizeBytes": 3, "mediaType": "application/octet-stream", "mount": "lab"}}, token=admin)
            assert refused["extensions"]["code"] == "CONFLICT" and refused["extensions"]["field"] == "mount"
            assert "belongs to another lake" in refused["message"] and "graphlake mounts adopt lab" in refused["message"]
    finally:
        process.terminate()
        await process.wait()
    log = (copy_dir / "server.log").read_text()
    assert "mount 'lab' belongs to lake" in log and "graphlake mounts adopt lab" in log
    # The original still owns both, and serves the files.
    assert (await settle_owners(state.db, state.stores)) == {"local": ours, "lab": ours}


async def _stores(s3: S3Service, root: Path, prefix: str) -> dict[str, ObjectStore]:
    """A local and an S3 store of their own (a fresh root, a fresh prefix), open."""
    stores: dict[str, ObjectStore] = {
        "local": LocalStore("local", root, UrlSigner(b"k" * 32, "http://127.0.0.1:1")),
        "lab": mount_at(s3, "lab", prefix)}
    for store in stores.values():
        await store.open()
    return stores


async def _call(store: ObjectStore, method: str, *args: object) -> object:
    """A sweep's call of either backend (a LocalStore's answer at once, an S3Store's awaited)."""
    answer = getattr(store, method)(*args)
    return await answer if asyncio.iscoroutine(answer) else answer


async def _listed_old(store: ObjectStore, key: str) -> bool:
    """Whether the stray sweep (after=0) sees `key` as written before now: S3 times are whole seconds.
    Listed as the sweep lists, a page at a time (a LocalStore's pages blocking, an S3Store's awaited)."""
    pages = store.files_older_than("assets", 0)
    if isinstance(pages, AsyncIterator):
        return any([key in page async for page in pages])
    return any(key in page for page in pages)


async def test_a_fresh_lake_claims_unowned_mounts_and_a_copy_sweeps_nothing_until_it_adopts_them(
        state: AppState, s3: S3Service, scratch_db: AsyncDatabase, tmp_path: Path, mongodb_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Mounts nobody owns are claimed by the first lake that opens them (its id in OWNER_FILE). A second
    lake on them (another database: a restored copy) sets aside and deletes nothing there, logs why, and
    counts it; `graphlake mounts adopt` makes it the owner, and then it cleans the mount as its own."""
    prefix = f"owners-{ObjectId()}"
    original, copy = await _stores(s3, tmp_path / "root", prefix), await _stores(s3, tmp_path / "root", prefix)
    try:
        ours, theirs = await lake_id(state.db), await lake_id(scratch_db)
        assert ours != theirs
        assert await settle_owners(state.db, original) == {"local": ours, "lab": ours}  # claimed: they had none
        assert json.loads((tmp_path / "root" / OWNER_FILE).read_text())["lake"] == ours
        assert await settle_owners(scratch_db, copy) == {"local": ours, "lab": ours}  # not taken by the second
        assert not any(store.ownership.owned for store in copy.values())

        # A file the copy's records do not name (the original wrote it after the backup), old enough to look stray.
        stray = f"assets/{ObjectId.from_datetime(utcnow() - timedelta(days=3))}"
        (tmp_path / "file").write_bytes(b"the original's")
        refused: list[str] = []
        for store in copy.values():
            await original[store.name].write(stray, tmp_path / "file")
            store.ownership.on_refused = refused.append
        os.utime(tmp_path / "root" / stray, (0, 0))
        await wait_for(lambda: _listed_old(copy["lab"], stray), what="the object to be older than now")

        with caplog.at_level(logging.INFO, logger="graphlake"):
            assert await sweep_stray_copies(copy, after=timedelta(0)) == 0
            for store in copy.values():  # what the reconciler, the sweeps and the collector call
                await store.delete(stray)
                await store.abort_multipart(stray, "0" * 32)
                assert await _call(store, "remove_set_aside", 0) == 0
        for store in original.values():
            assert await store.stat(stray) is not None, store.name
        assert "belongs to lake" in caplog.text and "not swept for stray files" in caplog.text
        assert refused and set(refused) >= {"delete", "abort_multipart_upload", "delete_set_aside"}
        with pytest.raises(Exception, match="belongs to another lake"):
            await copy["lab"].write(f"assets/{ObjectId()}", tmp_path / "file")

        # Taken over from the command line (the original lost for good): the copy sweeps it as its own.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
        env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name,
                   GRAPHLAKE_DATA_DIR=str(tmp_path / "copy-data"),
                   GRAPHLAKE_MOUNTS=json.dumps({"local": {"backend": "local", "path": str(tmp_path / "root")}}))
        (tmp_path / "copy-data").mkdir()

        async def graphlake(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", *args], env=env,
                                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
        listed = await graphlake("mounts", "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[1:] == [f"local\tlocal\t{ours}\tanother lake: read only here"]
        assert f"this lake: {theirs}" in listed.stderr
        adopted = await graphlake("mounts", "adopt", "local", "--yes")
        assert adopted.returncode == 0, adopted.stderr
        assert f"belongs to this lake ({theirs}) now; it belonged to lake {ours}" in " ".join(adopted.stderr.split())
        assert await adopt(scratch_db, copy["lab"]) == ours  # the service the command calls, on the S3 one
        assert await settle_owners(scratch_db, copy) == {"local": theirs, "lab": theirs}
        assert await settle_owners(state.db, original) == {"local": theirs, "lab": theirs}  # the original yields
        assert not any(store.ownership.owned for store in original.values())
        assert await sweep_stray_copies(copy, after=timedelta(0)) == 2
        for store in copy.values():
            assert await store.stat(stray) is None and await read_owner(store) == theirs
        assert (tmp_path / "root" / STRAY_DIR / stray).read_bytes() == b"the original's"
        assert await copy["lab"].stat(f"{STRAY_DIR}/{stray}") is not None
    finally:
        for store in [*original.values(), *copy.values()]:
            await store.close()
        bucket = s3.client()
        for found in bucket.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", []):
            bucket.delete_object(Bucket=s3.bucket, Key=found["Key"])


async def test_a_mount_whose_owner_cannot_be_asked_is_left_alone_until_it_can(
        state: AppState, s3: S3Service, caplog: pytest.LogCaptureFixture) -> None:
    """A store that does not answer as the lake opens (no such bucket here) might be another lake's:
    this lake deletes nothing there and takes no upload, saying the owner is not known yet."""
    broken = mount_at(s3, "broken", bucket="no-such-bucket")
    await broken.open()
    try:
        with caplog.at_level(logging.WARNING, logger="graphlake.storage"):
            assert await settle_owners(state.db, {"broken": broken}) == {"broken": None}
        assert "the owner of mount 'broken' is unknown for now" in caplog.text
        assert not broken.ownership.owned
        await broken.delete("assets/x")  # skipped: sent, it would fail on the missing bucket
        with pytest.raises(StoreUnavailable, match="which lake owns it is not known yet") as refused:
            await broken.sign_put("assets/x", size=1, content_type="text/plain", sha256=None, expires_in=60)
        assert type(refused.value).__name__ == "StoreUnavailable"  # passing: tried again next round, not CONFLICT
    finally:
        await broken.close()


async def test_a_restore_writes_no_object_into_a_mount_another_lake_owns(
        api: Api, contributor: str, state: AppState, s3: S3Service, scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    """A backup taken with its mounts' objects (--with-payloads, --with-s3-payloads), restored into
    another database (a lake of its own: a drill, a copy) configured with the original's mounts,
    wrote its objects into the original's mounts, which that lake alone writes in. Now the restore
    refuses before it writes anything, naming each mount, its owner and what to do; given mounts of
    its own under those names, it puts the objects there."""
    files = {mount: payload(40_000 + n, seed=60 + n) for n, mount in enumerate(("local", "lab"))}
    keys = {}
    for mount, data in files.items():
        session = await start(api, contributor, data, mount)
        assert (await put(session["url"], data, session["headers"])).status_code == 200
        assert (await complete(api, contributor, session["id"]))["status"] == "ACTIVE"
        keys[mount] = session["asset"]["storage"]["key"]
    local_root = state.stores["local"].root  # type: ignore[attr-defined]
    backup = tmp_path / "backup"
    manifest = await write_backup(state.db, backup, graphlake_version="test", local_roots={"local": local_root},
                                  stores={"lab": state.stores["lab"]})
    assert {p.key for p in manifest.payloads} >= set(keys.values())
    for mount, key in keys.items():  # the original lost them since: a restore that wrote there would put them back
        await state.stores[mount].delete(key)
    ours = await lake_id(state.db)

    # What `graphlake restore` hands it: the configured mounts' stores, opened by the command.
    theirs = await _stores(s3, local_root, "")
    try:
        # A library caller giving the local mount's root and not its store: the mount was not asked.
        with pytest.raises(Conflict) as unasked:
            await restore_backup(scratch_db, backup, local_roots={"local": local_root}, stores={"lab": theirs["lab"]})
        assert f"local (lake {ours})" in " ".join(str(unasked.value).split())
        with pytest.raises(Conflict) as refused:
            await restore_backup(scratch_db, backup, local_roots={"local": local_root}, stores=theirs)
    finally:
        for store in theirs.values():
            await store.close()
    said = " ".join(str(refused.value).split())
    assert refused.value.extensions["field"] == "mounts"
    assert f"local (lake {ours})" in said and f"lab (lake {ours})" in said
    assert "graphlake mounts adopt lab; graphlake mounts adopt local" in said
    for mount, key in keys.items():
        assert await state.stores[mount].stat(key) is None, f"the restore wrote into the original's {mount}"
    assert await scratch_db.assets.count_documents({}) == 0  # refused before anything was written

    prefix = f"own-{ObjectId()}"
    own = await _stores(s3, tmp_path / "own-root", prefix)  # the copy's own, under the same names
    try:
        await restore_backup(scratch_db, backup, local_roots={"local": tmp_path / "own-root"}, stores=own)
        for mount, key in keys.items():
            assert await own[mount].stat(key) is not None, mount
    finally:
        for store in own.values():
            await store.close()
        bucket = s3.client()
        for found in bucket.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", []):
            bucket.delete_object(Bucket=s3.bucket, Key=found["Key"])


async def test_an_owner_file_that_cannot_be_written_is_one_coded_error_on_either_backend(
        s3: S3Service, scratch_db: AsyncDatabase, mongodb_url: str, tmp_path: Path) -> None:
    """`graphlake mounts adopt` on an S3 mount whose owner file its credentials cannot write printed a
    traceback: the S3 store raised StoreUnavailable there, which the command did not catch, while a
    local mount raised an OSError. Both backends raise StoreUnavailable now, and the command says so
    in one line with its code, leaving the owner file as it was."""
    prefix = f"unwritable-{ObjectId()}"
    writable = mount_at(s3, "lab", prefix)
    await writable.open()
    try:
        assert await writable.write_owner_file(b'{"lake": "the-original"}', replace=False)
        # A local mount whose owner file cannot be replaced (a directory stands at its name: root may
        # write anywhere, so no mode would refuse it); read, it is no file, so the mount has no owner.
        local = LocalStore("local", tmp_path / "root", UrlSigner(b"k" * 32, "http://127.0.0.1:1"))
        await local.open()
        (tmp_path / "root" / OWNER_FILE).mkdir()
        with pytest.raises(StoreUnavailable, match=f"local mount 'local': writing {OWNER_FILE}"):
            await adopt(scratch_db, local)
        await local.close()

        env = {k: v for k, v in os.environ.items() if not (k.startswith("GRAPHLAKE_") or k.startswith("AWS_"))}
        env.update(s3.read_only_credentials(), GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name,
                   GRAPHLAKE_DATA_DIR=str(tmp_path / "data"), GRAPHLAKE_MOUNTS=json.dumps({"lab": {
                       "backend": "s3", "bucket": s3.bucket, "prefix": prefix, "endpoint_url": s3.endpoint}}))
        (tmp_path / "data").mkdir(mode=0o700)
        adopted = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", "mounts", "adopt", "lab",
                                                           "--yes"], env=env, cwd=tmp_path, capture_output=True,
                                          text=True, timeout=60)
        assert adopted.returncode == 1, adopted.stderr
        said = adopted.stderr.strip()
        assert "Traceback" not in said and len(said.splitlines()) == 1, said
        assert said.startswith(f"error: s3 mount 'lab': writing {OWNER_FILE}") and said.endswith("(UNAVAILABLE)"), said
        assert await read_owner(writable) == "the-original"
    finally:
        await writable.close()
        bucket = s3.client()
        for found in bucket.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", []):
            bucket.delete_object(Bucket=s3.bucket, Key=found["Key"])


async def test_adopting_a_local_mount_whose_folder_is_missing_makes_nothing_there(
        mongodb_url: str, scratch_db: AsyncDatabase, tmp_path: Path) -> None:
    """`graphlake mounts adopt` opened the store, which made a missing mount folder: where the mount's
    file system was not mounted yet, the owner file landed on the disk below it. A folder that is not
    there is refused now, in one line, and nothing is made."""
    unmounted = tmp_path / "nas" / "lab"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=scratch_db.name, GRAPHLAKE_DATA_DIR=str(tmp_path / "data"),
               GRAPHLAKE_MOUNTS=json.dumps({"lab": {"backend": "local", "path": str(unmounted)}}))
    (tmp_path / "data").mkdir(mode=0o700)
    adopted = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", "mounts", "adopt", "lab", "--yes"],
                                      env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert adopted.returncode == 1, adopted.stderr
    said = adopted.stderr.strip()
    assert len(said.splitlines()) == 1 and "is not a folder" in said and said.endswith("(NOT_FOUND)"), said
    assert not unmounted.exists() and not unmounted.parent.exists()


async def test_the_lake_opening_reads_its_record_once(settings: Settings, tmp_path: Path) -> None:
    """Opening the lake read its record three times before its mounts were settled: the folders it
    claimed before its stores opened, then its id and those folders again as it settled them."""
    counter = CommandCounter()
    async with open_state(settings.model_copy(update={"data_dir": tmp_path}), [counter]):
        pass
    reads = [f for f in counter.finds if f["find"] == STATE_COLLECTION and f.get("filter") == {"_id": LAKE_ID}]
    assert len(reads) == 1, reads
