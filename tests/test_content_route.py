"""GET /assets/{id or alias}/content (graphlake/content_routes.py): an asset's content in one request
with the caller's token: a local file streamed from its mount, an S3 or external one by a redirect
to a signed GET, a value or a text as stored; refusals are GraphQL-shaped errors with a code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse

from documents.clock import utcnow
from documents.upload import UploadSession
from graphlake.object_files import ObjectFileResponse
from graphlake_client import Client, GraphlakeClientError, ResumeState
from resolvers.context import AppState
from services.uploads.reconciler import reconcile
from tests import factories
from tests.conftest import S3Service, Served
from tests.operations import Api
from tests.test_client import graphlake
from tests.test_uploads import MOUNTS, complete, payload, put, start
from tests.transports import Counting


async def uploaded(api: Api, token: str, data: bytes, mount: str, name: str) -> dict:
    variables = {"input": {"name": name, "sizeBytes": len(data), "mediaType": "application/octet-stream",
                           "mount": mount, "sha256": hashlib.sha256(data).hexdigest()}}
    session = (await api.data("CreateUpload", variables, token=token))["createUpload"]
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    return await complete(api, token, session["id"])


async def test_a_local_files_path_on_the_server_is_for_writers_only(http: httpx.AsyncClient, api: Api, contributor: str,
                                                                    viewer: str) -> None:
    """`storage.uri` of a local mount's file named the server's directory (file:///...) to any VIEWER,
    where `mounts { localRoot }` shows it only to tokens that may write."""
    stored = await uploaded(api, contributor, b"abc", "local", "a.bin")
    query = "query ($id: ID!) { asset(id: $id) { storage { mount key uri } } }"
    seen = {}
    for who, token in (("contributor", contributor), ("viewer", viewer)):
        answer = (await http.post("/graphql", json={"query": query, "variables": {"id": stored["id"]}},
                                  headers=auth(token))).json()
        seen[who] = answer["data"]["asset"]["storage"]
    assert seen["contributor"]["uri"].startswith("file:///") and seen["contributor"]["uri"].endswith(seen["contributor"]["key"])
    assert seen["viewer"]["uri"] == f"local:{seen['viewer']['key']}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_file_in_one_request_checked_by_its_headers(http: httpx.AsyncClient, api: Api, contributor: str,
                                                            viewer: str, mount: str) -> None:
    data = payload(300_000, seed=7)
    asset = await uploaded(api, contributor, data, mount, "run 7/scan ü.bin")
    response = await http.get(f"/assets/{asset['id']}/content", headers=auth(viewer))
    if mount == "local":  # streamed from the mount by this route
        assert response.status_code == 200 and response.content == data
        assert "attachment" in response.headers["content-disposition"]
        ranged = await http.get(f"/assets/{asset['id']}/content", headers={**auth(viewer), "Range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == data[10:20]
    else:  # a signed GET on MinIO: the bytes never pass through the server
        assert response.status_code == 307 and response.headers["cache-control"] == "no-store"
        async with httpx.AsyncClient() as store:
            fetched = await store.get(response.headers["location"])
        assert fetched.status_code == 200 and fetched.content == data
    assert response.headers["x-graphlake-id"] == asset["id"]
    assert unquote(response.headers["x-graphlake-name"]) == "run 7/scan ü.bin"
    assert response.headers["x-graphlake-size"] == str(len(data))
    assert response.headers["x-graphlake-sha256"] == hashlib.sha256(data).hexdigest()


async def test_values_and_texts_by_id_or_alias(http: httpx.AsyncClient, api: Api, contributor: str,
                                               viewer: str) -> None:
    value = await factories.value_asset(api, contributor, value={"temperature": 21.5, "big": 2**70})
    await api.data("AddAliases", {"assetId": value["id"], "aliases": ["lab/latest"]}, token=contributor)
    for ref in (value["id"], "lab/latest"):
        response = await http.get(f"/assets/{ref}/content", headers=auth(viewer))
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert json.loads(response.content) == {"temperature": 21.5, "big": 2**70}  # as stored, big integers too
        assert response.headers["x-graphlake-sha256"] == hashlib.sha256(response.content).hexdigest()
    text = (await api.data("StoreText", {"input": {"name": "notes", "text": "größe: 3\n", "mediaType": "text/markdown"}},
                           token=contributor))["storeText"]
    response = await http.get(f"/assets/{text['id']}/content", headers=auth(viewer))
    assert response.status_code == 200 and response.text == "größe: 3\n"
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.headers["content-disposition"] == 'attachment; filename="notes"'
    # A text stored before media types were checked, with one no header can carry: served as text/plain.
    from documents.asset import Asset as AssetDocument
    from tests.operations import object_id
    await AssetDocument.get_pymongo_collection().update_one({"_id": object_id(text["id"])},
                                                            {"$set": {"media_type": "text/html\r\nX-Evil: 1"}})
    response = await http.get(f"/assets/{text['id']}/content", headers=auth(viewer))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "x-evil" not in response.headers
    # Named for `curl -OJ`: a value is JSON (.json added to a name without an extension), and a name
    # with a quote or a line break is escaped, never breaking the header.
    for name, disposition in (("reading", 'attachment; filename="reading.json"'),
                              ("plate.v2", 'attachment; filename="plate.v2"'),
                              ('a "b"\nc', "attachment; filename=\"a _b_c.json\"; filename*=utf-8''a%20%22b%22%0Ac.json"),
                              # curl -OJ reads `filename` alone: an escaped name has a plain one too.
                              ("résumé 7.json", "attachment; filename=\"resume 7.json\"; "
                                                "filename*=utf-8''r%C3%A9sum%C3%A9%207.json"),
                              ("日本", "attachment; filename=\"download.json\"; filename*=utf-8''%E6%97%A5%E6%9C%AC.json")):
        named = await factories.value_asset(api, contributor, name.replace("\n", "-"))
        if "\n" in name:  # refused in a name now (services/checks.py); one stored before is still escaped
            await AssetDocument.get_pymongo_collection().update_one({"_id": object_id(named["id"])}, {"$set": {"name": name}})
        response = await http.get(f"/assets/{named['id']}/content", headers=auth(viewer))
        assert response.headers["content-disposition"] == disposition


async def test_the_client_and_the_command_download_values_and_texts_too(served: Served, api: Api, contributor: str,
                                                                       tmp_path: Path) -> None:
    value = await factories.value_asset(api, contributor, "plate-7", value={"od600": 0.42, "big": 2**70})
    text = (await api.data("StoreText", {"input": {"name": "notes.md", "text": "größe: 3\n"}}, token=contributor))["storeText"]
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
        saved = await lake.download(value["id"], f"{tmp_path}/out/")
        assert saved == tmp_path / "out" / "plate-7.json" and json.loads(saved.read_bytes()) == {"od600": 0.42, "big": 2**70}
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == value["sha256"]  # the JSON as stored
        assert (await lake.download(text["id"], tmp_path)).read_text() == "größe: 3\n"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_URL": served.base_url, "GRAPHLAKE_TOKEN": contributor}
    code, _, err = await graphlake(env, "download", value["id"], f"{tmp_path}/cli/")
    assert code == 0, err
    assert json.loads((tmp_path / "cli" / "plate-7.json").read_text()) == {"od600": 0.42, "big": 2**70}


async def test_an_external_object_is_a_redirect_to_its_signed_get(http: httpx.AsyncClient, api: Api, s3: S3Service,
                                                                  contributor: str, viewer: str) -> None:
    s3.client().put_object(Bucket=s3.bucket, Key="content-route/a.csv", Body=b"a,b\n1,2\n")
    registered = (await api.data("RegisterExternal", {"input": {"mount": "lab", "bucket": s3.bucket,
                                                                 "prefix": "content-route/"}},
                                 token=contributor))["registerExternal"]
    response = await http.get(f"/assets/{registered['assets'][0]['id']}/content", headers=auth(viewer))
    assert response.status_code == 307
    async with httpx.AsyncClient() as store:
        assert (await store.get(response.headers["location"])).content == b"a,b\n1,2\n"


async def test_refusals_carry_a_code(http: httpx.AsyncClient, api: Api, contributor: str, admin: str,
                                     viewer: str) -> None:
    value = await factories.value_asset(api, contributor)

    async def refused(path: str, headers: dict[str, str], status: int, code: str) -> str:
        response = await http.get(path, headers=headers)
        assert response.status_code == status, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == code
        return error["message"]

    assert "token" in await refused(f"/assets/{value['id']}/content", {}, 401, "UNAUTHENTICATED")
    await refused(f"/assets/{value['id']}/content", auth("glk_not-a-token"), 401, "UNAUTHENTICATED")
    await refused("/assets/no-such-alias/content", auth(viewer), 404, "NOT_FOUND")
    pending = (await api.data("CreateUpload", {"input": {"name": "later.bin", "sizeBytes": 10}},
                              token=contributor))["createUpload"]
    await refused(f"/assets/{pending['asset']['id']}/content", auth(viewer), 409, "CONFLICT")
    await api.data("DeleteAsset", {"id": value["id"], "force": True}, token=admin)
    await refused(f"/assets/{value['id']}/content", auth(viewer), 404, "NOT_FOUND")


class WithoutContentRoute(httpx.AsyncHTTPTransport):
    """A server from before the content route: its paths answer 404 in plain text."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/content"):
            self.refused += 1
            return httpx.Response(404, text="not found", request=request)
        return await super().handle_async_request(request)


