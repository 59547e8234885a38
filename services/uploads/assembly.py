"""Joining a multipart upload's parts into its object, so that a completion cut short at any step can
be finished by a retry or by the reconciler.

Joining consumes the parts (the local mount renames them into place; S3 forgets the upload id), so
a completion that dies after it leaves an OPEN session with no parts and the whole object at its
key. The session is marked (`completing_at`) before the store joins them; from then on the object
is what a completion checks, and the reconciler finishes marked sessions whose completion died
(services/uploads/reconciler.py: finish_interrupted).
"""

from __future__ import annotations

from documents.clock import utcnow
from documents.upload import UploadSession
from services.errors import BadUserInput
from storage import ObjectStore


async def assemble(session: UploadSession, store: ObjectStore, field: str) -> None:
    """Have the store join the session's parts into its object, unless an earlier completion did;
    BadUserInput naming the parts not uploaded yet. Only the holder of the session's claim calls it."""
    assert session.multipart_id is not None
    parts = await store.list_parts(session.key, session.multipart_id)
    missing = sorted(set(range(1, session.part_count + 1)) - {p.number for p in parts})
    if not missing:
        await mark_completing(session)
        await store.complete_multipart(session.key, session.multipart_id, [p for p in parts if p.number <= session.part_count])
        return
    # No parts left: an earlier completion joined them and died (it marked the session first; one
    # that ran before sessions were marked is known by the object it left at the key). The object,
    # or its absence, is for verification to judge; what it had not removed of the upload goes now.
    if not parts and (session.completing_at is not None or await store.stat(session.key) is not None):
        await store.abort_multipart(session.key, session.multipart_id)
        return
    shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
    raise BadUserInput(f"parts not uploaded yet: {shown}; fetch uploadSession for their URLs", field=field,
                       missingParts=missing[:1000])


async def mark_completing(session: UploadSession) -> None:
    """Record that this session's parts are about to be joined (see the module's docstring)."""
    now = utcnow()
    await UploadSession.get_pymongo_collection().update_one({"_id": session.id}, {"$set": {"completing_at": now}})
    session.completing_at = now


async def unmark_completing(session: UploadSession) -> None:
    """Hand a marked session back to its client: its parts are there but not all of them (nothing was
    joined), so it waits for the missing ones, or expires, as any open session does. Only the mark
    read with `session` is cleared: one a completion set since stays."""
    await UploadSession.get_pymongo_collection().update_one(
        {"_id": session.id, "completing_at": session.completing_at}, {"$set": {"completing_at": None}})
