"""Bundles at an s3:// prefix (#19) against the real server and the MinIO the tests run: the client
writes and reads them with boto3's own credential chain (AWS_* variables here), not the lake's.
Exported to a bucket of their own, imported into an emptied lake with the same hash, and imported
under the reference policy, its files registered in place as EXTERNAL assets of the lake's S3 mount."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import pytest

from documents.asset import Asset
from documents.dataset import Datum
from documents.roles import Role
from graphlake_client import Client, GraphlakeClientError, ResumeState
from graphlake_client.bundle_export import export_bundle
from tests.conftest import MakeToken, S3Service, Served
from tests.test_exchange_bundle import (
    counting_fetches,
    counts,
    dead_scratch,
    every_payload,
    graphlake,
    imported_version,
    make_v2,
    make_version,
    wipe,
)

pytestmark = pytest.mark.asyncio

BUCKET = "graphlake-bundles"


@pytest.fixture
def bundles(s3: S3Service, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh prefix in a bucket of bundles, and boto3's standard variables pointing at MinIO."""
    client = s3.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"


def objects(s3: S3Service, prefix: str) -> dict[str, dict]:
    """The objects under the prefix, by their path in the bundle."""
    base = prefix.removeprefix(f"s3://{BUCKET}/") + "/"
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=base)
    return {o["Key"][len(base):]: o for o in listed.get("Contents", [])}


async def test_a_bundle_goes_to_an_s3_prefix_and_comes_back_with_the_same_hash(
        served: Served, make_token: MakeToken, tmp_path: Path, s3: S3Service, bundles: str) -> None:
    url = f"{bundles}/parts-v1"
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")
        done = await lake.export_bundle("parts/v1", url)
        assert done["payloads"] == 7 and done["dest"] == url
        stored = objects(s3, url)
        assert sorted(k for k in stored if not k.startswith("payloads/")) == ["manifest.json"]
        assert sum(k.startswith("payloads/") for k in stored) == 7
        head = s3.client().head_object(Bucket=BUCKET, Key=stored[next(k for k in stored if k.startswith("payloads/"))]["Key"])
        assert head["Metadata"]["sha256"] == head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-sha256"]
        # A rerun finds every file there whole (by size and the SHA-256 its upload recorded): none is sent again
        # (the value and the text come in the answer and are simply put again).
        before = {k: o["LastModified"] for k, o in stored.items() if k.startswith("payloads/")}
        await lake.export_bundle("parts/v1", url)
        now = {k: o["LastModified"] for k, o in objects(s3, url).items() if k.startswith("payloads/")}
        assert now.keys() == before.keys() and sum(now[k] == before[k] for k in now) == 5
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=stored["manifest.json"]["Key"])["Body"].read())
    assert manifest["version"]["manifest_sha256"] == source["manifestSha256"]

    await wipe(served)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        before_counts = await counts()
        prepared = await lake.import_bundle(url, dry_run=True)
        assert await counts() == before_counts
        assert prepared["assets"]["new"] == 7 and prepared["datums"] == {"new": 4, "present": 0}
        report = await lake.import_bundle(url)
        assert report["committed"] and report["same_hash"]
        version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"]
        assert version["verification"] == {"ok": True, "problems": []}
        after = await counts()
        again = await lake.import_bundle(url)
        assert await counts() == after and again["version_state"] == "present" and again["datums"]["new"] == 0

        with pytest.raises(GraphlakeClientError) as missing:
            await lake.import_bundle(f"{bundles}/nothing-here", dry_run=True)
        assert "no manifest.json" in str(missing.value)


async def test_the_command_writes_a_tar_to_s3_and_reads_it_back(served: Served, make_token: MakeToken, tmp_path: Path,
                                                                 s3: S3Service, bundles: str) -> None:
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")
    for url in (f"{bundles}/cli", f"{bundles}/cli.tar"):
        done = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["payloads"] == 7
    tar = s3.client().head_object(Bucket=BUCKET, Key=f"{bundles.removeprefix(f's3://{BUCKET}/')}/cli.tar")
    assert tar["ContentLength"] > 0

    for url in (f"{bundles}/cli", f"{bundles}/cli.tar"):
        await wipe(served)
        token = await make_token(Role.CONTRIBUTOR)
        first = await asyncio.to_thread(graphlake, served, token, "import", "bundle", url)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        async with Client(served.base_url, token) as lake:
            version = await imported_version(lake, report)
        assert version["manifestSha256"] == source["manifestSha256"] and version["verification"]["ok"], url


