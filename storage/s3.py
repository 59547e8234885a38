"""S3-compatible mounts (AWS S3, MinIO, GCS through HMAC keys) through aioboto3.

Clients upload with presigned URLs. A declared SHA-256 is signed into a single PUT as
`x-amz-checksum-sha256`, so the store itself refuses other bytes; multipart objects carry no
whole-object SHA-256, so `sha256()` reads them back as a stream.

The per-upload requests (signing URLs, and the HEAD that verifies a completed upload) are
signed by `storage.sigv4` rather than botocore, whose per-request CPU was the largest cost of an
upload's bookkeeping; the rare ones (multipart bookkeeping, listing, deleting) go through aioboto3.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from storage import retries
from storage.disposition import disposition
from storage.ownership import OWNER_FILE, Ownership
from storage.protocol import (
    LIST_PAGE,
    STRAY_DIR,
    WRITE_PROBE_KEY,
    ObjectInfo,
    SignedRequest,
    StoreAnswered,
    StoredPart,
    StoreUnavailable,
)
from storage.retries import Retryable
from storage.sigv4 import PROBE_KEY, Credentials, Endpoint, presign

if TYPE_CHECKING:
    from storage.local import StagedFile

CHUNK = 1024 * 1024
# A read of an object's body gives what has arrived, up to CHUNK: 256 KiB slices from a local MinIO
# (0.3 ms of hashing each on 2 busy cores, up to 4 ms), a whole MiB when the loop was busy while it
# arrived. sha256() hashes such slices in a thread (the loop's default pool, for short calls: a
# thread of in_file_thread's few may be held by a whole file for seconds, and the read would stall
# behind it), where hashlib lets go of the GIL; smaller ones cost less than the hop.
HASH_ON_LOOP_BELOW = 64 * 1024
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# How long a multipart completion may take to answer (AWS documents "several minutes" for big objects).
COMPLETION_READ_SECONDS = 900.0
MAX_COPY_BYTES = 5 * 1024**3  # the largest object CopyObject copies in one request
NO_SUCH_KEY = frozenset({"NoSuchKey", "404", "NotFound"})

# Told of every request to the store: its operation (GetObject, HeadObject, ...), seconds (retries
# included) and whether it succeeded. The app shell passes one that records metrics and spans.
Observer = Callable[[str, float, bool], None]


# What the failed attempts of a readiness check's current request met (S3Store.check), in the task making it.
_failed_attempts: ContextVar[list[str] | None] = ContextVar("graphlake_s3_failed_attempts", default=None)


def _attempt_failed(caught_exception: Exception | None = None, response: Any = None, **_: Any) -> None:
    """botocore's needs-retry event, after every attempt: while a check runs, what a failed one met (an
    error, or the store's 5xx answer); an attempt answered otherwise clears them (its request is
    done, the next one starts afresh). Says nothing back, so botocore's retry handler decides alone."""
    attempts = _failed_attempts.get()
    if attempts is None:
        return
    status = getattr(response[0], "status_code", None) if response else None
    if caught_exception is not None:
        attempts.append(str(caught_exception))
    elif status is not None and status >= 500:
        attempts.append(f"the store answered HTTP {status}")
    else:
        attempts.clear()


def _length(size: int) -> dict[str, str]:
    """The Content-Length a signed PUT must send, signed with it: a URL for 1 byte stored 5 GB
    before (S3 checks signed headers; the size was only checked at completion, and an upload never
    completed kept its bytes until the reconciler swept it). Not among the headers handed to the
    client: its HTTP stack sends the body's length itself (a browser refuses to set it), and a body
    of another length, or one sent chunked without a length, is refused by the store (403)."""
    return {"Content-Length": str(size)}


