"""ingestFiles: the server copies files it reads itself (under GRAPHLAKE_INGEST_ROOTS) into a local
mount, hashing what it writes, and files them ACTIVE; every request is checked before anything is
copied, and nothing outside the roots is ever read."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from bson import ObjectId

from documents.asset import Asset
from documents.clock import utcnow
from documents.collection import CollectionItem
from documents.upload import UploadSession, completed_document
from graphlake.settings import Settings
from graphlake_client import Client, GraphlakeClientError, ResumeState, UploadsFailed
from resolvers.context import AppState
from services.node_ids import NodeType, encode_id
from storage import LocalStore
from storage.local import SHA256_ATTR
from tests.conftest import Served
from tests.operations import Api, object_id
from tests.waiting import wait_for

# An ingest of three new files into a collection, measured on main before the guard against racing
# first ingests (3ec09f7, the assets' read came before the inserts) and with it: the same 14.
COMMANDS_FOR_NEW_FILES = 14


@pytest.fixture
def root(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """A directory the server ingests from, for this test only."""
    root = tmp_path / "nas"
    root.mkdir()
    settings.ingest_roots = [root]
    try:
        yield root
    finally:
        settings.ingest_roots = []


def ingest_input(file: Path, **fields: object) -> dict[str, object]:
    return {"source": str(file), "sizeBytes": file.stat().st_size, **fields}


async def stored() -> int:
    return await Asset.get_pymongo_collection().count_documents({})


async def opened() -> int:
    """Upload sessions opened for a client to send bytes. An ingest's, which file its assets, are
    born completed (they expire as they finish): no claim or URL."""
    return sum(1 for s in await UploadSession.get_pymongo_collection().find({}, {"expires_at": 1, "finished_at": 1}).to_list()
               if s.get("finished_at") != s["expires_at"])


async def test_ingested_files_are_copied_hashed_filed_and_announced(api: Api, contributor: str, root: Path,
                                                                   state: AppState) -> None:
    (root / "scans").mkdir()
    frames = {f"scans/frame{i}.png": os.urandom(1000 + i) for i in range(3)}
    for name, data in frames.items():
        (root / name).write_bytes(data)
    collection = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    inputs = [ingest_input(root / name, collectionId=collection["id"], path=name, labels=["raw"]) for name in frames]
    done = (await api.data("IngestFiles", {"inputs": inputs}, token=contributor))["ingestFiles"]

    assert [d["unchanged"] for d in done] == [False] * 3
    async with httpx.AsyncClient() as http:
        for d, (name, data) in zip(done, frames.items(), strict=True):
            asset = d["asset"]
            assert asset["status"] == "ACTIVE" and asset["name"] == Path(name).name and asset["mediaType"] == "image/png"
            assert asset["sizeBytes"] == len(data) and asset["sha256"] == hashlib.sha256(data).hexdigest()
            assert asset["storage"]["mount"] == "local"
            assert [e["node"]["id"] for e in asset["collections"]["edges"]] == [collection["id"]]
            assert (await http.get(asset["downloadUrl"])).content == data  # a copy in the mount, served as uploads are
            store = state.stores["local"]
            assert isinstance(store, LocalStore)
            copy = store.path(asset["storage"]["key"])
            assert os.getxattr(copy, SHA256_ATTR).decode() == asset["sha256"]  # recorded while it was written
    assert await opened() == 0  # no session to send through, claim or URL
    assert await UploadSession.get_pymongo_collection().count_documents({"to_file": True}) == 0  # filed
    items = await CollectionItem.get_pymongo_collection().find({}, {"path": 1}).to_list()
    assert sorted(i["path"] for i in items) == sorted(frames)
    events = (await api.data("Events", {"filter": {"eventTypes": ["ASSET_STATUS"]}}, token=contributor))["events"]
    assert sorted(e["node"]["data"]["assetId"] for e in events["edges"]) == sorted(d["asset"]["id"] for d in done)
    assert {e["node"]["data"]["status"] for e in events["edges"]} == {"ACTIVE"}

    # Again: the same content at the same paths is not copied again; a changed file is.
    (root / "scans/frame2.png").write_bytes(b"re-exposed")
    inputs[2]["sizeBytes"] = len(b"re-exposed")
    again = (await api.data("IngestFiles", {"inputs": inputs}, token=contributor))["ingestFiles"]
    assert [d["unchanged"] for d in again] == [True, True, False]
    assert [d["asset"]["id"] for d in again[:2]] == [d["asset"]["id"] for d in done[:2]]
    assert again[2]["asset"]["sha256"] == hashlib.sha256(b"re-exposed").hexdigest()
    assert await stored() == 4


async def test_only_files_under_a_root_of_the_size_given_are_read(api: Api, contributor: str, root: Path,
                                                                 tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"not for the lake")
    (root / "link.key").symlink_to(secret)  # inside by name, outside once followed
    (root / "good.bin").write_bytes(b"fine")
    (root / "folder").mkdir()
    cases = [
        ({"source": str(secret), "sizeBytes": 16}, "BAD_USER_INPUT", "is not under an ingest root"),
        ({"source": str(root / "link.key"), "sizeBytes": 16}, "BAD_USER_INPUT", "is not under an ingest root"),
        ({"source": str(root / ".." / "secret.key"), "sizeBytes": 16}, "BAD_USER_INPUT", "is not under an ingest root"),
        ({"source": "nas/good.bin", "sizeBytes": 4}, "BAD_USER_INPUT", "absolute path"),
        ({"source": str(root / "missing.bin"), "sizeBytes": 4}, "NOT_FOUND", "no file"),
        ({"source": str(root / "folder"), "sizeBytes": 4}, "BAD_USER_INPUT", "not a regular file"),
        ({"source": str(root / "good.bin"), "sizeBytes": 5}, "CONFLICT", "has 4 bytes, not 5"),
    ]
    for wrong, code, message in cases:
        # The good file first: nothing of a batch is copied or stored when one of its files is refused.
        error = await api.error("IngestFiles", {"inputs": [ingest_input(root / "good.bin"), wrong]}, token=contributor)
        assert error["extensions"]["code"] == code and message in error["message"], (wrong, error)
        assert error["extensions"]["field"] == ("inputs[1].sizeBytes" if code == "CONFLICT" else "inputs[1].source")
    assert await stored() == 0

    error = await api.error("IngestFiles", {"inputs": [ingest_input(root / "good.bin")], "mount": "lab"}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "mount"} and "local mounts only" in error["message"]
    error = await api.error("IngestFiles", {"inputs": [ingest_input(root / "good.bin", name="")]}, token=contributor)
    assert error["extensions"]["field"] == "inputs[0].name"
    error = await api.error("IngestFiles", {"inputs": [ingest_input(root / "good.bin", path="good.bin")]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[0].path"}, error  # no collection to place it in
    assert "give collectionId too" in error["message"]
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    twice = ingest_input(root / "good.bin", collectionId=scans["id"], path="good.bin")
    error = await api.error("IngestFiles", {"inputs": [twice, twice]}, token=contributor)  # one path of a collection twice
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].path"}, error
    assert await stored() == 0


async def test_a_given_digest_is_checked_against_the_copy(api: Api, contributor: str, root: Path, state: AppState) -> None:
    (root / "a.bin").write_bytes(b"first")
    (root / "b.bin").write_bytes(b"second")
    right = hashlib.sha256(b"first").hexdigest()
    wrong = hashlib.sha256(b"not second").hexdigest()
    inputs = [ingest_input(root / "a.bin", sha256=right), ingest_input(root / "b.bin", sha256=wrong)]
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    before = set((store.root / "assets").glob("*"))
    error = await api.error("IngestFiles", {"inputs": inputs}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].sha256"}
    assert hashlib.sha256(b"second").hexdigest() in error["message"]
    assert await stored() == 0 and set((store.root / "assets").glob("*")) == before  # neither copy kept
    [done] = (await api.data("IngestFiles", {"inputs": inputs[:1]}, token=contributor))["ingestFiles"]
    assert done["asset"]["sha256"] == right


async def test_another_machines_file_of_the_same_size_is_told_apart(api: Api, contributor: str, root: Path,
                                                                   settings: Settings, state: AppState,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    frame = root / "frame.raw"
    frame.write_bytes(b"1234")
    seen = frame.stat()
    other = ingest_input(frame, modifiedNs=seen.st_mtime_ns + 1)  # same path and size, another file
    error = await api.error("IngestFiles", {"inputs": [other]}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "inputs[0].modifiedNs"}
    # The server's own data (the embedded database, its secrets) is never ingested, whatever the roots say.
    settings.ingest_roots = [root, settings.data_dir]
    (settings.data_dir / "ingest-probe").write_text("the server's")
    try:
        error = await api.error("IngestFiles", {"inputs": [ingest_input(settings.data_dir / "ingest-probe")]},
                                token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[0].source"}
    finally:
        (settings.data_dir / "ingest-probe").unlink()
    # Nor the backups (every document, token hashes too) nor the lake's own places in a local mount
    # (others' unfinished uploads), wherever they lie; the rest of a mount (a bundle put there) is the users'.
    backups, mount = root.parent / "backups-elsewhere", state.stores["local"]
    monkeypatch.setattr(settings, "backup_dir", backups)
    # The suite's mount lies in its data dir, never ingested: a mount elsewhere is as it would be with the data dir moved.
    monkeypatch.setattr(settings, "data_dir", root.parent / "data-elsewhere")
    backups.mkdir()
    (backups / "tokens.bson").write_text("hashes")
    probes = [mount.root / ".multipart" / "probe" / "data", mount.root / "assets" / "probe", mount.root / "bundles" / "b.bin"]
    for probe in probes:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text("someone's")
    settings.ingest_roots = [root, backups, mount.root]
    try:
        for private in (backups / "tokens.bson", *probes[:2]):
            error = await api.error("IngestFiles", {"inputs": [ingest_input(private)]}, token=contributor)
            assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[0].source"}, private
        [theirs] = (await api.data("IngestFiles", {"inputs": [ingest_input(probes[2])]}, token=contributor))["ingestFiles"]
        assert theirs["asset"]["sizeBytes"] == len("someone's")
    finally:
        for probe in probes:
            probe.unlink()
    # A link inside the root to a file inside it: ingested under the link's own name, as an upload of it would be.
    (root / "latest.raw").symlink_to(frame)
    [done] = (await api.data("IngestFiles", {"inputs": [ingest_input(root / "latest.raw", modifiedNs=seen.st_mtime_ns)]},
                             token=contributor))["ingestFiles"]
    assert done["asset"]["name"] == "latest.raw" and done["asset"]["sizeBytes"] == 4
    assert await stored() == 2  # it and the mount's bundle file


async def test_a_server_without_roots_ingests_nothing_and_viewers_see_no_roots(api: Api, contributor: str, viewer: str,
                                                                              settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"abc")
    error = await api.error("IngestFiles", {"inputs": [ingest_input(tmp_path / "a.bin")]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs"} and "GRAPHLAKE_INGEST_ROOTS" in error["message"]
    settings.ingest_roots = [tmp_path]
    try:
        assert (await api.data("IngestRoots", token=contributor))["ingestRoots"] == [str(tmp_path)]
        assert (await api.data("IngestRoots", token=viewer))["ingestRoots"] == []  # where the server's disks are is a writer's to know
        error = await api.error("IngestFiles", {"inputs": [ingest_input(tmp_path / "a.bin")]}, token=viewer)
        assert error["extensions"]["code"] == "FORBIDDEN"
    finally:
        settings.ingest_roots = []
    assert await stored() == 0


async def test_the_client_ingests_what_the_server_reads_and_uploads_the_rest(served: Served, contributor: str,
                                                                            root: Path, tmp_path: Path) -> None:
    (root / "run1").mkdir()
    for i in range(5):
        (root / "run1" / f"{i}.json").write_text(f'{{"step": {i}}}')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("not under the root")
    seen: list[int] = []
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "r.json")) as lake:
        ingested = await lake.upload_paths([root / "run1"], collection="runs", progress=lambda done, total: seen.append(done))
        assert await opened() == 0  # copied by the server
        assert sorted(a["name"] for a in ingested) == [f"{i}.json" for i in range(5)]
        assert {a["status"] for a in ingested} == {"ACTIVE"} and seen[-1] == sum(
            (root / "run1" / f"{i}.json").stat().st_size for i in range(5))
        uploaded = await lake.upload_paths([elsewhere], collection="runs")
        assert [a["name"] for a in uploaded] == ["notes.txt"]
        assert await opened() == 1  # the server cannot read it: uploaded
        again = await lake.upload_paths([root / "run1"], collection="runs")
        assert all(a.get("unchanged") for a in again) and {a["id"] for a in again} == {a["id"] for a in ingested}
    async with Client(served.base_url, contributor, server_ingest=False, resume=ResumeState(tmp_path / "r2.json")) as lake:
        await lake.upload_paths([root / "run1" / "0.json"])
        assert await opened() == 2  # asked not to: uploaded
        # Uploading what was ingested stores nothing twice: the same content at the same path is found.
        again = await lake.upload_paths([root / "run1"], collection="runs")
        assert all(a.get("unchanged") for a in again) and {a["id"] for a in again} == {a["id"] for a in ingested}
    assert await stored() == 7
    assert await CollectionItem.get_pymongo_collection().count_documents({}) == 6
    assert (await Asset.get_pymongo_collection().find_one({"_id": object_id(ingested[0]["id"])}))["status"] == "ACTIVE"


async def test_the_upload_command_ingests_unless_told_not_to(served: Served, contributor: str, root: Path) -> None:
    (root / "plate.csv").write_text("well,od\nA1,0.4\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_URL=served.base_url, GRAPHLAKE_TOKEN=contributor)

    def upload(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "graphlake", "upload", str(root / "plate.csv"), *flags], env=env,
                              capture_output=True, text=True, timeout=120)

    ingested = await asyncio.to_thread(upload)
    assert ingested.returncode == 0, ingested.stderr
    assert await UploadSession.get_pymongo_collection().count_documents({}) == 0  # the server copied it
    uploaded = await asyncio.to_thread(upload, "--no-ingest")
    assert uploaded.returncode == 0, uploaded.stderr
    assert await UploadSession.get_pymongo_collection().count_documents({}) == 1
    assert await stored() == 2 and "ACTIVE" in ingested.stdout and "ACTIVE" in uploaded.stdout


async def test_a_batch_the_server_sees_otherwise_is_uploaded(served: Served, contributor: str, root: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A client on another machine that mounts another disk at the server's root path: the server
    refuses the batch (other modification times) and the client uploads it instead."""
    from graphlake_client import ingest

    (root / "a.bin").write_bytes(b"mine, not the server's")
    found = ingest._found

    def elsewhere(files: list) -> tuple:
        paths, stats = found(files)
        return paths, [SimpleNamespace(st_size=s.st_size, st_mtime_ns=s.st_mtime_ns + 1) for s in stats]  # another disk's

    monkeypatch.setattr(ingest, "_found", elsewhere)
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "r.json")) as lake:
        [asset] = await lake.upload_paths([root / "a.bin"])
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(b"mine, not the server's").hexdigest()
    assert await UploadSession.get_pymongo_collection().count_documents({}) == 1  # uploaded, not ingested


