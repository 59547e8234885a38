"""An S3 mount that fails after the server started: its credentials rotated, its endpoint gone, its
bucket deleted, or the store throttling (503 SlowDown). Each is a GraphQL error UNAVAILABLE naming
the mount, never INTERNAL (a bundle the store refuses to hand over is BAD_USER_INPUT on its path,
saying what the store answered); nothing stored is lost (the upload completes once the store is back),
and a batch the store refused half-way leaves no multipart upload open that no session names."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from graphlake.settings import Settings
from resolvers.bundles.runner import located
from resolvers.context import AppState
from services.availability import unavailable
from services.errors import BadUserInput, Conflict
from services.uploads import mounts as upload_mounts
from storage import S3Store, StoreAnswered, StoreUnavailable, to_fix, unreachable
from tests.conftest import S3Service, mount_at
from tests.operations import Api, document
from tests.test_uploads import MIB, multipart_from_one_mib, payload, put, start


@contextlib.asynccontextmanager
async def mounted(state: AppState, store: S3Store) -> AsyncIterator[S3Store]:
    await store.open()
    state.stores[store.name] = store
    try:
        yield store
    finally:
        if state.stores.get(store.name) is store:
            del state.stores[store.name]
        await store.close()


async def every_part_sent(api: Api, token: str, settings: Settings, data: bytes, mount: str) -> dict:
    """An upload of `data` to `mount` in parts of 1 MiB, each part PUT: its session, left to complete."""
    with multipart_from_one_mib(settings):
        session = await start(api, token, data, mount)
    size = session["partSizeBytes"]
    for part in session["parts"]:
        offset = (part["partNumber"] - 1) * size
        assert (await put(part["url"], data[offset:offset + size])).status_code == 200
    return session


@pytest.mark.parametrize("failure", ["credentials", "endpoint"])
async def test_a_mount_failing_after_an_upload_began_is_unavailable_naming_it(
        api: Api, contributor: str, state: AppState, settings: Settings, s3: S3Service, failure: str) -> None:
    """Completing a multipart upload lists and joins its parts through botocore: a secret rotated
    since the server started (MinIO answers InvalidAccessKeyId... to it) was INTERNAL, a store that
    stopped answering UNAVAILABLE naming no mount."""
    prefix = f"failing-{uuid.uuid4().hex[:8]}"
    async with mounted(state, mount_at(s3, "rotating", prefix)) as good:
        data = payload(9 * MIB, seed=7)
        session = await every_part_sent(api, contributor, settings, data, "rotating")
        broken = (mount_at(s3, "rotating", prefix, secret_access_key="rotated-since") if failure == "credentials"
                  else mount_at(s3, "rotating", prefix, endpoint_url="http://127.0.0.1:9", timeout=0.5))
        async with mounted(state, broken):
            error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor, status=503)
            assert error["extensions"]["code"] == "UNAVAILABLE", error
            assert "s3 mount 'rotating'" in error["message"] and "parts" in error["message"], error
            # A rotated secret is the operator's to mend (extensions.retry false); an endpoint away may come back.
            assert error["extensions"].get("retry", True) is (failure == "endpoint"), error
        state.stores["rotating"] = good  # the store is back: nothing was lost meanwhile
        asset = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
        assert asset["status"] == "ACTIVE" and asset["sizeBytes"] == len(data)


async def test_a_store_refusing_the_servers_credentials_says_what_to_fix_not_to_retry(
        api: Api, contributor: str, state: AppState, settings: Settings, s3: S3Service,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store answering AccessDenied to the server's own request (its credentials narrowed since it
    started, the bucket's policy changed) was UNAVAILABLE `...; retry shortly` with Retry-After: 1,
    and clients retried in vain: only the server's operator can mend it. Still UNAVAILABLE (the server
    cannot use the mount now), it says what to fix, and sends no Retry-After."""
    prefix = f"narrowed-{uuid.uuid4().hex[:8]}"
    async with mounted(state, mount_at(s3, "narrowed", prefix)) as good:
        data = payload(2 * MIB, seed=11)
        session = await every_part_sent(api, contributor, settings, data, "narrowed")
        for variable, value in s3.read_only_credentials().items():  # through the default credential chain
            monkeypatch.setenv(variable, value)
        async with mounted(state, mount_at(s3, "narrowed", prefix, access_key_id=None, secret_access_key=None)):
            asked = {"CompleteUpload": {"input": {"id": session["id"]}},  # lists its parts: AccessDenied
                     "CreateUpload": {"input": {"name": "x.bin", "sizeBytes": 3, "mount": "narrowed"}}}  # the write probe's
            for operation, variables in asked.items():
                response = await api.http.post("/graphql", headers={"Authorization": f"Bearer {contributor}"}, json={
                    "query": document(operation), "operationName": operation, "variables": variables})
                assert response.status_code == 503 and "retry-after" not in response.headers, (operation, response.headers)
                [error] = response.json()["errors"]
                message = error["message"]
                assert error["extensions"]["code"] == "UNAVAILABLE", error
                assert error["extensions"]["retry"] is False, error  # told apart without reading the message
                assert "s3 mount 'narrowed'" in message and "AccessDenied" in message, error
                assert "retry shortly" not in message and "now" not in message.split("AccessDenied")[0], error
                assert message.endswith("retrying will not change that: the server's operator must fix the permissions "
                                        "of the mount's credentials and the bucket's policy"), error
        state.stores["narrowed"] = good  # the credentials mended: nothing was lost meanwhile
        asset = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
        assert asset["status"] == "ACTIVE" and asset["sizeBytes"] == len(data)