def _b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _public_address(url: str) -> SplitResult:
    """`url` as the Host header a client sends for it: a default port (80 for http, 443 for https) is
    left out by browsers and HTTP libraries, so it is left out of what is signed too."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port == default:
        parts = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
    return parts


class S3Store:
    backend = "s3"

    def __init__(
        self,
        name: str,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "path",
        fallback: str | None = None,
        timeout: float = 5.0,
        observe: Observer | None = None,
    ) -> None:
        self.name = name
        self._observe = observe
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        # Where clients reach the store, if not at endpoint_url (in a compose network the server says
        # http://minio:9000, a name no browser resolves): the URLs handed out are signed for it. Path
        # addressing only (settings check it): the bucket stays in the path, one public host for all.
        self._public = _public_address(public_endpoint_url) if public_endpoint_url else None
        if self._public is not None and addressing_style != "path":
            raise ValueError("public_endpoint_url needs addressing_style path")
        self.fallback = fallback
        self.ownership = Ownership(name)  # every write and delete below asks it first (storage/ownership.py)
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._config = Config(
            s3={"addressing_style": addressing_style},
            signature_version="s3v4",
            # botocore's newer default checksums break presigned uploads to several S3-compatible
            # stores; compute them only where the API requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # Both waits bounded: a store that accepts connections but never answers held a
            # request for botocore's 60 s read timeout, three attempts over (about 4 minutes).
            connect_timeout=timeout,
            read_timeout=timeout,
            # total_max_attempts counts the first request; botocore's max_attempts does not, so the
            # "3" there made 4 requests, not the 3 that storage/retries.py states for every S3 request.
            retries={"total_max_attempts": retries.STORE_ATTEMPTS, "mode": "standard"},
        )
        # Completing a multipart upload is the one call S3 may think over for minutes on a big object
        # (it keeps the connection alive with whitespace meanwhile; MinIO every 10 s): its answer may
        # take that long without the store being unwell.
        self._completion_config = self._config.merge(Config(read_timeout=max(timeout, COMPLETION_READ_SECONDS)))
        self._timeout = timeout
        self._stack = AsyncExitStack()
        self.client: Any = None
        self._completion_client: Any = None
        self._http: aiohttp.ClientSession | None = None  # for the requests signed by storage.sigv4
        self._credentials: Any = None  # botocore's (refreshed by it when temporary)
        self._endpoints: dict[str, Endpoint] = {}  # by bucket

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    async def open(self) -> None:
        self.client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
        )
        self._completion_client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self.endpoint_url, config=self._completion_config)
        )
        # Each failed attempt, for a readiness check whose deadline passes between botocore's retries
        # (check() says why); any other request has botocore's own error once its retries are spent.
        self.client.meta.events.register("needs-retry.s3", _attempt_failed)
        if self._observe is not None:
            # botocore's own events: every call through the client, whichever method made it.
            events = self.client.meta.events
            events.register("before-call.s3", self._call_started)
            events.register("after-call.s3", self._call_answered)
            events.register("after-call-error.s3", self._call_failed)
        self._credentials = await self._session.get_credentials()
        self._http = await self._stack.enter_async_context(aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=self._timeout),
            auto_decompress=False))

    def _call_started(self, context: dict[str, Any], **_: Any) -> None:
        context["graphlake_started"] = time.perf_counter()

    def _call_answered(self, model: Any, context: dict[str, Any], http_response: Any, **_: Any) -> None:
        if "graphlake_started" in context:
            self._observe(model.name, time.perf_counter() - context.pop("graphlake_started"), http_response.status_code < 300)

    def _call_failed(self, context: dict[str, Any], event_name: str, **_: Any) -> None:
        if "graphlake_started" in context:
            self._observe(event_name.rsplit(".", 1)[-1], time.perf_counter() - context.pop("graphlake_started"), False)

    @contextmanager
    def _asking(self, doing: str, *, theirs: bool = False) -> Iterator[None]:
        """Any failure of the requests made in the block as StoreUnavailable naming the mount and what
        was asked: the store answered an error (StoreAnswered: its 503 SlowDown once botocore's retries
        are spent, a bucket or credentials gone since the server started) or none at all. botocore's
        own errors reached GraphQL's error policy as they were: a ClientError was INTERNAL, and a lost
        connection UNAVAILABLE naming no mount. A method that expects an answer (NoSuchUpload, say)
        catches it inside the block. `theirs`: the asker named what is asked for (another bucket, a
        prefix), so an answer other than the store's own trouble (a 5xx) is a refusal for them to fix.
        A socket's own error (ConnectionError: reset, refused, a broken pipe), should one get past
        botocore and aiohttp, is the store not answering too. Other OSErrors pass as they are: in these
        blocks they are a file's (a missing object's FileNotFoundError raised here, a file to upload
        that cannot be read), no fault of the store's."""
        try:
            yield
        except ClientError as error:
            said = error.response.get("Error", {})
            code = said.get("Code", "?")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise StoreAnswered(f"s3 mount {self.name!r}: {doing}: the store answered {code} "
                                f"({said.get('Message') or 'no message'})", code=code, status=status,
                                refused=theirs and not (status is not None and status >= 500)) from error
        except (BotoCoreError, aiohttp.ClientError, ConnectionError) as error:
            raise StoreUnavailable(f"s3 mount {self.name!r} at {self.endpoint_url or 'AWS'}: {doing}: {error}") from error

    async def close(self) -> None:
        await self._stack.aclose()
        self.client = self._completion_client = self._http = None
        self._endpoints.clear()

    async def _signer(self, bucket: str | None = None) -> tuple[Endpoint, Credentials]:
        """Where `bucket` (ours by default) lives, and the credentials to sign for it now."""
        bucket = bucket or self.bucket
        if bucket not in self._endpoints:  # botocore resolves it, once per bucket
            url = await self.client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": PROBE_KEY})
            self._endpoints[bucket] = Endpoint.from_url(url)
        if self._credentials is None:
            raise StoreUnavailable(f"s3 mount {self.name!r}: no credentials (set its access key or the AWS environment)")
        frozen = await self._credentials.get_frozen_credentials()
        return self._endpoints[bucket], Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def internal_address(self) -> tuple[str, str] | None:
        """(the public host the URLs for clients name, the scheme and host the server reaches the
        store at), where the two differ: what a client inside this server (a server-side bundle
        import) sends to instead, keeping the Host header the URL was signed for. None otherwise."""
        if self._public is None or not self.endpoint_url:
            return None
        internal = urlsplit(self.endpoint_url)
        return self._public.netloc, f"{internal.scheme}://{internal.netloc}"

    async def _presign(self, key: str, *, method: str, expires_in: int, bucket: str | None = None,
                       params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                       for_client: bool = False) -> str:
        """A URL signed for `key`; `for_client`: one handed to a client, so at the public endpoint."""
        endpoint, credentials = await self._signer(bucket)
        if for_client and self._public is not None:
            # SigV4 signs the Host header: signed for the host the client will send.
            endpoint = replace(endpoint, scheme=self._public.scheme, host=self._public.netloc)
        return presign(endpoint, key, credentials, method=method, expires_in=expires_in, params=params, headers=headers)

    async def check(self) -> None:
        """StoreUnavailable unless the bucket answers, and takes and deletes a small object (WRITE_PROBE_KEY),
        within the timeout, retries included: uploads fail over to a fallback mount on it, which a
        hung store must not delay by minutes. The write, as /readyz promises a mount can be written:
        with read-only credentials the bucket answered, and every upload failed."""
        probe = self.object_key(WRITE_PROBE_KEY)
        failed = _failed_attempts.set([])
        try:
            async with asyncio.timeout(self._timeout):
                # Its code tells a refusal of the credentials (storage/failures.to_fix).
                with self._asking(f"asking for bucket {self.bucket!r}"):
                    await self.client.head_bucket(Bucket=self.bucket)
                if not self.ownership.owned:  # another lake's (a restored copy's): read, never written, even a probe
                    return
                with self._asking(f"writing the probe object {WRITE_PROBE_KEY!r} (a ready mount takes writes)"):
                    await self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
                with self._asking(f"deleting the probe object {WRITE_PROBE_KEY!r}"):
                    await self.client.delete_object(Bucket=self.bucket, Key=probe)
        except TimeoutError:  # its own deadline (asyncio.timeout) passed
            # Often while botocore waits to retry an attempt that failed at once (a refused connection:
            # its backoff outlasts a short timeout), which the check then reported as "no answer": the
            # attempt's error says what is wrong.
            attempts = _failed_attempts.get()
            said = f"; its last attempt failed: {attempts[-1]}" if attempts else ""
            raise StoreUnavailable(f"s3 mount {self.name!r} at {self.endpoint_url or 'AWS'}: no answer within "
                                   f"{self._timeout:g} s{said}") from None
        except OSError as error:
            # A socket's error _asking leaves alone (it maps ConnectionError only, as its other blocks
            # read files): a name that does not resolve, TLS refused, no route. The check reads no
            # file, so any is the store out of reach, and uploads go to the fallback mount for it.
            raise StoreUnavailable(f"s3 mount {self.name!r} at {self.endpoint_url or 'AWS'}: {error}") from error
        finally:
            _failed_attempts.reset(failed)

    # --- signed URLs
    async def sign_put(self, key: str, *, size: int, content_type: str, sha256: str | None,
                       expires_in: int) -> SignedRequest:
        # Create-only (a signed conditional write): once the object is there, no URL of its upload
        # can replace it, so what completion verified is what downloads return. S3 and MinIO answer 412.
        self.ownership.require("upload", key)
        headers = {"Content-Type": content_type, "If-None-Match": "*"}
        if sha256:
            headers["x-amz-checksum-sha256"] = _b64_sha256(sha256)
        url = await self._presign(self.object_key(key), method="PUT", expires_in=expires_in,
                                  headers={**headers, **_length(size)}, for_client=True)
        return SignedRequest(url=url, headers=headers)

    async def sign_get(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                       bucket: str | None = None, sha256: str | None = None) -> str:
        # `key` is the full object key for external objects (another bucket), else ours.
        params = {"response-content-disposition": disposition(filename)}
        if content_type:
            params["response-content-type"] = content_type
        return await self._presign(key if bucket else self.object_key(key), method="GET", expires_in=expires_in,
                                   bucket=bucket, params=params, for_client=True)

    def sign_get_now(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                     bucket: str | None = None, sha256: str | None = None) -> None:
        return None  # the credentials may need refreshing first (an instance role's, say)

    # --- multipart
    async def start_multipart(self, key: str, *, content_type: str) -> str:
        self.ownership.require("upload", key)
        with self._asking(f"starting a multipart upload of {key!r}"):
            answer = await self.client.create_multipart_upload(Bucket=self.bucket, Key=self.object_key(key),
                                                               ContentType=content_type)
        return answer["UploadId"]

    async def sign_part(self, key: str, upload_id: str, number: int, *, size: int, offset: int,
                        expires_in: int) -> SignedRequest:
        self.ownership.require("upload", key)
        url = await self._presign(self.object_key(key), method="PUT", expires_in=expires_in, headers=_length(size),
                                  params={"uploadId": upload_id, "partNumber": str(number)}, for_client=True)
        return SignedRequest(url=url)

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        parts: list[StoredPart] = []
        marker = 0
        while True:  # up to 1,000 parts an answer
            with self._asking(f"listing the parts of {key!r}"):
                try:
                    answer = await self.client.list_parts(Bucket=self.bucket, Key=self.object_key(key),
                                                          UploadId=upload_id, PartNumberMarker=marker)
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") == "NoSuchUpload":
                        return []
                    raise
            parts += [StoredPart(number=p["PartNumber"], etag=p["ETag"], size=p["Size"]) for p in answer.get("Parts", [])]
            if not answer.get("IsTruncated"):
                return parts
            marker = answer["NextPartNumberMarker"]

    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None:
        self.ownership.require("complete", key)
        with self._asking(f"joining the parts of {key!r}"):
            try:
                await self._completion_client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.object_key(key), UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag}
                                               for p in sorted(parts, key=lambda p: p.number)]},
                )
            except ClientError as error:
                # An attempt whose answer was lost (botocore retries it, or the caller completes again
                # after a crash) may have completed the upload: the object is there, the upload id gone.
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload" or await self.stat(key) is None:
                    raise

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        if not self.ownership.allows("abort_multipart_upload", key):
            return
        with self._asking(f"aborting the multipart upload of {key!r}"):
            try:
                await self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.object_key(key), UploadId=upload_id)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise

    # --- objects
    async def stat(self, key: str) -> ObjectInfo | None:
        headers = {"x-amz-checksum-mode": "ENABLED"}  # answer the stored SHA-256 where there is one
        url = await self._presign(self.object_key(key), method="HEAD", expires_in=60, headers=headers)

        async def head() -> ObjectInfo | None:
            try:
                async with self._http.head(url, headers=headers) as answer:
                    if answer.status == 404:
                        return None
                    if answer.status == 200:
                        checksum = answer.headers.get("x-amz-checksum-sha256")
                        # A multipart object's checksum is a checksum of part checksums ("...-N"), not the object's.
                        sha256 = base64.b64decode(checksum).hex() if checksum and "-" not in checksum else None
                        return ObjectInfo(size=int(answer.headers["Content-Length"]), sha256=sha256)
                    problem = f"answered {answer.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                raise Retryable(f"cannot be reached: {error!r}") from error
            if answer.status in RETRY_STATUSES:
                raise Retryable(problem)
            # A HEAD's answer has no body, so no word of the store's: its status stands for it.
            raise StoreAnswered(f"s3 mount {self.name!r}: HEAD of {key!r} {problem}", code=f"HTTP {answer.status}",
                                status=answer.status)

        started, ok = time.perf_counter(), False
        try:
            found = await retries.store_requests().on(Retryable)(head)
            ok = True
            return found
        except Retryable as error:
            raise StoreUnavailable(f"s3 mount {self.name!r}: HEAD of {key!r} {error}") from None
        finally:
            if self._observe is not None:  # signed here, not by botocore: timed here too
                self._observe("HeadObject", time.perf_counter() - started, ok)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        """FileNotFoundError when there is no such object, as on a local mount (an export or a
        thumbnail tells a file deleted meanwhile from a store that failed by it)."""
        with self._asking(f"reading {key!r}"):
            try:
                answer = await self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in NO_SUCH_KEY:
                    raise FileNotFoundError(f"s3 mount {self.name!r}: no object {key!r}") from None
                raise
        body = answer["Body"]
        try:
            while True:
                with self._asking(f"reading {key!r}"):  # not around the yield: the caller's own errors pass as they are
                    chunk = await body.read(CHUNK)  # as iter_chunks reads
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        async for chunk in self.read(key):
            if len(chunk) < HASH_ON_LOOP_BELOW:
                digest.update(chunk)
            else:
                await asyncio.to_thread(digest.update, chunk)
        return digest.hexdigest()

    async def write(self, key: str, path: Path | StagedFile) -> None:
        assert isinstance(path, Path)  # stage makes none here
        self.ownership.require("write", key)
        with self._asking(f"writing {key!r}"):
            await self.client.upload_file(str(path), self.bucket, self.object_key(key))  # multipart when large

    def stage(self, key: str) -> None:
        return None  # the bytes are sent anyway: staged in a temporary directory (ObjectStore.stage)

    async def delete(self, key: str) -> None:
        if not self.ownership.allows("delete", key):
            return
        with self._asking(f"deleting {key!r}"):
            await self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    # --- the mount's owner (storage/ownership.py)
    async def read_owner_file(self) -> bytes | None:
        """What the mount's OWNER_FILE object holds, None while there is none."""
        with self._asking(f"reading {OWNER_FILE}"):  # its body's read too: a connection lost there is the store's
            try:
                answer = await self.client.get_object(Bucket=self.bucket, Key=self.object_key(OWNER_FILE))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in NO_SUCH_KEY:
                    return None
                raise
            body = answer["Body"]
            try:
                return await body.read()
            finally:
                body.close()

    async def write_owner_file(self, data: bytes, *, replace: bool) -> bool:
        """Write the mount's OWNER_FILE object; unless `replace`, only where there is none (a
        conditional create, as sign_put's: False when another lake, or another process of this one,
        was first)."""
        with self._asking(f"writing {OWNER_FILE}"):
            try:
                await self.client.put_object(Bucket=self.bucket, Key=self.object_key(OWNER_FILE), Body=data,
                                             ContentType="application/json", **({} if replace else {"IfNoneMatch": "*"}))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return False
                raise
        return True

    # --- objects no record names (services/uploads/reconciler.sweep_stray_copies), as LocalStore's
    # Each raises StoreUnavailable when the store fails it (the sweep goes on with the other mounts).
    async def files_older_than(self, prefix: str, seconds: float, size: int = LIST_PAGE) -> AsyncIterator[list[str]]:
        """Keys of the objects directly under `prefix/` last written more than `seconds` ago, a page
        of at most `size` at a time (a list request each)."""
        async for page in self._listed(prefix + "/", seconds, nested=False, size=size):
            yield [key for key, _ in page]

    async def set_aside(self, key: str) -> None:
        """Move `key`'s object under STRAY_DIR (a copy, then a delete: S3 has no move), where
        remove_set_aside deletes it later. The copy's time is the set-aside time."""
        if not self.ownership.allows("set_aside", key):
            return
        source = {"Bucket": self.bucket, "Key": self.object_key(key)}
        target = self.object_key(f"{STRAY_DIR}/{key}")
        found = await self.stat(key)
        if found is None:
            return  # gone meanwhile: nothing to keep
        with self._asking(f"setting aside {key!r}"):
            if found.size <= MAX_COPY_BYTES:  # one request: its metadata and media type kept, its SHA-256 stored again
                await self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=target, MetadataDirective="COPY",
                                              ChecksumAlgorithm="SHA256")
            else:  # only a multipart copy takes it (metadata and checksum not carried: the bytes are what is kept)
                await self.client.copy(source, self.bucket, target)
        await self.delete(key)

    async def remove_set_aside(self, seconds: float) -> int:
        """Delete what was set aside more than `seconds` ago; returns how many objects went."""
        if not self.ownership.allows("delete_set_aside", STRAY_DIR):
            return 0
        refused: list[dict[str, Any]] = []
        old = 0
        # A listed page at a time (DeleteObjects takes at most 1,000 keys, a page's most).
        async for page in self._listed(STRAY_DIR + "/", seconds, nested=True, size=LIST_PAGE):
            with self._asking("deleting what was set aside"):
                answer = await self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self.object_key(key)} for key, _ in page], "Quiet": True})
            refused += answer.get("Errors", [])  # quiet: only the keys it did not delete are named
            old += len(page)
        if refused:
            first = refused[0]
            raise StoreUnavailable(f"s3 mount {self.name!r}: {len(refused)} of {old} objects set aside were not "
                                   f"deleted, e.g. {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}")
        return old

    async def _listed(self, folder: str, seconds: float, *, nested: bool,
                      size: int) -> AsyncIterator[list[tuple[str, datetime]]]:
        """(key, last written) of the objects under `folder` (a key prefix ending in /) written more
        than `seconds` ago: those directly in it, or with `nested` those at any depth. A list
        request's page (at most `size`) at a time, those of it old enough: none is empty."""
        cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
        start = self.object_key(folder)
        paginator = self.client.get_paginator("list_objects_v2")
        pages = aiter(paginator.paginate(Bucket=self.bucket, Prefix=start, PaginationConfig={"PageSize": size},
                                         **({} if nested else {"Delimiter": "/"})))
        while True:
            with self._asking(f"listing {folder}"):  # not around the yield: the caller's own errors pass as they are
                page = await anext(pages, None)
            if page is None:
                return
            listed = [(folder + o["Key"][len(start):], o["LastModified"]) for o in page.get("Contents", [])
                      if o["LastModified"] < cutoff and not o["Key"].endswith("/")]
            if listed:
                yield listed

    async def list_objects(self, bucket: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        """The objects under `prefix` in `bucket` (for registering external data in place), at most
        `limit` + 1: the caller refuses more than `limit`, and a prefix of millions of objects
        should not be listed to the end to say so."""
        objects: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        # No such bucket, access denied: the asker's to fix; SlowDown once the retries are spent: not theirs.
        with self._asking(f"listing {bucket}/{prefix}", theirs=True):
            try:
                async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                    objects += [o for o in page.get("Contents", []) if not o["Key"].endswith("/")]
                    if len(objects) > limit:
                        return objects[:limit + 1]
            except ParamValidationError as error:  # a name botocore refuses before sending (`x/y`, spaces, too long)
                said = " ".join(str(error).split())
                raise StoreAnswered(f"s3 mount {self.name!r}: listing {bucket}/{prefix}: {said}", code="InvalidBucketName",
                                    status=None, refused=True,
                                    reason=f"{bucket!r} is not a bucket name S3 takes ({said})") from None
        return objects

    async def head_external(self, bucket: str, key: str) -> dict[str, Any] | None:
        """An object registered in place (`list_objects`) as S3 now describes it ({"ETag", "Size"}),
        or None when it is gone: `verify --deep` compares it with what was registered."""
        with self._asking(f"asking about s3://{bucket}/{key}", theirs=True):
            try:
                answer = await self.client.head_object(Bucket=bucket, Key=key)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in NO_SUCH_KEY:
                    return None
                raise
        return {"ETag": answer.get("ETag"), "Size": answer.get("ContentLength")}