@pytest.mark.parametrize("server_ingest", [True, False])
async def test_a_file_gone_since_the_walk_fails_alone_named_by_its_path(
        served: Served, contributor: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        server_ingest: bool) -> None:
    """A file removed after the directory walk listed it (a run still writing and pruning its
    folder) ended the whole batch in a bare FileNotFoundError, from the progress total's stat, the
    resume key's, or the ingest's. Now it is NOT_FOUND naming it by its path as given, its entry of
    UploadsFailed, as one that cannot be read, and the files before and after it go, ingested by
    the server or uploaded; upload_file of it alone says the same."""
    from graphlake_client import uploads as uploads_module

    run = root / "run"
    run.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (run / name).write_text(f"{name}\n")
    gone = run / "b.csv"
    walk = uploads_module.walk

    def then_removed(*args: Any, **kwargs: Any) -> list[str]:
        listed = walk(*args, **kwargs)
        gone.unlink()  # listed, and removed before anything of the upload reads it
        return listed

    monkeypatch.setattr(uploads_module, "walk", then_removed)
    seen: list[tuple[int, int]] = []
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "r.json"),
                      server_ingest=server_ingest) as lake:
        with pytest.raises(UploadsFailed) as batch:
            await lake.upload_paths([run], progress=lambda done, total: seen.append((done, total)))
        with pytest.raises(GraphlakeClientError) as alone:
            await lake.upload_file(gone)
    assert str(batch.value) == f"1 of 3 files did not upload: {gone}: cannot read this file (No such file or directory)"
    assert {path: (error.code, error.field) for path, error in batch.value.failures.items()} == {
        str(gone): ("NOT_FOUND", str(gone))}
    assert (alone.value.code, alone.value.field) == ("NOT_FOUND", str(gone))
    assert seen[-1] == (12, 12)  # a.csv and c.csv: the file that is gone counts for nothing
    assets = (await Asset.get_pymongo_collection().find({}, {"name": 1, "status": 1}).to_list())
    assert sorted((a["name"], a["status"]) for a in assets) == [("a.csv", "ACTIVE"), ("c.csv", "ACTIVE")]
    sessions = await UploadSession.get_pymongo_collection().count_documents({})
    assert sessions == (0 if server_ingest else 2)  # copied by the server, or sent


