"""The Python client and the upload/download commands, against the running test server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from documents.asset import Asset as AssetDocument
from graphlake.app import create_app
from graphlake.settings import Settings
from graphlake_client import Client, GraphlakeClientError, ResumeState, ServerUnreachable, UploadsFailed
from graphlake_client import operations as ops
from resolvers.context import AppState
from tests.conftest import Served
from tests.operations import Api, object_id
from tests.processes import serving
from tests.waiting import wait_for

MIB = 1024 * 1024


class FlakyStore(httpx.AsyncHTTPTransport):
    """Counts PUTs to the store, and fails those whose URL (or body) matches, a set number of times."""

    def __init__(self, fail_when: str = "", failures: int = 0, status: int | None = None,
                 fail_body: bytes | None = None) -> None:
        super().__init__()
        self.fail_when, self.failures, self.status, self.fail_body = fail_when, failures, status, fail_body
        self.puts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.puts.append(str(request.url))
            # The client streams its bodies: read here (and kept for the send) only when the body decides.
            body = await request.aread() if self.fail_body is not None else None
            matches = self.fail_when in str(request.url) and self.fail_body in (None, body)
            if matches and self.failures > 0:
                self.failures -= 1
                if self.status:
                    return httpx.Response(self.status, request=request)
                raise httpx.ConnectError("simulated network failure", request=request)
        return await super().handle_async_request(request)


class FlakyGets(httpx.AsyncHTTPTransport):
    """Answers the first `failures` GETs with 503."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures, self.gets = failures, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets += 1
            if self.failures > 0:
                self.failures -= 1
                return httpx.Response(503, request=request)
        return await super().handle_async_request(request)


