"""Checking an uploaded object against what its session declared: size and SHA-256, including a digest given only at completion."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from bson import ObjectId

from documents.clock import utcnow
from documents.upload import UploadSession, UploadStatus
from services.errors import BadUserInput, Conflict
from services.uploads.assembly import assemble
from storage import ObjectStore
from storage.protocol import ObjectInfo

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}\Z")


def check_sha256(sha256: str, field: str) -> str:
    """`sha256` in lowercase, as stored and compared: hex of either case, as createUpload takes it
    (PowerShell's Get-FileHash writes uppercase); BAD_USER_INPUT naming `field` otherwise."""
    if not _SHA256.match(sha256):
        raise BadUserInput("must be 64 hex digits", field=field)
    return sha256.lower()


def late_digests(session_ids: Sequence[ObjectId], sha256s: Sequence[str | None] | None) -> dict[ObjectId, str]:
    """completeUploads' `sha256s`: digests for sessions created without one, null where declared."""
    if sha256s is None:
        return {}
    if len(sha256s) != len(session_ids):
        raise BadUserInput(f"give one digest (or null) per id: {len(sha256s)} for {len(session_ids)} ids", field="sha256s")
    return {session_id: check_sha256(sha256, f"sha256s[{i}]")
            for i, (session_id, sha256) in enumerate(zip(session_ids, sha256s, strict=True)) if sha256 is not None}


async def declare_late(session: UploadSession, sha256: str) -> None:
    """Take a digest given at completion as if createUpload had declared it. It is stored on the
    session before it is checked, so a retry must give the same one, and the reconciler settling a
    completion a crash cut short gives the asset this digest."""
    if session.sha256 == sha256:
        return
    if session.sha256 is not None:
        raise BadUserInput(f"differs from the SHA-256 createUpload declared ({session.sha256})", field="sha256")
    # Only the request holding the session's claim gets here: no other digest can come in between.
    await UploadSession.get_pymongo_collection().update_one({"_id": session.id}, {"$set": {"sha256": sha256}})
    session.sha256 = sha256


@dataclass
class Verified:
    """What the store holds for a session: its SHA-256 when it matches, else what differs."""

    sha256: str | None
    problems: list[str]


async def verify(session: UploadSession, store: ObjectStore, field: str,
                  stat: Awaitable[ObjectInfo | None] | None = None, late_sha256: str | None = None) -> Verified:
    """Check an open session's object against what was declared; raise what the client must fix.
    `stat`: the store's answer for a single object, asked for before the session was read;
    `late_sha256`: a digest the completion gives (see declare_late)."""
    if session.status is not UploadStatus.OPEN:
        raise Conflict(f"the upload is {session.status.value.lower()}", field=field)
    # A completion that got as far as joining the parts began before the expiry: it is finished.
    if session.expires_at <= utcnow() and session.completing_at is None:
        raise Conflict("the upload session has expired; start a new one", field=field)
    if late_sha256 is not None:
        await declare_late(session, late_sha256)
    if session.multipart_id:
        await assemble(session, store, field)
    info = await (stat if stat is not None else store.stat(session.key))
    if info is None and session.completing_at is not None:
        # Joined by an earlier completion that then found it differed from what was declared and
        # removed it (or someone deleted it since): the parts are gone too, so the upload is over.
        return Verified(sha256=None, problems=["object: the parts were joined and the object is gone since "
                                               "(an earlier completion found it differed from what was declared)"])
    if info is None:
        raise BadUserInput("no regular file has been written to this session's directPath yet" if session.direct
                           else "nothing has been uploaded to this session's URL yet", field=field)
    problems = []
    if info.size != session.size_bytes:
        problems.append(f"size: declared {session.size_bytes} bytes, stored {info.size}")
    sha256 = None if session.direct else info.sha256  # a direct writer could have recorded any digest
    if session.sha256 and not problems:
        sha256 = sha256 or await store.sha256(session.key)
        if sha256 != session.sha256:
            problems.append(f"sha256: declared {session.sha256}, stored {sha256}")
    if problems:
        await store.delete(session.key)
    return Verified(sha256=sha256, problems=problems)


def mismatch(problems: list[str]) -> BadUserInput:
    # The error names the field itself: the first problem's own "sha256: " or "size: " would say it twice.
    what, _, first = problems[0].partition(": ")
    return BadUserInput("; ".join([first, *problems[1:]]) + ". The asset is FAILED and the object removed.",
                        field="sha256" if what == "sha256" else "sizeBytes")
