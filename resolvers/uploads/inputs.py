"""Inputs of the upload and external-data mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.common import OwnershipInput
from resolvers.scalars import JSON, BigInt


@strawberry.input(description="A file to upload; above the multipart threshold the server splits it into parts.")
class CreateUploadInput:
    name: str = strawberry.field(description="Shown as the file name on download.")
    size_bytes: BigInt
    media_type: str = "application/octet-stream"
    sha256: str | None = strawberry.field(default=None, description="Hex SHA-256; checked when the upload completes.")
    mount: str | None = strawberry.field(default=None, description="Default: the server's default mount.")
    description: str | None = None
    metadata: JSON | None = None
    labels: list[str] | None = None
    owner: OwnershipInput | None = None
    data_timestamp: datetime | None = None
    collection_id: strawberry.ID | None = strawberry.field(default=None, description="Put the asset into this collection when complete.")
    path: str | None = strawberry.field(default=None, description="Its path in that collection.")
    direct: bool = strawberry.field(default=False, description=(
        "Write the file into the local mount yourself instead of PUTting it: for clients that share the mount's "
        "filesystem (see Mount.localRoot). The session then has `directPath` and no URL or parts."))


@strawberry.input
class CompleteUploadInput:
    id: strawberry.ID = strawberry.field(description="The upload session.")
    sha256: str | None = strawberry.field(default=None, description=(
        "Hex SHA-256 of the file, when createUpload did not declare it: a client may hash a big file while its "
        "parts upload instead of before. Checked as a declared one is; if createUpload declared one too, they must be equal."))


@strawberry.input(description="Objects that already exist, registered in place: an S3 `bucket` + `prefix` read "
                              "through an S3 `mount`'s credentials (one asset per object), or an https `url`.")
class RegisterExternalInput:
    mount: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    url: str | None = None
    name: str | None = strawberry.field(default=None, description="For a url; objects are named by their key.")
    labels: list[str] | None = None
    metadata: JSON | None = None
    collection_id: strawberry.ID | None = None
