"""A dataset version's content file (services/version_content.py, graphlake_client/version_file.py):
written when the version is built, holding what its pages give, read by exporters in their place,
checked before it is trusted, and deleted with its version."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from bson import ObjectId

from documents.clock import utcnow
from documents.dataset import DatasetVersion
from documents.roles import Role
from graphlake.settings import Settings
from graphlake_client import Client, GraphlakeClientError, SyncClient, version_file
from graphlake_client import operations as ops
from graphlake_client.version_reading import version_datums
from resolvers.context import AppState
from services import version_content as services_version_content
from services.snapshots import CONTENT_RETRY_AFTER, verify, write_missing_contents
from services.uploads.reconciler import STRAY_AFTER, STRAY_KEPT, StrayMountsFailed, sweep_stray_copies
from storage.local import STAGED_PREFIX, LocalStore
from storage.protocol import STRAY_DIR, ObjectInfo
from storage.s3 import S3Store
from storage.signing import UrlSigner
from tests.conftest import MakeToken, S3Service, Served, mount_at
from tests.operations import object_id
from tests.test_exchange_bundle import make_version
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio

CONTENT = """query ($id: ID!) { datasetVersion(id: $id) {
  content { format mount key sizeBytes sha256 downloadUrl(expiresInSeconds: 60) } } }"""
DELETE_VERSION = """mutation ($id: ID!) { deleteDatasetVersion(id: $id) { deleted } }"""


def comparable(value: Any) -> Any:
    """`value` without its signed URLs, which two signings of one key give apart (their expiry), and
    its assets' digests, which a direct write's server may still be computing between two reads."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in ("downloadUrl", "sha256")}
    if isinstance(value, list | tuple):  # pages of pairs
        return [comparable(v) for v in value]
    return value


