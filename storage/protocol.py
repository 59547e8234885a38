"""The ObjectStore protocol: what Graphlake needs from a place that holds payload bytes.

Payloads never pass through the API process: a store hands out signed URLs that clients PUT to
and GET from directly, and answers what it holds (size, checksum) when an upload completes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from storage.local import StagedFile
    from storage.ownership import Ownership
    from storage.s3 import S3Store


# Where a store keeps the objects no record names, set aside by the reconciler's daily sweep
# (services/uploads/reconciler.sweep_stray_copies) and deleted a while later.
STRAY_DIR = ".stray"
# Keys a listing of a mount's folder gives at a time (files_older_than), what one S3 list request
# answers at most: a folder of millions of files is never held whole.
LIST_PAGE = 1000
# The object a readiness check of an S3 mount writes and deletes again (S3Store.check).
WRITE_PROBE_KEY = ".probe/writable"
# The folders of a mount where the lake keeps its own objects: uploads' and ingests' (assets/<id>,
# services/uploads/sessions.py), versions' content files (services/version_content.py), thumbnails
# (services/thumbnails.py), what the sweep set aside and the readiness probe. Registering one as EXTERNAL is refused
# (services/uploads/external.py): the lake deletes and sets aside what it keeps there.
LAKE_FOLDERS = ("assets/", "versions/", "thumbnails/", STRAY_DIR + "/", WRITE_PROBE_KEY.partition("/")[0] + "/")


class StoreUnavailable(Exception):
    """The store cannot be reached or used right now; the message says why."""


class StoreAnswered(StoreUnavailable):
    """The store answered with an error. `code` is its word (or its HTTP status, `HTTP 403`, where its
    answer has no body: a HEAD's), `status` the HTTP status (None where none came back).

    `refused`: the answer refuses what the asker named (a bucket, a prefix, an object of someone
    else's), which is theirs to fix: BAD_USER_INPUT on the field that named it, said with `reason`.
    Otherwise the store failed a request of the lake's own (a 503 once the retries are spent, its
    credentials rotated, its bucket gone), unavailable to its callers as any StoreUnavailable is.
    One class for both, so a caller that must tell them apart (services/uploads/external.py,
    resolvers/bundles/runner.py) asks one exception, and one that need not catches StoreUnavailable."""

    def __init__(self, message: str, *, code: str, status: int | None, refused: bool = False,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.refused = refused
        self.reason = reason or f"the store answered {code}"


@dataclass(frozen=True)
class SignedRequest:
    """A request a client makes on its own: method, URL and the headers it must send."""

    url: str
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPart:
    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    # Hex SHA-256 when the store itself verified or recorded one, else None.
    sha256: str | None = None


@runtime_checkable
class ObjectStore(Protocol):
    name: str
    backend: str  # "local" or "s3"
    fallback: str | None  # mount that takes new uploads while this one is unreachable
    # Whether the lake using the store owns the mount: each method that writes or deletes asks it
    # first, refusing or skipping the change on a mount another lake owns (storage/ownership.py).
    ownership: Ownership

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def check(self) -> None:
        """Raise StoreUnavailable unless the store can be read and written now."""

    def uri(self, key: str) -> str: ...

    # Create-only: once an object is stored under `key`, a PUT to this URL is refused (412), so
    # no URL can replace what a completion verified.
    async def sign_put(self, key: str, *, size: int, content_type: str, sha256: str | None,
                       expires_in: int) -> SignedRequest: ...
    # `sha256`: the object's verified digest, where the caller knows one: a store serving the bytes
    # itself names them by it in its ETag (a local mount's route); S3 has its own.
    async def sign_get(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                       bucket: str | None = None, sha256: str | None = None) -> str: ...
    def sign_get_now(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                     bucket: str | None = None, sha256: str | None = None) -> str | None:
        """sign_get's URL when the store makes it without waiting on anything, else None. A page of a
        version's images signs a URL per image: an awaitable each cost the server more than the signing."""

    async def start_multipart(self, key: str, *, content_type: str) -> str: ...
    async def sign_part(self, key: str, upload_id: str, number: int, *, size: int, offset: int,
                        expires_in: int) -> SignedRequest: ...
    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]: ...
    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None: ...
    async def abort_multipart(self, key: str, upload_id: str) -> None: ...

    async def stat(self, key: str) -> ObjectInfo | None: ...
    def read(self, key: str) -> AsyncIterator[bytes]:
        """The stored object's bytes, a chunk at a time (for exports inside the server: downloads go
        through signed URLs)."""
        ...

    async def sha256(self, key: str) -> str:
        """Hex SHA-256 of the stored object, computed by reading it (streamed, never held whole)."""
    async def write(self, key: str, path: Path | StagedFile) -> None:
        """Store a local file's bytes under `key`, whole or not at all (restoring a backup, a version's
        content file, a thumbnail: uploads go through signed URLs). A file `stage(key)` made is moved
        into place, not copied."""
        ...

    def stage(self, key: str) -> StagedFile | None:
        """A new file in which to write what the server makes (a version's content file, a thumbnail)
        that `write(key, staged)` will then store, or None where its bytes are sent to the store anyway
        (S3): stage it in a temporary directory then. On a local mount it lies beside `key`'s own file
        (made through no link: storage/local.py), so storing it is a rename, and the server's temporary
        directory (often a small tmpfs) never holds it. Blocking (it makes the folder). Close it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def read_owner_file(self) -> bytes | None:
        """What the mount's OWNER_FILE holds (storage/ownership.py); None while there is none.
        StoreUnavailable, on every backend, when it cannot be read."""
        ...

    async def write_owner_file(self, data: bytes, *, replace: bool) -> bool:
        """Store the mount's OWNER_FILE whole; unless `replace`, only where there is none (False then).
        StoreUnavailable, on every backend, when it cannot be written (a disk's OSError, S3's AccessDenied)."""
        ...


def as_s3(store: ObjectStore | None) -> S3Store | None:
    """`store` if it is an S3 mount's, else None. By its `backend`, not isinstance: that would import
    the S3 backend (aioboto3, botocore) into a lake that has no S3 mount (storage/__init__.py)."""
    return store if store is not None and store.backend == "s3" else None  # type: ignore[return-value]