async def test_the_reference_policy_registers_an_s3_bundles_files_in_place(
        served: Served, make_token: MakeToken, tmp_path: Path, s3: S3Service, bundles: str) -> None:
    url = f"{bundles}/parts-v1"
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        source = await make_version(lake, tmp_path / "made")
        await lake.export_bundle("parts/v1", url)
        await lake.export_bundle("parts/v1", f"{url}.tar")
    await wipe(served)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r2.json")) as lake:
        prepared = await lake.import_bundle(url, policy="reference", dry_run=True)
        assert prepared["datums"]["new"] == 4 and not prepared["conflicts"]
        report = await lake.import_bundle(url, policy="reference")  # the lake's only S3 mount, "lab", reads the bucket
        assert report["committed"] and report["same_hash"] is False  # EXTERNAL assets are named by URI in the hash
        version = await imported_version(lake, report)
        assert version["verification"] == {"ok": True, "problems": []} and version["manifestSha256"] != source["manifestSha256"]
        externals = await Asset.get_pymongo_collection().find({"kind": "EXTERNAL"}).to_list()
        assert {a["name"] for a in externals} == {f"img{n}.png" for n in range(4)}
        assert {a["storage"]["mount"] for a in externals} == {"lab"}
        assert all(a["storage"]["key"].startswith(url.removeprefix(f"s3://{BUCKET}/") + "/payloads/") for a in externals)
        kinds = sorted(a["kind"] for a in await Asset.get_pymongo_collection().find({}, {"kind": 1}).to_list())
        assert kinds == ["EXTERNAL"] * 4 + ["FILE", "TEXT", "VALUE"]  # the mask is copied: it must be an image
        after = await counts()
        again = await lake.import_bundle(url, policy="reference")
        assert again["version_state"] == "present" and await counts() == after

        with pytest.raises(GraphlakeClientError) as wrong:
            await lake.import_bundle(url, policy="reference", mount="nowhere")
        # Said before anything is read, though the version is here already (nothing would be imported).
        assert "must name an s3 mount" in str(wrong.value) and wrong.value.field == "mount"
        with pytest.raises(GraphlakeClientError) as tar:  # a tar's members are no objects of their own
            await lake.import_bundle(f"{url}.tar", policy="reference", dry_run=True)
        assert tar.value.field == "policy" and "cannot be referenced" in str(tar.value)


async def test_a_tampered_or_missing_object_of_an_s3_bundle_is_named(served: Served, make_token: MakeToken, tmp_path: Path,
                                                                     s3: S3Service, bundles: str) -> None:
    """An S3 bundle's payloads are looked at (HEAD) before a commit writes anything, and each file is
    hashed once, by the lake as it stores it: an object put again with other bytes of its size is named
    as a dry run names it, and one deleted is refused before anything is written."""
    url = f"{bundles}/parts-v1"
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
        await lake.export_bundle("parts/v1", url)
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=objects(s3, url)["manifest.json"]["Key"])["Body"].read())
    victim = next(a["payload"] for a in manifest["assets"].values() if a["kind"] == "FILE")
    key = objects(s3, url)[victim["path"]]["Key"]
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"x" * victim["size"])
    await wipe(served)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        for dry_run in (True, False):
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.import_bundle(url, dry_run=dry_run)
            assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == victim["path"], dry_run
            assert f"{victim['size']} bytes with SHA-256" in str(refused.value) and "the manifest says" in str(refused.value)
        assert await Datum.get_pymongo_collection().count_documents({}) == 0
        s3.client().delete_object(Bucket=BUCKET, Key=key)
        before = await counts()
        with pytest.raises(GraphlakeClientError, match=f"{victim['path']}: missing from the bundle"):
            await lake.import_bundle(url)
        assert await counts() == before