async def saved_as(url: str) -> tuple[str, bytes]:
    """The name a browser saves `url`'s answer under (its Content-Disposition), and its bytes."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
    answer.raise_for_status()
    header = Message()
    header["content-disposition"] = answer.headers["content-disposition"]
    assert header.get_content_disposition() == "attachment", answer.headers
    return str(header.get_filename()), answer.content  # filename*=UTF-8''... decoded


def watch_downloads(lake: Client) -> list[str]:
    """The URLs `lake` streams from its stores from now on."""
    stream, fetched = lake.storage_http.stream, []

    def watched(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        fetched.append(url)
        return stream(method, url, *args, **kwargs)

    lake.storage_http.stream = watched  # type: ignore[method-assign]
    return fetched


async def content_of(lake: Client, version_id: str) -> dict[str, Any]:
    return (await lake.execute(CONTENT, {"id": version_id}))["datasetVersion"]["content"]


async def test_the_file_holds_every_field_the_pages_give(served: Served, make_token: MakeToken, tmp_path: Path,
                                                        state: AppState) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        content = await content_of(lake, version["id"])
        stored = Path(state.stores["local"].path(content["key"])).read_bytes()
        assert content["format"] == "graphlake-version-content-1" and content["mount"] == "local"
        assert int(content["sizeBytes"]) == len(stored) and content["sha256"] == hashlib.sha256(stored).hexdigest()
        assert await saved_as(content["downloadUrl"]) == ("parts-v1.jsonl", stored)

        # Each line against the datum the pages give with every field (the bundle exporter's query).
        lines = [json.loads(line) for line in stored.splitlines()]
        paged = [(datum, records) async for datum, records in version_datums(lake, version["id"], query=ops.BUNDLE_DATUMS)]
        assert len(lines) == len(paged) == 4
        for line, (datum, records) in zip(lines, paged, strict=True):
            assert {k: line[k] for k in ("id", "split", "metadata", "roles")} == {
                k: datum[k] for k in ("id", "split", "metadata", "roles")}
            # A source's kind only: a person's name is never in the file (a privacy erase could not reach it there).
            assert line["annotations"] == [{**r, "source": {"kind": r["source"]["kind"]}} for r in records]
        kinds = {r["geometry"]["__typename"] for line in lines for r in line["annotations"] if r["geometry"]}
        assert kinds == {"BBox", "RotatedBBox", "Polygon", "Polyline", "Keypoints", "Mask"}
        assert not any("createdBy" in r or "verifiedBy" in r for line in lines for r in line["annotations"])
        assert {r["source"]["kind"] for line in lines for r in line["annotations"]} == {"HUMAN", "MODEL"}

        # What the exporters read: the same datums, images and records, read from the file or the pages.
        from_file = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
        from_pages = [pair async for pair in version_datums(lake, version["id"])]
        assert [d["id"] for d, _ in from_file] == [d["id"] for d, _ in from_pages]
        for (file_datum, file_records), (page_datum, page_records) in zip(from_file, from_pages, strict=True):
            page_datum.pop("annotations")  # the records' connection: each reader gives them apart
            assert comparable(file_datum) == comparable(page_datum)
            assert comparable(file_records) == comparable(page_records)
            assert (file_datum["asset"] is None) == (page_datum["asset"] is None)
            if file_datum["asset"]:
                assert file_datum["asset"]["downloadUrl"]
        masks = [r["geometry"]["asset"] for _, records in from_file for r in records
                 if (r["geometry"] or {}).get("__typename") == "Mask"]
        assert masks and all(m["sizeBytes"] and m["downloadUrl"] for m in masks)


async def test_exporters_read_the_file_and_not_the_pages(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        execute, asked = lake.execute, []

        async def counted(query: str, variables: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
            asked.append(query)
            return await execute(query, variables, *args, **kwargs)

        lake.execute = counted  # type: ignore[method-assign]
        done = await lake.export_coco(version["id"], tmp_path / "coco")
        # The prediction set's classification has no COCO shape: left out of results.json, counted.
        assert done["images"] == 4 and done["annotations"] > 0 and \
            done["left_out"] == {"REGRESSION": 1, "result of no box, mask, polygon or keypoints": 1}
        assert ops.VERSION_CONTENT in asked and ops.FILES_BY_ID in asked
        assert ops.VERSION_DATUMS not in asked and ops.VERSION_DATUM_CURSORS not in asked
    # Images not imported from COCO carry no size in their metadata: it is read from their pixels.
    written = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert sorted((i["width"], i["height"]) for i in written["images"]) == [(30, 30), (40, 30), (50, 40), (60, 20)]


async def test_a_file_that_is_not_the_recorded_one_is_not_trusted(served: Served, make_token: MakeToken, tmp_path: Path,
                                                                  state: AppState, caplog: pytest.LogCaptureFixture) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        from_pages = [pair async for pair in version_datums(lake, version["id"])]
        path = Path(state.stores["local"].path((await content_of(lake, version["id"]))["key"]))
        original = path.read_bytes()
        for tampered in (original.replace(b'"TRAIN"', b'"TEST"', 1), None):
            if tampered is None:
                path.unlink()  # gone from the mount (and so from the signed route too)
            else:
                path.write_bytes(tampered)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="graphlake_client.versions"):
                read = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
            assert comparable(read) == comparable(from_pages)  # the pages, not the file
            if tampered is not None:
                assert "not the one the server recorded" in caplog.text
            # `graphlake datasets verify --deep` says so too.
            checked = await verify(await DatasetVersion.get(object_id(version["id"])), state.stores)
            assert not checked.ok and any("content file" in p for p in checked.problems)
        path.write_bytes(original)
        checked = await verify(await DatasetVersion.get(object_id(version["id"])), state.stores)
        assert checked.ok and checked.files_read == 6  # five images (one also a mask) and the content file


async def test_a_file_written_before_sources_reads_with_a_null_source(served: Served, make_token: MakeToken,
                                                                     tmp_path: Path, state: AppState) -> None:
    """A version built by an earlier release has a file without `source`: read_version gives null
    there (its pages say more), not a KeyError."""
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        path = Path(state.stores["local"].path((await content_of(lake, version["id"]))["key"]))
        lines = [json.loads(line) for line in path.read_bytes().splitlines()]
        for line in lines:
            for record in line["annotations"]:
                del record["source"]
        older = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        path.write_bytes(older)
        await DatasetVersion.get_pymongo_collection().update_one({"_id": object_id(version["id"])}, {"$set": {
            "content.size_bytes": len(older), "content.sha256": hashlib.sha256(older).hexdigest()}})
        read = [pair async for pair in lake.read_version(version["id"])]
    assert len(read) == 4 and all(r["source"] is None for _, records in read for r in records)
    assert sum(len(records) for _, records in read) > 0


async def test_a_version_deleted_while_its_pages_are_read_is_not_found(served: Served, make_token: MakeToken,
                                                                       tmp_path: Path) -> None:
    """An exporter reading a version page by page while an ADMIN deletes it stops with NOT_FOUND
    (it was a TypeError and a traceback)."""
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake, \
            Client(served.base_url, await make_token(Role.ADMIN)) as admin:
        version = await make_version(lake, tmp_path / "made")
        with pytest.raises(GraphlakeClientError) as gone:
            async for _ in version_datums(lake, version["id"], datums_per_page=1, query=ops.BUNDLE_DATUMS):
                await admin.execute(DELETE_VERSION, {"id": version["id"]})
        assert gone.value.code == "NOT_FOUND" and "deleted while it was read" in str(gone.value)


async def test_a_deleted_version_takes_its_file_with_it(served: Served, make_token: MakeToken, tmp_path: Path,
                                                       state: AppState) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        path = Path(state.stores["local"].path((await content_of(lake, version["id"]))["key"]))
        assert path.is_file()
    async with Client(served.base_url, await make_token(Role.ADMIN)) as admin:
        assert (await admin.execute(DELETE_VERSION, {"id": version["id"]}))["deleteDatasetVersion"]["deleted"]
    assert not path.exists()


async def test_on_an_s3_mount_the_file_is_read_through_its_signed_url(served: Served, make_token: MakeToken,
                                                                     tmp_path: Path, state: AppState,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.settings, "default_mount", "lab")  # where new versions' files go
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        content = await content_of(lake, version["id"])
        assert content["mount"] == "lab" and content["downloadUrl"].startswith("http")
        name, body = await saved_as(content["downloadUrl"])
        assert name == "parts-v1.jsonl" and hashlib.sha256(body).hexdigest() == content["sha256"]
        fetched = watch_downloads(lake)
        from_file = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
        from_pages = [pair async for pair in version_datums(lake, version["id"])]
        assert len(fetched) == 1 and content["key"] in fetched[0]
        for (file_datum, file_records), (page_datum, page_records) in zip(from_file, from_pages, strict=True):
            page_datum.pop("annotations")
            assert comparable(file_datum) == comparable(page_datum)
            assert comparable(file_records) == comparable(page_records)
    async with Client(served.base_url, await make_token(Role.ADMIN)) as admin:
        await admin.execute(DELETE_VERSION, {"id": version["id"]})
    assert await state.stores["lab"].stat(content["key"]) is None


async def test_a_client_that_does_not_share_the_mount_downloads_the_file(served: Served, make_token: MakeToken,
                                                                        tmp_path: Path) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as maker:
        version = await make_version(maker, tmp_path / "made")
        from_pages = [pair async for pair in version_datums(maker, version["id"])]
    async with Client(served.base_url, await make_token(Role.VIEWER), direct_writes=False) as lake:
        fetched = watch_downloads(lake)
        read = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
        assert len(fetched) == 1 and "/blobs/" in fetched[0]  # the server's signed route for the local mount
        assert [d["id"] for d, _ in read] == [d["id"] for d, _ in from_pages]
        assert sum(len(r) for _, r in read) == sum(len(r) for _, r in from_pages) > 0


async def test_a_reader_that_stops_early_leaves_nothing_running(served: Served, make_token: MakeToken,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_file, "DATUMS_PER_STEP", 1)  # a step per datum: the next is read ahead
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        pages = version_datums(lake, version["id"], from_file=True)
        first, _ = await anext(pages)
        await asyncio.sleep(0)
        [ahead] = [t for t in asyncio.all_tasks() if not t.done() and "_step" in repr(t.get_coro())]
        await pages.aclose()
        await wait_for(ahead.done, what="the step read ahead to end")
        assert ahead.cancelled() and first["asset"] is not None  # dropped, not left to finish


async def test_a_server_without_content_files_is_read_by_pages(served: Served, make_token: MakeToken,
                                                              tmp_path: Path) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        from_pages = [pair async for pair in version_datums(lake, version["id"])]
        execute = lake.execute

        async def older(query: str, variables: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
            if query == ops.VERSION_CONTENT:  # what a server from before content files answers
                raise GraphlakeClientError("Cannot query field 'content' on type 'DatasetVersion'.", "GRAPHQL_VALIDATION_FAILED")
            return await execute(query, variables, *args, **kwargs)

        lake.execute = older  # type: ignore[method-assign]
        read = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
        assert comparable(read) == comparable(from_pages)


async def test_the_command_writes_the_file_of_a_version_built_without_one(served: Served, make_token: MakeToken,
                                                                         tmp_path: Path, state: AppState,
                                                                         settings: Settings) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        built = await content_of(lake, version["id"])
        path = Path(state.stores["local"].path(built["key"]))
        original = path.read_bytes()
        path.unlink()  # as a version from before content files: none stored, none named
        await DatasetVersion.get_pymongo_collection().update_one({"_id": object_id(version["id"])},
                                                                 {"$unset": {"content": ""}})
        assert await content_of(lake, version["id"]) is None

        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
        env.update(GRAPHLAKE_MONGODB_URL=settings.mongodb_url.get_secret_value(), GRAPHLAKE_DATABASE=settings.database,  # type: ignore[union-attr]
                   GRAPHLAKE_DATA_DIR=str(settings.data_dir), COLUMNS="2000")

        def command(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "graphlake", "datasets", "write-content", *args], env=env,
                                  cwd=settings.data_dir, capture_output=True, text=True, timeout=60)

        assert (await asyncio.to_thread(command)).returncode == 2  # neither a version nor --all
        done = await asyncio.to_thread(command, "--all")
        assert done.returncode == 0 and done.stdout.strip() == "wrote 1 content file(s)", done.stderr
        # The same bytes as the build wrote, from the copies the version holds.
        assert await content_of(lake, version["id"]) == {**built, "downloadUrl": ANY}
        assert path.read_bytes() == original
        again = await asyncio.to_thread(command, "parts/v1")  # it has one now: nothing to write
        assert again.returncode == 0 and again.stdout.strip() == "wrote 0 content file(s)"

        # A file damaged since (verify --deep names it) is written again from the copies with --replace.
        path.write_bytes(original.replace(b'"split"', b'"SPLIT"', 1))
        stored = await DatasetVersion.get(object_id(version["id"]))
        assert stored is not None
        checked = await verify(stored, state.stores)
        assert any("its content file" in problem for problem in checked.problems), checked.problems
        assert (await asyncio.to_thread(command, "--all", "--replace")).returncode == 2  # one version at a time
        replaced = await asyncio.to_thread(command, "parts/v1", "--replace")
        assert replaced.returncode == 0 and replaced.stdout.strip() == "wrote 1 content file(s)", replaced.stderr
        assert path.read_bytes() == original and (await verify(stored, state.stores)).ok
        assert await content_of(lake, version["id"]) == {**built, "downloadUrl": ANY}


@pytest.mark.parametrize("failing", ["render", "store"])
async def test_a_file_that_cannot_be_written_leaves_the_version_ready_without_one(
        served: Served, make_token: MakeToken, tmp_path: Path, state: AppState, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, failing: str) -> None:
    def cannot(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    if failing == "render":  # a full temporary directory, say
        monkeypatch.setattr(services_version_content, "datum_line", cannot)
    else:  # the mount refuses it
        async def refused(*_: Any) -> None:
            cannot()
        monkeypatch.setattr(state.stores["local"], "write", refused)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with caplog.at_level(logging.WARNING, logger="graphlake.versions"):
            version = await make_version(lake, tmp_path / "made")  # READY all the same
        assert "exporters will read its pages" in caplog.text
        assert await content_of(lake, version["id"]) is None
        key = services_version_content.content_key(object_id(version["id"]))
        assert not Path(state.stores["local"].path(key)).exists()  # nothing left behind
        assert staged_files(state) == []  # nor half a file beside it
        read = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
        assert len(read) == 4 and sum(len(records) for _, records in read) == 11


async def test_a_version_of_no_datums_has_an_empty_file(served: Served, make_token: MakeToken) -> None:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        dataset = (await lake.execute(ops.CREATE_DATASET_DESCRIBED, {"input": {"name": "empty"}}))["createDataset"]
        version = (await lake.execute(ops.CREATE_VERSION, {"input": {"datasetId": dataset["id"], "version": "v0"}}
                                      ))["createDatasetVersion"]
        content = await content_of(lake, version["id"])
        assert int(content["sizeBytes"]) == 0 and content["sha256"] == hashlib.sha256(b"").hexdigest()
        assert [pair async for pair in version_datums(lake, version["id"], from_file=True)] == []


async def test_a_file_for_a_version_deleted_meanwhile_is_not_kept(state: AppState) -> None:
    gone = ObjectId()  # a version no longer there (or no longer READY) when its file is stored
    writer = services_version_content.ContentWriter(gone, state.stores["local"])
    try:
        assert not await writer.attach()
    finally:
        writer.close()
    assert not Path(state.stores["local"].path(services_version_content.content_key(gone))).exists()
    assert staged_files(state) == []


def staged_files(state: AppState) -> list[Path]:
    """Files of versions being written, left in the local mount's `versions/` folder."""
    return list(state.stores["local"].path("versions/x").parent.glob(f"{STAGED_PREFIX}*"))


