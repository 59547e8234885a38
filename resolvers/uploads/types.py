"""GraphQL types of upload sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry

from documents.asset import Asset as AssetDocument
from documents.upload import UploadSession as SessionDocument
from documents.upload import UploadStatus as UploadStatusValue
from resolvers.assets.types import Asset
from resolvers.context import Info
from resolvers.enums import described_enum
from resolvers.relay import Node
from resolvers.scalars import JSON, BigInt
from services.node_ids import NodeType, encode_id
from services.uploads.sessions import SignedSession

UploadStatus = described_enum(UploadStatusValue, "OPEN until completed, aborted, or expired.", {
    "OPEN": "Waiting for the bytes and `completeUpload`, until `expiresAt`.",
    "COMPLETED": "The bytes were verified: the asset is ACTIVE.",
    "ABORTED": "Given up (`abortUpload`), or its bytes did not verify: the asset is FAILED.",
    "EXPIRED": "Not completed before `expiresAt` (GRAPHLAKE_UPLOAD_EXPIRY_SECONDS, a day by default): the asset is FAILED.",
})


@strawberry.type(description="One part of a multipart upload: PUT its bytes to `url` (re-signed each time you ask).")
class UploadPart:
    part_number: int = strawberry.field(description="Its number, from 1; part n holds bytes from (n-1) x partSizeBytes.")
    url: str = strawberry.field(description="Where to PUT the part's bytes; valid until the session expires.")
    uploaded: bool = strawberry.field(description="Whether the store holds this part already (a resumed upload skips it).")


class Signing:
    """A session's signed URLs, made the first time a field asks for them and shared by the fields
    that ask after: a read that selects only `status` (`nodes` over a page of large uploads) signs
    nothing, and takes nothing from the request's part URLs (services/uploads/sessions.PartUrls)."""

    def __init__(self, signed: SignedSession | None = None,
                 sign: Callable[[], Awaitable[SignedSession]] | None = None) -> None:
        self._signed = signed
        self._sign = sign
        self._signing: asyncio.Future[SignedSession] | None = None

    async def signed(self) -> SignedSession:
        if self._signed is not None:
            return self._signed
        if self._signing is None:
            assert self._sign is not None
            self._signing = asyncio.ensure_future(self._sign())
        return await asyncio.shield(self._signing)  # one field cancelled does not cancel the others' signing


@strawberry.type(description="How to upload a FILE asset's bytes: PUT them to `url` with `headers`, or each part to "
                             "its URL (or write them to `directPath`), then call completeUpload. Nothing goes through "
                             "the GraphQL request.")