async def test_an_s3_dest_that_cannot_be_written_is_said_before_any_download(
        served: Served, make_token: MakeToken, tmp_path: Path, s3: S3Service, bundles: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or a store not reached came out as botocore's traceback, and a refusal (a wrong
    secret, answered 403 to the HEAD of a payload, as a writer without s3:ListBucket is answered for a
    missing key) was found only once the file was downloaded: the prefix is written to first."""
    token = await make_token(Role.CONTRIBUTOR)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
    url = f"{bundles}/parts-v1"

    fetched = counting_fetches(monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries of a store not there: seconds for nothing here
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    unreachable = {"AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    nothing = str(tmp_path / "none")
    cases = [("no credentials", {"AWS_SECRET_ACCESS_KEY": None, "AWS_ACCESS_KEY_ID": None, "AWS_SHARED_CREDENTIALS_FILE": nothing,
                                 "AWS_CONFIG_FILE": nothing}, "BAD_USER_INPUT", "no S3 credentials"),
             ("wrong secret", {"AWS_SECRET_ACCESS_KEY": "wrong"}, "BAD_USER_INPUT", "the S3 store refused"),
             ("unreachable", unreachable, "UNAVAILABLE", "cannot be reached")]
    for case, env, code, said in cases:
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.delenv(name) if value is None else patched.setenv(name, value)
            async with Client(served.base_url, token) as lake:
                with pytest.raises(GraphlakeClientError) as refused:
                    await lake.export_bundle("parts/v1", url)
            assert (refused.value.code, refused.value.field) == (code, "dest"), (case, refused.value)
            assert said in str(refused.value) and url in str(refused.value), case
            if case == "no credentials":  # and through the command: one line, no traceback, no coroutine left unawaited
                done = await asyncio.to_thread(graphlake, served, token, "export", "bundle", "parts/v1", url)
                assert done.returncode == 1 and done.stderr.strip().startswith("error:"), done.stderr
                assert "Traceback" not in done.stderr and "never awaited" not in done.stderr, done.stderr
    assert fetched == []


async def test_another_versions_bundle_at_an_s3_prefix_is_refused_unless_replaced(
        served: Served, make_token: MakeToken, tmp_path: Path, s3: S3Service, bundles: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{bundles}/parts"
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        v1 = await make_version(lake, tmp_path / "made")
        await lake.export_bundle("parts/v1", url)
        await lake.export_bundle("parts/v1", f"{url}.tar")
        first = json.loads(s3.client().get_object(Bucket=BUCKET, Key=objects(s3, url)["manifest.json"]["Key"])["Body"].read())
        await make_v2(lake, v1, first)
        fetched = counting_fetches(monkeypatch)
        await lake.export_bundle("parts/v1", url)  # its own bundle: done again (nothing downloaded twice), not refused
        assert fetched == []
        for dest, held in [(url, "the bundle of another version (parts/v1)"), (f"{url}.tar", "an object of that name")]:
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.export_bundle("parts/v2", dest)
            assert refused.value.code == "CONFLICT" and refused.value.field == "dest" and held in str(refused.value), dest
        assert fetched == [] and len([k for k in objects(s3, url) if k.startswith("payloads/")]) == 7

        done = await export_bundle(lake, "parts/v2", url, replace=True)
    assert done["payloads"] == 3
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=objects(s3, url)["manifest.json"]["Key"])["Body"].read())
    assert manifest["version"]["name"] == "v2"
    assert {k for k in objects(s3, url) if k != "manifest.json"} == every_payload(manifest)  # v1's other images are gone


async def test_a_killed_s3_exports_scratch_is_swept_by_the_next(
        served: Served, make_token: MakeToken, tmp_path: Path, s3: S3Service, bundles: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3 export's files on their way lie in $TMPDIR, where a kill -9 left them for good."""
    temp = tmp_path / "temp"
    dead = dead_scratch(temp)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await make_version(lake, tmp_path / "made")
        await lake.export_bundle("parts/v1", f"{bundles}/parts")
    assert not dead.exists() and list(temp.iterdir()) == []