async def test_on_a_local_mount_the_file_is_written_in_place_not_in_the_temporary_directory(
        served: Served, make_token: MakeToken, tmp_path: Path, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version's file can be as large as its records: the server's temporary directory (often a
    small tmpfs) never holds it when the file's mount is local. It is written beside its place and
    renamed there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))  # every temporary file fails now
    with pytest.raises(FileNotFoundError):
        tempfile.mkstemp()
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        content = await content_of(lake, version["id"])
        assert content is not None and content["mount"] == "local"
        path = state.stores["local"].path(content["key"])
        assert path.stat().st_size == int(content["sizeBytes"]) > 0
        assert hashlib.sha256(path.read_bytes()).hexdigest() == content["sha256"]
        monkeypatch.undo()  # the client stages what it reads: its own temporary directory, not the server's
        read = [pair async for pair in version_datums(lake, version["id"], from_file=True)]
        assert len(read) == 4 and sum(len(records) for _, records in read) == 11
    assert staged_files(state) == []


async def version_datums_paged(served: Served, token: str, version_id: str) -> AsyncIterator[tuple[dict, list[dict]]]:
    """The version read a page at a time, as a version without a content file is."""
    async with Client(served.base_url, token) as lake:
        async for pair in version_datums(lake, version_id, from_file=False):
            yield pair


