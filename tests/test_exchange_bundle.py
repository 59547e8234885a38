"""Bundles between lakes (#19) against the real server: a version with images, a value, a text, every
annotation kind, two splits, ground-truth and prediction sets, made here; exported, then imported
into an emptied lake (the second lake: the same server after its database is wiped, which is what
another lake is to a bundle: nothing shared but the bytes in the bundle)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from documents.annotation import AnnotationRecord, AnnotationSchema, AnnotationSet
from documents.asset import Asset
from documents.dataset import Dataset, DatasetVersion, Datum
from documents.registry import DOCUMENT_MODELS
from documents.roles import Role
from graphlake.app import create_app
from graphlake.local_services import free_port
from graphlake.settings import S3MountSettings, Settings
from graphlake_client import (
    Client,
    GraphlakeClientError,
    ResumeState,
    SyncClient,
    bundle_assets,
    bundle_import,
    bundle_records,
    debris,
)
from graphlake_client import operations as ops
from graphlake_client.bundle_files import open_reader
from resolvers.context import AppState
from services.node_ids import NodeType, encode_id
from tests.conftest import MakeToken, Served
from tests.operations import Api, document, object_id
from tests.processes import serving
from tests.waiting import LoopTurns

pytestmark = pytest.mark.asyncio

SOURCE_VERSION = """query ($id: ID!) { datasetVersion(id: $id) {
  id manifestSha256 datumCount splitCounts { split count } verification { ok problems } } }"""


def png(seed: int, size: tuple[int, int]) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def mask_png() -> bytes:
    pixels = np.zeros((20, 30), dtype=np.uint8)
    pixels[4:10, 5:20] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


async def make_version(lake: Client, scratch: Path) -> dict[str, Any]:
    """Dataset `parts`, version `v1`: four images (one also a mask), a value and a text in roles, a
    schema, a GROUND_TRUTH and a PREDICTION set, one record of every kind, some verified."""
    scratch.mkdir(parents=True, exist_ok=True)
    for n, size in enumerate([(40, 30), (50, 40), (30, 30), (60, 20)]):
        (scratch / f"img{n}.png").write_bytes(png(n, size))
    (scratch / "mask.png").write_bytes(mask_png())
    files = [(scratch / f"img{n}.png", {"labels": ["raw"], "metadata": {"camera": n}}) for n in range(4)]
    files.append((scratch / "mask.png", {"metadata": {"kind": "mask"}}))
    images = await lake.upload_batch(files)
    value = (await lake.execute(ops.STORE_VALUE, {"input": {"name": "settings", "value": {"gain": 1.5, "runs": [1, 2]},
                                                            "labels": ["config"]}}))["storeValue"]
    text = (await lake.execute(ops.STORE_TEXT, {"input": {"name": "notes", "text": "scratched near the edge ✓",
                                                          "mediaType": "text/markdown"}}))["storeText"]
    splits = ["TRAIN", "TRAIN", "TEST", "TRAIN"]
    inputs = [{"roles": [{"role": "image", "assetId": images[n]["id"]}], "split": splits[n],
               "metadata": {"plate": n, "tags": ["a", "b"], "ratio": 0.25}} for n in range(4)]
    inputs[0]["roles"] += [{"role": "settings", "assetId": value["id"]}, {"role": "notes", "assetId": text["id"]}]
    datums = (await lake.execute(ops.CREATE_DATUMS, {"inputs": inputs}))["createDatums"]
    schema = (await lake.execute(ops.CREATE_SCHEMA, {"input": {
        "name": "defects", "version": 3, "allowScores": True,
        "kinds": ["CLASSIFICATION", "REGRESSION", "BBOX", "ROTATED_BBOX", "POLYGON", "POLYLINE", "KEYPOINTS", "MASK"],
        "labels": [{"name": "scratch", "color": "#ff0000"}, {"name": "dent", "displayName": "Dent"}, {"name": "person"}],
    }}))["createAnnotationSchema"]
    truth = (await lake.execute(ops.CREATE_SET, {"input": {"name": "truth", "purpose": "GROUND_TRUTH", "schemaId": schema["id"],
                                                           "source": {"kind": "HUMAN", "name": "ann"}}}))["createAnnotationSet"]
    guess = (await lake.execute(ops.CREATE_SET, {"input": {"name": "guess", "purpose": "PREDICTION", "schemaId": schema["id"],
                                                           "source": {"kind": "MODEL", "name": "net", "version": "7"}}}))["createAnnotationSet"]

    def on(n: int, **record: Any) -> dict[str, Any]:
        return {"assetId": images[n]["id"], "datumId": datums[n]["id"], **record}

    truth_records = [
        on(0, kind="CLASSIFICATION", label="scratch", attributes={"severity": 2}),
        on(0, kind="REGRESSION", value=3.25),
        on(0, kind="BBOX", label="scratch", geometry={"bbox": {"x": 1, "y": 2.5, "width": 10, "height": 5}}, key="src:7"),
        on(1, kind="ROTATED_BBOX", label="dent", geometry={"rotatedBbox": {"cx": 10, "cy": 10, "width": 4, "height": 2, "angle": 30}}),
        on(1, kind="POLYGON", label="dent", geometry={"polygon": {"points": [{"x": 1, "y": 1}, {"x": 5, "y": 1}, {"x": 3, "y": 4}]}}),
        on(2, kind="POLYLINE", label="scratch", geometry={"polyline": {"points": [{"x": 0, "y": 0}, {"x": 9, "y": 9}]}}),
        on(2, kind="KEYPOINTS", label="person", attributes={"skeleton": [[1, 2]]},
           geometry={"keypoints": {"points": [{"name": "nose", "x": 3, "y": 4, "visible": True}, {"name": "eye", "x": 5, "y": 4}]}}),
        on(3, kind="MASK", label="dent", geometry={"mask": {"assetId": images[4]["id"]}}),
        on(3, kind="BBOX", label="dent", geometry={"bbox": {"x": 1, "y": 2.5, "width": 10, "height": 5}}),  # same as on 0, another datum
    ]
    added = (await lake.execute(ops.ADD_BUNDLE_RECORDS, {"setId": truth["id"], "records": truth_records}))["addAnnotations"]
    await lake.execute(ops.VERIFY_RECORDS, {"ids": added["ids"][:4]})
    await lake.execute(ops.ADD_BUNDLE_RECORDS, {"setId": guess["id"], "records": [
        on(0, kind="BBOX", label="scratch", score=0.9, geometry={"bbox": {"x": 1, "y": 2, "width": 10, "height": 5}}),
        on(1, kind="CLASSIFICATION", label="dent", score=0.4)]})
    dataset = (await lake.execute(ops.CREATE_DATASET_DESCRIBED, {"input": {"name": "parts", "description": "made here"}}))
    version = (await lake.execute(ops.CREATE_VERSION, {"input": {
        "datasetId": dataset["createDataset"]["id"], "version": "v1", "description": "first",
        "addDatums": [d["id"] for d in datums], "addAnnotationSets": [truth["id"], guess["id"]]}}))["createDatasetVersion"]
    return (await lake.execute(SOURCE_VERSION, {"id": version["id"]}))["datasetVersion"]


async def wipe(served: Served) -> None:
    """Another lake: nothing of the first is left in the database (the bundle carries what is needed)."""
    for model in DOCUMENT_MODELS:
        await model.get_pymongo_collection().delete_many({})
    served.app.state.graphlake.tokens.clear()


async def counts() -> dict[str, int]:
    return {model.__name__: await model.get_pymongo_collection().count_documents({})
            for model in (Asset, Datum, AnnotationSchema, AnnotationSet, AnnotationRecord, Dataset, DatasetVersion)}


async def imported_version(lake: Client, report: dict[str, Any]) -> dict[str, Any]:
    return (await lake.execute(SOURCE_VERSION, {"id": report["version_id"]}))["datasetVersion"]


def graphlake(served: Served, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_URL=served.base_url, GRAPHLAKE_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, capture_output=True, text=True, timeout=120)


async def exported(served: Served, make_token: MakeToken, tmp_path: Path, dest: Path) -> dict[str, Any]:
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")
        done = await lake.export_bundle("parts/v1", dest)
    assert done["version"]["manifest_sha256"] == source["manifestSha256"]
    return source


async def test_a_bundle_moves_a_version_to_another_lake_with_the_same_hash(served: Served, make_token: MakeToken,
                                                                          tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "graphlake-bundle" and manifest["version"]["manifest_sha256"] == source["manifestSha256"]
    assert manifest["version"]["splits"] == {"TRAIN": 3, "VALIDATION": 0, "TEST": 1, "UNASSIGNED": 0}
    assert len(manifest["datums"]) == 4 and sum(len(d["records"]) for d in manifest["datums"]) == 11
    assert len(list((bundle / "payloads").iterdir())) == 7  # four images, the mask, the value, the text
    await wipe(served)

    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r2.json")) as lake:
        before = await counts()
        prepared = await lake.import_bundle(bundle, dry_run=True)
        assert await counts() == before  # prepare writes nothing
        assert prepared["assets"]["new"] == 7 and prepared["datums"] == {"new": 4, "present": 0}
        assert prepared["records"]["new"] == 11 and prepared["records"]["to_verify"] == 4
        assert prepared["version_state"] == "new" and not prepared["conflicts"] and not prepared["committed"]

        report = await lake.import_bundle(bundle)
        assert report["committed"]
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"]
        assert version["verification"] == {"ok": True, "problems": []}
        assert version["splitCounts"] == source["splitCounts"]
        after = await counts()
        assert after["Datum"] == 4 and after["AnnotationRecord"] == 11 and after["AnnotationSet"] == 2
        # A record's key travels with it (a rerun of the import then adds it at most once).
        assert [r["key"] for d in manifest["datums"] for r in d["records"] if r.get("key")] == ["src:7"]
        assert await AnnotationRecord.get_pymongo_collection().count_documents({"key": "src:7"}) == 1

        again = await lake.import_bundle(bundle)  # importing twice makes nothing
        assert await counts() == after
        assert again["assets"]["new"] == 0 and again["datums"]["new"] == 0 and again["records"]["new"] == 0
        assert again["version_state"] == "present" and again["version_id"] == report["version_id"]


async def test_a_bundle_imported_into_its_own_lake_makes_nothing(served: Served, make_token: MakeToken,
                                                                tmp_path: Path) -> None:
    """The version is there, with the bundle's hash: no file is uploaded again (the copy policy
    finds only its own earlier uploads) and no datum is made that no version would hold."""
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    before = await counts()
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        dry = await lake.import_bundle(bundle, dry_run=True)  # says what the commit will do: nothing
        report = await lake.import_bundle(bundle)
    assert await counts() == before and dry == report
    assert report["version_state"] == "present" and report["same_hash"] and not report["committed"]
    assert report["version_id"] == source["id"] and report["assets"] == {"new": 0, "present": 7, "new_bytes": 0}
    assert report["datums"]["new"] == 0 and report["records"]["new"] == 0


async def test_the_sync_client_exports_and_prepares_a_bundle(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")

    def script() -> tuple[dict[str, Any], dict[str, Any]]:  # a plain script: blocking calls
        with SyncClient(served.base_url, token) as lake:
            done = lake.export_bundle("parts/v1", tmp_path / "bundle.tar")
            return done, lake.import_bundle(tmp_path / "bundle.tar", dry_run=True, policy="copy-if-missing")

    done, prepared = await asyncio.to_thread(script)
    assert done["version"]["manifest_sha256"] == source["manifestSha256"]
    # Into the lake it came from: everything is there already (files too, reused by copy-if-missing).
    assert prepared["version_state"] == "present" and prepared["assets"]["new"] == 0 and not prepared["committed"]


class Interrupted(Exception):
    """A crash, at a chosen step of an import."""


def crash_at(prefix: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        if line.startswith(prefix):
            raise Interrupted(line)
    return say


async def test_an_export_cut_short_is_finished_by_a_rerun(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    whole = {p.name: p.read_bytes() for p in (bundle / "payloads").iterdir()}
    # As a crash leaves it: no manifest yet, one payload missing, one half-written at its full size.
    (bundle / "manifest.json").unlink()
    names = sorted(whole)
    (bundle / "payloads" / names[0]).unlink()
    (bundle / "payloads" / names[1]).write_bytes(bytes(len(whole[names[1]])))
    async with Client(served.base_url, await make_token(Role.VIEWER)) as reader:  # reading is enough to export
        await reader.export_bundle("parts/v1", bundle)
    assert {p.name: p.read_bytes() for p in (bundle / "payloads").iterdir()} == whole
    assert json.loads((bundle / "manifest.json").read_text())["format"] == "graphlake-bundle"


async def test_an_interrupted_import_is_finished_by_a_rerun(served: Served, make_token: MakeToken, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    monkeypatch.setattr(bundle_assets, "UPLOAD_BATCH", 2)
    monkeypatch.setattr(bundle_records, "RECORD_BATCH", 3)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        with pytest.raises(Interrupted):  # after two of the five files
            await lake.import_bundle(bundle, say=crash_at("uploaded 2 of"))
        assert (await counts())["Asset"] == 2
        with pytest.raises(Interrupted):  # after three of the nine ground-truth records
            await lake.import_bundle(bundle, say=crash_at("added 3 of"))
        half = await counts()
        assert half["Asset"] == 7 and half["Datum"] == 4 and half["AnnotationRecord"] == 3 and half["DatasetVersion"] == 0
        prepared = await lake.import_bundle(bundle, dry_run=True)
        assert prepared["assets"] == {"new": 0, "present": 7, "new_bytes": 0}
        assert prepared["records"]["present"] == 3 and prepared["records"]["new"] == 8

        report = await lake.import_bundle(bundle)
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"]
        done = await counts()
        assert done["Asset"] == 7 and done["AnnotationRecord"] == 11 and done["Datum"] == 4


async def test_copy_if_missing_reuses_what_the_lake_holds(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        # The target lake holds two of the images already, under other names, in no collection.
        held = await lake.upload_batch([(tmp_path / "made" / "img0.png", {"name": "mine0.png"}),
                                        (tmp_path / "made" / "img1.png", {"name": "mine1.png"})])
        for policy, new, present in (("copy", 7, 0), ("copy-if-missing", 5, 2)):
            prepared = await lake.import_bundle(bundle, policy=policy, dry_run=True)
            assert (prepared["assets"]["new"], prepared["assets"]["present"]) == (new, present), policy
        report = await lake.import_bundle(bundle, policy="copy-if-missing")
        assert (await counts())["Asset"] == 2 + 5  # the two held are used, not uploaded again
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"]
        roles = {d.roles[0].asset_id for d in await Datum.find_all().to_list()}
        assert {object_id(a["id"]) for a in held} <= roles


@pytest.mark.parametrize("way", ["uploaded", "server-ingest", "tar", "s3-mount"])
async def test_a_tampered_payload_is_refused_naming_the_file(served: Served, make_token: MakeToken, tmp_path: Path,
                                                             way: str, settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """(Written into the local mount from a directory, copied in by the server from where it lies,
    written from a tar's members, or PUT to an S3 mount through signed URLs.) A dry run hashes every payload a commit would read, and refuses a tampered one before anything
    is written. A commit reads each payload once, as it is stored: the lake refuses a file whose
    bytes are not the manifest's SHA-256 (it keeps nothing of it), the import names the payload and
    stops before any datum, record or version, and the files stored before it are whole, as the
    bundle names them, and are not sent again by the rerun that finishes the job. A payload missing
    is refused before anything is written."""
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    manifest = json.loads((bundle / "manifest.json").read_text())
    victim = next(a["payload"]["path"] for a in manifest["assets"].values() if a["kind"] == "FILE")
    whole = (bundle / victim).read_bytes()
    data = bytearray(whole)
    data[-1] ^= 1  # same size, other bytes
    (bundle / victim).write_bytes(bytes(data))
    if way == "server-ingest":
        monkeypatch.setattr(settings, "ingest_roots", [tmp_path])
    if way == "s3-mount":
        monkeypatch.setattr(settings, "default_mount", "lab")

    def src() -> Path:
        if way != "tar":
            return bundle
        tarred(bundle, tmp_path / "bundle.tar")
        return tmp_path / "bundle.tar"

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        before = await counts()
        said: list[str] = []
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_bundle(src(), dry_run=True, say=said.append)
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == victim
        assert f"{victim}: {len(whole)} bytes with SHA-256 {hashlib.sha256(data).hexdigest()}" in str(refused.value)
        assert await counts() == before and "checking 7 payloads" in said

        said.clear()
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_bundle(src(), say=said.append)
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == victim
        assert f"{victim}: {len(whole)} bytes with SHA-256 {hashlib.sha256(data).hexdigest()}; the manifest says" \
            in str(refused.value)
        assert "checking 7 payloads are there, of their size" in said  # not hashed before the upload
        after = await counts()
        assert {k: v for k, v in after.items() if k != "Asset"} == {k: v for k, v in before.items() if k != "Asset"}
        active = await Asset.get_pymongo_collection().find({"status": "ACTIVE"}).to_list()
        files = {a["sha256"] for a in manifest["assets"].values() if a["kind"] == "FILE"}
        failed = await Asset.get_pymongo_collection().count_documents({"status": "FAILED"})
        pending = await Asset.get_pymongo_collection().count_documents({"status": "PENDING"})
        if way == "server-ingest":  # the server refuses the call's files (here all) whole, before writing anything
            assert not active and not failed and not pending
        else:  # the others, whole; none of its bytes: its upload marked FAILED once read back, or its PUT refused
            assert {a["sha256"] for a in active} == files - {victim.rsplit("/", 1)[-1]}
            assert (failed, pending) == ((0, 1) if way == "s3-mount" else (1, 0))

        (bundle / victim).unlink()
        with pytest.raises(GraphlakeClientError, match=f"{victim}: missing from the bundle"):
            await lake.import_bundle(src())
        assert await counts() == after

        (bundle / victim).write_bytes(whole)  # mended
        said.clear()
        report = await lake.import_bundle(src(), say=said.append)
        # Its file, the value and the text (stored after the files): those stored before are found, not sent again.
        assert f"checking {7 if way == 'server-ingest' else 3} payloads are there, of their size" in said
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"]


async def test_a_tampered_value_or_text_is_refused_before_it_is_stored(served: Served, make_token: MakeToken,
                                                                      tmp_path: Path) -> None:
    """Values and texts are stored as the lake computes their digest, so a commit hashes their payloads
    itself (they are small) before storing them: a tampered one is named, and nothing of it is kept."""
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    manifest = json.loads((bundle / "manifest.json").read_text())
    text = next(a["payload"]["path"] for a in manifest["assets"].values() if a["kind"] == "TEXT")
    (bundle / text).write_bytes((bundle / text).read_bytes().replace(b"edge", b"EDGE"))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_bundle(bundle)
    assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == text and "the manifest says" in str(refused.value)
    assert await Asset.get_pymongo_collection().count_documents({"kind": "TEXT"}) == 0
    assert await Datum.get_pymongo_collection().count_documents({}) == 0


async def test_only_the_payloads_a_commit_reads_are_checked(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A payload of an asset the lake holds already is never read, so it is not hashed either: a
    rerun of a large import hashes only what is still missing. What it would read is still checked."""
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    payload_of = {a["name"]: a["payload"]["path"] for a in manifest["assets"].values()}
    await wipe(served)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        # The lake holds img0 already; img1's payload in the bundle is damaged.
        await lake.upload_batch([(tmp_path / "made" / "img0.png", {"name": "mine0.png"})])
        held, damaged = bundle / payload_of["img0.png"], bundle / payload_of["img1.png"]
        assert hashlib.sha256(held.read_bytes()).hexdigest() == held.name  # the one the lake holds, checked below
        damaged.write_bytes(damaged.read_bytes()[:-1])
        said: list[str] = []
        with pytest.raises(GraphlakeClientError, match=f"{payload_of['img1.png']}: .* the manifest says") as refused:
            await lake.import_bundle(bundle, policy="copy-if-missing", say=said.append)
        assert refused.value.code == "BAD_USER_INPUT" and (await counts())["Asset"] == 1
        assert len(set(payload_of.values())) == 7 and "checking 6 payloads are there, of their size" in said  # all but img0's
        assert not any(line.startswith("checked") for line in said)  # a check that refused says so, not "checked"
        shutil.copyfile(tmp_path / "made" / "img1.png", damaged)  # mended
        held.write_bytes(b"not read")  # the lake's own copy is what the version names
        report = await lake.import_bundle(bundle, policy="copy-if-missing", say=said.append)
        assert "checked 6 payloads: each is there, of its size (its SHA-256 is checked as it is stored)" in said
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"]


def tarred(bundle: Path, tar: Path, mode: str = "w") -> None:
    """The bundle directory's files, as a tar (`mode` "w:gz": a .tar.gz), named as in the directory."""
    with tarfile.open(tar, mode) as out:
        for file in sorted(p for p in bundle.rglob("*") if p.is_file()):
            out.add(file, arcname=str(file.relative_to(bundle)))


def every_payload(manifest: dict[str, Any]) -> set[str]:
    return {a["payload"]["path"] for a in manifest["assets"].values() if a["payload"]}


async def test_the_payload_check_leaves_the_event_loop_free(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """Prepare hashes the payloads a commit reads, in threads: the bundle mutations run the import inside the
    server's process, whose other requests must go on meanwhile (a loop busy hashing would not tick)."""
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    tarred(bundle, tmp_path / "bundle.tar")
    async with LoopTurns() as turns:
        for src in (bundle, tmp_path / "bundle.tar"):  # read side by side, and one at a time from a tar
            with open_reader(src) as reader:
                manifest = reader.manifest()
                before = turns.count
                await bundle_import._check_payloads(reader, manifest, every_payload(manifest), lambda _: None, 4)
                assert turns.count > before, src
            victim = next(a["payload"] for a in manifest["assets"].values() if a["kind"] == "FILE")
            with open_reader(src) as reader:  # still checked: a payload unlike its entry is named
                with pytest.raises(GraphlakeClientError, match=victim["path"]):
                    await bundle_import._check_payloads(
                        reader, {**manifest, "assets": {"x": {"kind": "FILE", "sha256": "0" * 64,
                                                              "payload": {**victim, "sha256": "0" * 64}}}},
                        {victim["path"]}, lambda _: None, 4)


async def test_reading_a_tar_bundle_leaves_the_event_loop_free(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A tar's manifest (its last member: the whole tar is read to find it, a .tar.gz decompressed) and
    the files a commit uploads (extracted from it) are read in threads, as the payload check is: the
    server imports bundles on its mounts in its own process (a gzip bomb held its loop 2.6 s)."""
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    tarred(bundle, tmp_path / "bundle.tar.gz", "w:gz")
    async with LoopTurns() as turns:
        before = turns.count
        reader, manifest = await bundle_import._opened(tmp_path / "bundle.tar.gz", False)
        assert turns.count > before and manifest["format"] == "graphlake-bundle"
        with reader:
            paths = sorted(every_payload(manifest))
            before = turns.count
            async with bundle_assets._in_threads(reader.files(paths)) as local:
                assert turns.count > before
                assert all(local[path].read_bytes() == (bundle / path).read_bytes() for path in paths)
            assert not any(local[path].exists() for path in paths)  # extracted into a scratch directory, removed


async def test_a_declared_digest_is_checked_by_the_lake(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """An import declares each payload's SHA-256 from the manifest instead of hashing the file again:
    the lake checks the bytes it stores against it, so a file changed after prepare checked it fails
    (its asset FAILED), and a right one is stored with that digest."""
    file = tmp_path / "part.bin"
    file.write_bytes(os.urandom(4096))
    right = hashlib.sha256(file.read_bytes()).hexdigest()
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.upload_batch([(file, {"name": "wrong", "sha256": "0" * 64})])
        assert f"part.bin: sha256: declared {'0' * 64}, stored {right}." in str(refused.value)
        [stored] = await lake.upload_batch([(file, {"name": "right", "sha256": right})])
        assert stored["status"] == "ACTIVE" and stored["sha256"] == right
    failed = await Asset.find_one({"name": "wrong"})
    assert failed is not None and failed.status.value == "FAILED"


async def test_a_bad_manifest_is_refused_naming_the_field(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    good = json.loads((bundle / "manifest.json").read_text())
    cases = [({**good, "format_version": 99}, "format_version"),
             ({**good, "format": "zip"}, "format"),
             ({**good, "datums": [{**good["datums"][0], "split": "SOMETIMES"}]}, "datums[0].split"),
             ({**good, "datums": [{**good["datums"][0], "roles": [{"role": "image", "asset": "nope"}]}]}, "datums[0].roles[0].asset")]
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        for manifest, field in cases:
            (bundle / "manifest.json").write_text(json.dumps(manifest))
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.import_bundle(bundle, dry_run=True)
            assert refused.value.field == field and field in str(refused.value)


async def test_an_entry_removed_from_the_manifest_is_refused_before_anything_is_written(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A datum or a record taken out of the manifest left every reference whole: prepare reported the
    bundle `new`, and the commit wrote everything before the version's hash said it differed. The
    manifest's counts (datums, splits, records by set) name what is missing first."""
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    good = json.loads((bundle / "manifest.json").read_text())
    with_records = next(n for n, d in enumerate(good["datums"]) if d["records"])
    fewer_records = json.loads(json.dumps(good))
    dropped = fewer_records["datums"][with_records]["records"].pop(0)
    cases = [({**good, "datums": good["datums"][1:]}, "version.datum_count"),
             ({**good, "version": {**good["version"], "datum_count": None}, "datums": good["datums"][1:]},
              f"version.splits.{good['datums'][0]['split']}"),
             (fewer_records, f"version.record_counts.{dropped['set']}")]
    before = await counts()
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        for manifest, field in cases:
            (bundle / "manifest.json").write_text(json.dumps(manifest))
            for dry_run in (True, False):
                with pytest.raises(GraphlakeClientError) as refused:
                    await lake.import_bundle(bundle, dry_run=dry_run)
                assert refused.value.field == field and "an entry was removed" in str(refused.value), str(refused.value)
        assert await counts() == before
        (bundle / "manifest.json").write_text(json.dumps(good))
        report = await lake.import_bundle(bundle)
    assert report["committed"] and report["same_hash"]


async def test_a_manifest_edited_after_its_export_leaves_no_version(served: Served, make_token: MakeToken,
                                                                     tmp_path: Path) -> None:
    """A datum's metadata changed in the manifest, its counts whole: the lake built the version, found
    afterwards that it hashed otherwise, and kept it READY under the bundle's name (a rerun then met it
    as a conflict only an admin could delete). The build now expects the source's hash, and one that
    hashes otherwise is refused and kept by no one: the rerun refuses the same way, and the true
    bundle then imports."""
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    good = json.loads((bundle / "manifest.json").read_text())
    edited = json.loads(json.dumps(good))
    edited["datums"][0]["metadata"]["plate"] = 99
    (bundle / "manifest.json").write_text(json.dumps(edited))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        for _ in range(2):
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.import_bundle(bundle)
            assert refused.value.code == "INTEGRITY" and refused.value.field == "manifest.json"
            assert source["manifestSha256"] in str(refused.value) and "was not made" in str(refused.value)
            assert await DatasetVersion.get_pymongo_collection().count_documents({}) == 0
        (bundle / "manifest.json").write_text(json.dumps(good))
        report = await lake.import_bundle(bundle)
        assert report["committed"] and report["same_hash"]
        with pytest.raises(GraphlakeClientError) as malformed:  # the input's own check
            await lake.execute(ops.CREATE_VERSION, {"input": {"datasetId": (await lake.execute(ops.DATASET, {"name": "parts"}))["dataset"]["id"],
                                                              "version": "v9", "expectedManifestSha256": "abc"}})
        assert malformed.value.code == "BAD_USER_INPUT" and malformed.value.field == "expectedManifestSha256"


async def test_an_existing_version_with_other_content_conflicts(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"]["manifest_sha256"] = "0" * 64  # as if the lake's parts/v1 were another version
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        before = await counts()
        prepared = await lake.import_bundle(bundle, dry_run=True)
        assert prepared["version_state"] == "conflict" and "parts/v1 exists" in prepared["conflicts"][0]
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_bundle(bundle)
        assert refused.value.code == "CONFLICT"
        assert await counts() == before


async def test_a_bundle_whose_version_name_is_taken_goes_into_another_dataset(served: Served, make_token: MakeToken,
                                                                               tmp_path: Path) -> None:
    """The lake has its own parts/v1: the conflict says how to import anyway, and `dataset=` (the
    command's --dataset) does, the version hashing as the source's (the name is not in its hash)."""
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    await wipe(served)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        await lake.create_dataset_version("parts", "v1")  # another parts/v1: no datums at all
        prepared = await lake.import_bundle(bundle, dry_run=True)
        assert prepared["version_state"] == "conflict" and "--dataset NAME" in prepared["conflicts"][0]
        with pytest.raises(GraphlakeClientError) as blank:
            await lake.import_bundle(bundle, dataset=" ")
        assert (blank.value.code, blank.value.field) == ("BAD_USER_INPUT", "dataset")
        report = await lake.import_bundle(bundle, dataset="parts-from-a")
        assert report["committed"] and report["same_hash"] and report["dataset"] == "parts-from-a"
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"]
        # Into a third dataset: its files are copied again (copy policy), its records land in the same
        # sets, whose keys the second import holds on other datums. The commit failed there on a
        # record key, after writing files and datums, where the dry run had seen no conflict.
        keyed = [r for d in json.loads((bundle / "manifest.json").read_text())["datums"] for r in d["records"] if r.get("key")]
        assert keyed, "the bundle's records carry no keys: this checks nothing"
        again = await lake.import_bundle(bundle, dataset="parts-again")
        assert again["committed"] and again["same_hash"], again
        assert (await imported_version(lake, again))["verification"]["ok"]
        rerun = await lake.import_bundle(bundle, dataset="parts-again")
        assert not rerun["committed"] and rerun["records"]["new"] == 0


async def test_the_reference_policy_says_why_a_local_bundle_cannot_be_referenced(served: Served, make_token: MakeToken,
                                                                                tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_bundle(bundle, policy="reference", dry_run=True)
    assert refused.value.field == "policy" and "cannot be referenced" in str(refused.value)


async def test_a_tar_bundle_through_the_command(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")
    tar = tmp_path / "out" / "parts-v1.tar"
    done = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", str(tar))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["payloads"] == 7
    with tarfile.open(tar) as opened:
        names = opened.getnames()
    assert names[-1] == "manifest.json" and sum(n.startswith("payloads/") for n in names) == 7
    assert not [p for p in tar.parent.iterdir() if p != tar]  # no partial file left

    await wipe(served)
    token = await make_token(Role.CONTRIBUTOR)
    before = await counts()
    # A copy that did not finish: tarfile's ReadError came out as a traceback.
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar.read_bytes()[:tar.stat().st_size // 2])
    refused = await asyncio.to_thread(graphlake, served, token, "import", "bundle", str(cut), "--dry-run")
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "the tar is cut short or damaged" in said and "Traceback" not in said, said
    dry = await asyncio.to_thread(graphlake, served, token, "import", "bundle", str(tar), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["datums"]["new"] == 4 and await counts() == before
    first = await asyncio.to_thread(graphlake, served, token, "import", "bundle", str(tar))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    async with Client(served.base_url, token) as lake:
        version = await imported_version(lake, report)
    assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"]
    after = await counts()
    second = await asyncio.to_thread(graphlake, served, token, "import", "bundle", str(tar))
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["version_state"] == "present" and await counts() == after

    bad = await asyncio.to_thread(graphlake, served, token, "import", "bundle", str(tar), "--policy", "sideways")
    assert bad.returncode == 1 and "policy must be one of" in bad.stderr


async def test_the_mutations_import_a_bundle_on_a_mount(served: Served, make_token: MakeToken, tmp_path: Path,
                                                        api: Api, state: AppState) -> None:
    bundle = tmp_path / "bundle"
    source = await exported(served, make_token, tmp_path, bundle)
    files = [p for p in bundle.rglob("*") if p.is_file()]
    local = state.stores["local"]
    shutil.copytree(bundle, local.root / "bundles" / "b1")  # type: ignore[attr-defined]
    for file in files:  # the same bundle on the S3 mount, under a prefix, and as a tar
        await state.stores["lab"].write(f"bundles/b1/{file.relative_to(bundle)}", file)
    tarred(bundle, tmp_path / "b1.tar")
    await state.stores["lab"].write("bundles/b1.tar", tmp_path / "b1.tar")
    # An object the manifest names nowhere: not staged (the server copies only the manifest and its payloads).
    await state.stores["lab"].write("bundles/b1/notes.bin", tmp_path / "b1.tar")
    await state.stores["lab"].write("bundles/loose/payloads/x", tmp_path / "b1.tar")  # no manifest.json at all

    for mount, path in (("local", "bundles/b1"), ("lab", "bundles/b1"), ("lab", "bundles/b1.tar")):
        await wipe(served)
        token = await make_token(Role.CONTRIBUTOR)
        where = {"path": path, **({"mount": mount} if mount != "local" else {})}
        before = await counts()
        prepared = (await api.data("PrepareBundleImport", {"input": where}, token=token))["prepareBundleImport"]
        assert await counts() == before, mount
        assert prepared["datums"] == {"new": 4, "present": 0} and prepared["records"] == {"new": 11, "present": 0}
        assert prepared["versionState"] == "new" and prepared["version"] is None and not prepared["committed"]

        done = (await api.data("CommitBundleImport", {"input": where}, token=token))["commitBundleImport"]
        assert done["committed"] and done["version"]["manifestSha256"] == source["manifestSha256"], mount
        assert done["version"]["verification"] == {"ok": True, "problems": []}
        after = await counts()
        again = (await api.data("CommitBundleImport", {"input": where}, token=token))["commitBundleImport"]
        assert not again["committed"] and again["versionState"] == "present" and again["datums"]["new"] == 0
        assert again["version"]["id"] == done["version"]["id"] and await counts() == after

    # Reference: the files stay on the S3 mount, registered as EXTERNAL (the mask is copied: it must be an image).
    await wipe(served)
    token = await make_token(Role.CONTRIBUTOR)
    where = {"path": "bundles/b1", "mount": "lab", "policy": "REFERENCE"}
    done = (await api.data("CommitBundleImport", {"input": where}, token=token))["commitBundleImport"]
    assert done["committed"] and done["sameHash"] is False  # EXTERNAL assets are named by URI in the hash
    assert done["version"]["verification"] == {"ok": True, "problems": []}
    kinds = sorted(a["kind"] for a in await Asset.get_pymongo_collection().find({}, {"kind": 1}).to_list())
    assert kinds == ["EXTERNAL"] * 4 + ["FILE", "TEXT", "VALUE"]
    assert {a["name"] for a in await Asset.get_pymongo_collection().find({"kind": "EXTERNAL"}).to_list()} == \
        {f"img{n}.png" for n in range(4)}
    after = await counts()
    again = (await api.data("CommitBundleImport", {"input": where}, token=token))["commitBundleImport"]
    assert not again["committed"] and again["versionState"] == "present" and await counts() == after
    local_reference = await api.run("PrepareBundleImport", {"input": {**where, "mount": None}}, token=token)
    assert local_reference["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.policy"}

    refused = await api.run("PrepareBundleImport", {"input": {"path": "../outside"}}, token=token)
    assert refused["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.path"}
    for mount in (None, "lab"):
        for path in ("bundles/none", "bundles/none.tar"):
            missing = await api.run("CommitBundleImport", {"input": {"path": path, "mount": mount}}, token=token)
            assert missing["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "input.path"}, (mount, path)
    # A prefix without a manifest is refused before anything under it is copied to the server.
    loose = await api.run("PrepareBundleImport", {"input": {"path": "bundles/loose", "mount": "lab"}}, token=token)
    assert loose["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "input.path"}
    assert "(no manifest.json)" in loose["errors"][0]["message"]
    # Every control character, DEL and C1 too (`ord(c) < 32` let them through: NOT_FOUND on the mount).
    for path in ("a\u0000b", "a\u001fb", "a\u007fb", "a\u0085b", "a\u009bb"):
        control = await api.run("PrepareBundleImport", {"input": {"path": path}}, token=token)
        assert control["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.path"}, path
        assert "control character" in control["errors"][0]["message"], path
    # An image: the lake holds none of them as a file (they were registered in place just before),
    # so the commit reads its payload (one of an asset the lake holds is not read: tested below).
    image = next(a for a in json.loads((bundle / "manifest.json").read_text())["assets"].values() if a["name"] == "img0.png")
    tampered = local.root / "bundles" / "b1" / image["payload"]["path"]  # type: ignore[attr-defined]
    tampered.write_bytes(tampered.read_bytes() + b"!")
    bad = await api.run("CommitBundleImport", {"input": {"path": "bundles/b1"}}, token=token)
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.path"}
    assert f"{tampered.name}: {tampered.stat().st_size} bytes; the manifest says" in bad["errors"][0]["message"]
    data = bytearray(tampered.read_bytes()[:-1])
    data[0] ^= 1  # its size again, other bytes: refused by the lake as it stores it, and named (into another dataset)
    tampered.write_bytes(bytes(data))
    bad = await api.run("CommitBundleImport", {"input": {"path": "bundles/b1", "dataset": "parts-again"}}, token=token)
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.path"}, bad
    assert f"{tampered.name}: {len(data)} bytes with SHA-256 {hashlib.sha256(data).hexdigest()}" in bad["errors"][0]["message"]
    (local.root / "bundles" / "b1" / "manifest.json").write_text("{}")  # type: ignore[attr-defined]
    bad = await api.run("PrepareBundleImport", {"input": {"path": "bundles/b1"}}, token=token)
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.path"}
    assert "manifest.json: format:" in bad["errors"][0]["message"] and str(local.root) not in bad["errors"][0]["message"]  # type: ignore[attr-defined]


async def test_a_bundle_on_a_mount_may_not_hold_links(served: Served, make_token: MakeToken, tmp_path: Path,
                                                      api: Api, state: AppState, settings: Settings) -> None:
    """The server reads a bundle on its mount for the caller: a payload that is a symbolic link, lies
    under a linked directory, or is a hard link, once copied whatever it led to into the lake (the
    server's signing key, for anyone who could write into the mount). Each is refused, nothing stored."""
    bundle = tmp_path / "bundle"
    await exported(served, make_token, tmp_path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    image = next(a for a in manifest["assets"].values() if a["name"] == "img0.png")["payload"]["path"]
    local = state.stores["local"]
    secret = settings.data_dir / "not-for-callers.bin"
    secret.write_bytes((bundle / image).read_bytes())  # the same bytes: the digest check alone would pass
    root = local.root / "bundles"  # type: ignore[attr-defined]

    def linked(name: str, link: Callable[[Path], None]) -> str:
        shutil.copytree(bundle, root / name)
        link(root / name / image)
        return f"bundles/{name}"

    def symlink(payload: Path) -> None:
        payload.unlink()
        payload.symlink_to(secret)

    def hard_link(payload: Path) -> None:
        payload.unlink()
        os.link(secret, payload)

    def linked_directory(payload: Path) -> None:
        elsewhere = tmp_path / "elsewhere"
        shutil.copytree(payload.parent, elsewhere)
        shutil.rmtree(payload.parent)
        payload.parent.symlink_to(elsewhere)

    def fifo(payload: Path) -> None:  # opened blocking, it would hold the server until a writer came
        payload.unlink()
        os.mkfifo(payload)

    # A FIFO as the bundle itself: its open held the import's request slot until a writer came, and a
    # few such imports (one per slot) stopped the server answering anyone.
    root.mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / "pipe.tar")
    for path in (linked("symlink", symlink), linked("hard", hard_link), linked("dir", linked_directory),
                 linked("fifo", fifo), "bundles/pipe.tar"):
        await wipe(served)
        token = await make_token(Role.CONTRIBUTOR)
        before = await counts()
        for operation in ("PrepareBundleImport", "CommitBundleImport"):
            refused = await api.run(operation, {"input": {"path": path}}, token=token)
            [error] = refused["errors"]
            assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.path"}, (path, error)
            assert str(settings.data_dir) not in error["message"]
            said = {"fifo": "missing from the bundle", ".tar": "not a readable tar (not a regular file)"}
            assert said.get(path[-4:], "not a file of the bundle's own") in error["message"], error["message"]
        assert await counts() == before, path


async def test_the_command_has_the_server_import_a_bundle_on_its_mount(served: Served, make_token: MakeToken,
                                                                      tmp_path: Path, state: AppState) -> None:
    on_mount = state.stores["local"].root / "bundles" / "cli"  # type: ignore[attr-defined]
    source = await exported(served, make_token, tmp_path, on_mount)  # exported straight into the server's mount
    await wipe(served)
    token = await make_token(Role.CONTRIBUTOR)
    before = await counts()
    dry = await asyncio.to_thread(graphlake, served, token, "import", "bundle", "bundles/cli", "--mount", "local", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["datums"] == {"new": 4, "present": 0} and await counts() == before
    done = await asyncio.to_thread(graphlake, served, token, "import", "bundle", "bundles/cli", "--mount", "local",
                                   "--policy", "copy-if-missing")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["committed"] and report["same_hash"] and report["policy"] == "copy-if-missing"
    assert report["manifest_sha256"] == source["manifestSha256"] and report["version_id"] is not None
    # The shape a bundle imported through this machine gives, key for key.
    local = tmp_path / "local-copy"
    shutil.copytree(on_mount, local)
    await wipe(served)
    here = await asyncio.to_thread(graphlake, served, await make_token(Role.CONTRIBUTOR), "import", "bundle", str(local))
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout).keys() == report.keys()
    assert json.loads(here.stdout)["assets"].keys() == report["assets"].keys()

    lost = await asyncio.to_thread(graphlake, served, token, "import", "bundle", "bundles/cli")  # not here: on the mount
    assert lost.returncode == 2 and "no such file or directory" in lost.stderr


async def test_a_server_side_import_reaches_a_store_whose_public_address_it_cannot(
        served: Served, make_token: MakeToken, tmp_path: Path, state: AppState, settings: Settings) -> None:
    """In a compose network the URLs an S3 mount signs for clients name its public address, which the
    server itself may not reach: the importer it runs in process sends them to the mount's
    endpoint_url instead, with the Host header they were signed for."""
    on_mount = state.stores["local"].root / "bundles" / "public"  # type: ignore[attr-defined]
    source = await exported(served, make_token, tmp_path, on_mount)
    await wipe(served)
    lab = settings.mounts["lab"]
    assert isinstance(lab, S3MountSettings)
    unreachable = lab.model_copy(update={"public_endpoint_url": "http://public.invalid:9"})  # .invalid never resolves
    elsewhere = settings.model_copy(update={"mounts": {**settings.mounts, "lab": unreachable}, "default_mount": "lab",
                                            "port": free_port()})
    token = await make_token(Role.CONTRIBUTOR)
    async with serving(create_app(elsewhere), elsewhere.port) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        answer = (await http.post("/graphql", json={"query": document("CommitBundleImport"), "operationName":
                                                    "CommitBundleImport", "variables": {"input": {"path": "bundles/public", "mount": "local"}}},
                                  headers={"Authorization": f"Bearer {token}"})).json()
        assert not answer.get("errors"), answer
        done = answer["data"]["commitBundleImport"]
        assert done["committed"] and done["version"]["manifestSha256"] == source["manifestSha256"]
        assert done["version"]["verification"] == {"ok": True, "problems": []}
        # What a client outside is handed names the public address.
        files = await Asset.get_pymongo_collection().find({"kind": "FILE", "storage.mount": "lab"}).to_list()
        assert files  # uploaded to the S3 mount through the rewritten URLs
        url = (await http.post("/graphql", json={"query": "query ($id: ID!) { asset(id: $id) { downloadUrl } }",
                                                 "variables": {"id": encode_id(NodeType.ASSET, files[0]["_id"])}},
                               headers={"Authorization": f"Bearer {token}"})).json()["data"]["asset"]["downloadUrl"]
        assert url.startswith("http://public.invalid:9/")


# --- Export into a DEST it cannot write, or that holds something else

FetchCount = list[str]


def counting_fetches(monkeypatch: pytest.MonkeyPatch) -> FetchCount:
    """The names of the files the client downloads from now on."""
    fetched: FetchCount = []
    real = Client._fetch

    async def fetch(self: Client, found: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        fetched.append(found["name"])
        await real(self, found, *args, **kwargs)

    monkeypatch.setattr(Client, "_fetch", fetch)
    return fetched


async def test_an_export_into_a_dest_it_cannot_write_is_one_line_before_any_download(
        served: Served, make_token: MakeToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    (tmp_path / "dir.tar").mkdir()
    # A file as a directory DEST, a directory as a .tar DEST, a folder under a file: a traceback each.
    for dest, said in [(notes, "not a directory"), (tmp_path / "dir.tar", "a directory, but a DEST ending in .tar"),
                       (notes / "out.tar", "File exists")]:  # the OSError, said as other commands say one
        done = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", str(dest))
        line = " ".join(done.stderr.split())
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert line.startswith("error:") and said in line and str(tmp_path) in line, line
    assert notes.read_text() == "mine" and not list((tmp_path / "dir.tar").iterdir())
    # ...and refused before the first download (the .tar directory was found at the final rename).
    fetched = counting_fetches(monkeypatch)
    async with Client(served.base_url, token) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.export_bundle("parts/v1", tmp_path / "dir.tar")
    assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == "dest" and fetched == []


async def test_a_failed_export_stops_its_other_downloads_before_it_raises(
        served: Served, make_token: MakeToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page's downloads ran under a bare gather: one failing raised at once, and the others went
    on writing into DEST (or into the aborted writer's scratch) after the export had said it failed."""
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
    real = Client._fetch

    async def fetch(self: Client, found: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if found["name"] == "img1.png":
            raise GraphlakeClientError("the download of 'img1.png' is not the stored file", "INTEGRITY", retry=False)
        await asyncio.sleep(0.5)  # bigger files: still going when img1.png fails
        await real(self, found, *args, **kwargs)

    monkeypatch.setattr(Client, "_fetch", fetch)
    bundle = tmp_path / "bundle"
    async with Client(served.base_url, await make_token(Role.VIEWER)) as lake:
        with pytest.raises(GraphlakeClientError, match=r"img1\.png"):
            await lake.export_bundle("parts/v1", bundle)
        running = [t for t in asyncio.all_tasks() if "_write_assets" in repr(t.get_coro())]
        after_raise = sorted(p.name for p in (bundle / "payloads").iterdir())
        await asyncio.sleep(1)
    assert running == []
    assert sorted(p.name for p in (bundle / "payloads").iterdir()) == after_raise
    assert not [n for n in after_raise if n.startswith(".")]  # no temporary left by a download cut short


async def test_an_export_failing_mid_page_leaves_no_coroutine_unawaited(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A page's downloads were made as coroutines before its other assets were checked: a FAILED
    asset after an image left the image's never awaited (a RuntimeWarning after the error line)."""
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
    await Asset.get_pymongo_collection().update_one({"name": "notes"}, {"$set": {"status": "FAILED"}})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        async with Client(served.base_url, await make_token(Role.VIEWER)) as lake:
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.export_bundle("parts/v1", tmp_path / "bundle")
        said = (refused.value.code, str(refused.value))
        del refused  # its traceback holds the export's frames, and so what they made: collected now
        gc.collect()
    assert said[0] == "CONFLICT" and "FAILED" in said[1]
    assert not [w for w in seen if "never awaited" in str(w.message)]


async def make_v2(lake: Client, v1: dict[str, Any], manifest: dict[str, Any]) -> None:
    """`parts/v2`: v1's first datum alone (its image, the value and the text), from v1's bundle `manifest`."""
    found = (await lake.execute("query ($id: ID!) { datasetVersion(id: $id) { dataset { id } } }",
                                {"id": v1["id"]}))["datasetVersion"]
    await lake.execute(ops.CREATE_VERSION, {"input": {"datasetId": found["dataset"]["id"], "version": "v2", "parentId": v1["id"],
                                                      "removeDatums": [d["ref"] for d in manifest["datums"][1:]]}})


async def test_a_dest_holding_something_else_is_refused_unless_replaced(
        served: Served, make_token: MakeToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")
        bundle = tmp_path / "bundle"
        await lake.export_bundle("parts/v1", bundle)
        await make_v2(lake, source, json.loads((bundle / "manifest.json").read_text()))
    project = tmp_path / "project"
    project.mkdir()
    (project / "manifest.json").write_text('{"my": "own project manifest"}')
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    tar = tmp_path / "holiday.tar"
    tar.write_bytes(b"precious")
    fetched = counting_fetches(monkeypatch)
    async with Client(served.base_url, token) as lake:
        await lake.export_bundle("parts/v1", bundle)  # its own bundle, whole: done again, not refused
        for dest, held in [(project, "manifest.json: not a bundle's manifest"), (other, "notes.txt"),
                           (tar, "a file of that name"), (bundle, "the bundle of another version (parts/v1)")]:
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.export_bundle("parts/v2" if dest == bundle else "parts/v1", dest)
            assert refused.value.code == "CONFLICT" and refused.value.field == "dest", dest
            assert str(dest) in str(refused.value) and held in str(refused.value) and "--replace" in str(refused.value)
    assert fetched == []  # refused before any download
    assert (project / "manifest.json").read_text() == '{"my": "own project manifest"}' and not (project / "payloads").exists()
    assert tar.read_bytes() == b"precious" and len(list((bundle / "payloads").iterdir())) == 7

    # --replace: the other version's bundle is written over, and its payloads this one does not name go.
    done = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v2", str(bundle), "--replace")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["version"]["name"] == "v2" and json.loads(done.stdout)["payloads"] == 3  # img0, the value, the text
    assert {f"payloads/{p.name}" for p in (bundle / "payloads").iterdir()} == every_payload(manifest)
    done = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", str(tar), "--replace")
    assert done.returncode == 0, done.stderr
    with tarfile.open(tar) as opened:
        assert opened.getnames()[-1] == "manifest.json"
    refused_cli = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", str(project))
    assert refused_cli.returncode == 1 and "(CONFLICT)" in refused_cli.stderr and "Traceback" not in refused_cli.stderr

    # payloads/ a link to a folder other bundles share: never written through, even with --replace (whose
    # sweep of the payloads the manifest does not name removed the shared folder's files).
    shared = tmp_path / "shared-payloads"
    shared.mkdir()
    (shared / ("0" * 64)).write_bytes(b"another bundle's")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "payloads").symlink_to(shared)
    for replace in ([], ["--replace"]):
        refused_link = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", str(linked), *replace)
        assert refused_link.returncode == 1 and "(CONFLICT)" in refused_link.stderr and "is a link" in refused_link.stderr
    assert [p.name for p in shared.iterdir()] == ["0" * 64]


def dead_scratch(folder: Path) -> Path:
    """A scratch folder as a killed export leaves it (kill -9: nothing holds it), with a whole file on its way, a while ago."""
    dead = folder / ".graphlake-scratch-dead_000"
    dead.mkdir(parents=True)
    (dead / ".held").touch()
    (dead / f".download-{'0' * 16}").write_bytes(b"x" * 1000)
    then = time.time() - 2 * debris.GRACE_SECONDS
    for path in [*dead.iterdir(), dead]:
        os.utime(path, (then, then))
    return dead


async def test_a_tar_exports_scratch_lies_beside_it_and_a_killed_ones_is_swept(
        served: Served, make_token: MakeToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tar's members were downloaded into $TMPDIR/graphlake-bundle-*, which only finish or abort
    removed: each kill -9 left up to `concurrency` whole files there that no rerun ever swept."""
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
    out = tmp_path / "out"
    dead = dead_scratch(out)
    targets: list[Path] = []
    real = Client._fetch

    async def fetch(self: Client, found: dict[str, Any], target: Path, *args: Any, **kwargs: Any) -> None:
        targets.append(target)
        await real(self, found, target, *args, **kwargs)

    monkeypatch.setattr(Client, "_fetch", fetch)
    async with Client(served.base_url, await make_token(Role.VIEWER)) as lake:
        await lake.export_bundle("parts/v1", out / "parts.tar")
    assert len(targets) == 5 and {t.parent.parent for t in targets} == {out}
    assert debris.SCRATCH.fullmatch(targets[0].parent.name) and not dead.exists()
    assert [p.name for p in out.iterdir()] == ["parts.tar"]  # its own scratch gone too
