"""A verified file can never be replaced (README, Guarantees): once an upload is completed, aborted
or expired, none of its URLs can change what the lake holds, on the local mount and on MinIO."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from documents.clock import utcnow
from documents.roles import Role
from documents.upload import UploadSession
from graphlake.settings import Settings
from resolvers.context import AppState
from services.uploads.reconciler import reconcile
from tests.conftest import MakeToken
from tests.operations import Api, object_id
from tests.test_uploads import MIB, MOUNTS, complete, multipart_from_one_mib, payload, put, start
from tests.waiting import wait_for


async def download(api: Api, token: str, asset_id: str) -> bytes:
    url = (await api.data("DownloadUrl", {"id": asset_id}, token=token))["asset"]["downloadUrl"]
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.get(url)
        assert answer.status_code == 200
        return answer.content


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_completed_uploads_url_cannot_replace_its_bytes(api: Api, contributor: str, state: AppState,
                                                                mount: str) -> None:
    data = payload(3000, seed=41)
    session = await start(api, contributor, data, mount, sha256=None)
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE"
    same = await put(session["url"], b"x" * 3000, session["headers"])
    # The local mount: its object is there (412, before the body is read); S3: create-only.
    assert same.status_code == 412, same.text
    longer = await put(session["url"], b"a longer body than the first one" * 200, session["headers"])
    assert longer.status_code in (403, 412), longer.text  # S3: not the length signed into the URL
    assert await download(api, contributor, asset["id"]) == data
    # Declared by no one: the local mount hashed it on the way in; an S3 object gets it from the reconciler.
    await reconcile(state.stores, state.feed)
    stored = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_second_put_before_completion_cannot_replace_the_first(api: Api, contributor: str, mount: str) -> None:
    data = payload(2000, seed=42)
    session = await start(api, contributor, data, mount)  # declared: completion checks the digest
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    other = await put(session["url"], payload(2000, seed=43), session["headers"])
    assert other.status_code == 412, other.text
    asset = await complete(api, contributor, session["id"])
    assert asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert await download(api, contributor, asset["id"]) == data


async def test_an_aborted_uploads_url_is_refused_on_the_local_mount(api: Api, contributor: str, state: AppState) -> None:
    data = payload(1000, seed=44)
    session = await start(api, contributor, data, "local")
    await api.data("AbortUpload", {"id": session["id"]}, token=contributor)
    late = await put(session["url"], data, session["headers"])
    assert late.status_code == 409 and "aborted" in late.json()["error"]
    assert await state.stores["local"].stat(session["asset"]["storage"]["key"]) is None


async def test_an_expired_uploads_url_is_refused_before_the_reconciler_closes_it(api: Api, contributor: str,
                                                                                 state: AppState) -> None:
    """Guarantees: a PUT of an upload that expired, still OPEN until the reconciler's next round, is
    refused (409, saying so) and stores nothing."""
    data = payload(1000, seed=46)
    session = await start(api, contributor, data, "local")
    await UploadSession.get_pymongo_collection().update_one(
        {"_id": object_id(session["id"])}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    late = await put(session["url"], data, session["headers"])
    assert late.status_code == 409 and "expired" in late.json()["error"]
    assert await state.stores["local"].stat(session["asset"]["storage"]["key"]) is None


async def test_an_upload_closed_while_its_body_arrives_keeps_nothing(api: Api, contributor: str, state: AppState) -> None:
    """Guarantees: the local mount asks whether the upload is open once the body has arrived: an abort
    while it was on its way refuses the PUT (409) and nothing of it stays."""
    data = payload(256 * 1024, seed=47)
    session = await start(api, contributor, data, "local")

    async def body():  # the first half, then the abort, then the rest: open when the PUT began
        yield data[:128 * 1024]
        await api.data("AbortUpload", {"id": session["id"]}, token=contributor)
        yield data[128 * 1024:]

    late = await put(session["url"], body(), session["headers"])
    assert late.status_code == 409 and "aborted" in late.json()["error"], late.text
    assert await state.stores["local"].stat(session["asset"]["storage"]["key"]) is None


async def test_what_an_aborted_uploads_url_leaves_on_s3_is_swept_once_its_urls_expire(
        api: Api, contributor: str, state: AppState) -> None:
    data = payload(1000, seed=45)
    session = await start(api, contributor, data, "lab")
    await api.data("AbortUpload", {"id": session["id"]}, token=contributor)
    key = session["asset"]["storage"]["key"]
    # A presigned S3 URL outlives the abort: it can create the object again (not replace one).
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    assert await state.stores["lab"].stat(key) is not None
    await reconcile(state.stores, state.feed)
    assert await state.stores["lab"].stat(key) is not None  # its URL is still valid: too early to sweep
    sessions = UploadSession.get_pymongo_collection()
    long_ago = utcnow() - timedelta(minutes=5)  # as if its URLs had all expired
    await sessions.update_one({"_id": object_id(session["id"])},
                              {"$set": {"expires_at": long_ago, "finished_at": long_ago}})
    await reconcile(state.stores, state.feed)
    assert await state.stores["lab"].stat(key) is None
    assert (await sessions.find_one({"_id": object_id(session["id"])}))["sweep_due"] is False


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_completed_multipart_uploads_part_urls_write_nothing(api: Api, contributor: str, settings: Settings,
                                                                     mount: str) -> None:
    with multipart_from_one_mib(settings):
        data = payload(9 * MIB, seed=46)
        session = await start(api, contributor, data, mount)
    size = session["partSizeBytes"]
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    for part, chunk in zip(session["parts"], chunks, strict=True):
        assert (await put(part["url"], chunk)).status_code == 200
    asset = await complete(api, contributor, session["id"])
    late = await put(session["parts"][0]["url"], b"z" * len(chunks[0]))
    assert late.status_code in (404, 409), late.text  # MinIO: the multipart upload is gone
    assert await download(api, contributor, asset["id"]) == data


async def test_a_malformed_local_url_gets_400_or_403_never_500(api: Api, contributor: str, settings: Settings) -> None:
    with multipart_from_one_mib(settings):
        session = await start(api, contributor, payload(2 * MIB, seed=47), "local")
    url = session["parts"][0]["url"]
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in (("size", "x"), ("offset", "-1"), ("part", "1.5"), ("part", "99999"), ("exp", "soon"),
                        ("upload", "../../etc")):
        forged = urlunsplit(parts._replace(query=urlencode({**query, name: value})))
        answer = await put(forged, b"z")
        assert answer.status_code in (400, 403), (name, value, answer.status_code, answer.text)
    del query["sig"]
    answer = await put(urlunsplit(parts._replace(query=urlencode(query))), b"z")
    assert answer.status_code in (400, 403)


@pytest.mark.parametrize("mount", MOUNTS)
async def test_only_the_uploader_or_an_admin_gets_an_uploads_urls(api: Api, contributor: str, viewer: str, admin: str,
                                                                  make_token: MakeToken, mount: str) -> None:
    """A signed PUT URL (or a direct-write path) lets its bearer write the upload's bytes: uploadSession
    gives it to whoever created the session and to an ADMIN, not to any reader."""
    session = await start(api, contributor, payload(100, seed=48), mount)
    other = await make_token(Role.CONTRIBUTOR)
    for token, sees in ((contributor, True), (admin, True), (viewer, False), (other, False)):
        found = (await api.data("UploadSession", {"id": session["id"]}, token=token))["uploadSession"]
        assert found["status"] == "OPEN" and found["id"] == session["id"]
        assert (found["url"] is not None) is sees, (token, found)


async def test_only_writers_learn_where_a_local_mount_lives(api: Api, contributor: str, viewer: str) -> None:
    def local(mounts: list[dict]) -> dict:
        return next(m for m in mounts if m["name"] == "local")

    assert local((await api.data("Mounts", token=contributor))["mounts"])["localRoot"] is not None
    seen_by_reader = local((await api.data("Mounts", token=viewer))["mounts"])
    assert seen_by_reader["localRoot"] is None and seen_by_reader["localId"] is None


def lock_waited_on(inode: int) -> bool:
    """Whether a process waits for a lock of the file with this inode (Linux lists the waiters of each
    lock in /proc/locks, marked `->`)."""
    return any(line.split()[1] == "->" and line.split()[6].endswith(f":{inode}")
               for line in Path("/proc/locks").read_text().splitlines())


async def test_a_part_write_under_way_lands_before_completion_verifies(api: Api, contributor: str, state: AppState,
                                                                       settings: Settings) -> None:
    """On the local mount a part is written into the upload's data file in place. Completion waits for a
    part write under way, and a writer that opened the file before completion moved it is refused, so
    the bytes a completion verified are the bytes downloads return."""
    with multipart_from_one_mib(settings):
        data = payload(9 * MIB, seed=49)
        session = await start(api, contributor, data, "local", sha256=None)
    size = session["partSizeBytes"]
    for part, offset in zip(session["parts"], range(0, len(data), size), strict=True):
        assert (await put(part["url"], data[offset:offset + size])).status_code == 200
    store = state.stores["local"]
    upload_id = (await UploadSession.get(object_id(session["id"]))).multipart_id
    writer = await store.open_part_file(upload_id)  # a part PUT in flight
    completing = asyncio.create_task(complete(api, contributor, session["id"]))
    # Until completion waits on the file's lock that the writer holds shared: not a guessed while, in
    # which a loaded machine may not yet have brought completion that far.
    await wait_for(lambda: lock_waited_on(os.fstat(writer).st_ino), what="completion to wait for the part write")
    assert not completing.done()
    os.pwrite(writer, b"Z" * 100, 0)
    os.close(writer)
    asset = await completing
    stored = await download(api, contributor, asset["id"])
    assert stored[:100] == b"Z" * 100 and stored[100:] == data[100:]
    assert asset["sha256"] is None or asset["sha256"] == hashlib.sha256(stored).hexdigest()
    with pytest.raises(FileNotFoundError):  # the upload is closed: no writer gets its file any more
        await store.open_part_file(upload_id)