async def test_read_version_gives_every_datum_with_its_records_sync_and_async(served: Served, make_token: MakeToken,
                                                                              tmp_path: Path) -> None:
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token) as lake:
        version = await make_version(lake, tmp_path / "made")
        read = [pair async for pair in lake.read_version("parts/v1")]
        by_id = [pair async for pair in lake.read_version(version["id"])]

    def script() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:  # a plain script: blocking calls
        with SyncClient(served.base_url, token) as sync:
            return list(sync.read_version("parts/v1"))

    assert comparable(await asyncio.to_thread(script)) == comparable(read) == comparable(by_id)
    assert [d["split"] for d, _ in read] == ["TRAIN", "TRAIN", "TEST", "TRAIN"]
    assert [len(records) for _, records in read] == [4, 3, 2, 2] and read[0][0]["asset"]["downloadUrl"]
    # Every key its types (graphlake_client.results) promise is there, from the content file as from pages.
    from graphlake_client.results import FileRef, VersionDatum, VersionRecord

    for datum, records in read + [pair async for pair in version_datums_paged(served, token, version["id"])]:
        assert VersionDatum.__required_keys__ <= datum.keys() and FileRef.__required_keys__ <= datum["asset"].keys()
        assert all(VersionRecord.__required_keys__ <= r.keys() for r in records)