async def test_a_file_named_with_a_control_character_is_refused_by_name(api: Api, contributor: str, root: Path) -> None:
    """Named after the file it reads, an ingest's asset is held to a name's rule: a newline in the
    file's name was stored as the asset's, and split every log line and export naming it."""
    (root / "good.bin").write_bytes(b"fine")
    (root / "two\nlines.bin").write_bytes(b"odd")
    error = await api.error("IngestFiles", {"inputs": [ingest_input(root / "good.bin"), ingest_input(root / "two\nlines.bin")]},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].name"} and "U+000A" in error["message"]
    assert await stored() == 0


@pytest.mark.parametrize("server_ingest", [True, False])
async def test_a_file_on_disk_named_with_a_control_character_fails_alone(
        served: Served, contributor: str, root: Path, tmp_path: Path, server_ingest: bool) -> None:
    """The server refuses such a name for the whole batch: the client leaves the file out and reports
    it alone in UploadsFailed (BAD_USER_INPUT, by its path), and the others go, ingested or uploaded."""
    run = root / "run"
    run.mkdir()
    for name in ("a.csv", "b\nc.csv", "d.csv"):
        (run / name).write_text("x\n")
    odd = run / "b\nc.csv"
    seen: list[tuple[int, int]] = []
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "r.json"),
                      server_ingest=server_ingest) as lake:
        with pytest.raises(UploadsFailed) as batch:
            await lake.upload_paths([run], collection="runs", progress=lambda done, total: seen.append((done, total)))
    assert {path: (error.code, error.field) for path, error in batch.value.failures.items()} == {
        str(odd): ("BAD_USER_INPUT", str(odd))}
    assert "1 of 3 files did not upload" in str(batch.value) and "control character (U+000A)" in str(batch.value)
    assert seen[-1] == (4, 4)  # a.csv and d.csv: the refused file counts for nothing
    assets = await Asset.get_pymongo_collection().find({}, {"name": 1, "status": 1}).to_list()
    assert sorted((a["name"], a["status"]) for a in assets) == [("a.csv", "ACTIVE"), ("d.csv", "ACTIVE")]