async def refusal_of_the_servers_credentials(s3: S3Service) -> StoreAnswered:
    """What MinIO answers a mount whose secret was rotated since the server started: the store
    refusing the server itself, which no retry mends (storage.to_fix)."""
    refused = mount_at(s3, "rotated", secret_access_key="rotated-since")
    await refused.open()
    try:
        with pytest.raises(StoreAnswered) as checked:
            await refused.check()
    finally:
        await refused.close()
    assert to_fix(checked.value)
    return checked.value


async def test_a_refusal_met_before_the_operation_runs_sends_no_retry_after(
        api: Api, contributor: str, state: AppState, s3: S3Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outage met before execution (the token's lookup) was answered with `Retry-After: 1`
    whatever it was (graphlake/view.py), where the error policy and the content route left it out
    for one only the operator can mend. Both now alike: UNAVAILABLE, `extensions.retry` false, no
    Retry-After. The refusal is MinIO's own; only the step that meets it is chosen here."""
    refusal = await refusal_of_the_servers_credentials(s3)

    async def refused(secret: str) -> None:
        raise refusal

    monkeypatch.setattr(state.tokens, "authenticate", refused)
    headers = {"Authorization": f"Bearer {contributor}"}
    answers = {"/graphql": await api.http.post("/graphql", headers=headers, json={
                   "query": document("Status"), "operationName": "Status"}),
               "content route": await api.http.get("/assets/some-alias/content", headers=headers)}
    for where, response in answers.items():
        assert response.status_code == 503 and "retry-after" not in response.headers, (where, response.headers)
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "UNAVAILABLE" and error["extensions"]["retry"] is False, (where, error)
        assert "the server's operator must fix the mount's credentials" in error["message"], (where, error)


@pytest.fixture
def checks_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount's reachability check is remembered for a while (services/uploads/mounts.py): here for
    long enough that a bucket deleted after one is not seen by the next upload's check."""
    monkeypatch.setattr(upload_mounts, "CHECK_SECONDS", 600.0)


def open_uploads(s3: S3Service, prefix: str) -> set[str]:
    """The keys under `prefix/` with a multipart upload open. The bucket's whole list, then filtered:
    MinIO answers a listing by a prefix only for the prefix of a whole key."""
    listed = s3.client().list_multipart_uploads(Bucket=s3.bucket, MaxUploads=1000)
    assert not listed.get("IsTruncated"), "more open uploads in the test bucket than one listing holds"
    return {u["Key"] for u in listed.get("Uploads", []) if u["Key"].startswith(prefix + "/")}


async def test_a_batch_the_store_refuses_half_way_leaves_no_multipart_upload_open(
        api: Api, contributor: str, state: AppState, settings: Settings, s3: S3Service, checks_remembered: None) -> None:
    """createUploads starts each file's multipart upload before it stores the sessions: when one
    mount refused (here its bucket was deleted since its check), the error was INTERNAL and the
    other mount's upload, started already, stayed open in S3 with no session naming it, so no
    reconciler ever aborted it (S3 bills its parts)."""
    client = s3.client()
    bucket = f"gone-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    prefix = f"batch-{uuid.uuid4().hex[:8]}"
    async with mounted(state, mount_at(s3, "kept", prefix)), mounted(state, mount_at(s3, "gone", "", bucket=bucket)):
        await start(api, contributor, b"checked", "gone")  # its check answered, and is remembered
        await start(api, contributor, b"checked", "kept")
        with multipart_from_one_mib(settings):  # an upload in parts on the mount that answers: seen open
            await start(api, contributor, payload(2 * MIB), "kept")
        before = open_uploads(s3, prefix)
        assert len(before) == 1
        client.delete_bucket(Bucket=bucket)  # an operator's mistake, or a lifecycle gone wrong
        with multipart_from_one_mib(settings):
            inputs = [{"name": f"{i}.bin", "sizeBytes": 2 * MIB, "mount": mount} for i, mount in enumerate(["kept", "gone"])]
            error = await api.error("CreateUploads", {"inputs": inputs}, token=contributor, status=503)
        assert error["extensions"]["code"] == "UNAVAILABLE", error
        assert error["extensions"]["field"] == "inputs[1].mount", error
        assert "s3 mount 'gone'" in error["message"] and "NoSuchBucket" in error["message"], error
        assert open_uploads(s3, prefix) == before  # the batch's, started on the mount that answered, is aborted


async def test_credentials_narrowed_since_a_mounts_check_are_the_operators_to_fix(
        api: Api, contributor: str, state: AppState, settings: Settings, s3: S3Service,
        checks_remembered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store refusing the start of an upload in parts after its check had answered (remembered a
    few seconds) was `cannot take uploads now` with Retry-After, though no retry mends a refusal of
    the server's credentials: it is said as the check's own refusal is (extensions.retry false)."""
    prefix = f"narrowed-{uuid.uuid4().hex[:8]}"
    async with mounted(state, mount_at(s3, "narrowed", prefix)) as good:
        await start(api, contributor, b"checked", "narrowed")  # its check answered, and is remembered
        for variable, value in s3.read_only_credentials().items():
            monkeypatch.setenv(variable, value)
        async with mounted(state, mount_at(s3, "narrowed", prefix, access_key_id=None, secret_access_key=None)) as narrowed:
            upload_mounts._checked[narrowed] = upload_mounts._checked[good]  # the same mount, checked a moment ago
            with multipart_from_one_mib(settings):
                response = await api.http.post("/graphql", headers={"Authorization": f"Bearer {contributor}"}, json={
                    "query": document("CreateUpload"), "operationName": "CreateUpload",
                    "variables": {"input": {"name": "x.bin", "sizeBytes": 2 * MIB, "mount": "narrowed"}}})
    assert response.status_code == 503 and "retry-after" not in response.headers, response.headers
    [error] = response.json()["errors"]
    assert error["extensions"] == {**error["extensions"], "code": "UNAVAILABLE", "field": "mount", "retry": False}, error
    assert error["message"].startswith("mount: mount 'narrowed' cannot take uploads: s3 mount 'narrowed': starting"), error
    assert "AccessDenied" in error["message"] and "the server's operator must fix" in error["message"], error


@contextlib.asynccontextmanager
async def throttling(seen: list[bytes]) -> AsyncIterator[str]:
    """An address answering every request with S3's 503 SlowDown, as a store under too much load
    does, each request's line put in `seen`. Only requests a test sends there meet it: the store's
    others go to the real MinIO."""
    slow_down = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
                 b"<Message>Please reduce your request rate.</Message></Error>")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(slow_down)).encode() + b"\r\n\r\n" + slow_down)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_a_throttling_store_is_asked_a_bounded_number_of_times_then_unavailable(s3: S3Service) -> None:
    """botocore retries a SlowDown (3 attempts in all, waits of a second or two); after that the
    store's ClientError reached callers as it was (INTERNAL). It is StoreUnavailable naming the
    mount and what was asked now."""
    prefix, seen = f"busy-{uuid.uuid4().hex[:8]}", []
    store = mount_at(s3, "busy", prefix)
    await store.open()
    try:
        upload_id = await store.start_multipart("assets/x", content_type="application/octet-stream")
        async with throttling(seen) as endpoint:
            busy = mount_at(s3, "busy", prefix, endpoint_url=endpoint, timeout=2)
            await busy.open()
            try:
                async with asyncio.timeout(30):  # bounded: no retrying without end
                    with pytest.raises(StoreUnavailable,
                                       match=r"s3 mount 'busy': listing the parts of 'assets/x': .*SlowDown"):
                        await busy.list_parts("assets/x", upload_id)
            finally:
                await busy.close()
        assert len(seen) == 3 and all(b"uploadId=" in line for line in seen), seen
        await store.abort_multipart("assets/x", upload_id)
    finally:
        await store.close()


async def test_a_throttling_store_listing_a_prefix_is_unavailable_not_the_askers_fault(s3: S3Service) -> None:
    """A listing (registerExternal, a bundle's directory) the store answers 503 once its retries are
    spent was taken for a refusal (BAD_USER_INPUT, the asker's to fix)."""
    async with throttling([]) as endpoint:
        busy = mount_at(s3, "busy", "", endpoint_url=endpoint, timeout=2)
        await busy.open()
        try:
            async with asyncio.timeout(30):
                with pytest.raises(StoreAnswered, match=r"s3 mount 'busy': listing .*SlowDown") as answered:
                    await busy.list_objects(s3.bucket, "data/", limit=10)
            assert answered.value.status == 503
        finally:
            await busy.close()


async def test_what_the_asker_named_and_the_store_refused_is_one_exception_telling_it_is_theirs(s3: S3Service) -> None:
    """A refusal of what the asker named (another bucket, an object registered in place) was its own
    class (StoreRefused), apart from StoreAnswered, carrying no HTTP status; and a callee's refusal
    that reached the error policy would have been taken for a store that is away."""
    store = mount_at(s3, "lab", "")
    await store.open()
    try:
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': listing graphlake-none/x/: .*NoSuchBucket") as listed:
            await store.list_objects("graphlake-none", "x/", limit=10)
        assert (listed.value.code, listed.value.status, listed.value.refused) == ("NoSuchBucket", 404, True)
        assert listed.value.reason == "the store answered NoSuchBucket"
        assert not unreachable(listed.value) and unavailable(listed.value) is None  # theirs: BAD_USER_INPUT, said by the caller
        with pytest.raises(StoreAnswered) as named:
            await store.list_objects("Bad Bucket!", "", limit=10)  # botocore refuses it before sending
        assert named.value.refused and named.value.status is None
        assert named.value.reason.startswith("'Bad Bucket!' is not a bucket name S3 takes ("), named.value.reason
    finally:
        await store.close()
    refused = mount_at(s3, "lab", "", secret_access_key="rotated-since")  # what `verify --deep` asks through
    await refused.open()
    try:
        with pytest.raises(StoreAnswered, match=rf"s3 mount 'lab': asking about s3://{s3.bucket}/k: the store answered 403") as asked:
            await refused.head_external(s3.bucket, "k")
        assert asked.value.refused and asked.value.status == 403
    finally:
        await refused.close()


async def test_a_mount_whose_owner_file_cannot_be_asked_about_names_what_the_store_answered(s3: S3Service) -> None:
    """The owner file's read and write mapped botocore's errors by hand, apart from every other request
    (S3Store._asking): a refusal was no StoreAnswered, saying the store's code only inside botocore's
    text, and a connection lost while the file's body was read escaped as aiohttp's own."""
    refused = mount_at(s3, "lab", f"owner-{uuid.uuid4().hex[:8]}", secret_access_key="rotated-since")
    await refused.open()
    try:
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': reading \.graphlake-owner: the store answered "
                                                r"SignatureDoesNotMatch") as read:
            await refused.read_owner_file()
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': writing \.graphlake-owner: the store answered "
                                                r"SignatureDoesNotMatch") as written:
            await refused.write_owner_file(b"{}", replace=False)
        assert {(e.value.code, e.value.status, e.value.refused) for e in (read, written)} == {("SignatureDoesNotMatch", 403, False)}
    finally:
        await refused.close()


async def test_the_sweep_and_the_readiness_check_name_what_the_store_answered(
        s3: S3Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's requests (listing, setting aside, deleting what was set aside) and the readiness
    check mapped botocore's errors by hand, apart from S3Store._asking: a refusal was a bare
    StoreUnavailable with no code (nothing could tell the credentials were refused), and the check's
    message said the code without the store's words or what was asked."""
    prefix = f"sweep-{uuid.uuid4().hex[:8]}"
    refused = mount_at(s3, "lab", prefix, secret_access_key="rotated-since")
    await refused.open()
    try:
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': listing assets/: the store answered SignatureDoesNotMatch") as listed:
            [page async for page in refused.files_older_than("assets", 0)]
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': listing \.stray/: the store answered SignatureDoesNotMatch") as removed:
            await refused.remove_set_aside(0)
        with pytest.raises(StoreAnswered, match=rf"s3 mount 'lab': asking for bucket '{s3.bucket}': the store answered 403") as checked:
            await refused.check()
        assert {(e.value.code, e.value.status) for e in (listed, removed)} == {("SignatureDoesNotMatch", 403)}
        assert checked.value.status == 403 and to_fix(checked.value)  # the operator's to fix: no retry mends it
    finally:
        await refused.close()
    store = mount_at(s3, "lab", prefix)
    await store.open()
    (tmp_path / "file").write_bytes(b"kept")
    await store.write("assets/x", tmp_path / "file")
    for variable, value in s3.read_only_credentials().items():  # may read (the HEAD before the copy), not write
        monkeypatch.setenv(variable, value)
    read_only = mount_at(s3, "lab", prefix, access_key_id=None, secret_access_key=None)
    await read_only.open()
    try:
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': setting aside 'assets/x': the store answered AccessDenied") as aside:
            await read_only.set_aside("assets/x")
        assert (aside.value.code, aside.value.status, aside.value.refused) == ("AccessDenied", 403, False)
        with pytest.raises(StoreAnswered, match=r"s3 mount 'lab': writing the probe object .*: the store answered AccessDenied"):
            await read_only.check()
        assert await store.stat("assets/x") is not None
    finally:
        await read_only.close()
        await store.delete("assets/x")
        await store.close()


async def test_a_socket_error_past_botocore_is_the_same_unavailable_in_the_check_as_anywhere(s3: S3Service) -> None:
    """A socket's own error (a connection reset) reaching the store's code unwrapped was mapped by the
    readiness check alone, apart from S3Store._asking: its message did not say what was asked; and
    every other request let it through as it was (INTERNAL). Both are now the one StoreUnavailable
    naming the mount, its endpoint and the request. aiobotocore wraps what its HTTP layer raises, so
    the reset is raised where a request is sent (botocore's before-send event), the rest real."""
    store = mount_at(s3, "lab", f"reset-{uuid.uuid4().hex[:8]}")
    await store.open()

    def reset(**_: Any) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    store.client.meta.events.register("before-send.s3", reset)
    try:
        for doing, call in ((f"asking for bucket {s3.bucket!r}", store.check),
                            ("starting a multipart upload of 'assets/x'",
                             lambda: store.start_multipart("assets/x", content_type="application/octet-stream"))):
            with pytest.raises(StoreUnavailable) as raised:
                await call()
            assert type(raised.value) is StoreUnavailable  # no StoreAnswered: nothing answered
            assert str(raised.value) == f"s3 mount 'lab' at {s3.endpoint}: {doing}: [Errno 104] Connection reset by peer"
            told = unavailable(raised.value)  # what a client is told: UNAVAILABLE, may work shortly
            assert unreachable(raised.value) and to_fix(raised.value) is None and told is not None and told.retry, told
    finally:
        store.client.meta.events.unregister("before-send.s3", reset)
        await store.close()


async def test_a_socket_error_other_than_a_connections_makes_the_check_unavailable(s3: S3Service) -> None:
    """No route to the store (an OSError that is no ConnectionError) is the store out of reach in the
    readiness check as well: StoreUnavailable, which sends uploads to the fallback mount, not an error
    past it (INTERNAL, and asked again at every call)."""
    store = mount_at(s3, "lab", f"unreachable-{uuid.uuid4().hex[:8]}")
    await store.open()

    def no_route(**_: Any) -> None:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    store.client.meta.events.register("before-send.s3", no_route)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.check()
        assert str(raised.value) == f"s3 mount 'lab' at {s3.endpoint}: [Errno {errno.ENETUNREACH}] Network is unreachable"
        told = unavailable(raised.value)
        assert told is not None and told.retry, told
    finally:
        store.client.meta.events.unregister("before-send.s3", no_route)
        await store.close()


async def test_a_check_cut_short_between_retries_names_the_attempts_error(s3: S3Service) -> None:
    """A store refusing connections, checked with a short timeout: botocore's first attempt fails at
    once and its backoff before the next outlasts the deadline, so the check said only "no answer
    within 0.5 s", as for a store that hangs. It now names what the attempt met. (Should every attempt
    fail within the deadline, botocore's own error says it: either way the refusal is named.)"""
    with socket.socket() as held:  # a port nothing listens on (bound, never listening: refused)
        held.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{held.getsockname()[1]}"
        store = mount_at(s3, "lab", f"refused-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint, timeout=0.5)
        await store.open()
        try:
            with pytest.raises(StoreUnavailable, match=r"Could not connect to the endpoint URL") as raised:
                await store.check()
            assert str(raised.value).startswith(f"s3 mount 'lab' at {endpoint}: "), raised.value
            told = unavailable(raised.value)
            assert told is not None and told.retry, told
        finally:
            await store.close()
    refused_later = mount_at(s3, "lab", f"refused-{uuid.uuid4().hex[:8]}", timeout=0.5)
    await refused_later.open()
    try:
        await refused_later.check()  # a store that answers: no error kept from the check before
    finally:
        await refused_later.close()


async def test_reading_an_object_tells_a_missing_one_from_a_store_that_fails(s3: S3Service) -> None:
    """A read of a key with no object was botocore's NoSuchKey, which an export or a thumbnail (expecting
    a local mount's FileNotFoundError for a file deleted meanwhile) reported as INTERNAL; and a store
    refusing the read was INTERNAL too, where it is StoreUnavailable naming the mount."""
    prefix = f"reads-{uuid.uuid4().hex[:8]}"
    store, refused = mount_at(s3, "reads", prefix), mount_at(s3, "reads", prefix, secret_access_key="rotated-since")
    await store.open()
    await refused.open()
    try:
        with pytest.raises(FileNotFoundError):
            async for _ in store.read("assets/none"):
                pass
        s3.client().put_object(Bucket=s3.bucket, Key=f"{prefix}/assets/one", Body=b"one")
        assert [chunk async for chunk in store.read("assets/one")] == [b"one"]
        with pytest.raises(StoreUnavailable, match=r"s3 mount 'reads': reading 'assets/one': .*SignatureDoesNotMatch"):
            await refused.sha256("assets/one")
        await store.delete("assets/one")
    finally:
        await store.close()
        await refused.close()


async def test_staging_a_bundle_says_what_the_store_answered(s3: S3Service) -> None:
    """A bundle import from an S3 mount reported every failure of the store as `mount 'x' cannot be
    reached; retry shortly`, though the store had answered: a bad signature (HTTP 403), a bucket
    deleted while the bundle was read (NoSuchBucket). Retrying changes neither."""
    prefix = f"bundle-refused-{uuid.uuid4().hex[:8]}"
    s3.client().put_object(Bucket=s3.bucket, Key=f"{prefix}/bundles/b.tar", Body=b"a tar")
    refused = mount_at(s3, "lab", prefix, secret_access_key="rotated-since")
    await refused.open()
    try:
        with pytest.raises(BadUserInput, match=r"cannot read bundles/b\.tar on mount 'lab': the store answered HTTP 403"):
            await _staged(refused, "bundles/b.tar")
    finally:
        s3.client().delete_object(Bucket=s3.bucket, Key=f"{prefix}/bundles/b.tar")

    bucket = f"graphlake-gone-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    _put_bundle(client, bucket, "bundles/b1")
    store = mount_at(s3, "lab", bucket=bucket)
    await store.open()

    def the_bucket_gone(_: str) -> None:
        for name in BUNDLE_FILES:
            client.delete_object(Bucket=bucket, Key=f"bundles/b1/{name}")
        with contextlib.suppress(Exception):  # already gone (the second object's read)
            client.delete_bucket(Bucket=bucket)

    _before_each_read(store, the_bucket_gone)
    with pytest.raises(BadUserInput, match=r"cannot read bundles/b1 on mount 'lab': the store answered NoSuchBucket"):
        await _staged(store, "bundles/b1")


async def test_an_object_deleted_while_a_bundle_is_staged_is_named(s3: S3Service) -> None:
    """An object of a bundle listed on an S3 mount and deleted before it was read (its bundle being
    replaced, say) failed the import as INTERNAL."""
    prefix = f"bundle-deleted-{uuid.uuid4().hex[:8]}"
    _put_bundle(s3.client(), s3.bucket, f"{prefix}/bundles/b1")
    store = mount_at(s3, "lab", prefix)
    await store.open()

    def deleted_once_listed(key: str) -> None:
        if key.endswith(f"payloads/{PAYLOAD_SHA}"):
            s3.client().delete_object(Bucket=s3.bucket, Key=f"{prefix}/{key}")

    _before_each_read(store, deleted_once_listed)
    with pytest.raises(Conflict, match=rf"bundles/b1/payloads/{PAYLOAD_SHA} was deleted from mount 'lab' while the bundle was read"):
        await _staged(store, "bundles/b1")
    s3.client().delete_object(Bucket=s3.bucket, Key=f"{prefix}/bundles/b1/manifest.json")


PAYLOAD = b"{}"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
BUNDLE_FILES = ("manifest.json", f"payloads/{PAYLOAD_SHA}")  # the least a bundle holds: its manifest, one payload
# A manifest the import checks through (bundle_format.check_manifest): the server stages only the payloads it names.
MANIFEST = {"format": "graphlake-bundle", "format_version": 1, "dataset": {"name": "d"},
            "version": {"name": "v1", "manifest_sha256": "0" * 64},
            "assets": {"a1": {"kind": "VALUE", "name": "x", "sha256": PAYLOAD_SHA,
                              "payload": {"path": f"payloads/{PAYLOAD_SHA}", "size": len(PAYLOAD), "sha256": PAYLOAD_SHA}}},
            "schemas": {}, "sets": {}, "datums": []}


def _put_bundle(client: Any, bucket: str, at: str) -> None:
    for name in BUNDLE_FILES:
        client.put_object(Bucket=bucket, Key=f"{at}/{name}", Body=json.dumps(MANIFEST).encode() if name == "manifest.json" else PAYLOAD)


def _before_each_read(store: S3Store, change: Callable[[str], None]) -> None:
    """Have `change(key)` run as each of the bundle's objects, listed already, is about to be read."""
    listed_then_read = store.read

    def read(key: str) -> AsyncIterator[bytes]:
        change(key)
        return listed_then_read(key)

    store.read = read  # type: ignore[method-assign]


async def _staged(store: S3Store, path: str) -> None:
    """Stage the bundle at `path` of the opened `store` as an import does (located), then close the store."""
    try:
        async with located(store, path):
            pass
    finally:
        await store.close()