async def test_a_file_no_version_names_is_set_aside_a_day_later(state: AppState) -> None:
    """What a build left when its server stopped between storing the file and naming it (or a delete
    that could not remove it) goes the way of the mount's other stray files (reconciler.sweep_stray_copies)."""
    store = state.stores["local"]
    old = utcnow() - STRAY_AFTER - timedelta(hours=1)
    named, unnamed, gone = (ObjectId.from_datetime(old - timedelta(minutes=n)) for n in range(3))
    keys = {v: services_version_content.content_key(v) for v in (named, unnamed, gone)}
    for version_id, content in ((named, {"format": "graphlake-version-content-1", "mount": "local", "key": keys[named],
                                         "size_bytes": 2, "sha256": "0" * 64}), (unnamed, None)):
        await DatasetVersion.get_pymongo_collection().insert_one(
            {"_id": version_id, "dataset_id": ObjectId(), "version": str(version_id), "status": "READY", "content": content})
    paths = {v: Path(store.path(key)) for v, key in keys.items()}
    fresh = Path(store.path(services_version_content.content_key(ObjectId())))  # named by no version, but new
    try:
        for path in [*paths.values(), fresh]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"{}")
            if path is not fresh:
                os.utime(path, (old.timestamp(), old.timestamp()))
        assert await sweep_stray_copies(state.stores) == 2
        assert paths[named].exists() and fresh.exists() and not paths[unnamed].exists() and not paths[gone].exists()
        assert (store.root / STRAY_DIR / keys[gone]).read_bytes() == b"{}"
    finally:
        for path in [*paths.values(), fresh]:
            path.unlink(missing_ok=True)
        store.remove_set_aside(0)


