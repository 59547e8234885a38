"""Bundles under an `s3://bucket/prefix`: the same tree as a directory bundle (manifest.json and
payloads/<sha256>), read and written with boto3 behind BundleReader's and BundleWriter's interface.

The client holds no credentials of its own for this: boto3's standard chain gives them
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, an instance role), and
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) points it at another store than AWS, such as MinIO, which
is then addressed by path (`s3://bucket/key` -> ENDPOINT/bucket/key). Payloads never sit whole in
memory: each streams through a file of a scratch directory (downloaded from the lake, then sent with
boto3's managed transfer: multipart above MULTIPART bytes); a dry run's check streams each in chunks.
A payload's object carries its SHA-256 in its metadata, so a rerun of an export cut short skips what
is there whole. The manifest goes last, as in a directory: a prefix with a manifest is a whole bundle.
A `.tar` at an S3 URL is staged through a local file (downloaded whole to disk, or uploaded when done).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graphlake_client import debris
from graphlake_client.bundle_files import (
    CHUNK,
    BundleReader,
    BundleWriter,
    dump_manifest,
    held_refused,
    is_tar,
    other_bundle,
)
from graphlake_client.bundle_format import MANIFEST, PAYLOADS, named_payloads, parse_manifest
from graphlake_client.errors import GraphlakeClientError

MULTIPART = 64 * 1024 * 1024  # objects above this go up in parts of this size, four at a time
SHA_METADATA = "sha256"


def is_s3(location: object) -> bool:
    """Whether a bundle's SRC or DEST is an S3 URL (a str: pathlib would fold its `//`)."""
    return isinstance(location, str) and location.startswith("s3://")


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix without a trailing slash) of `s3://bucket/prefix`."""
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise GraphlakeClientError(f"{url}: an S3 bundle is named s3://BUCKET/PREFIX", "BAD_USER_INPUT")
    return bucket, prefix.strip("/")


def s3_client() -> Any:
    """A boto3 S3 client from the standard credential chain and AWS_ENDPOINT_URL(_S3)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise GraphlakeClientError("an s3:// bundle needs boto3: pip install 'graphlake-client[s3]'",
                                   "BAD_USER_INPUT") from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # Botocore's newer default checksums are refused by some S3-compatible stores (DESIGN: storage);
    # a store other than AWS (an endpoint given) is addressed by path, as MinIO and Ceph expect.
    config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                    s3={"addressing_style": "path"} if endpoint else {}, retries={"mode": "standard"})
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint, region_name=session.region_name or "us-east-1", config=config)


def _transfer() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART, multipart_chunksize=MULTIPART, max_concurrency=4)


def _refused(url: str, error: Exception) -> GraphlakeClientError:
    return GraphlakeClientError(f"{url}: the S3 store refused ({error})", "BAD_USER_INPUT")


