"""Finishing upload completions a crash cut short once they had marked their session (see
services/uploads/assembly.py): the reconciler runs this at start and every round."""

from __future__ import annotations

import logging

from documents.upload import UploadSession, UploadStatus
from services.errors import BadUserInput, Conflict, GraphlakeError
from services.events.feed import FeedWriter
from services.uploads.assembly import unmark_completing
from services.uploads.completion import complete_upload
from storage import ObjectStore

log = logging.getLogger("graphlake.uploads")

PER_ROUND = 100  # each may read a big object back: a backlog waits for later rounds


async def finish_interrupted(stores: dict[str, ObjectStore], feed: FeedWriter) -> int:
    """Finish each open session marked `completing_at` that no completion holds now, as its client's
    retry would: its asset turns ACTIVE (the object checked for its size and declared SHA-256), or
    FAILED when the object differs (removed) or is gone. One whose parts turn out incomplete (so
    nothing was joined) is handed back to its client unmarked, its bytes kept; one whose store fails
    is tried again next round. Never expired meanwhile (reconcile skips marked sessions): its
    completion began in time. Returns how many sessions it closed."""
    marked = await UploadSession.find({"status": UploadStatus.OPEN.value, "completing_at": {"$ne": None},
                                       "mount": {"$in": list(stores)}}).limit(PER_ROUND).to_list()
    closed = 0
    for session in marked:
        try:
            await complete_upload(session.id, stores, feed, "reconciler", max_items=1)
        except Conflict:  # a completion holds it right now, or one closed it meanwhile
            continue
        except BadUserInput as error:
            if "missingParts" in error.extensions:
                await unmark_completing(session)
                log.warning("upload %s was marked completing but lacks parts: handed back to its client (%s)",
                            session.id, error)
                continue
            log.warning("upload %s, whose completion a crash cut short, failed its checks: %s", session.id, error)
        except GraphlakeError as error:  # finished, but not filed: its collection was deleted meanwhile, say
            log.warning("upload %s, whose completion a crash cut short, is finished: %s", session.id, error)
        except Exception:  # the store may be down: the session stays marked, and the next round tries again
            log.exception("could not finish the completion a crash cut short of upload %s", session.id)
            continue
        closed += 1
    if closed:
        log.warning("finished %d upload completion(s) a crash had cut short", closed)
    return closed
