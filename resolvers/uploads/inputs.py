"""Inputs of the upload and external-data mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.assets.inputs import DATA_TIMESTAMP, DESCRIPTION, LABELS, METADATA, OWNER
from resolvers.common import OwnershipInput
from resolvers.inputs import batch_input
from resolvers.scalars import JSON, BigInt


@batch_input
@strawberry.input(description="A file to upload; above the multipart threshold the server splits it into parts.")
class CreateUploadInput:
    name: str = strawberry.field(description=(
        "Shown as the file name on download: 1 to 500 characters (trimmed), no control character (a newline, a tab, NUL)."))
    size_bytes: BigInt = strawberry.field(description=(
        "The file's exact size in bytes, 0 up to GRAPHLAKE_MAX_UPLOAD_BYTES (5 TiB by default); checked on completion. "
        "At or above GRAPHLAKE_MULTIPART_THRESHOLD_BYTES (64 MiB by default) the upload goes in parts."))
    media_type: str = strawberry.field(default="application/octet-stream", description=(
        "The file's media type, e.g. image/png (default application/octet-stream); sent back on download."))
    sha256: str | None = strawberry.field(default=None, description="Hex SHA-256; checked when the upload completes.")
    mount: str | None = strawberry.field(default=None, description="Default: the server's default mount.")
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    metadata: JSON | None = strawberry.field(default=None, description=METADATA)
    labels: list[str] | None = strawberry.field(default=None, description=LABELS)
    owner: OwnershipInput | None = strawberry.field(default=None, description=OWNER)
    data_timestamp: datetime | None = strawberry.field(default=None, description=DATA_TIMESTAMP)
    collection_id: strawberry.ID | None = strawberry.field(default=None, description="Put the asset into this collection when complete.")
    path: str | None = strawberry.field(default=None, description=(
        "Its path in that collection; only with collectionId (without it, BAD_USER_INPUT)."))
    direct: bool = strawberry.field(default=False, description=(
        "Write the file into the local mount yourself instead of PUTting it: for clients that share the mount's "
        "filesystem (see Mount.localRoot). The session then has `directPath` and no URL or parts."))


@strawberry.input(description="The upload to finish, and its SHA-256 if createUpload did not declare one.")
class CompleteUploadInput:
    id: strawberry.ID = strawberry.field(description="The upload session.")
    sha256: str | None = strawberry.field(default=None, description=(
        "Hex SHA-256 of the file, when createUpload did not declare it: a client may hash a big file while its "
        "parts upload instead of before. Checked as a declared one is; if createUpload declared one too, they must be equal."))


@strawberry.input(description="Objects that already exist, registered in place: an S3 `bucket` + `prefix` read "
                              "through an S3 `mount`'s credentials (one asset per object), or an http(s) `url`.")
class RegisterExternalInput:
    mount: str | None = strawberry.field(default=None, description=(
        "With `bucket`: the S3 mount whose credentials read the bucket. Null with `url`."))
    bucket: str | None = strawberry.field(default=None, description="An S3 bucket to register objects of (or give `url`).")
    prefix: str | None = strawberry.field(default=None, description=(
        "With `bucket`: register the objects whose keys start with this (at most GRAPHLAKE_MAX_BATCH_ITEMS of them); "
        "null for the whole bucket."))
    url: str | None = strawberry.field(default=None, description="An https (or http) URL to register as one asset (or give `bucket`).")
    name: str | None = strawberry.field(default=None, description=(
        "For a url only, 1 to 500 characters without control characters (default: the last part of its path); "
        "objects are named by their key."))
    labels: list[str] | None = strawberry.field(default=None, description=LABELS)
    metadata: JSON | None = strawberry.field(default=None, description=METADATA)
    collection_id: strawberry.ID | None = strawberry.field(default=None, description=(
        "Put every registered asset into this collection; null for none."))
    owner: OwnershipInput | None = strawberry.field(default=None, description=OWNER)
    data_timestamp: datetime | None = strawberry.field(default=None, description=DATA_TIMESTAMP)


@batch_input
@strawberry.input(description="A file the server reads itself, under one of its `ingestRoots`, to copy into a local mount.")
class IngestFileInput:
    source: str = strawberry.field(description="The file's absolute path on the server (links are followed, and "
                                               "must stay under an ingest root).")
    size_bytes: BigInt = strawberry.field(description=(
        "Its size as you see it: a file of another size on the server is refused (CONFLICT), so a client on "
        "another machine cannot ingest a different file that happens to share the path."))
    modified_ns: BigInt | None = strawberry.field(default=None, description=(
        "Its modification time as you see it, in nanoseconds since the epoch (Python's `os.stat(path).st_mtime_ns`): "
        "a file modified at another time on the server is refused (CONFLICT), which tells two files of the same size "
        "apart. The Python client always sends it."))
    name: str | None = strawberry.field(default=None, description=(
        "Shown as the file name on download, held to createUpload's rules; default: the file's name."))
    media_type: str | None = strawberry.field(default=None, description=(
        "The file's media type; default: what its name suggests, else application/octet-stream."))
    sha256: str | None = strawberry.field(default=None, description=(
        "Hex SHA-256 the file must have (a bundle's manifest names it): a copy of other content is refused "
        "(BAD_USER_INPUT) and not kept. Default: whatever the server reads, hashed as it copies."))
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    metadata: JSON | None = strawberry.field(default=None, description=METADATA)
    labels: list[str] | None = strawberry.field(default=None, description=LABELS)
    owner: OwnershipInput | None = strawberry.field(default=None, description=OWNER)
    data_timestamp: datetime | None = strawberry.field(default=None, description=DATA_TIMESTAMP)
    collection_id: strawberry.ID | None = strawberry.field(default=None, description="File the asset into this collection.")
    path: str | None = strawberry.field(default=None, description=(
        "Its path in that collection (only with collectionId: without it, BAD_USER_INPUT); a file filed there "
        "already with the same SHA-256 is not copied again."))