class S3BundleReader:
    """A bundle under an S3 prefix, to import (BundleReader's interface, plus `locator`)."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.src = url
        self.bucket, self.prefix = split_url(url)
        self.client = client or s3_client()
        self._staged: tempfile.TemporaryDirectory[str] | None = None
        self._tar: BundleReader | None = None
        if is_tar(Path(self.prefix)):
            self._staged = tempfile.TemporaryDirectory(prefix="graphlake-bundle-")
            local = Path(self._staged.name) / Path(self.prefix).name
            try:
                self.client.download_file(self.bucket, self.prefix, str(local), Config=_transfer())
            except Exception as error:
                self._staged.cleanup()
                raise _refused(url, error) from None
            self._tar = BundleReader(local)
        elif self._head(MANIFEST) is None:
            raise GraphlakeClientError(f"{url}: no {MANIFEST} (not a bundle, or an export that did not finish)",
                                       "BAD_USER_INPUT")

    @property
    def side_by_side(self) -> bool:
        """Whether payloads may be read in several threads at once: objects may (boto3's client is
        thread-safe), a tar's members may not."""
        return self._tar is None

    def __enter__(self) -> S3BundleReader:
        return self

    def __exit__(self, *_: object) -> None:
        if self._tar is not None:
            self._tar.__exit__()
        if self._staged is not None:
            self._staged.cleanup()

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _head(self, path: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(path))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _refused(self.src, error) from None

    @contextmanager
    def _body(self, path: str) -> Iterator[Any]:
        """The object's streaming body, or None if there is no such object."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(path))["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                yield None
                return
            raise _refused(self.src, error) from None
        try:
            yield body
        finally:
            body.close()

    def manifest(self) -> dict[str, Any]:
        if self._tar is not None:
            return self._tar.manifest()
        with self._body(MANIFEST) as body:
            if body is None:
                raise GraphlakeClientError(f"{self.src}: no {MANIFEST}", "BAD_USER_INPUT")
            return parse_manifest(body.read(), f"{self.src}/{MANIFEST}")

    def payload_digest(self, path: str) -> tuple[int, str] | None:
        """BundleReader.payload_digest: the object streamed and hashed."""
        if self._tar is not None:
            return self._tar.payload_digest(path)
        import hashlib

        with self._body(path) as body:
            if body is None:
                return None
            digest, size = hashlib.sha256(), 0
            for chunk in body.iter_chunks(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def payload_size(self, path: str) -> int | None:
        """BundleReader.payload_size: the object's length, from a HEAD."""
        if self._tar is not None:
            return self._tar.payload_size(path)
        head = self._head(path)
        return None if head is None else int(head["ContentLength"])

    def read_bytes(self, path: str) -> bytes:
        if self._tar is not None:
            return self._tar.read_bytes(path)
        with self._body(path) as body:
            if body is None:
                raise GraphlakeClientError(f"{path}: missing from the bundle", "BAD_USER_INPUT")
            return body.read()

    @contextmanager
    def files(self, paths: list[str]) -> Iterator[dict[str, Path]]:
        """Each payload downloaded (streamed, in parts for big ones) into a scratch directory that goes afterwards."""
        if self._tar is not None:
            with self._tar.files(paths) as local:
                yield local
            return
        with tempfile.TemporaryDirectory(prefix="graphlake-bundle-") as scratch:
            out = {}
            for path in paths:
                target = Path(scratch) / path.rsplit("/", 1)[-1]
                try:
                    self.client.download_file(self.bucket, self.key(path), str(target), Config=_transfer())
                except Exception as error:
                    raise GraphlakeClientError(f"{path}: cannot be read from {self.src} ({error})", "BAD_USER_INPUT") from None
                out[path] = target
            yield out

    def locator(self, mount: str) -> Callable[[str], dict[str, Any]] | None:
        """Where the reference policy finds a payload: its object, which registerExternal reads through
        the lake's S3 mount `mount`. None for a tar (its members are no objects of their own)."""
        if self._tar is not None:
            return None
        return lambda payload: {"mount": mount, "bucket": self.bucket, "prefix": self.key(payload)}