class UploadSession(Node):
    status: UploadStatus = strawberry.field(description="Where the upload stands.")
    method: str = strawberry.field(description="PUT.")
    part_size_bytes: BigInt | None = strawberry.field(description="Multipart uploads: every part but the last has this size.")
    expires_at: datetime = strawberry.field(description="When an OPEN session expires and its URLs stop working (UTC).")
    signing: strawberry.Private[Signing]
    unchanged: bool = strawberry.field(default=False, description=(
        "createUploads found this file filed already (the same collection path, the same sha256, ACTIVE): this is its "
        "completed session, and there is nothing to send."))
    asset_id: strawberry.Private[object] = None
    multipart: strawberry.Private[bool] = False
    direct: strawberry.Private[bool] = False  # a direct write's: a path, never parts (nothing to sign otherwise)

    @strawberry.field(description="Single-part uploads: where to PUT the whole file.")
    async def url(self) -> str | None:
        if self.multipart:
            return None
        signed = await self.signing.signed()
        return signed.single.url if signed.single else None

    @strawberry.field(description="Headers the client must send with each PUT.")
    async def headers(self) -> JSON:
        if self.multipart:
            return {}
        signed = await self.signing.signed()
        return signed.single.headers if signed.single else {}

    @strawberry.field(description=(
        "Multipart uploads: a signed URL per part, re-signed each time the session is read (to resume); null for a "
        "single-part or direct upload, and empty for whoever did not create the session. A request is handed at most "
        "10,000 part URLs in all its fields (the parts of one upload of the largest size): a session past them is "
        "BAD_USER_INPUT; read it in a request of its own. Signed only when asked for: a read of other fields takes "
        "none of them."))
    async def parts(self) -> list[UploadPart] | None:
        if not self.multipart:
            return None
        signed = await self.signing.signed()
        return [UploadPart(part_number=n, url=s.url, uploaded=done) for n, s, done in signed.parts]

    @strawberry.field(description=(
        "Direct writes (createUpload with direct: true): the file to create on the mount's filesystem. Write it under "
        "another name in the same directory, rename it to this path, then call completeUpload. Name it "
        "`.<file name>.<anything>.part` so that the server removes it should the write die halfway."))
    async def direct_path(self) -> str | None:
        return (await self.signing.signed()).direct_path if self.direct else None

    @strawberry.field(description="The PENDING FILE asset this session fills.")
    async def asset(self, info: Info) -> Asset:
        return Asset.from_document(await info.context.loaders.by_id(AssetDocument).load(self.asset_id))

    @classmethod
    def of(cls, session: SessionDocument, signing: Signing, *, unchanged: bool = False) -> UploadSession:
        """The session, its URLs from `signing`."""
        return cls(
            id=encode_id(NodeType.UPLOAD_SESSION, session.id), status=session.status, method="PUT",
            part_size_bytes=session.part_size, expires_at=session.expires_at, unchanged=unchanged,
            asset_id=session.asset_id, multipart=session.multipart_id is not None, direct=session.direct,
            signing=signing,
        )

    @classmethod
    def from_signed(cls, signed: SignedSession, *, unchanged: bool = False) -> UploadSession:
        return cls.of(signed.session, Signing(signed), unchanged=unchanged)


@strawberry.type(description=(
    "An upload completeUploads could not finish, or finished but could not file into the collection it named "
    "(deleted meanwhile: its asset is ACTIVE, in `assets`, and in no collection), and why (as completeUpload's "
    "error would say)."))
class UploadFailure:
    upload_id: strawberry.ID = strawberry.field(description="The upload session that did not finish (or was not filed).")
    code: str = strawberry.field(description=(
        "BAD_USER_INPUT (size or checksum differ, parts missing), CONFLICT (not open), NOT_FOUND (no such upload; "
        "on collectionId: its collection is gone)."))
    message: str = strawberry.field(description="What was wrong, as completeUpload's error message.")
    field: str | None = strawberry.field(description="The input at fault, e.g. sha256 or sizeBytes.")


@strawberry.type(description="What completeUploads finished.")
class CompleteUploadsPayload:
    assets: list[Asset] = strawberry.field(description=(
        "The assets now ACTIVE, in the order their uploads were given (those their collection could not take too)."))
    failures: list[UploadFailure] = strawberry.field(description=(
        "The uploads that did not finish or could not be filed, and why; empty if all did."))


@strawberry.type(description="The EXTERNAL assets registered (the first page of them) and how many; objects "
                             "registered before (same URI and, on S3, same ETag) are reported unchanged, not registered twice.")
class RegisterExternalPayload:
    count: int = strawberry.field(description="How many assets this call made.")
    assets: list[Asset] = strawberry.field(description="The first page of them.")
    unchanged_count: int = strawberry.field(default=0, description="How many objects were registered already.")
    unchanged: list[Asset] = strawberry.field(default_factory=list, description="The first page of those, as registered before.")


@strawberry.type(description="A file ingestFiles filed: its asset, and whether it was there already.")
class IngestedFile:
    asset: Asset = strawberry.field(description="The ACTIVE FILE asset.")
    unchanged: bool = strawberry.field(description=(
        "The same content was filed at that path of the collection already: that asset, nothing copied."))