async def test_on_an_s3_mount_a_file_no_version_names_is_set_aside_too(s3: S3Service, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The same sweep on an S3 mount: old objects nothing names are copied under .stray/ and deleted,
    and removed from there later; a mount the sweep cannot list is logged, and the others swept."""
    store = mount_at(s3, "sweep", f"sweep-{ObjectId()}")
    broken = mount_at(s3, "broken", bucket="no-such-bucket")
    await store.open()
    await broken.open()
    try:
        old = utcnow() - timedelta(days=3)
        named, unnamed, late = (ObjectId.from_datetime(old - timedelta(minutes=n)) for n in range(3))
        keys = {v: services_version_content.content_key(v) for v in (named, unnamed, late)}
        await DatasetVersion.get_pymongo_collection().insert_many([
            {"_id": named, "dataset_id": ObjectId(), "version": "named", "status": "READY",
             "content": {"format": "graphlake-version-content-1", "mount": "sweep", "key": keys[named], "size_bytes": 2,
                         "sha256": "0" * 64}},
            {"_id": unnamed, "dataset_id": ObjectId(), "version": "unnamed", "status": "READY"}])
        (tmp_path / "file").write_bytes(b"{}")
        for version_id in (named, unnamed):
            await store.write(keys[version_id], tmp_path / "file")
        # Judged by when it was written too (S3's LastModified, in whole seconds): wait until both are AFTER old.
        await wait_for(lambda: _both_listed(store, [keys[named], keys[unnamed]]), what="the objects AFTER old")
        await store.write(keys[late], tmp_path / "file")  # named by an old id, but just written: kept
        with caplog.at_level(logging.WARNING, logger="graphlake.uploads"), \
                pytest.raises(StrayMountsFailed, match=r"mount\(s\) 'broken' not swept .* 1 file\(s\) of the others set aside"):
            await sweep_stray_copies({"broken": broken, "sweep": store}, after=AFTER)
        assert "mount 'broken' was not swept for stray files" in caplog.text
        assert await store.stat(keys[named]) and await store.stat(keys[late]) and not await store.stat(keys[unnamed])
        # Kept whole, with its SHA-256 stored by S3 (a restore can check it).
        assert await store.stat(f"{STRAY_DIR}/{keys[unnamed]}") == ObjectInfo(size=2, sha256=hashlib.sha256(b"{}").hexdigest())
        assert await store.remove_set_aside(STRAY_KEPT.total_seconds()) == 0  # kept a week
        assert await wait_for(lambda: store.remove_set_aside(0)) == 1
        assert await store.stat(f"{STRAY_DIR}/{keys[unnamed]}") is None
    finally:
        for key in keys.values():
            await store.delete(key)
        await store.close()
        await broken.close()


@pytest.mark.parametrize("held", [1000, 1], ids=["strays-held", "listed-again"])
@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_the_stray_sweep_lists_and_checks_a_mount_a_page_at_a_time(
        backend: str, held: int, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount's folder was listed whole into memory (every key of assets/, then a map of them all),
    daily. It is listed a page at a time, each page checked against the database as it comes; the
    guard against a wrong database still counts the whole folder before anything moves; and the
    strays are moved from memory, or (more than STRAY_HELD) found again by a second listing."""
    from services.uploads import reconciler

    monkeypatch.setattr(reconciler, "STRAY_BATCH", 2)
    monkeypatch.setattr(reconciler, "STRAY_HELD", held)
    monkeypatch.setattr(reconciler, "STRAY_MOST", 3)
    events: list[tuple[str, int]] = []  # pages listed and checked against the database, in order
    named_by_versions = reconciler._named_by_versions

    async def named(by_id: dict[ObjectId, str]) -> set[ObjectId]:
        events.append(("checked", len(by_id)))
        return await named_by_versions(by_id)

    monkeypatch.setattr(reconciler, "_named_by_versions", named)
    if backend == "s3":
        s3: S3Service = request.getfixturevalue("s3")
        store: Any = mount_at(s3, "sweep", f"sweep-{ObjectId()}")
    else:
        store = LocalStore("sweep", tmp_path / "mount", UrlSigner(b"k", "http://x"))
    await store.open()
    listing = store.files_older_than
    if backend == "local":
        def listed(*args: Any) -> Any:
            for page in listing(*args):
                events.append(("listed", len(page)))
                yield page
    else:
        async def listed(*args: Any) -> Any:
            async for page in listing(*args):
                events.append(("listed", len(page)))
                yield page
    monkeypatch.setattr(store, "files_older_than", listed)
    old = utcnow() - timedelta(days=3)
    (tmp_path / "file").write_bytes(b"{}")
    written: list[ObjectId] = []

    async def versions(n: int, *, name: bool) -> list[str]:
        """`n` old content files, each named by its version or not."""
        ids = [ObjectId.from_datetime(old - timedelta(minutes=len(written) + i)) for i in range(n)]
        written.extend(ids)
        keys = [services_version_content.content_key(v) for v in ids]
        if name:
            await DatasetVersion.get_pymongo_collection().insert_many([
                {"_id": v, "dataset_id": ObjectId(), "version": str(v), "status": "READY",
                 "content": {"format": "graphlake-version-content-1", "mount": "sweep", "key": key, "size_bytes": 2,
                             "sha256": "0" * 64}} for v, key in zip(ids, keys, strict=True)])
        for key in keys:
            await store.write(key, tmp_path / "file")
            if backend == "local":
                os.utime(store.path(key), (old.timestamp(), old.timestamp()))
        if backend == "s3":  # judged by when they were written too (LastModified, whole seconds)
            await wait_for(lambda: _both_listed(store, keys), what="the objects AFTER old")
        return keys

    async def kept(keys: list[str]) -> list[bool]:
        return [await store.stat(key) is not None for key in keys]

    try:
        named_keys, stray_keys = await versions(5, name=True), await versions(3, name=False)
        events.clear()
        assert await sweep_stray_copies({"sweep": store}, after=AFTER) == 3
        assert await kept(named_keys) == [True] * 5 and await kept(stray_keys) == [False] * 3
        # Each page checked as it is listed, before the next is: 8 files in pages of 2 (twice: listed again).
        assert events == [("listed", 2), ("checked", 2)] * 4 * (1 if held > 3 else 2), events

        # More strays than STRAY_MOST, and more than half the old files: counted over every page, nothing moves.
        many = await versions(6, name=False)
        assert await sweep_stray_copies({"sweep": store}, after=AFTER) == 0
        assert await kept(named_keys + many) == [True] * 11
    finally:
        if backend == "s3":
            await store.remove_set_aside(0)
            for page in [p async for p in store.files_older_than("versions", 0)]:
                for key in page:
                    await store.delete(key)
        await store.close()


async def _both_listed(store: S3Store, keys: list[str]) -> bool:
    return set(keys) <= {key async for page in store.files_older_than("versions", AFTER.total_seconds()) for key in page}


# Old enough for the S3 sweep test: an object written just before the sweep must be younger when it
# lists them (LastModified is in whole seconds: up to one is lost).
AFTER = timedelta(seconds=3)


async def test_the_maintenance_writes_a_missing_file_and_tries_a_failed_one_a_day_later(
        served: Served, make_token: MakeToken, tmp_path: Path, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version without a file (built before them, or its write failed) gets one from the hourly
    maintenance (snapshots.write_missing_contents), unless its build is still writing it; one whose
    file cannot be written is not tried again before a day has passed."""
    store = state.stores["local"]
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        version = await make_version(lake, tmp_path / "made")
        built = await content_of(lake, version["id"])
    version_id = object_id(version["id"])
    path = Path(store.path(built["key"]))
    original = path.read_bytes()
    path.unlink()
    versions = DatasetVersion.get_pymongo_collection()

    async def without_file(tried: timedelta | None) -> None:
        await versions.update_one({"_id": version_id}, {"$unset": {"content": ""}, "$set": {
            "content_tried_at": None if tried is None else utcnow() - tried}})

    await without_file(timedelta(seconds=5))  # READY a moment ago, its build storing the file now
    assert await write_missing_contents(store, most=20, seconds=60) == 0 and not path.exists()

    writes: list[str] = []

    async def refused(key: str, _: Path) -> None:
        writes.append(key)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write", refused)
    await without_file(CONTENT_RETRY_AFTER + timedelta(minutes=1))  # its build's write failed over a day ago
    assert await write_missing_contents(store, most=20, seconds=60) == 0 and writes == [built["key"]]
    stored = await versions.find_one({"_id": version_id})
    assert stored is not None and "content" not in stored
    assert abs(stored["content_tried_at"].replace(tzinfo=UTC) - utcnow()) < timedelta(seconds=30)
    assert await write_missing_contents(store, most=20, seconds=60) == 0 and len(writes) == 1  # not again today

    monkeypatch.undo()
    await without_file(None)  # built before content files
    assert await write_missing_contents(store, most=0, seconds=60) == 0  # at most that many a round
    assert await write_missing_contents(store, most=20, seconds=60) == 1
    assert path.read_bytes() == original
    async with Client(served.base_url, await make_token(Role.VIEWER)) as lake:
        assert await content_of(lake, version["id"]) == {**built, "downloadUrl": ANY}