class TokenWatch(httpx.AsyncHTTPTransport):
    """Records whether a request to the store carried an Authorization header."""

    def __init__(self) -> None:
        super().__init__()
        self.authorized: list[bool] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.authorized.append("authorization" in request.headers)
        return await super().handle_async_request(request)


async def test_the_client_downloads_in_one_request_and_falls_back_without_the_route(
        served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    data = payload(200_000, seed=9)
    on_s3 = await uploaded(api, contributor, data, "lab", "s3.bin")
    watch = TokenWatch()
    async with Client(served.base_url, contributor, storage_transport=watch,
                      resume=ResumeState(tmp_path / "resume.json")) as lake:
        saved = await lake.download(on_s3["id"], tmp_path)
        assert saved == tmp_path / "s3.bin" and saved.read_bytes() == data
    assert watch.authorized == [False]  # the redirect's signed GET, without the lake's token
    old = WithoutContentRoute()
    local = await uploaded(api, contributor, data, "local", "local.bin")
    async with Client(served.base_url, contributor, graphql_transport=old, direct_writes=False,
                      resume=ResumeState(tmp_path / "resume.json")) as lake:
        saved = await lake.download(local["id"], tmp_path / "copy.bin")
        assert saved.read_bytes() == data and old.refused == 1  # then asset(id) and its signed URL
        with pytest.raises(GraphlakeClientError) as missing:
            await lake.download("no-such-alias", tmp_path / "none.bin")
    assert missing.value.code == "NOT_FOUND"


async def test_load_and_read_bytes_take_one_request_whatever_the_kind(served: Served, api: Api, contributor: str,
                                                                      tmp_path: Path) -> None:
    data = payload(50_000, seed=3)
    on_s3 = await uploaded(api, contributor, data, "lab", "weights.bin")
    await api.data("AddAliases", {"assetId": on_s3["id"], "aliases": ["models/weights"]}, token=contributor)
    server, store = Counting(), Counting()
    async with Client(served.base_url, contributor, graphql_transport=server, storage_transport=store,
                      resume=ResumeState(tmp_path / "resume.json")) as lake:
        await lake.save("runs/params", {"lr": 0.001, "steps": 2**63})
        await lake.save("runs/notes", "converged after 40 epochs")
        server.sent = 0
        assert await lake.load("runs/params") == {"lr": 0.001, "steps": 2**63}
        assert await lake.load("runs/notes") == "converged after 40 epochs"
        assert server.sent == 2 and store.sent == 0  # one request each
        assert await lake.load("models/weights") == data
        assert await lake.read_bytes(on_s3["id"]) == data
        assert server.sent == 4 and store.sent == 2  # one to the server, one signed GET to MinIO, each
        with pytest.raises(GraphlakeClientError) as not_a_file:
            await lake.read_bytes("runs/notes")
    assert "no file to download" in str(not_a_file.value)


async def test_a_file_is_sent_a_chunk_at_a_time_whole_and_by_ranges(app: Starlette, api: Api, contributor: str,
                                                                    viewer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both routes that send a local file (the content route, a signed GET of /blobs) send
    ObjectFileResponse.chunk_size at a time (a small one here, so a few KB cross many edges), and a
    Range, several ranges or a HEAD get what Starlette's FileResponse gives; past LARGE_SENDS
    downloads at once, Starlette's own chunks."""
    chunk = 4099
    monkeypatch.setattr(ObjectFileResponse, "chunk_size", chunk)
    bodies: list[int] = []

    async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
        async def sending(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.body" and message.get("body"):
                bodies.append(len(message["body"]))
            await send(message)
        await app(scope, receive, sending)

    rng = random.Random(11)
    for size in (3 * chunk + 100, 2 * chunk):  # not a whole number of chunks, and exactly two
        data = rng.randbytes(size)
        asset = await uploaded(api, contributor, data, "local", f"frames-{size}.bin")
        signed = httpx.URL(asset["downloadUrl"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recording), base_url="http://graphlake.test") as http:
            for url, headers in ((f"/assets/{asset['id']}/content", auth(viewer)), (signed.raw_path.decode(), {})):
                bodies.clear()
                whole = await http.get(url, headers=headers)
                assert whole.status_code == 200 and whole.content == data
                assert bodies == [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
                for first, last in ((chunk // 2, chunk // 2 + chunk + 9), (0, chunk - 1), (size - 7, size - 1)):
                    ranged = await http.get(url, headers={**headers, "Range": f"bytes={first}-{last}"})
                    assert ranged.status_code == 206 and ranged.content == data[first:last + 1]
                several = await http.get(url, headers={**headers, "Range": f"bytes=0-9,{chunk - 3}-{chunk + 2}"})
                assert several.status_code == 206 and data[:10] in several.content
                assert data[chunk - 3:chunk + 3] in several.content
                head = await http.head(url, headers=headers)
                assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(size)
    # Past the process's LARGE_SENDS downloads at once, Starlette's own chunks (what each one holds is bounded).
    assert ObjectFileResponse._large_sending == 0  # every download above gave its slot back
    monkeypatch.setattr(ObjectFileResponse, "LARGE_SENDS", 0)
    data = rng.randbytes(FileResponse.chunk_size + 10)
    asset = await uploaded(api, contributor, data, "local", "past-the-budget.bin")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recording), base_url="http://graphlake.test") as http:
        bodies.clear()
        whole = await http.get(f"/assets/{asset['id']}/content", headers=auth(viewer))
    assert whole.content == data and bodies == [FileResponse.chunk_size, 10]


async def test_a_local_file_is_sent_from_what_the_route_opened_never_through_a_link(
        app: Starlette, api: Api, contributor: str, viewer: str, tmp_path: Path) -> None:
    """Both routes that send a local file checked its path, then FileResponse opened it again by
    name as the answer began: a writer sharing the mount who swapped `assets/<id>` for a link in
    between got a file from outside the mount served (an audit raced 47 of 400 downloads so). Here
    the swap happens, deterministically, once the route has answered: what is sent is the file the
    route opened. A name that is a link when the route opens it (even to a file inside the mount)
    is refused, and a FIFO is answered at once, as nothing."""
    data = payload(50_000, seed=13)
    asset = await uploaded(api, contributor, data, "local", "swapped.bin")
    others = payload(50_000, seed=14)
    other = await uploaded(api, contributor, others, "local", "other.bin")
    root = app.state.graphlake.stores["local"].root
    stored, aside = root / asset["storage"]["key"], tmp_path / "aside"
    secret = tmp_path / "signing.key"
    secret.write_bytes(b"not the lake's " * 4000)
    swap = False

    async def swapping(scope, receive, send):  # type: ignore[no-untyped-def]
        async def sending(message):  # type: ignore[no-untyped-def]
            if swap and message["type"] == "http.response.start":  # checked and answered: now the name is a link
                stored.rename(aside)
                stored.symlink_to(secret)
            await send(message)
        await app(scope, receive, sending)

    def put_back() -> None:
        if stored.is_symlink():
            stored.unlink()
        if aside.exists():
            aside.rename(stored)

    urls = ((f"/assets/{asset['id']}/content", auth(viewer), 404), (httpx.URL(asset["downloadUrl"]).raw_path.decode(), {}, 400))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=swapping), base_url="http://graphlake.test") as http:
        for url, headers, refused in urls:
            for ranged in ({}, {"Range": "bytes=100-199"}):
                swap = True
                response = await http.get(url, headers={**headers, **ranged})
                swap = False
                put_back()
                assert b"not the lake's" not in response.content
                assert response.content == (data[100:200] if ranged else data), response.status_code
            stored.rename(aside)
            stored.symlink_to(root / other["storage"]["key"])  # a link that stays inside the mount: not followed either
            try:
                response = await http.get(url, headers=headers)
                assert response.status_code == refused and others not in response.content, response.text
                stored.unlink()
                os.mkfifo(stored)  # nothing opens it (no reader would ever come)
                assert (await http.get(url, headers=headers)).status_code == 404
            finally:
                stored.unlink()
                put_back()


async def test_stored_bytes_are_never_run_on_the_apps_origin(http: httpx.AsyncClient, api: Api, contributor: str,
                                                             viewer: str) -> None:
    """A CONTRIBUTOR's JavaScript, HTML or SVG, served from the web app's origin: a browser asking to
    run it (`Sec-Fetch-Dest: script`, a style, a worker) is refused, and every answer says nosniff and
    sandboxes any document shown from it. Before, `<script src>` of a signed /blobs URL ran under the
    app's own `script-src 'self'`. Images and downloads are served as ever."""
    script = b"alert(sessionStorage['graphlake.token'])"
    stored = await uploaded(api, contributor, script, "local", "x.js")
    url = (await api.data("DownloadUrl", {"id": stored["id"]}, token=viewer))["asset"]["downloadUrl"]
    signed = url.removeprefix(str(http.base_url).rstrip("/"))
    for path, headers in ((signed, {}), (f"/assets/{stored['id']}/content", auth(viewer))):
        for destination in ("script", "style", "worker", "serviceworker"):
            refused = await http.get(path, headers={**headers, "Sec-Fetch-Dest": destination})
            assert refused.status_code == 403 and script not in refused.content, (path, destination)
        for destination in (None, "document", "image", "empty"):
            fetched = await http.get(path, headers={**headers, **({"Sec-Fetch-Dest": destination} if destination else {})})
            assert fetched.status_code == 200 and fetched.content == script, (path, destination)
            assert fetched.headers["x-content-type-options"] == "nosniff"
            assert fetched.headers["content-security-policy"] == "sandbox; default-src 'none'"


async def test_ranges_are_answered_as_rfc_9110_says(http: httpx.AsyncClient, api: Api, contributor: str,
                                                   viewer: str) -> None:
    """Starlette's FileResponse answered 400 to a Range of another unit or an invalid one, which the RFC
    does not allow (another unit is ignored; an invalid one is refused with 416 naming the size), and
    416 to a header with one range past the end beside a satisfiable one (sent, the other dropped)."""
    data = bytes(range(100))
    asset = await uploaded(api, contributor, data, "local", "ranges.bin")
    empty = await uploaded(api, contributor, b"", "local", "empty.bin")
    for url, headers in ((f"/assets/{asset['id']}/content", auth(viewer)),
                         (httpx.URL(asset["downloadUrl"]).raw_path.decode(), {})):
        for spec, status, content_range, body in (
                ("items=0-1", 200, None, data),  # a unit it does not know: ignored
                ("bytes=5-2", 416, "bytes */100", b""), ("bytes=abc", 416, "bytes */100", b""),
                ("bytes=-0", 416, "bytes */100", b""), ("bytes=100-", 416, "bytes */100", b""),
                ("bytes=0-1,200-", 206, "bytes 0-1/100", data[:2]),  # satisfiable: the range past the end dropped
                ("bytes=99-", 206, "bytes 99-99/100", data[99:]), ("bytes=-1", 206, "bytes 99-99/100", data[99:]),
                ("bytes=-500", 206, "bytes 0-99/100", data), ("bytes=0-0", 206, "bytes 0-0/100", data[:1]),
                ("bytes=0-1, 2-3", 206, "bytes 0-3/100", data[:4])):  # touching ranges go as one
            response = await http.get(url, headers={**headers, "Range": spec})
            assert (response.status_code, response.headers.get("content-range")) == (status, content_range), spec
            if status != 416:
                assert response.content == body, spec
    # A suffix of an empty file is satisfiable by all of it, which no Content-Range can name: sent whole.
    for spec, status in (("bytes=-5", 200), ("bytes=0-", 416)):
        response = await http.get(f"/assets/{empty['id']}/content", headers={**auth(viewer), "Range": spec})
        assert response.status_code == status and response.content == b"", spec


async def test_a_client_holding_the_content_is_answered_304(http: httpx.AsyncClient, api: Api, contributor: str,
                                                            viewer: str) -> None:
    """A file, a value or a text asked for again with its ETag (If-None-Match), or a file with its date
    (If-Modified-Since), is not sent again: FileResponse set the validators and ignored them."""
    stored = await uploaded(api, contributor, payload(50_000, seed=3), "local", "again.bin")
    value = await factories.value_asset(api, contributor, value={"t": 2})
    text = (await api.data("StoreText", {"input": {"name": "n", "text": "größe"}}, token=contributor))["storeText"]
    for url, headers in ((f"/assets/{stored['id']}/content", auth(viewer)),
                         (httpx.URL(stored["downloadUrl"]).raw_path.decode(), {}),
                         (f"/assets/{value['id']}/content", auth(viewer)), (f"/assets/{text['id']}/content", auth(viewer))):
        first = await http.get(url, headers=headers)
        etag = first.headers["etag"]
        for condition in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'}, {"If-None-Match": "*"}):
            again = await http.get(url, headers={**headers, **condition})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, (url, condition)
            assert again.headers["x-content-type-options"] == "nosniff"
        changed = await http.get(url, headers={**headers, "If-None-Match": '"another"'})
        assert changed.status_code == 200 and changed.content == first.content
        if "last-modified" in first.headers:
            again = await http.get(url, headers={**headers, "If-Modified-Since": first.headers["last-modified"]})
            assert again.status_code == 304
    # Still asked who is asking: a 304 tells whether the asset is there.
    assert (await http.get(f"/assets/{value['id']}/content", headers={"If-None-Match": "*"})).status_code == 401


async def test_a_cached_copy_is_kept_only_while_it_is_what_would_be_sent(http: httpx.AsyncClient, api: Api,
                                                                         contributor: str, viewer: str,
                                                                         state: AppState) -> None:
    """A local file's ETag was Starlette's MD5 of its mtime and size, and a value's or a text's its
    SHA-256 alone: an alias moved to another file of that size and mtime answered a client holding
    the first 304 (it kept the other bytes), and after a rename or a new media type a revalidating
    cache kept the old Content-Disposition and Content-Type. The ETag names the bytes (their SHA-256)
    and those headers; Last-Modified moves with the asset's record and with the alias it is asked by."""
    first, second = payload(4_000, seed=51), payload(4_000, seed=52)
    one = await uploaded(api, contributor, first, "local", "one.bin")
    two = await uploaded(api, contributor, second, "local", "two.bin")
    root = state.stores["local"].root  # type: ignore[attr-defined]
    for stored in (one, two):  # copies made with `cp -p`, say: one size, one mtime
        os.utime(root / stored["storage"]["key"], ns=(1_700_000_000_000_000_000,) * 2)
    from documents.asset import Alias
    from documents.asset import Asset as AssetDocument
    from tests.operations import object_id
    for stored, hours in ((one, 2), (two, 3)):  # the second stored before the first: an older file in every way
        await AssetDocument.get_pymongo_collection().update_one(
            {"_id": object_id(stored["id"])}, {"$set": {"updated_at": utcnow() - timedelta(hours=hours)}})
    await api.data("MoveAlias", {"alias": "lab/current", "assetId": one["id"]}, token=contributor)
    await Alias.get_pymongo_collection().update_one(  # an HTTP date holds whole seconds: moved an hour ago
        {"_id": "lab/current"}, {"$set": {"moved_at": utcnow() - timedelta(hours=1)}})
    held = await http.get("/assets/lab/current/content", headers=auth(viewer))
    assert held.content == first
    await api.data("MoveAlias", {"alias": "lab/current", "assetId": two["id"]}, token=contributor)
    again = await http.get("/assets/lab/current/content", headers={**auth(viewer), "If-None-Match": held.headers["etag"]})
    assert again.status_code == 200 and again.content == second
    # Revalidated by date alone (curl -z, wget -N): the alias moved since, to a file older than that.
    dated = await http.get("/assets/lab/current/content",
                           headers={**auth(viewer), "If-Modified-Since": held.headers["last-modified"]})
    assert dated.status_code == 200 and dated.content == second

    # Renamed: the bytes are the same, the name they are saved under is not.
    value = await factories.value_asset(api, contributor, "reading", value={"t": 2})
    text = (await api.data("StoreText", {"input": {"name": "n.txt", "text": "größe"}}, token=contributor))["storeText"]
    for asset, renamed in ((one, "one-renamed.bin"), (value, "reading-renamed"), (text, "n-renamed.txt")):
        url = f"/assets/{asset['id']}/content"
        # Stored a minute ago: an HTTP date holds whole seconds, and the rename follows within one.
        await AssetDocument.get_pymongo_collection().update_one(
            {"_id": object_id(asset["id"])}, {"$set": {"updated_at": utcnow() - timedelta(minutes=1)}})
        before = await http.get(url, headers=auth(viewer))
        blob_before = httpx.URL(asset["downloadUrl"]).raw_path.decode() if asset.get("downloadUrl") else None
        blob_held = await http.get(blob_before) if blob_before else None
        await api.data("UpdateAsset", {"input": {"id": asset["id"], "name": renamed}}, token=contributor)
        after = await http.get(url, headers={**auth(viewer), "If-None-Match": before.headers["etag"]})
        assert after.status_code == 200 and after.content == before.content, asset["name"]
        assert renamed in after.headers["content-disposition"] and after.headers["etag"] != before.headers["etag"]
        assert (await http.get(url, headers={**auth(viewer), "If-None-Match": after.headers["etag"]})).status_code == 304
        if "last-modified" in before.headers:  # revalidated by date alone (curl -z): the rename is a change
            dated = await http.get(url, headers={**auth(viewer), "If-Modified-Since": before.headers["last-modified"]})
            assert dated.status_code == 200 and renamed in dated.headers["content-disposition"]
        if blob_held is not None:  # the signed GET downloadUrl gives now, revalidated with the old one's ETag
            fresh = (await api.data("DownloadUrl", {"id": asset["id"]}, token=viewer))["asset"]["downloadUrl"]
            blob_after = await http.get(httpx.URL(fresh).raw_path.decode(),
                                        headers={"If-None-Match": blob_held.headers["etag"]})
            assert blob_after.status_code == 200 and renamed in blob_after.headers["content-disposition"]

    # A media type changed in the record (a repair of one stored wrong): the ETag changes with it.
    before = await http.get(f"/assets/{two['id']}/content", headers=auth(viewer))
    await AssetDocument.get_pymongo_collection().update_one({"_id": object_id(two["id"])},
                                                            {"$set": {"media_type": "image/png"}})
    after = await http.get(f"/assets/{two['id']}/content", headers={**auth(viewer), "If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["content-type"] == "image/png"


async def test_a_file_whose_digest_is_not_read_yet_is_named_by_the_file_itself(
        http: httpx.AsyncClient, api: Api, contributor: str, viewer: str, state: AppState) -> None:
    """With no SHA-256 to name it by (an ingested file's, until the reconciler reads it), a file's ETag
    names the file itself: two of one name, size and mtime, which Starlette's ETag held the same, differ."""
    from documents.asset import Asset as AssetDocument
    from tests.operations import object_id
    root = state.stores["local"].root  # type: ignore[attr-defined]
    made = [await uploaded(api, contributor, payload(3_000, seed=seed), "local", "same.bin") for seed in (61, 62)]
    for stored in made:
        os.utime(root / stored["storage"]["key"], ns=(1_700_000_000_000_000_000,) * 2)
        await AssetDocument.get_pymongo_collection().update_one({"_id": object_id(stored["id"])},
                                                                {"$unset": {"sha256": ""}})
    await api.data("MoveAlias", {"alias": "lab/undigested", "assetId": made[0]["id"]}, token=contributor)
    held = await http.get("/assets/lab/undigested/content", headers=auth(viewer))
    assert held.status_code == 200 and "x-graphlake-sha256" not in held.headers
    assert (await http.get("/assets/lab/undigested/content",
                           headers={**auth(viewer), "If-None-Match": held.headers["etag"]})).status_code == 304
    await api.data("MoveAlias", {"alias": "lab/undigested", "assetId": made[1]["id"]}, token=contributor)
    again = await http.get("/assets/lab/undigested/content", headers={**auth(viewer), "If-None-Match": held.headers["etag"]})
    assert again.status_code == 200 and again.content == payload(3_000, seed=62)


async def test_a_text_is_labelled_in_the_utf8_it_is_sent_in(http: httpx.AsyncClient, api: Api, contributor: str,
                                                            viewer: str) -> None:
    """A text stored with a media type naming another charset went out as UTF-8 labelled with that
    charset: a browser, and any client decoding by the header, read `größe` as `grÃ¶Ã\\x9fe`."""
    for stored, sent in (("text/plain; charset=iso-8859-1", "text/plain; charset=utf-8"),
                         ('text/csv; charset="windows-1252"; header=present', "text/csv; header=present; charset=utf-8"),
                         ("image/svg+xml; charset=utf-16", "image/svg+xml; charset=utf-8"),
                         ("text/markdown", "text/markdown; charset=utf-8"), ("application/json", "application/json")):
        text = (await api.data("StoreText", {"input": {"name": "n.txt", "text": "größe", "mediaType": stored}},
                               token=contributor))["storeText"]
        response = await http.get(f"/assets/{text['id']}/content", headers=auth(viewer))
        assert response.headers["content-type"] == sent and response.content == "größe".encode()
        assert response.text == "größe"


async def test_a_failed_upload_has_no_content_to_serve(http: httpx.AsyncClient, api: Api, contributor: str,
                                                       viewer: str, state: AppState) -> None:
    """An S3 upload that expired (its asset FAILED) still has a live presigned PUT, which can store the
    bytes until the sweep removes them: the content route redirected to them and `downloadUrl`, which
    the schema says is null for a FAILED asset, signed a GET of them. Bytes nobody verified are served
    by neither now."""
    data = payload(2_000, seed=31)
    session = await start(api, contributor, data, "lab")
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    await reconcile(state.stores, state.feed)
    assert (await put(session["url"], data, session["headers"])).status_code == 200  # S3 took it all the same
    asset_id = session["asset"]["id"]
    query = "query ($id: ID!) { asset(id: $id) { status downloadUrl } }"
    answer = (await http.post("/graphql", json={"query": query, "variables": {"id": asset_id}}, headers=auth(viewer))).json()
    assert answer["data"]["asset"] == {"status": "FAILED", "downloadUrl": None}
    response = await http.get(f"/assets/{asset_id}/content", headers=auth(viewer))
    assert response.status_code == 409 and response.json()["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert "FAILED" in response.json()["errors"][0]["message"]


async def test_a_files_media_type_that_no_header_can_carry_is_sent_as_octet_stream(
        http: httpx.AsyncClient, api: Api, contributor: str, viewer: str) -> None:
    """A text's media type stored before media types were checked was replaced by text/plain; a file's
    went into Content-Type as it was, line break and all (uvicorn refuses to send such a header: the
    download failed), on the content route and on a signed GET of /blobs alike."""
    from documents.asset import Asset as AssetDocument
    from tests.operations import object_id
    stored = await uploaded(api, contributor, b"<p>hi</p>", "local", "page.html")
    await AssetDocument.get_pymongo_collection().update_one({"_id": object_id(stored["id"])},
                                                            {"$set": {"media_type": "text/html\r\nX-Evil: 1"}})
    query = "query ($id: ID!) { asset(id: $id) { downloadUrl } }"
    answer = (await http.post("/graphql", json={"query": query, "variables": {"id": stored["id"]}},
                              headers=auth(viewer))).json()["data"]
    for url, headers in ((f"/assets/{stored['id']}/content", auth(viewer)),
                         (httpx.URL(answer["asset"]["downloadUrl"]).raw_path.decode(), {})):
        response = await http.get(url, headers=headers)
        assert response.status_code == 200 and response.content == b"<p>hi</p>"
        assert response.headers["content-type"] == "application/octet-stream", url


async def test_a_local_file_is_opened_off_the_event_loop(http: httpx.AsyncClient, api: Api, contributor: str,
                                                         viewer: str, state: AppState,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The content route and a signed GET of /blobs opened the file on the event loop: on a network
    file system whose server is away (a hard NFS mount), the open waits until it is back, and every
    request of the process waited with it, /healthz and /readyz too. It is opened in a worker thread."""
    data = payload(5_000, seed=41)
    stored = await uploaded(api, contributor, data, "local", "far.bin")
    store = state.stores["local"]
    open_object, on_the_loop = store.open_object, []  # type: ignore[attr-defined]

    def watched(key: str):  # type: ignore[no-untyped-def]
        try:
            asyncio.get_running_loop()
            on_the_loop.append(key)
        except RuntimeError:  # a worker thread runs no loop
            pass
        return open_object(key)

    monkeypatch.setattr(store, "open_object", watched)
    for url, headers in ((f"/assets/{stored['id']}/content", auth(viewer)),
                         (httpx.URL(stored["downloadUrl"]).raw_path.decode(), {})):
        response = await http.get(url, headers=headers)
        assert response.status_code == 200 and response.content == data
    assert on_the_loop == []