async def test_copies_no_record_names_are_set_aside_then_removed(api: Api, contributor: str, root: Path,
                                                                 state: AppState) -> None:
    """What a stopped server or a cancelled ingest left in assets/ goes to the mount's .stray/ a day
    later, and is deleted a week after that; files an asset or an upload names never do, nor files
    named too lately for their copy to be over; and when most old files look stray, the database is
    what is wrong, and nothing moves."""
    from services.uploads.reconciler import STRAY_AFTER, STRAY_MOST, sweep_stray_copies
    from storage.local import STRAY_DIR

    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    (root / "kept.bin").write_bytes(b"an asset's")
    [done] = (await api.data("IngestFiles", {"inputs": [ingest_input(root / "kept.bin")]}, token=contributor))["ingestFiles"]
    old = utcnow() - STRAY_AFTER - timedelta(hours=1)
    ids = [ObjectId.from_datetime(old - timedelta(minutes=n)) for n in range(4)]  # asset, upload, stray, guard's
    asset = await Asset.get_pymongo_collection().find_one({"_id": object_id(done["asset"]["id"])})
    await Asset.get_pymongo_collection().insert_one({**asset, "_id": ids[0], "storage": {**asset["storage"],
                                                                                         "key": f"assets/{ids[0]}"}})
    await UploadSession.get_pymongo_collection().insert_one(
        {"_id": ids[1], "asset_id": ids[1], "mount": "local", "key": f"assets/{ids[1]}", "status": "OPEN", "size_bytes": 1,
         "media_type": "text/plain", "expires_at": utcnow()})
    paths = [store.path(f"assets/{i}") for i in ids[:3]] + [store.path(f"assets/{ObjectId()}")]  # the last named now
    for path in paths:
        path.write_bytes(b"some bytes")
        os.utime(path, (old.timestamp(), old.timestamp()))
    set_aside = store.root / STRAY_DIR / "assets"
    many: list[Path] = []
    try:
        assert await sweep_stray_copies(state.stores) == 1
        assert [p.exists() for p in paths] == [True, True, False, True]
        assert (set_aside / paths[2].name).read_bytes() == b"some bytes"
        assert store.remove_set_aside(3600) == 0 and store.remove_set_aside(0) == 1
        assert not (set_aside / paths[2].name).exists()

        # Many old files and none named: another database than the mount's, say. Nothing is set aside.
        many += [store.path(f"assets/{ObjectId.from_datetime(old - timedelta(hours=n))}") for n in range(1, STRAY_MOST + 2)]
        for path in many:
            path.write_bytes(b"?")
            os.utime(path, (old.timestamp(), old.timestamp()))
        assert await sweep_stray_copies(state.stores) == 0 and all(p.exists() for p in many)
    finally:
        for path in paths + many:
            path.unlink(missing_ok=True)


