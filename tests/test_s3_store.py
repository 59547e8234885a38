"""The S3 store against MinIO: behind a proxy that plays a slow S3, a multipart completion S3 thinks
over for longer than the mount's timeout_seconds is waited for, and completing twice is harmless;
the URLs it signs name the public endpoint, take only the signed size, and name a download's file
as stored. (A store that fails: tests/test_s3_failures.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.conftest import S3Service, mount_at

REQUEST_STARTS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


@contextlib.asynccontextmanager
async def slow_completions(upstream: str, delay: float) -> AsyncIterator[str]:
    """A TCP proxy to `upstream` holding back the answer to each multipart completion (a POST with
    an uploadId) for `delay` seconds, as S3 does while it assembles a big object. HTTP/1.1 clients
    send one request at a time on a connection, so the last request line seen is the one answered."""
    target = urlsplit(upstream)
    pipes: set[asyncio.Task] = set()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(target.hostname, target.port)
        pending_completion = asyncio.Event()

        async def requests() -> None:
            while data := await client_reader.read(65536):
                if data.startswith(REQUEST_STARTS):
                    line = data.split(b"\r\n", 1)[0]
                    if line.startswith(b"POST ") and b"uploadId=" in line:
                        pending_completion.set()
                upstream_writer.write(data)
                await upstream_writer.drain()
            upstream_writer.close()

        async def answers() -> None:
            while data := await upstream_reader.read(65536):
                if pending_completion.is_set():
                    pending_completion.clear()
                    await asyncio.sleep(delay)
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        for pipe in (asyncio.create_task(requests()), asyncio.create_task(answers())):
            pipes.add(pipe)
            pipe.add_done_callback(pipes.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for pipe in list(pipes):
            pipe.cancel()


async def test_a_completion_slower_than_the_mount_timeout_is_waited_for(s3: S3Service) -> None:
    async with slow_completions(s3.endpoint, delay=2.0) as endpoint:
        store = mount_at(s3, "slow", endpoint_url=endpoint, timeout=0.5)
        await store.open()
        try:
            key = f"slow-completion/{uuid.uuid4().hex}"
            upload_id = await store.start_multipart(key, content_type="application/octet-stream")  # answered at once
            body = b"part one " * 1000
            signed = await store.sign_part(key, upload_id, 1, size=len(body), offset=0, expires_in=60)
            async with httpx.AsyncClient() as http:
                assert (await http.put(signed.url, content=body)).status_code == 200
            parts = await store.list_parts(key, upload_id)
            # 2 s of thinking against a 0.5 s timeout: before, botocore gave up after 0.5 s, tried
            # again, and the retry found the upload already completed (NoSuchUpload): an error.
            await store.complete_multipart(key, upload_id, parts)
            info = await store.stat(key)
            assert info is not None and info.size == len(body)
            # Completing again (a caller that lost the first answer) finds the object: no error.
            await store.complete_multipart(key, upload_id, parts)
        finally:
            await store.close()


async def test_urls_for_clients_name_the_public_endpoint_and_work_there(s3: S3Service) -> None:
    """In a compose network the server reaches MinIO as http://minio:9000, a name no client resolves:
    with public_endpoint_url the signed URLs it hands out name the address clients use (here the same
    MinIO as `localhost`), signed for that host, while its own requests still go to endpoint_url."""
    public = s3.endpoint.replace("127.0.0.1", "localhost")
    assert public != s3.endpoint  # else this checks nothing
    store = mount_at(s3, "public", public_endpoint_url=public)
    await store.open()
    try:
        key = f"public/{uuid.uuid4().hex}"
        body = b"through the public address"
        put = await store.sign_put(key, size=len(body), content_type="text/plain", sha256=None, expires_in=60)
        assert put.url.startswith(public + "/")
        async with httpx.AsyncClient() as http:
            assert (await http.put(put.url, content=body, headers=put.headers)).status_code == 200
            info = await store.stat(key)  # the server's own request, at endpoint_url
            assert info is not None and info.size == len(body)
            get = await store.sign_get(key, filename="x.txt", content_type="text/plain", expires_in=60)
            assert get.startswith(public + "/") and (await http.get(get)).content == body
            upload_id = await store.start_multipart(key + "-parts", content_type="text/plain")
            part = await store.sign_part(key + "-parts", upload_id, 1, size=len(body), offset=0, expires_in=60)
            assert part.url.startswith(public + "/") and (await http.put(part.url, content=body)).status_code == 200
            await store.abort_multipart(key + "-parts", upload_id)
        await store.delete(key)
    finally:
        await store.close()


async def test_a_signed_put_takes_only_the_size_it_was_signed_for(s3: S3Service) -> None:
    """The Content-Length is signed: a URL for 10 bytes stored any size before (checked only when the
    upload completed, and an upload never completed kept its bytes until the reconciler swept it)."""
    store = mount_at(s3, "sized")
    await store.open()
    try:
        key = f"sized/{uuid.uuid4().hex}"
        put = await store.sign_put(key, size=10, content_type="application/octet-stream", sha256=None, expires_in=60)
        assert "Content-Length" not in put.headers  # the client's HTTP stack sends it from the body
        upload_id = await store.start_multipart(key + "-parts", content_type="application/octet-stream")
        part = await store.sign_part(key + "-parts", upload_id, 1, size=10, offset=0, expires_in=60)
        async with httpx.AsyncClient() as http:
            for url, headers in ((put.url, put.headers), (part.url, {})):
                larger = await http.put(url, content=b"x" * 11_000_000, headers=headers)
                assert larger.status_code == 403, larger.text
                smaller = await http.put(url, content=b"x" * 9, headers=headers)
                assert smaller.status_code == 403, smaller.text

                async def chunked() -> AsyncIterator[bytes]:  # no length at all
                    yield b"x" * 10

                assert (await http.put(url, content=chunked(), headers=headers)).status_code in (403, 411, 501)
                assert (await http.put(url, content=b"x" * 10, headers=headers)).status_code == 200
        assert (await store.stat(key)).size == 10  # type: ignore[union-attr]
        await store.abort_multipart(key + "-parts", upload_id)
        await store.delete(key)
    finally:
        await store.close()


def saved_as(disposition: str) -> str:
    """The name a browser saves an attachment under: RFC 5987's `filename*` where there is one, else
    the plain `filename` (the email package reads the plain one first: it is the ASCII fallback)."""
    header = Message()
    header["content-disposition"] = disposition
    assert header.get_content_disposition() == "attachment", disposition
    exact = re.search(r"filename\*=utf-8''([^;\s]+)", disposition, re.IGNORECASE)
    return unquote(exact.group(1)) if exact else str(header.get_filename())


async def test_a_signed_get_names_the_file_as_stored_whatever_its_name_holds(s3: S3Service) -> None:
    """The download's Content-Disposition and Content-Type are signed into the URL (S3 answers with
    them): a name with quotes, a semicolon, a line break or letters outside ASCII reaches the header
    encoded (RFC 6266 / 5987), so it can neither end the parameter nor add a header, and a client
    saves the file under the exact name."""
    store = mount_at(s3, "named")
    await store.open()
    key = f"named/{uuid.uuid4().hex}"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"named")
    try:
        async with httpx.AsyncClient() as http:
            for name in ('plain.txt', 'a "quoted"; filename=evil.sh résumé 日本.txt', "two\r\nX-Injected: 1.txt"):
                url = await store.sign_get(key, filename=name, content_type="text/plain; charset=utf-8", expires_in=60)
                answer = await http.get(url)
                assert answer.status_code == 200 and answer.content == b"named", answer.text
                assert "x-injected" not in answer.headers and answer.headers["content-type"] == "text/plain; charset=utf-8"
                assert saved_as(answer.headers["content-disposition"]) == name, answer.headers
                tampered = url.replace("response-content-disposition=attachment", "response-content-disposition=inline")
                assert (await http.get(tampered)).status_code == 403  # the header is the signed one or none
    finally:
        await store.delete(key)
        await store.close()


async def test_hashing_a_stored_object_keeps_its_slices_off_the_event_loop(s3: S3Service, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """sha256() of an object (a multipart upload's completion) hashed each slice of its body on the
    event loop: 0.3 to 4 ms a slice here, every other request of the process waiting meanwhile."""
    loop_thread = threading.current_thread()
    on_loop: list[int] = []

    class Watched:
        def __init__(self) -> None:
            self.digest = hashlib.sha256()

        def update(self, data: Any) -> None:
            if threading.current_thread() is loop_thread:
                on_loop.append(len(data))
            self.digest.update(data)

        def hexdigest(self) -> str:
            return self.digest.hexdigest()

    store = mount_at(s3, "hashed")
    await store.open()
    data = os.urandom(8 << 20)
    (tmp_path / "object").write_bytes(data)
    key = f"hashed/{uuid.uuid4().hex}"
    try:
        await store.write(key, tmp_path / "object")
        monkeypatch.setattr("storage.s3.hashlib", SimpleNamespace(sha256=Watched))
        assert await store.sha256(key) == hashlib.sha256(data).hexdigest()
    finally:
        await store.delete(key)
        await store.close()
    assert all(size < 64 * 1024 for size in on_loop), on_loop