class LostAnswers(httpx.AsyncHTTPTransport):
    """Lets GraphQL requests containing `operation` reach the server and run, then loses their
    answers (a timeout, as when a proxy gives up on a long completion), a set number of times."""

    def __init__(self, operation: str, losses: int) -> None:
        super().__init__()
        self.operation, self.losses, self.sent = operation.encode(), losses, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if self.operation in request.content:
            self.sent += 1
            if self.losses > 0:
                self.losses -= 1
                await response.aread()  # the server has answered: the request ran
                await response.aclose()
                raise httpx.ReadTimeout("simulated: the answer never arrived", request=request)
        return response


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "run-42"
    for relative, body in {
        "images/cam1/0001.png": b"png-1", "images/cam2/0001.png": b"png-2", "notes.txt": b"hello",
        "cache/tmp.bin": b"junk", "debug.log": b"log", ".gitignore": b"*.log\n",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(body)
    return root


def client(served: Served, token: str, tmp_path: Path, **options: object) -> Client:
    if "storage_transport" in options:  # a test of the HTTP path: no direct writes, though the mount is shared here
        options.setdefault("direct_writes", False)
    return Client(served.base_url, token, resume=ResumeState(tmp_path / "resume.json"), **options)


async def test_directory_upload_keeps_paths_and_honours_ignores(served: Served, api: Api, contributor: str,
                                                                 tree: Path, tmp_path: Path) -> None:
    manifest = {"notes.txt": {"description": "operator notes", "metadata": {"shift": "night"}, "labels": ["notes"]}}
    async with client(served, contributor, tmp_path) as lake:
        assets = await lake.upload_paths([tree], collection="run-42", ignore=["cache/"], manifest=manifest)
    assert sorted(a["name"] for a in assets) == [".gitignore", "0001.png", "0001.png", "notes.txt"]
    assert all(a["status"] == "ACTIVE" for a in assets)
    collections = (await api.data("Collections", {"nameContains": "run-42"}, token=contributor))["collections"]["edges"]
    coll_id = collections[0]["node"]["id"]
    items = (await api.data("Collection", {"id": coll_id}, token=contributor))["collection"]["items"]["edges"]
    assert sorted(e["node"]["path"] for e in items) == [".gitignore", "images/cam1/0001.png", "images/cam2/0001.png", "notes.txt"]
    notes = next(a for a in assets if a["name"] == "notes.txt")
    stored = (await api.data("Asset", {"id": notes["id"]}, token=contributor))["asset"]
    assert stored["description"] == "operator notes" and stored["metadata"] == {"shift": "night"} and stored["labels"] == ["notes"]
    assert stored["mediaType"] == "text/plain" and stored["sha256"] == hashlib.sha256(b"hello").hexdigest()


    # The same directory again, one file changed: only that one goes up; the rest are recognised.
    (tree / "notes.txt").write_text("hello again")
    async with client(served, contributor, tmp_path) as lake:
        again = await lake.upload_paths([tree], collection="run-42", ignore=["cache/"], manifest=manifest)
    unchanged = sorted(a["id"] for a in again if a.get("unchanged"))
    assert unchanged == sorted(a["id"] for a in assets if a["name"] != "notes.txt")
    (renewed,) = [a for a in again if not a.get("unchanged")]
    assert renewed["name"] == "notes.txt" and renewed["id"] != notes["id"]
    assert renewed["sha256"] == hashlib.sha256(b"hello again").hexdigest()


async def test_big_files_are_hashed_while_they_upload(served: Served, contributor: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of LATE_HASH_BYTES or more are created without a digest, hashed while their bytes go
    out, and the digest given at completion, on both paths a file takes (alone, and in a batch);
    smaller ones still declare it up front."""
    from documents.upload import UploadSession
    from graphlake_client import uploads as uploads_module

    monkeypatch.setattr(uploads_module, "LATE_HASH_BYTES", 1000)
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(5000))
    small.write_bytes(os.urandom(999))
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (big, small)}
    sent: list[dict] = []  # the variables of every GraphQL call
    async with client(served, contributor, tmp_path, storage_transport=FlakyStore()) as lake:  # over HTTP
        post = lake._post  # every attempt at every GraphQL call passes here

        async def recording(query: str, variables: dict | None = None) -> dict:
            sent.append(variables or {})
            return await post(query, variables)

        monkeypatch.setattr(lake, "_post", recording)
        alone = await lake.upload_file(big)
        batch = await lake.upload_paths([big, small])
    for asset, path in ((alone, big), (batch[0], big), (batch[1], small)):
        assert asset["status"] == "ACTIVE" and asset["sha256"] == digests[path]
    created = [v["input"] for v in sent if "input" in v] + [i for v in sent for i in v.get("inputs", [])]
    assert [c.get("sha256") for c in created] == [None, None, digests[small]]  # big: none declared up front
    completed = [v for v in sent if "sha256" in v or "sha256s" in v]
    assert completed[0]["sha256"] == digests[big] and completed[1]["sha256s"] == [digests[big], None]
    assert {s.sha256 for s in await UploadSession.find_all().to_list()} == set(digests.values())


async def test_directory_as_one_archive(served: Served, contributor: str, tree: Path, tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as lake:
        [archive] = await lake.upload_paths([tree], as_archive=True, ignore=["cache/"])
        assert archive["name"] == "run-42.zip" and archive["mediaType"] == "application/zip"
        saved = await lake.download(archive["id"], tmp_path)
    with zipfile.ZipFile(saved) as z:
        assert sorted(z.namelist()) == [".gitignore", "images/cam1/0001.png", "images/cam2/0001.png", "notes.txt"]


async def test_interrupted_multipart_upload_resumes(served: Served, contributor: str, settings: Settings,
                                                    tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(17 * MIB))
    settings.multipart_threshold_bytes = MIB
    try:
        failing = FlakyStore(fail_when="part=2", failures=99)
        with pytest.raises(ServerUnreachable) as unreachable:  # was httpx's own ConnectError
            async with client(served, contributor, tmp_path, retries=0, storage_transport=failing) as lake:
                await lake.upload_file(big)
        assert len(failing.puts) == 3  # parts 1 and 3 went through, 2 failed
        assert (unreachable.value.code, unreachable.value.field) == ("UNAVAILABLE", "uploadUrl")

        counting = FlakyStore()
        async with client(served, contributor, tmp_path, storage_transport=counting) as lake:
            asset = await lake.upload_file(big)
    finally:
        settings.multipart_threshold_bytes = 64 * MIB
    assert len(counting.puts) == 1 and "part=2" in counting.puts[0]  # only the missing part
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "resume.json").read_text()) == {}  # forgotten once complete


async def test_a_rerun_asking_for_something_else_starts_a_new_upload(
        served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    """The resume key was the file alone: after an interrupted upload named for project A, one of
    the same file named for project B, into B's collection, resumed A's session and came back as
    A's asset (A's name and metadata, in no collection). Now it starts anew; and asking for A
    again still resumes A's session."""
    data = tmp_path / "scan.bin"
    data.write_bytes(os.urandom(3000))
    interrupted = FlakyStore(fail_when="/blobs/", failures=99)
    with pytest.raises(ServerUnreachable):
        async with client(served, contributor, tmp_path, retries=0, storage_transport=interrupted) as lake:
            await lake.store_file(data, name="for-project-A", metadata={"project": "A"})
    [entry] = json.loads((tmp_path / "resume.json").read_text()).values()  # A's session, open
    left = entry["id"]
    # Kept while the session can be resumed (its expiresAt: the server's default lifetime here), for its file.
    assert entry["file"] == str(data) and abs(entry["expires"] - time.time() - 86_400) < 60

    async with client(served, contributor, tmp_path, storage_transport=FlakyStore()) as lake:
        b = await lake.store_file(data, name="for-project-B", metadata={"project": "B"}, collection="proj-B")
        assert (b["name"], b["metadata"]) == ("for-project-B", {"project": "B"})
        [collection] = (await api.data("Collections", {"nameContains": "proj-B"}, token=contributor))["collections"]["edges"]
        items = (await api.data("Collection", {"id": collection["node"]["id"]}, token=contributor))["collection"]["items"]
        assert [e["node"]["path"] for e in items["edges"]] == ["for-project-B"]
        assert [entry["id"] for entry in json.loads((tmp_path / "resume.json").read_text()).values()] == [left]  # A's kept for A

        a = await lake.store_file(data, name="for-project-A", metadata={"project": "A"})
    assert (a["name"], a["metadata"]) == ("for-project-A", {"project": "A"}) and a["id"] != b["id"]
    assert a["status"] == b["status"] == "ACTIVE"
    assert json.loads((tmp_path / "resume.json").read_text()) == {}
    session = (await api.data("UploadSession", {"id": left}, token=contributor))["uploadSession"]
    assert session["status"] == "COMPLETED"  # A's own session resumed, not a third one


@pytest.mark.parametrize("mount", [None, "lab"])  # the local mount's /blobs route, and MinIO's signed PUT
async def test_a_put_streams_its_file_instead_of_holding_it(served: Served, contributor: str, tmp_path: Path,
                                                             mount: str | None) -> None:
    """Each PUT read its whole byte range into memory: 4 x 64 MiB at once by default, 4 x whatever
    an operator raises the multipart threshold to. Now it holds a chunk at a time (the client's, and
    the in-process server's, allocations together stay far under the one PUT's size), with the
    exact Content-Length a signed S3 PUT needs, and the stored bytes are the file's."""
    size = 60 * MIB  # under the 64 MiB threshold: one PUT of it all (the server holds some 10 MiB meanwhile)
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    async with client(served, contributor, tmp_path, storage_transport=FlakyStore()) as lake:  # over HTTP
        tracemalloc.start()
        try:
            asset = await lake.upload_file(big, mount=mount)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert asset["status"] == "ACTIVE" and asset["sizeBytes"] == size and asset["sha256"] == digest
    assert peak < size // 4, f"{peak / MIB:.1f} MiB held at once for a PUT of {size // MIB} MiB"


async def stored_named(api: Api, token: str, name: str) -> list[dict]:
    edges = (await api.data("Assets", {"filter": {"nameContains": name}, "first": 10}, token=token))["assets"]["edges"]
    return [e["node"] for e in edges]


async def test_a_completion_whose_answer_was_lost_is_not_reported_failed(
        served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    """The server completed the upload but the answer never came: asking again gets CONFLICT
    (completed), and the client returns the asset instead of failing; alone and in a batch."""
    data = tmp_path / "lost-answer.csv"
    data.write_text("a,b\n1,2\n")
    other = tmp_path / "lost-answer-2.csv"
    other.write_text("c\n3\n")
    lost = LostAnswers("completeUpload(input", losses=1)
    async with client(served, contributor, tmp_path, graphql_transport=lost) as lake:
        lake.backoff_seconds = 0.01
        asset = await lake.upload_file(data)
    assert lost.sent == 2 and asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()

    lost = LostAnswers("completeUploads(", losses=1)
    async with client(served, contributor, tmp_path, graphql_transport=lost) as lake:
        lake.backoff_seconds = 0.01
        batch = await lake.upload_paths([data, other])
    assert lost.sent == 2 and [a["name"] for a in batch] == ["lost-answer.csv", "lost-answer-2.csv"]
    assert all(a["status"] == "ACTIVE" for a in batch)
    stored = await stored_named(api, contributor, "lost-answer")
    assert sorted(a["id"] for a in stored) == sorted([asset["id"], *(a["id"] for a in batch)])  # nothing twice
    assert json.loads((tmp_path / "resume.json").read_text()) == {}


async def test_a_rerun_after_a_lost_completion_answer_sends_nothing_again(
        served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    """A run that died without the completion's answer leaves its session in the resume state;
    the rerun finds it completed and returns its asset: no second PUT, no second asset."""
    data = tmp_path / "checkpoint.bin"
    data.write_bytes(os.urandom(3000))
    lost = LostAnswers("completeUpload(input", losses=99)
    with pytest.raises(ServerUnreachable, match=r"^no answer from .* \(the request may have run\): simulated"):
        async with client(served, contributor, tmp_path, graphql_transport=lost, retries=0) as lake:
            await lake.upload_file(data)
    assert len(json.loads((tmp_path / "resume.json").read_text())) == 1

    store = FlakyStore()
    async with client(served, contributor, tmp_path, storage_transport=store) as lake:
        asset = await lake.upload_file(data)
    [stored] = await stored_named(api, contributor, "checkpoint.bin")
    assert store.puts == [] and asset["id"] == stored["id"] and asset["status"] == "ACTIVE"
    assert json.loads((tmp_path / "resume.json").read_text()) == {}


async def test_the_client_waits_while_another_request_completes_the_upload(
        served: Served, contributor: str, tmp_path: Path) -> None:
    """CONFLICT while the session is still open: a completion is under way elsewhere (reading a
    big object back, say). The client waits and asks again, and finishes once it may."""
    from documents.clock import utcnow
    from documents.upload import UploadClaim
    from tests.operations import object_id

    data = tmp_path / "held.csv"
    data.write_text("x\n")
    attempts = LostAnswers("completeUpload(input", losses=0)  # only counts
    lake = client(served, contributor, tmp_path, graphql_transport=attempts)
    lake.backoff_seconds = 0.02
    claims = UploadClaim.get_pymongo_collection()
    post = lake._post  # every attempt of every call

    async def holding(query: str, variables: dict | None = None) -> dict:
        if "completeUpload(input" in query and attempts.sent == 0:  # another request claims it first
            await claims.insert_one({"_id": object_id(variables["id"]), "claimed_at": utcnow()})
        return await post(query, variables)

    lake._post = holding  # type: ignore[method-assign]

    async def release_later() -> None:
        # it asked, and asked again while the other request held on
        await wait_for(lambda: attempts.sent >= 3, interval=0.01, what="the client to ask three times")
        await claims.delete_many({})  # the other request ended without completing it

    async with lake:
        asset, _ = await asyncio.gather(lake.upload_file(data), release_later())
    assert asset["status"] == "ACTIVE" and attempts.sent >= 4  # held twice or more, then its own


async def test_failed_puts_are_retried_with_backoff(served: Served, contributor: str, tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    data.write_text("a,b\n")
    flaky = FlakyStore(fail_when="/blobs/", failures=2, status=503)
    lake = client(served, contributor, tmp_path, storage_transport=flaky)
    lake.backoff_seconds = 0.01
    async with lake:
        asset = await lake.upload_file(data)
    assert asset["status"] == "ACTIVE" and len(flaky.puts) == 3


async def test_directory_upload_finishes_what_it_can_and_a_rerun_sends_the_rest(
    served: Served, contributor: str, tree: Path, tmp_path: Path
) -> None:
    calls: list[str] = []

    class Recording(Client):
        async def _post(self, query: str, variables: dict | None = None) -> dict:  # every attempt of every call
            calls.append(query.split("(")[1].split(":")[0].strip() if "(" in query else query)
            return await super()._post(query, variables)

    files = sorted(p for p in tree.rglob("*") if p.is_file())
    failing = FlakyStore(fail_body=b"hello", failures=99)  # every PUT of notes.txt
    first = Recording(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json"), retries=0,
                      storage_transport=failing, direct_writes=False)
    with pytest.raises(GraphlakeClientError, match=r"1 of 6 files did not upload: cannot reach http://127\.0\.0\.1:\d+/ "
                                                   rf"for the upload of {re.escape(str(tree / 'notes.txt'))}: ") as refused:
        async with first:
            await first.upload_paths(files)
    assert refused.value.code == "UNAVAILABLE" and refused.value.field == str(tree / "notes.txt")
    # One createUploads and one completeUploads for the whole directory, not three calls per file (and,
    # once per client, where the server's mounts are and whether it could read the files itself).
    assert calls == [ops.STORAGE_FACTS, "$inputs", "$ids"], calls
    assert len(json.loads((tmp_path / "resume.json").read_text())) == 1  # only notes.txt stays open

    counting = FlakyStore()
    async with client(served, contributor, tmp_path, storage_transport=counting) as lake:
        [asset] = await lake.upload_paths([tree / "notes.txt"])
    assert len(counting.puts) == 1 and asset["status"] == "ACTIVE"  # resumed: its session was still open
    assert json.loads((tmp_path / "resume.json").read_text()) == {}


async def test_uploads_go_on_when_the_resume_state_cannot_be_kept(
        served: Served, api: Api, contributor: str, tree: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """XDG_CACHE_HOME under a file (a read-only or missing home, as in a container): no directory
    can be made there, even by root. Every upload failed with a bare FileNotFoundError after its
    session was created; now they complete, and the state's trouble is said once on stderr."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    single = tmp_path / "alone.csv"
    single.write_text("a\n1\n")
    async with Client(served.base_url, contributor) as lake:  # the default state, under XDG_CACHE_HOME
        asset = await lake.upload_file(single)
        batch = await lake.upload_paths([tree], ignore=["cache/"])
    assert asset["status"] == "ACTIVE" and len(batch) == 4 and all(a["status"] == "ACTIVE" for a in batch)
    err = capfd.readouterr().err
    assert err.count("cannot keep upload sessions in") == 1 and str(blocker / "cache") in err, err
    assert not (await api.data("Assets", {"filter": {"statuses": ["PENDING"]}, "first": 10},
                               token=contributor))["assets"]["edges"]  # no session left open


async def test_files_that_did_not_upload_are_named_by_their_path_as_given(
        served: Served, contributor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Named by path.name, a/x.csv and b/x.csv were both "x.csv", and the error had no code. One
    account of the whole upload, whichever batches the failures came in."""
    from graphlake_client import uploads as uploads_module

    monkeypatch.setattr(uploads_module, "BATCH_FILES", 1)
    for directory in ("a", "b"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "x.csv").write_bytes(b"refused")
    (tmp_path / "b" / "y.csv").write_bytes(b"kept")
    monkeypatch.chdir(tmp_path)
    failing = FlakyStore(fail_body=b"refused", failures=99, status=403)  # an expired URL, say
    with pytest.raises(GraphlakeClientError) as refused:
        async with client(served, contributor, tmp_path, retries=0, storage_transport=failing) as lake:
            await lake.upload_paths([Path("a"), Path("b")])
    assert str(refused.value) == (f"2 of 3 files did not upload: {served.base_url} answered HTTP 403 to the upload of "
                                  f"a/x.csv; {served.base_url} answered HTTP 403 to the upload of b/x.csv")
    assert (refused.value.code, refused.value.field) == ("FORBIDDEN", "a/x.csv")
    assert {path: error.code for path, error in refused.value.failures.items()} == {  # type: ignore[attr-defined]
        "a/x.csv": "FORBIDDEN", "b/x.csv": "FORBIDDEN"}


async def test_a_store_that_keeps_failing_is_unavailable_naming_the_file(
        served: Served, contributor: str, tmp_path: Path) -> None:
    data = tmp_path / "scan.csv"
    data.write_text("a\n")
    failing = FlakyStore(fail_when="/blobs/", failures=99, status=503)
    with pytest.raises(GraphlakeClientError, match=r"answered HTTP 503 to the upload of .*scan\.csv$") as refused:
        async with client(served, contributor, tmp_path, retries=1, storage_transport=failing) as lake:
            lake.backoff_seconds = 0.01
            await lake.upload_file(data)
    # The file is named in the message; the field names what failed, the URL, as a download's does.
    assert (refused.value.code, refused.value.field) == ("UNAVAILABLE", "uploadUrl")
    assert len(failing.puts) == 2  # retried once


@pytest.mark.parametrize(("mount", "status", "code"), [
    (None, None, "UNAVAILABLE"), (None, 403, "FORBIDDEN"), (None, 404, "NOT_FOUND"),  # the server's /blobs route
    ("lab", None, "UNAVAILABLE"), ("lab", 409, "CONFLICT"), ("lab", 400, "BAD_USER_INPUT"),  # MinIO's signed PUT
])
async def test_a_single_upload_the_store_stops_ends_in_a_coded_error_without_the_signature(
        served: Served, contributor: str, tmp_path: Path, mount: str | None, status: int | None, code: str) -> None:
    """upload_file (and store_file) raised httpx's own errors from its PUT, where a batch's files and
    downloads had coded ones: ConnectError when the store could not be reached, HTTPStatusError for a
    4xx, whose message is the whole signed URL, signature included. Now ServerUnreachable (no answer)
    or the code the status says, on `uploadUrl`, naming the file and the store by its origin alone."""
    data = tmp_path / "scan.bin"
    data.write_bytes(os.urandom(3000))
    failing = FlakyStore(failures=99, status=status)  # every PUT
    with pytest.raises(GraphlakeClientError) as stopped:
        async with client(served, contributor, tmp_path, retries=0, storage_transport=failing) as lake:
            await lake.store_file(data, mount=mount)
    assert type(stopped.value) is (ServerUnreachable if status is None else GraphlakeClientError)
    assert (stopped.value.code, stopped.value.field) == (code, "uploadUrl")
    signed = urlsplit(failing.puts[0])
    origin = f"{signed.scheme}://{signed.netloc}"
    assert str(stopped.value) == (f"cannot reach {origin}/ for the upload of {data}: simulated network failure"
                                  if status is None else f"{origin} answered HTTP {status} to the upload of {data}")
    assert signed.query not in str(stopped.value) and not re.search(r"sig=|Signature", str(stopped.value))


async def test_a_signed_url_that_is_no_url_is_a_coded_error(served: Served, settings: Settings, contributor: str,
                                                             tmp_path: Path) -> None:
    """A server whose public URL has a port that is no number (http://127.0.0.1:12a: its settings now
    refuse it, but a client may meet such a server, an older one or one behind a proxy that rewrites
    it; made here past the check) signs upload URLs httpx cannot parse: upload_file raised a bare
    httpx.InvalidURL, and a batch an INTERNAL error on no field. Now both say it is the server's URL
    (INTERNAL, on uploadUrl), and where to look."""
    single, other = tmp_path / "one.csv", tmp_path / "two.csv"
    single.write_text("a\n")
    other.write_text("b\n")
    misconfigured = create_app(settings.model_copy(update={"public_url": "http://127.0.0.1:12a"}))
    async with serving(misconfigured) as port, Client(f"http://127.0.0.1:{port}", contributor, retries=0,
                                                       resume=ResumeState(tmp_path / "resume.json"),
                                                       direct_writes=False) as lake:
        with pytest.raises(GraphlakeClientError, match=r"not a URL .*GRAPHLAKE_PUBLIC_URL") as alone:
            await lake.upload_file(single)
        with pytest.raises(UploadsFailed) as batch:
            await lake.upload_paths([other])
    assert (alone.value.code, alone.value.field) == ("INTERNAL", "uploadUrl")
    [(path, error)] = batch.value.failures.items()
    assert (path, error.code, error.field) == (str(other), "INTERNAL", "uploadUrl")


ROOT_CANNOT_READ = Path("/proc/sys/vm/drop_caches")  # write-only, for root too: procfs checks its mode itself


def link_to_a_file_no_one_reads(at: Path) -> Path:
    """A link at `at` to a file that refuses to be read, root included: the tests run as root, who
    reads a mode-000 file all the same."""
    try:
        ROOT_CANNOT_READ.open("rb").close()
    except PermissionError:
        at.symlink_to(ROOT_CANNOT_READ)
        return at
    except OSError:
        pass
    pytest.skip(f"{ROOT_CANNOT_READ} is not here, or can be read")


async def test_a_file_that_cannot_be_read_fails_alone_named_by_its_path(
        served: Served, api: Api, contributor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read, in a directory being uploaded, ended the whole upload in a bare
    PermissionError while it was hashed (and upload_file of it alone too). Now it is FORBIDDEN naming
    the file by its path as given: alone, the error; in a batch, its entry of UploadsFailed, the
    others uploaded (unlike a directory that cannot be listed, the file missing is known); as one
    zip, a refusal before anything is made (no collection, no zip left behind). The file is reached
    through a link (so the walk follows links), since root reads any file of a tree it made."""
    root = tmp_path / "run"
    root.mkdir()
    (root / "a.csv").write_text("a\n")
    (root / "b.csv").write_text("b\n")
    locked = link_to_a_file_no_one_reads(root / "locked.bin")
    temporaries = tmp_path / "tmp"
    temporaries.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporaries))  # where an archive is made
    async with client(served, contributor, tmp_path) as lake:
        with pytest.raises(GraphlakeClientError) as alone:
            await lake.upload_file(locked)
        with pytest.raises(UploadsFailed) as batch:
            await lake.upload_paths([root], collection="run", follow_symlinks=True)
        with pytest.raises(GraphlakeClientError) as archived:
            await lake.upload_paths([root], collection="run-zip", follow_symlinks=True, as_archive=True)
    assert str(alone.value) == f"{locked}: cannot read this file (Permission denied)"
    assert (alone.value.code, alone.value.field) == ("FORBIDDEN", str(locked))
    assert str(batch.value) == f"1 of 3 files did not upload: {locked}: cannot read this file (Permission denied)"
    assert {path: (error.code, error.field) for path, error in batch.value.failures.items()} == {
        str(locked): ("FORBIDDEN", str(locked))}
    [run] = (await api.data("Collections", {"nameContains": "run"}, token=contributor))["collections"]["edges"]
    assert run["node"]["name"] == "run"  # and no run-zip: the archive was refused before it was made
    items = (await api.data("Collection", {"id": run["node"]["id"]}, token=contributor))["collection"]["items"]["edges"]
    assert sorted(e["node"]["path"] for e in items) == ["a.csv", "b.csv"]
    assert (archived.value.code, archived.value.field) == ("FORBIDDEN", str(locked))
    assert list(temporaries.iterdir()) == []


async def test_a_refused_file_in_a_directory_is_named(served: Served, contributor: str, tree: Path, tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as lake:
        with pytest.raises(GraphlakeClientError, match=r"notes\.txt: inputs\[\d+\]\.labels\[0\]") as refused:
            await lake.upload_paths([tree], ignore=["cache/"], manifest={"notes.txt": {"labels": [""]}})
    assert refused.value.code == "BAD_USER_INPUT"


async def test_download_by_id_or_alias(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(b"%PDF-1.7 ...")
    async with client(served, contributor, tmp_path) as lake:
        asset = await lake.upload_file(source)
        await api.data("AddAliases", {"assetId": asset["id"], "aliases": ["reports/latest"]}, token=contributor)
        by_alias = await lake.download("reports/latest", tmp_path / "copy.pdf")
        out = tmp_path / "out"
        out.mkdir()
        by_id = await lake.download(asset["id"], out)
        into_new = await lake.download(asset["id"], f"{tmp_path / 'fresh'}/")  # text ending in a slash: a directory
        with pytest.raises(GraphlakeClientError) as missing:
            await lake.download("no/such/alias", tmp_path)
    assert by_alias.read_bytes() == by_id.read_bytes() == b"%PDF-1.7 ..." and by_id.name == "report.pdf"
    assert into_new == tmp_path / "fresh" / "report.pdf" and into_new.read_bytes() == b"%PDF-1.7 ..."
    assert missing.value.code == "NOT_FOUND"


async def test_a_download_is_retried_checked_and_saved_with_the_users_permissions(
        served: Served, state: AppState, contributor: str, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(3000))
    gets = FlakyGets(failures=2)  # on the server's content route, which download() asks
    async with client(served, contributor, tmp_path, graphql_transport=gets, direct_writes=False) as lake:
        lake.backoff_seconds = 0.01
        asset = await lake.upload_file(source)
        saved = await lake.download(asset["id"], tmp_path / "copy.bin")
        assert saved.read_bytes() == source.read_bytes() and gets.gets == 3  # two 503s, then the file
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(saved.stat().st_mode) == 0o666 & ~umask  # not 0600
        # The stored file changed behind the lake's back (same size): the download says so, saves nothing.
        stored = await AssetDocument.get(object_id(asset["id"]))
        state.stores["local"].path(stored.storage.key).write_bytes(os.urandom(3000))
        with pytest.raises(GraphlakeClientError) as wrong:
            await lake.download(asset["id"], tmp_path / "tampered.bin")
    assert wrong.value.code == "INTEGRITY" and "SHA-256" in str(wrong.value)
    assert not (tmp_path / "tampered.bin").exists() and not list(tmp_path.glob(".download-*"))


async def graphlake(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the command without blocking the event loop the test server runs on."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_upload_and_download(served: Served, contributor: str, tree: Path, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_URL": served.base_url, "GRAPHLAKE_TOKEN": contributor, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code, out, err = await graphlake(env, "upload", str(tree / "notes.txt"), "--collection", "cli")
    assert code == 0, err
    header, row = out.strip().splitlines()
    asset_id = row.split("\t")[0]
    assert header.startswith("id\tname") and "notes.txt\tACTIVE\t5" in row
    # Guarantees: uploading again stores nothing twice, and the command says so.
    code, out, err = await graphlake(env, "upload", str(tree / "notes.txt"), "--collection", "cli")
    assert code == 0, err
    assert out.strip().splitlines()[1].split("\t")[:3] == [row.split("\t")[0], "notes.txt", "UNCHANGED"]
    code, _, err = await graphlake(env, "download", asset_id, str(tmp_path / "n.txt"))
    assert code == 0, err
    assert (tmp_path / "n.txt").read_bytes() == b"hello"
    # A destination spelt with a trailing slash is a directory, made if missing (not a file of that name).
    code, _, err = await graphlake(env, "download", asset_id, f"{tmp_path / 'new' / 'dir'}/")
    assert code == 0, err
    assert (tmp_path / "new" / "dir" / "notes.txt").read_bytes() == b"hello"
    code, _, err = await graphlake({**env, "GRAPHLAKE_TOKEN": "glk_wrong"}, "upload", str(tree / "notes.txt"))
    assert code == 1 and "the API token is not valid" in " ".join(err.split()) and "UNAUTHENTICATED" in err
    # No token at all: the command says how to give one, not which HTTP header the server missed.
    code, _, err = await graphlake({k: v for k, v in env.items() if k != "GRAPHLAKE_TOKEN"}, "download", asset_id)
    assert code == 1 and "no API token: set GRAPHLAKE_TOKEN or pass --token" in " ".join(err.split()), err
    assert "Authorization" not in err


async def test_logging_events_from_python(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as lake:
        event_id = await lake.log_event("SAMPLE_MEASURED", "plate 7 read", data={"od600": 0.42},
                                        source={"nodeId": "reader-1"})
        ids = await lake.log_events([{"eventType": "STEP", "message": str(i)} for i in range(3)])
    assert len(ids) == 3
    event = (await api.data("Event", {"id": event_id}, token=contributor))["event"]
    assert event["data"] == {"od600": 0.42} and event["source"]["nodeId"] == "reader-1" and event["level"] == "INFO"


async def test_a_download_stays_under_its_destination(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(b"inside")
    out = tmp_path / "a" / "b"
    out.mkdir(parents=True)
    async with client(served, contributor, tmp_path) as lake:
        asset = await lake.upload_file(source)
        await api.data("UpdateAsset", {"input": {"id": asset["id"], "name": "../../escape.bin"}}, token=contributor)
        saved = await lake.download(asset["id"], out)
    assert saved == out / "escape.bin" and saved.read_bytes() == b"inside"
    assert not (tmp_path / "escape.bin").exists()


async def test_a_manifest_entry_for_a_file_not_sent_is_an_error(served: Served, contributor: str, tree: Path,
                                                                tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as lake:
        with pytest.raises(GraphlakeClientError) as typo:
            await lake.upload_paths([tree], ignore=["cache/"], manifest={"notes.txt": {}, "notse.txt": {"labels": ["x"]}})
    assert "notse.txt" in str(typo.value) and "notes.txt" not in str(typo.value)


async def test_a_file_shorter_than_its_upload_declared_is_said_so_before_it_is_sent(served: Served, contributor: str,
                                                                                    tmp_path: Path) -> None:
    """A file that shrank after its session was made: S3 refused the PUT with a bare 403 (the length is
    signed into the URL). The client says what happened, and sends nothing."""
    changed = tmp_path / "changed.bin"
    changed.write_bytes(b"x" * 90)
    async with Client(served.base_url, contributor) as lake:
        with pytest.raises(GraphlakeClientError, match="changed since its upload began: 90 bytes") as raised:
            await lake._put("http://127.0.0.1:9/never-reached", changed, 0, 100, {}, None)
    assert raised.value.code == "BAD_USER_INPUT"