async def test_a_server_stopped_before_the_filing_leaves_what_a_rerun_finishes(api: Api, contributor: str, root: Path,
                                                                              state: AppState,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A server killed between storing an ingest's ACTIVE assets and filing them left assets that
    named their collection with no item there, and a rerun copied and stored every file again. The
    cut is made here by letting the call store its assets and then stop, cleaning nothing up (as
    kill -9 would): the rerun files those assets (unchanged, nothing stored twice), and when nobody
    reruns, the reconciler does."""
    from services.uploads import ingest
    from services.uploads.reconciler import file_unfiled

    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    # The mount's assets/ folder exists once anything was stored in it (not when this test runs alone).
    before = sum(1 for _ in (store.root / "assets").iterdir()) if (store.root / "assets").is_dir() else 0
    frames = {f"f{i}.bin": os.urandom(700 + i) for i in range(3)}
    for name, data in frames.items():
        (root / name).write_bytes(data)

    class Killed(Exception):
        """The server's process ends here."""

    async def killed(*_: object, **__: object) -> None:
        raise Killed

    async def nothing(*_: object) -> None:  # a killed process undoes nothing
        return None

    async def cut(collection: dict, names: list[str]) -> list[dict]:
        """Ingest `names` into `collection`, stopping after the assets' insert; the assets it left."""
        inputs = [ingest_input(root / n, collectionId=collection["id"], path=n) for n in names]
        with monkeypatch.context() as patched:
            patched.setattr(ingest, "_file", killed)
            patched.setattr(ingest, "_undo", nothing)
            assert (await api.error("IngestFiles", {"inputs": inputs}, token=contributor))["extensions"]["code"] == "INTERNAL"
        left = await Asset.get_pymongo_collection().find({"collection_ids": object_id(collection["id"])}).to_list()
        assert len(left) == len(names) and {a["status"] for a in left} == {"ACTIVE"}
        assert await CollectionItem.get_pymongo_collection().count_documents(
            {"collection_id": object_id(collection["id"])}) == 0  # the half-state: named, not filed
        return left

    def copies() -> int:
        return sum(1 for _ in (store.root / "assets").iterdir()) - before  # the mount is the session's

    # Rerun: the files are found stored, and filed where asked; the copies this call made are dropped.
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    left = await cut(scans, ["f0.bin", "f1.bin"])
    inputs = [ingest_input(root / n, collectionId=scans["id"], path=n) for n in frames]
    again = (await api.data("IngestFiles", {"inputs": inputs}, token=contributor))["ingestFiles"]
    assert [d["unchanged"] for d in again] == [True, True, False]
    assert {object_id(d["asset"]["id"]) for d in again[:2]} == {a["_id"] for a in left}
    assert [[e["node"]["id"] for e in d["asset"]["collections"]["edges"]] for d in again] == [[scans["id"]]] * 3
    items = await CollectionItem.get_pymongo_collection().find({"collection_id": object_id(scans["id"])}).to_list()
    assert sorted(i["path"] for i in items) == sorted(frames)
    assert {i["asset_id"] for i in items} == {object_id(d["asset"]["id"]) for d in again}
    assert await stored() == 3 and copies() == 3  # no second asset, no second copy
    assert await UploadSession.get_pymongo_collection().count_documents({"to_file": True}) == 0

    # Nobody reruns: the reconciler files them once a completion could no longer be under way.
    plates = (await api.data("CreateCollection", {"input": {"name": "plates"}}, token=contributor))["createCollection"]
    left = await cut(plates, ["f2.bin"])
    # And a session whose asset was never stored (a server stopped between the two inserts) is dropped.
    orphan = UploadSession.completed_for(Asset.model_validate(left[0]), collection_id=object_id(plates["id"]), path="x")
    orphan.id = orphan.asset_id = ObjectId()
    await UploadSession.get_pymongo_collection().insert_one(orphan.model_dump(by_alias=True))
    long_ago = utcnow() - timedelta(hours=1)
    # An hour on: the stopped server renewed none of its leases (filing_at) either.
    await UploadSession.get_pymongo_collection().update_many({"to_file": True}, {"$set": {"finished_at": long_ago,
                                                                                         "filing_at": long_ago}})
    assert await file_unfiled() == 1
    items = await CollectionItem.get_pymongo_collection().find({"collection_id": object_id(plates["id"])}).to_list()
    assert [(i["asset_id"], i["path"]) for i in items] == [(left[0]["_id"], "f2.bin")]
    assert await UploadSession.get_pymongo_collection().count_documents({"_id": orphan.id}) == 0
    assert await UploadSession.get_pymongo_collection().count_documents({"to_file": True}) == 0


async def test_a_second_ingest_of_files_another_is_filing_waits_for_its_outcome(
        api: Api, contributor: str, root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Two ingests of one file into one collection at once. The first is held (a real request, on
    the real database) after it stored its assets and before it filed them; the second took the
    first's sessions, still `to_file`, for a crashed run's and filed them, answering with the
    first's asset; the first then failed (a collection of its batch was deleted meanwhile) and
    removed its assets, as a batch is all-or-nothing: the second had answered with an asset that no
    longer exists. Now the second waits while the first is filing, and answers with what it left:
    its own asset here, the first's once the first succeeds."""
    from services.uploads import claims, ingest

    (root / "f0.bin").write_bytes(os.urandom(900))
    (root / "f1.bin").write_bytes(os.urandom(901))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    extra = (await api.data("CreateCollection", {"input": {"name": "extra"}}, token=contributor))["createCollection"]
    shared = ingest_input(root / "f0.bin", collectionId=scans["id"], path="f0.bin")
    hold = Hold(ingest._file)
    monkeypatch.setattr(ingest, "_file", hold)
    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 0.05)  # a filing held this long renews its lease

    async def race(first_inputs: list[dict]) -> tuple[asyncio.Task, asyncio.Task]:
        """The first ingest held before its filing; the second run until it answers or waits."""
        hold.reset()
        caplog.clear()
        first = asyncio.create_task(api.run("IngestFiles", {"inputs": first_inputs}, token=contributor))
        await wait_for(hold.reached.is_set, what="the first ingest to store its assets")
        second = asyncio.create_task(api.data("IngestFiles", {"inputs": [shared]}, token=contributor))
        await wait_for(lambda: second.done() or "another request is filing" in caplog.text,
                       what="the second ingest to answer or wait")
        return first, second

    with caplog.at_level(logging.INFO, logger="graphlake.uploads"):
        # The first fails: its batch's other collection is deleted while it is held.
        first, second = await race([shared, ingest_input(root / "f1.bin", collectionId=extra["id"], path="f1.bin")])
        leases = UploadSession.get_pymongo_collection()
        taken = {s["_id"]: s["filing_at"] for s in await leases.find({"to_file": True}).to_list()}
        assert len(taken) == 2 and not second.done()
        await wait_for(lambda: renewed(leases, taken), what="the first ingest to renew its lease")
        await api.data("DeleteCollection", {"id": extra["id"]}, token=contributor)
        hold.go.set()
        failed = await first
        assert failed["errors"][0]["extensions"]["code"] == "NOT_FOUND", failed
        [answer] = (await second)["ingestFiles"]
        kept = await Asset.get_pymongo_collection().find({}).to_list()
        assert [(a["_id"], a["status"]) for a in kept] == [(object_id(answer["asset"]["id"]), "ACTIVE")]
        assert answer["unchanged"] is False  # nothing of the first's was left to find: its own copy
        items = await CollectionItem.get_pymongo_collection().find({}).to_list()
        assert [(i["asset_id"], i["path"]) for i in items] == [(kept[0]["_id"], "f0.bin")]

        # The first succeeds: the second answers with its asset, unchanged, and nothing is filed twice.
        (root / "f0.bin").write_bytes(os.urandom(900))
        shared.update(ingest_input(root / "f0.bin"))
        first, second = await race([shared])
        hold.go.set()
        [made] = (await first)["data"]["ingestFiles"]
        [answer] = (await second)["ingestFiles"]
        assert (answer["unchanged"], answer["asset"]["id"]) == (True, made["asset"]["id"])
    assert await stored() == 2
    assert await UploadSession.get_pymongo_collection().count_documents({"to_file": True}) == 0


async def test_a_rerun_waits_out_a_stopped_servers_lease_and_a_live_writer_is_told(
        api: Api, contributor: str, root: Path, state: AppState, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A server killed between storing an ingest's assets and filing them leaves its lease on them
    fresh for up to CLAIM_SECONDS, as a live writer's: a rerun then waits for it to run out and files
    what the server left (unchanged), and the reconciler leaves them alone until it has. A writer
    still renewing its lease when the rerun has waited FILING_WAIT_SECONDS is alive: the rerun is
    refused, naming the file's path, and keeps no copy."""
    from services.uploads import claims, ingest
    from services.uploads.reconciler import file_unfiled

    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    (root / "f.bin").write_bytes(os.urandom(800))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    inputs = [ingest_input(root / "f.bin", collectionId=scans["id"], path="f.bin")]

    async def killed(*_: object, **__: object) -> None:
        raise RuntimeError("the server's process ends here")

    async def nothing(*_: object) -> None:
        return None

    with monkeypatch.context() as patched:
        patched.setattr(ingest, "_file", killed)
        patched.setattr(ingest, "_undo", nothing)
        assert (await api.error("IngestFiles", {"inputs": inputs}, token=contributor))["extensions"]["code"] == "INTERNAL"
    [left] = await Asset.get_pymongo_collection().find({}).to_list()
    sessions = UploadSession.get_pymongo_collection()
    # kill -9 ends no lease: as the killed server left it, renewed just now.
    await sessions.update_many({"to_file": True}, {"$set": {"filing_at": utcnow(), "finished_at": utcnow() - timedelta(hours=1)}})
    assert await file_unfiled() == 0  # old enough, but maybe still being filed
    copies = sorted((store.root / "assets").iterdir())

    (root / "g.bin").write_bytes(os.urandom(700))
    batch = [ingest_input(root / "g.bin", collectionId=scans["id"], path="g.bin"), *inputs]
    with monkeypatch.context() as patched:
        patched.setattr(claims, "FILING_WAIT_SECONDS", 0.2)  # less than the lease has left: its writer looks alive
        error = await api.error("IngestFiles", {"inputs": batch}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "inputs[1].path"} and "still filing" in error["message"]
    assert sorted((store.root / "assets").iterdir()) == copies  # the refused call's copies went
    assert await stored() == 1

    with caplog.at_level(logging.INFO, logger="graphlake.uploads"):
        rerun = asyncio.create_task(api.data("IngestFiles", {"inputs": inputs}, token=contributor))
        await wait_for(lambda: "another request is filing" in caplog.text, what="the rerun to wait for the lease")
        assert not rerun.done()
        await sessions.update_many({"to_file": True}, {"$set": {"filing_at": utcnow() - timedelta(hours=1)}})  # ran out
        [again] = (await rerun)["ingestFiles"]
    assert (again["unchanged"], object_id(again["asset"]["id"])) == (True, left["_id"])
    items = await CollectionItem.get_pymongo_collection().find({}).to_list()
    assert [(i["asset_id"], i["path"]) for i in items] == [(left["_id"], "f.bin")]
    assert await stored() == 1 and await sessions.count_documents({"to_file": True}) == 0


async def test_two_first_ingests_of_one_file_at_one_path_store_it_once(
        api: Api, contributor: str, root: Path, state: AppState, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Two ingests of a file no collection held yet, into one collection at one path, at once: each
    read no item there, so both copied it and filed their own asset, the bytes stored twice at one
    path. Now each looks for the other once its own asset is stored: the later to look gives way
    and answers with the other's asset, unchanged, keeping no copy. Held between their real steps:
    the first, held once it has copied the file, looks after the second has filed its own; and the
    first, held before it stored its asset, looks while the second is filing (the second looked
    first and saw nothing; the first, of the smaller id, waits for it, then gives way)."""

    from services.uploads import claims, ingest

    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 0.05)

    def copies() -> set[str]:
        return {p.name for p in (store.root / "assets").iterdir()} if (store.root / "assets").is_dir() else set()

    before = copies()  # the mount is the session's

    # The first held once it has copied the file (it read no item at its path, nor anything to
    # file): the second stores and files its own meanwhile, and the first gives way to it.
    (root / "f0.bin").write_bytes(os.urandom(900))
    inputs = [ingest_input(root / "f0.bin", collectionId=scans["id"], path="f0.bin")]
    with monkeypatch.context() as patched:
        patched.setattr(ingest, "_copy", copied := Hold(ingest._copy, after=True))
        first_task = asyncio.create_task(api.data("IngestFiles", {"inputs": inputs}, token=contributor))
        await wait_for(copied.reached.is_set, what="the first ingest to have copied the file")
        [second] = (await api.data("IngestFiles", {"inputs": inputs}, token=contributor))["ingestFiles"]
        copied.go.set()
        [first] = (await first_task)["ingestFiles"]
    assert (first["unchanged"], second["unchanged"]) == (True, False)
    assert first["asset"]["id"] == second["asset"]["id"]

    with caplog.at_level(logging.INFO, logger="graphlake.uploads"):
        # The first held before it stored anything, the second before filing: the first, looking
        # last, sees the second's asset (a larger id) still being filed, waits, then gives way.
        (root / "f1.bin").write_bytes(os.urandom(900))
        inputs = [ingest_input(root / "f1.bin", collectionId=scans["id"], path="f1.bin")]
        stores_held, files_held = Hold(ingest._store), Hold(ingest._file)
        caplog.clear()
        with monkeypatch.context() as patched:
            patched.setattr(ingest, "_store", stores_held)
            patched.setattr(ingest, "_file", files_held)
            first_task = asyncio.create_task(api.data("IngestFiles", {"inputs": inputs}, token=contributor))
            await wait_for(stores_held.reached.is_set, what="the first ingest to have copied the file")
            second_task = asyncio.create_task(api.data("IngestFiles", {"inputs": inputs}, token=contributor))
            await wait_for(files_held.reached.is_set, what="the second ingest to store its asset")
            stores_held.go.set()
            await wait_for(lambda: first_task.done() or "another request is filing" in caplog.text,
                           what="the first ingest to wait for the second")
            assert not first_task.done()
            files_held.go.set()
            [first] = (await first_task)["ingestFiles"]
            [second] = (await second_task)["ingestFiles"]
        assert (first["unchanged"], second["unchanged"]) == (True, False)
        assert first["asset"]["id"] == second["asset"]["id"]

    assets = await Asset.get_pymongo_collection().find({}).to_list()
    assert sorted(a["name"] for a in assets) == ["f0.bin", "f1.bin"]  # one asset each
    items = await CollectionItem.get_pymongo_collection().find({}).to_list()
    assert sorted((i["path"], i["asset_id"]) for i in items) == sorted((a["name"], a["_id"]) for a in assets)
    assert copies() - before == {str(a["_id"]) for a in assets}  # one copy of each file
    assert await UploadSession.get_pymongo_collection().count_documents({"to_file": True}) == 0


async def test_a_file_moved_to_another_path_is_stored_again_at_its_old_one(api: Api, contributor: str, root: Path) -> None:
    """A file ingested at one path, its item moved to another: its session still names the first
    path, so an ingest of it there again finds that asset when it looks for another call's, gives
    way, finds nothing filed there, and stores its own, once (it looked again at the same session,
    and went round for ever)."""
    (root / "f.bin").write_bytes(os.urandom(700))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    inputs = [ingest_input(root / "f.bin", collectionId=scans["id"], path="a/f.bin")]
    [first] = (await api.data("IngestFiles", {"inputs": inputs}, token=contributor))["ingestFiles"]
    await api.data("AddToCollection", {"input": {"collectionId": scans["id"], "items": [
        {"assetId": first["asset"]["id"], "path": "b/f.bin"}]}}, token=contributor)
    [again] = (await asyncio.wait_for(api.data("IngestFiles", {"inputs": inputs}, token=contributor), 30))["ingestFiles"]
    assert again["unchanged"] is False and again["asset"]["id"] != first["asset"]["id"]
    items = await CollectionItem.get_pymongo_collection().find({}).to_list()
    assert sorted((i["path"], i["asset_id"]) for i in items) == sorted(
        [("b/f.bin", object_id(first["asset"]["id"])), ("a/f.bin", object_id(again["asset"]["id"]))])
    assert await stored() == 2


async def test_an_ingest_of_new_files_costs_no_command_for_the_race_it_guards_against(
        api: Api, served: Served, contributor: str, root: Path, state: AppState) -> None:
    """Finding another call storing the same file at once (test above) reads the assets of the
    batch's digests once its assets are stored: the read a rerun paid for before them, moved. An
    ingest of new files into a collection sends the same commands it sent before that guard."""
    for i in range(3):
        (root / f"n{i}.bin").write_bytes(os.urandom(600 + i))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    inputs = [ingest_input(root / f"n{i}.bin", collectionId=scans["id"], path=f"n{i}.bin") for i in range(3)]
    await api.data("Me", token=contributor)  # the token lookup, remembered from here on
    served.commands.clear()
    await api.data("IngestFiles", {"inputs": inputs}, token=contributor)
    sent = list(zip(served.commands.commands, served.commands.collections, strict=True))
    # The look for another call's assets comes after this call's are stored, and reads no session
    # when it finds none (the later find of assets is the filing's check for deletes).
    assert sent[:5] == [("find", "collections"), ("find", "collection_items"), ("insert", "upload_sessions"),
                        ("insert", "assets"), ("find", "assets")], sent
    assert ("find", "upload_sessions") not in sent and len(sent) == COMMANDS_FOR_NEW_FILES, sent
    # The lease's end names its owner beside the ids: still read through the `_id` index on our
    # FerretDB build, which takes ids at the top of a filter whatever else it says.
    [(_, ended)] = [(c, q) for c, q in served.commands.updates if c == "upload_sessions"]
    assert next(iter(ended)) == "_id" and "filing_owner" in ended, ended
    if "ferretdbVersion" in await state.db.client.admin.command("buildInfo"):
        plan = await state.db.command("explain", {"find": "upload_sessions", "filter": ended})
        assert plan.get("filterPushdown") and any("__id_" in step for step in plan["queryPlanner"]["Plan"]), plan


@pytest.mark.parametrize("taker", ["rerun", "reconciler"])
async def test_a_writer_frozen_past_its_lease_removes_nothing_another_took_over(
        api: Api, contributor: str, root: Path, state: AppState, monkeypatch: pytest.MonkeyPatch, taker: str) -> None:
    """An ingest's writer frozen (SIGSTOP, a GC pause) past CLAIM_SECONDS, between storing its
    assets and filing them, has lost its lease: a rerun takes its sessions over and answers with
    its asset (or the reconciler files them). When the frozen writer wakes and its filing fails (a
    collection of its batch deleted meanwhile), it removed the whole batch, the asset the rerun
    answered with too. Now it removes only what it still owns: the taker writes its own token
    before it files. The freeze is its lease backdated, its renewals held off."""
    from services.uploads import claims, ingest

    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    (root / "f0.bin").write_bytes(os.urandom(900))
    (root / "f1.bin").write_bytes(os.urandom(901))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    extra = (await api.data("CreateCollection", {"input": {"name": "extra"}}, token=contributor))["createCollection"]
    shared = ingest_input(root / "f0.bin", collectionId=scans["id"], path="f0.bin")
    monkeypatch.setattr(ingest, "_file", hold := Hold(ingest._file))
    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 3600)  # frozen: it renews nothing
    frozen = asyncio.create_task(api.run("IngestFiles", {"inputs": [
        shared, ingest_input(root / "f1.bin", collectionId=extra["id"], path="f1.bin")]}, token=contributor))
    await wait_for(hold.reached.is_set, what="the first ingest to store its assets")
    sessions = UploadSession.get_pymongo_collection()
    lapsed = utcnow() - timedelta(minutes=1)
    await sessions.update_many({"to_file": True}, {"$set": {"filing_at": lapsed, "finished_at": lapsed}})

    if taker == "rerun":
        [rerun] = (await api.data("IngestFiles", {"inputs": [shared]}, token=contributor))["ingestFiles"]
        assert rerun["unchanged"] is True  # the frozen writer's asset, taken over and filed
        await api.data("DeleteCollection", {"id": extra["id"]}, token=contributor)
        hold.go.set()  # it wakes, and its filing fails
        failed = await frozen
    else:  # the reconciler, held once it has taken the lease and before it files: the writer wakes then
        from services.uploads import reconciler

        monkeypatch.setattr(reconciler, "_file_settled", filing := Hold(reconciler._file_settled))
        filed = asyncio.create_task(reconciler.file_unfiled())
        await wait_for(filing.reached.is_set, what="the reconciler to take the lease over")
        await api.data("DeleteCollection", {"id": extra["id"]}, token=contributor)
        hold.go.set()
        failed = await frozen
        filing.go.set()
        assert await filed == 2  # both of its files, each into its collection (extra's is gone)
        [item] = await CollectionItem.get_pymongo_collection().find({"path": "f0.bin"}).to_list()
        rerun = {"asset": {"id": encode_id(NodeType.ASSET, item["asset_id"])}}
    assert failed["errors"][0]["extensions"]["code"] == "NOT_FOUND", failed
    # What was taken over stays: the shared file (and, for the reconciler, which took both, the other
    # too, in no collection now that its collection is gone).
    assets = {a["_id"]: a for a in await Asset.get_pymongo_collection().find({}).to_list()}
    kept = assets[object_id(rerun["asset"]["id"])]
    assert kept["status"] == "ACTIVE" and len(assets) == (1 if taker == "rerun" else 2)
    items = await CollectionItem.get_pymongo_collection().find({}).to_list()
    assert [(i["asset_id"], i["path"]) for i in items] == [(kept["_id"], "f0.bin")]
    assert store.path(kept["storage"]["key"]).exists()  # its bytes too
    assert await sessions.count_documents({"to_file": True}) == 0
    again = (await api.data("Asset", {"id": rerun["asset"]["id"]}, token=contributor))["asset"]
    assert again["status"] == "ACTIVE"


async def renewed(sessions: Any, taken: dict[ObjectId, datetime]) -> bool:
    """Whether every one of these sessions' leases is newer than `taken`."""
    now = {s["_id"]: s.get("filing_at") for s in await sessions.find({"_id": {"$in": list(taken)}}).to_list()}
    return now.keys() == taken.keys() and all(now[i] and now[i] > at for i, at in taken.items())


class Hold:
    """A step of the service (ingest._file, patched with this) held on its first call until `go`
    (`after`: once that call has made its step): the request making it stays between its writes
    while another runs."""

    def __init__(self, step: Callable[..., Awaitable[Any]], *, after: bool = False) -> None:
        self.step, self.after = step, after
        self.reset()

    def reset(self) -> None:
        self.reached, self.go, self.calls = asyncio.Event(), asyncio.Event(), 0

    async def __call__(self, *args: object, **kwargs: object) -> Any:
        self.calls += 1
        held = self.calls == 1
        if held and not self.after:
            self.reached.set()
            await self.go.wait()
        done = await self.step(*args, **kwargs)
        if held and self.after:
            self.reached.set()
            await self.go.wait()
        return done


async def test_a_frozen_writer_giving_way_keeps_the_copy_of_its_asset_taken_over(
        api: Api, contributor: str, root: Path, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer frozen past its lease between storing its asset and looking for another call's,
    taken over (here by the reconciler, which files it): waking, it finds a twin to give way to (a
    file once ingested at that path, its item moved since), undoes nothing of what it no longer
    owns, and filed_at answers with its own asset, taken over. It then deleted that asset's copy
    as a given-way call's spare: an ACTIVE asset, filed, with no bytes."""
    from services.uploads import claims, ingest
    from services.uploads.reconciler import file_unfiled

    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    (root / "f.bin").write_bytes(os.urandom(700))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    inputs = [ingest_input(root / "f.bin", collectionId=scans["id"], path="a/f.bin")]
    [old] = (await api.data("IngestFiles", {"inputs": inputs}, token=contributor))["ingestFiles"]
    await api.data("AddToCollection", {"input": {"collectionId": scans["id"], "items": [
        {"assetId": old["asset"]["id"], "path": "b/f.bin"}]}}, token=contributor)

    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 3600)  # frozen: it renews nothing
    monkeypatch.setattr(ingest, "_stored_by_others", looking := Hold(ingest._stored_by_others))
    frozen = asyncio.create_task(api.data("IngestFiles", {"inputs": inputs}, token=contributor))
    await wait_for(looking.reached.is_set, what="the writer to store its asset")
    sessions = UploadSession.get_pymongo_collection()
    lapsed = utcnow() - timedelta(minutes=1)
    await sessions.update_many({"to_file": True}, {"$set": {"filing_at": lapsed, "finished_at": lapsed}})
    assert await file_unfiled() == 1  # taken over and filed at a/f.bin
    looking.go.set()
    [woke] = (await frozen)["ingestFiles"]

    [item] = await CollectionItem.get_pymongo_collection().find({"path": "a/f.bin"}).to_list()
    assert object_id(woke["asset"]["id"]) == item["asset_id"]
    kept = await Asset.get_pymongo_collection().find_one({"_id": item["asset_id"]})
    assert kept is not None and kept["status"] == "ACTIVE"
    assert store.path(kept["storage"]["key"]).exists()  # its bytes too


async def test_a_file_stored_again_after_the_other_failed_still_looks_for_a_third(
        api: Api, contributor: str, root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The second of two first ingests of one file gives way to the first, which then fails and
    removes its batch: the second stores its asset once more. A third ingest of the file that
    looked between the second's removal and its storing again saw neither, and files its own; the
    second, storing again without looking again, filed its own too: two assets at one path."""
    from services.uploads import claims, ingest

    (root / "f0.bin").write_bytes(os.urandom(900))
    (root / "f1.bin").write_bytes(os.urandom(901))
    scans = (await api.data("CreateCollection", {"input": {"name": "scans"}}, token=contributor))["createCollection"]
    extra = (await api.data("CreateCollection", {"input": {"name": "extra"}}, token=contributor))["createCollection"]
    shared = ingest_input(root / "f0.bin", collectionId=scans["id"], path="f0.bin")
    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 0.05)
    monkeypatch.setattr(ingest, "_file", filing := Hold(ingest._file))
    monkeypatch.setattr(ingest, "_store", storing := HoldCall(ingest._store, 3))  # the second's storing again

    with caplog.at_level(logging.INFO, logger="graphlake.uploads"):
        first = asyncio.create_task(api.run("IngestFiles", {"inputs": [
            shared, ingest_input(root / "f1.bin", collectionId=extra["id"], path="f1.bin")]}, token=contributor))
        await wait_for(filing.reached.is_set, what="the first ingest to store its assets")
        second = asyncio.create_task(api.data("IngestFiles", {"inputs": [shared]}, token=contributor))
        await wait_for(lambda: "another request is filing" in caplog.text, what="the second to give way and wait")
        await api.data("DeleteCollection", {"id": extra["id"]}, token=contributor)
        filing.go.set()
        assert (await first)["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        await wait_for(storing.reached.is_set, what="the second to store its asset again")
        [third] = (await api.data("IngestFiles", {"inputs": [shared]}, token=contributor))["ingestFiles"]
        storing.go.set()
        [again] = (await second)["ingestFiles"]
    items = await CollectionItem.get_pymongo_collection().find({"path": "f0.bin"}).to_list()
    assert [i["asset_id"] for i in items] == [object_id(third["asset"]["id"])]
    assert again["asset"]["id"] == third["asset"]["id"]
    assert await stored() == 1


class HoldCall:
    """A step held on its `n`th call (counting every request's) until `go`."""

    def __init__(self, step: Callable[..., Awaitable[Any]], n: int) -> None:
        self.step, self.n, self.calls = step, n, 0
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def __call__(self, *args: object, **kwargs: object) -> Any:
        self.calls += 1
        if self.calls == self.n:
            self.reached.set()
            await self.go.wait()
        return await self.step(*args, **kwargs)


async def test_a_lease_renewal_that_fails_once_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database refusing one renewal (an outage's moment) does not end the renewing: it is logged
    and tried again, so a live writer's lease does not lapse for one failed write."""
    from services.uploads import claims

    sessions = UploadSession.get_pymongo_collection()
    session_id, owner = ObjectId(), claims.filing_token()
    long_ago = utcnow() - timedelta(hours=1)
    await sessions.insert_one({"_id": session_id, "to_file": True, "filing_at": long_ago, "filing_owner": owner})
    real = UploadSession.get_pymongo_collection
    refused = 0

    class RefusingOnce:
        """The real collection, but its first update_many fails as a dropped connection would."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real(), name)

        async def update_many(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal refused
            if not refused:
                refused += 1
                raise ConnectionError("the database went away for a moment")
            return await real().update_many(*args, **kwargs)

    monkeypatch.setattr(claims, "CLAIM_RENEW_SECONDS", 0.01)
    monkeypatch.setattr(UploadSession, "get_pymongo_collection", classmethod(lambda cls: RefusingOnce()))
    renewing = asyncio.create_task(claims.keep_filing([session_id], owner))
    try:
        await wait_for(lambda: _renewed(real(), session_id, long_ago), what="the lease renewed after a failed renewal")
        assert refused == 1 and not renewing.done()  # still renewing
    finally:
        renewing.cancel()


async def _renewed(sessions: Any, session_id: ObjectId, since: datetime) -> bool:
    found = await sessions.find_one({"_id": session_id}, {"filing_at": 1})
    return found["filing_at"].replace(tzinfo=None) > since.replace(tzinfo=None)


def test_an_ingests_sessions_are_stored_as_their_model_would_store_them() -> None:
    """completed_document writes by hand (25 us a file less: services/uploads/ingest.py) what an
    UploadSession built from the same values dumps, every field there: with and without a
    collection to file into, with and without a digest and a creator."""
    now = utcnow()
    for collection_id, path, sha256, actor in ((ObjectId(), "a/b.png", "ab" * 32, "token:x"), (None, None, None, None)):
        asset = Asset(id=ObjectId(), kind="FILE", status="ACTIVE", name="b.png", media_type="image/png", size_bytes=7,
                      sha256=sha256, storage={"mount": "local", "key": "assets/x", "uri": "file:///x"}, created_by=actor)
        filing = collection_id is not None
        model = UploadSession(id=asset.id, asset_id=asset.id, mount="local", key="assets/x", status="COMPLETED", size_bytes=7,
                              sha256=sha256, media_type="image/png", expires_at=now, finished_at=now, created_at=now,
                              created_by=actor, collection_id=collection_id, path=path, to_file=filing,
                              filing_at=now if filing else None, filing_owner="owner" if filing else None)
        written = completed_document(asset, now, collection_id=collection_id, path=path, owner="owner")
        assert written == model.model_dump(by_alias=True)
        assert list(written) == list(model.model_dump(by_alias=True))  # the same fields, in the model's order