def _store_error(url: str, error: Exception) -> GraphlakeClientError:
    """A writer's error for what boto3 raised: no credentials and a store not reached are said as
    such (botocore's own words name neither the destination nor what to do), anything else is a refusal."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if isinstance(error, GraphlakeClientError):
        return error
    if isinstance(error, NoCredentialsError):
        return GraphlakeClientError(f"{url}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                                    "AWS_PROFILE)", "BAD_USER_INPUT", "dest")
    if isinstance(error, EndpointConnectionError):
        return GraphlakeClientError(f"{url}: the S3 store cannot be reached ({error})", "UNAVAILABLE", "dest")
    return GraphlakeClientError(_refused(url, error).args[0], "BAD_USER_INPUT", "dest")


def _unseen(error: Exception) -> bool:
    """Whether boto3's error says the object is not there, or may not be: S3 answers a missing key
    with 403 (AccessDenied; a HEAD's bare "403") to a writer without s3:ListBucket, which a bundle
    needs no more than Get and Put, so it reads as "not there". A wrong secret answers a GET with
    SignatureDoesNotMatch (raised), and the write probe (S3BundleWriter._check) refuses it before
    any HEAD of a payload is asked."""
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
        "404", "NoSuchKey", "NotFound", "403", "AccessDenied")


class S3BundleWriter:
    """A bundle being written under an S3 prefix (BundleWriter's interface). The prefix is checked
    before anything is downloaded: its manifest.json (or, for a .tar, the object) read, so missing
    credentials, a store not reached or refusing are said at once, and another version's bundle
    there is refused with CONFLICT unless `replace`; then a probe object is put and deleted, so a
    store that lets us read but not write says so before the first download too."""

    one_at_a_time = False  # objects go up side by side

    def __init__(self, url: str, client: Any = None, *, version: dict[str, Any] | None = None,
                 replace: bool = False) -> None:
        self.dest = url
        self.bucket, self.prefix = split_url(url)
        self.replace = replace
        self.client = client or s3_client()
        self._check(version)
        temp = Path(tempfile.gettempdir())
        debris.sweep_scratch(temp)  # what an export killed before left there (debris.py)
        self.scratch, self._scratch_lock = debris.scratch(temp)
        self._tar: BundleWriter | None = None
        if is_tar(Path(self.prefix)):  # written locally, sent whole when finished
            self._tar = BundleWriter(self.scratch / Path(self.prefix).name)
            self.one_at_a_time = True

    def _check(self, version: dict[str, Any] | None) -> None:
        held = None
        try:
            if is_tar(Path(self.prefix)):
                try:
                    self.client.head_object(Bucket=self.bucket, Key=self.prefix)
                    held = "an object of that name"
                except Exception as error:
                    if not _unseen(error):
                        raise
            else:
                try:
                    body = self.client.get_object(Bucket=self.bucket, Key=self.key(MANIFEST))["Body"]
                    with contextlib.closing(body):
                        why = other_bundle(body.read(), version)
                    held = why and f"{MANIFEST}: {why}"
                except Exception as error:
                    if not _unseen(error):
                        raise
            if held and not self.replace:
                raise held_refused(self.dest, [held])
            probe = f"{self.prefix.rpartition('/')[0] if is_tar(Path(self.prefix)) else self.prefix}/.write-check-{secrets.token_hex(4)}"
            self.client.put_object(Bucket=self.bucket, Key=probe.lstrip("/"), Body=b"")
            with contextlib.suppress(Exception):  # written: that was the question (a store may not let us delete)
                self.client.delete_object(Bucket=self.bucket, Key=probe.lstrip("/"))
        except Exception as error:
            raise _store_error(self.dest, error) from None

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def download_target(self, path: str) -> Path:
        if self._tar is not None:
            return self._tar.download_target(path)
        return self.scratch / path.rsplit("/", 1)[-1]

    def has(self, path: str, size: int) -> bool:
        """Whether an earlier export left this payload whole under the prefix: its size, and the SHA-256
        its upload recorded, which is its name (an object put there otherwise is sent again). Not there,
        or not ours to see (_unseen): False; a store not reached, or any other refusal, is raised."""
        if self._tar is not None:
            return False
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(path))
        except Exception as error:
            if _unseen(error):
                return False
            raise _store_error(self.dest, error) from None
        return head["ContentLength"] == size and head.get("Metadata", {}).get(SHA_METADATA) == path.rsplit("/", 1)[-1]

    def add_downloaded(self, path: str) -> None:
        if self._tar is not None:
            self._tar.add_downloaded(path)
            return
        source = self.download_target(path)
        try:
            self.client.upload_file(str(source), self.bucket, self.key(path), Config=_transfer(),
                                    ExtraArgs={"Metadata": {SHA_METADATA: path.rsplit("/", 1)[-1]}})
        except Exception as error:
            raise _store_error(self.dest, error) from None
        finally:
            source.unlink(missing_ok=True)

    def add_bytes(self, path: str, data: bytes) -> None:
        if self._tar is not None:
            self._tar.add_bytes(path, data)
            return
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(path), Body=data,
                                   Metadata={SHA_METADATA: path.rsplit("/", 1)[-1]})
        except Exception as error:
            raise _store_error(self.dest, error) from None

    def finish(self, manifest: dict[str, Any]) -> None:
        """The manifest last: only then is the bundle whole (a tar: sent as one object once written).
        Under `replace`, then, the payload objects it does not name go."""
        try:
            if self._tar is not None:
                self._tar.finish(manifest)
                self.client.upload_file(str(self._tar.dest), self.bucket, self.prefix, Config=_transfer())
            else:
                written = self.scratch / MANIFEST  # streamed to disk, then sent from it: never whole in memory
                with written.open("xb") as out:
                    dump_manifest(manifest, out)
                with written.open("rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=self.key(MANIFEST), Body=body,
                                           ContentType="application/json")
                if self.replace:
                    self._remove_unnamed(named_payloads(manifest))
        except Exception as error:
            raise _store_error(self.dest, error) from None
        finally:
            debris.drop_scratch(self.scratch, self._scratch_lock)

    def _remove_unnamed(self, named: set[str]) -> None:
        """Delete the objects under payloads/ that the manifest does not name (an earlier bundle's),
        a listed page (up to 1,000) in one request."""
        base = self.key(f"{PAYLOADS}/")
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            unnamed = [{"Key": found["Key"]} for found in page.get("Contents", [])
                       if f"{PAYLOADS}/{found['Key'][len(base):]}" not in named]
            if unnamed:
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": unnamed, "Quiet": True})
                if answer.get("Errors"):  # a batch answers 200 whatever it deleted: what it could not is said here
                    failed = answer["Errors"][0]
                    raise GraphlakeClientError(f"{self.dest}: could not delete {failed.get('Key')} "
                                               f"({failed.get('Code')}: {failed.get('Message')})", "BAD_USER_INPUT", "dest")

    def abort(self) -> None:
        """Leave nothing local behind (payloads sent stay: a rerun skips them)."""
        if self._tar is not None:
            self._tar.abort()
        debris.drop_scratch(self.scratch, self._scratch_lock)
