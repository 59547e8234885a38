"""AUDIT events: who changed what, through GraphQL (resolvers/events/audit.py) or the CLI."""

from __future__ import annotations

import getpass

from documents.common import Ownership
from documents.event import AUDIT
from documents.json_value import StoredJson
from services.events import log
from services.events.feed import FeedWriter
from services.events.log import EventSettings

MAX_IDS = 100  # a batch of 10,000 events is audited by its count and first ids


async def record(feed: FeedWriter, settings: EventSettings, message: str, *, user_id: str | None, ids: list[str],
                 **what: object) -> None:
    """Log one AUDIT event: `message` says who did what, `what` names it (the mutation and token,
    or the CLI command and the operating-system user, and a mutation's switches), `ids` what it
    touched (the first MAX_IDS; `idCount` says how many)."""
    await log.log_events(feed, [log.NewEvent(
        event_type=AUDIT, message=message, source=Ownership(user_id=user_id),
        data=StoredJson.encode({**what, "ids": ids[:MAX_IDS], "idCount": len(ids)}),
    )], settings, held=True)  # in a mutation, its last write: stored as it ends, or journaled


async def record_command(feed: FeedWriter, settings: EventSettings, command: str, ids: list[str] | None = None,
                         **details: str | None) -> None:
    """The AUDIT event of a CLI command that changed something: the server's own maintenance
    commands and token management run outside GraphQL, but are audited the same way."""
    try:
        os_user = getpass.getuser()
    except (OSError, KeyError):  # no login name in this container
        os_user = "unknown"
    await record(feed, settings, f"{command} by {os_user} (cli)", user_id=None, ids=ids or [], command=command,
                 osUser=os_user, **details)
