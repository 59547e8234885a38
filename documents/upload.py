"""Upload sessions: a PENDING FILE asset's way in, through signed URLs, until completed or given up."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import Field
from pymongo import ASCENDING

from documents.asset import Asset
from documents.clock import utcnow
from documents.indexes import Index


class UploadStatus(str, Enum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


class UploadSession(Document):
    asset_id: PydanticObjectId
    mount: str
    key: str
    status: UploadStatus = UploadStatus.OPEN
    size_bytes: int
    sha256: str | None = None
    media_type: str
    # Multipart uploads only: the store's upload id and the part size the server chose.
    multipart_id: str | None = None
    part_size: int | None = None
    # The client writes the file into the local mount itself (storage/local.py, "Direct writes").
    direct: bool = False
    collection_id: PydanticObjectId | None = None
    path: str | None = None
    # Completed, and not yet filed into `collection_id`: set as the session completes, cleared once
    # filed, so a crash in between leaves the reconciler something to finish.
    to_file: bool = False
    # An ingest's lease on a session it is still filing: set as it writes the session, renewed every
    # CLAIM_RENEW_SECONDS (services/uploads/claims.py), cleared with `to_file`. While it is fresh the
    # ingest may yet fail and remove the asset, so no other request files it or answers with it;
    # once older than CLAIM_SECONDS its writer is gone, and a rerun or the reconciler files it.
    filing_at: datetime | None = None
    # Whose lease it is: a token per ingest call, written with `filing_at`. A writer frozen past
    # CLAIM_SECONDS (SIGSTOP, a long GC pause) loses its lease to a rerun or the reconciler, which
    # write their own token before they file; the frozen one, waking, renews and removes only the
    # sessions still bearing its token, so it never removes what another has answered with.
    filing_owner: str | None = None
    expires_at: datetime
    # Set by a completion just before the store joins a multipart upload's parts (which consumes
    # them): from then on the object, not the parts, is what a retry or the reconciler checks to
    # finish the completion if it was cut short, even past the session's expiry.
    completing_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    finished_at: datetime | None = None
    # Aborted or expired, and its key not yet deleted once more after its last URL expired: an S3
    # URL can create the object again until then (it cannot replace one). See reconciler.sweep_closed.
    sweep_due: bool = False

    class Settings:
        name = "upload_sessions"
        indexes = [
            Index([("status", ASCENDING), ("expires_at", ASCENDING)], name="status_expiry"),
            Index("asset_id", name="asset"),
            Index([("sweep_due", ASCENDING), ("expires_at", ASCENDING)], name="sweep"),
            # What the reconciler reads on from where it stopped: the sessions closed since (settle_stranded),
            # and those a crash left unfiled (few hold the mark, among every completed one).
            Index([("finished_at", ASCENDING), ("_id", ASCENDING)], name="finished"),
            Index([("to_file", ASCENDING), ("_id", ASCENDING)], name="to_file"),
        ]

    @classmethod
    def completed_for(cls, asset: Asset, *, collection_id: PydanticObjectId | None = None,
                      path: str | None = None, owner: str | None = None) -> UploadSession:
        """A session completed now for a file stored without an upload (ingested, copied in), under
        its asset's id as every session: what the upload path answers an upload of it again with
        (services/uploads/sessions.py), and what the reconciler sweeps its bytes by once it is
        deleted (services/assets.py). With a `collection_id` it is still `to_file` there (at `path`):
        an ingest writes it before its asset, so a server stopping before the filing leaves what a
        rerun or the reconciler finishes, as for a completed upload; leased to the ingest writing it
        (`filing_at`, `filing_owner`: its token) until then."""
        return cls.model_validate(completed_document(asset, utcnow(), collection_id=collection_id, path=path, owner=owner))

    @property
    def part_count(self) -> int:
        return part_count(self.size_bytes, self.part_size)


def part_count(size_bytes: int, part_size: int | None) -> int:
    """How many parts an upload of `size_bytes` in parts of `part_size` has (0: not in parts)."""
    if not part_size:
        return 0
    return max(1, -(-size_bytes // part_size))


class UploadClaim(Document):
    """A completion in progress: one per session, keyed by the session's id, so of two requests
    completing the same upload only one can insert it. A unique key is the one guard that holds on
    FerretDB too, whose update of several documents is not atomic per document."""

    id: PydanticObjectId = Field(alias="_id")  # the session's
    claimed_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "upload_claims"


def completed_document(asset: Asset, now: datetime, *, collection_id: ObjectId | None = None, path: str | None = None,
                       owner: str | None = None) -> dict[str, Any]:
    """UploadSession.completed_for's session as it is stored (its model_dump by alias: every field,
    nulls too), built as a dict: an ingest writes one per file, and the model and its dump cost
    25 us a file there, 6% of the server's event loop per ingested image (services/uploads/ingest.py)."""
    assert asset.storage is not None
    filing = collection_id is not None
    return {"_id": asset.id, "asset_id": asset.id, "mount": asset.storage.mount, "key": asset.storage.key,
            "status": UploadStatus.COMPLETED, "size_bytes": asset.size_bytes or 0, "sha256": asset.sha256,
            "media_type": asset.media_type or "application/octet-stream", "multipart_id": None, "part_size": None,
            "direct": False, "collection_id": collection_id, "path": path, "to_file": filing,
            "filing_at": now if filing else None, "filing_owner": owner if filing else None, "expires_at": now,
            "completing_at": None, "created_at": now, "created_by": asset.created_by, "finished_at": now,
            "sweep_due": False}
