"""Which lake a mount belongs to, and the one guard every change a store makes to a mount passes.

Two lakes can be configured with one mount: a restored copy of a lake (a restore drill, a staging
copy) given the mounts of the lake it was copied from, sharing its S3 bucket or its directory. Each
lake deletes what its own database calls garbage, so the copy's reconciler deleted an upload the
original had completed after the backup (the copy saw it still open, then expired), and its daily
stray sweep set aside, then deleted, every file the original wrote after the backup. So a mount
names its owner: the id of one lake (services/mount_owners.py), in OWNER_FILE at its root (under
its prefix on S3), written by the first lake that uses the mount.

A lake that is not the mount's owner reads it, and changes nothing there: every method of a store
that deletes, moves or writes objects asks the store's `Ownership` first (`allows` for what is
skipped, `require` for what is refused), so no caller, present or future, can forget the check.
Skipped rather than raised where the lake only tidies up (a delete, an abort, a sweep): its own
records go on as if it were done, and the mount's owner keeps what it knows of.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from storage.protocol import StoreUnavailable

log = logging.getLogger("graphlake.storage")

OWNER_FILE = ".graphlake-owner"  # at a mount's root: JSON naming the lake that owns the mount
SAY_EVERY_SECONDS = 60.0  # a refused change is logged at most this often per mount (a GC round skips thousands)

# What a change left undone was: the `action` label of graphlake_mount_changes_refused_total, so a
# small fixed set of identifiers (they were phrases: `set aside`, `abort the multipart upload`, which
# a query must quote), each with the words a log line says it in.
Action = Literal["upload", "write_part", "complete", "abort_multipart_upload", "sweep_temp_files", "set_aside",
                 "delete_set_aside", "write", "delete"]
ACTION_WORDS: dict[Action, str] = {
    "upload": "upload", "write_part": "write a part of", "complete": "complete",
    "abort_multipart_upload": "abort the multipart upload", "sweep_temp_files": "sweep the temp files",
    "set_aside": "set aside", "delete_set_aside": "delete what was set aside", "write": "write", "delete": "delete",
}


class MountNotOwned(StoreUnavailable):
    """A write to a mount another lake owns: this lake may read it, never write there."""


@dataclass
class Ownership:
    """What the lake that opened a store knows of the mount's owner. `lake` stays None for a store
    used outside of a lake (a restore, `graphlake check`): nothing to compare, nothing refused."""

    mount: str
    lake: str | None = None  # the id of the lake this process serves
    owner: str | None = None  # the id in the mount's OWNER_FILE
    unknown_because: str | None = None  # why the owner is not known, when more than "not asked yet" is known
    # Told of each change left undone (its action): the app counts them (graphlake_mount_changes_refused).
    on_refused: Callable[[Action], None] | None = None
    _unsaid: int = field(default=0, repr=False)
    _said_at: float = field(default=-math.inf, repr=False)

    @property
    def owned(self) -> bool:
        return self.lake is None or self.owner == self.lake

    def allows(self, action: Action, key: str) -> bool:
        """Whether this lake may `action` (delete, set_aside, ...) `key` on the mount. If not, the
        change is counted and logged (at most once a minute per mount, with how many since)."""
        if self.owned:
            return True
        if self.on_refused is not None:
            self.on_refused(action)
        self._unsaid += 1
        now = time.monotonic()
        if now - self._said_at >= SAY_EVERY_SECONDS:
            log.warning("%s: left %s of %r undone (%d change(s) left undone since the last such line)",
                        self.refusal(), ACTION_WORDS[action], key, self._unsaid)
            self._said_at, self._unsaid = now, 0
        return False

    def require(self, action: Action, key: str) -> None:
        """Unless this lake may `action` (write) `key` on the mount: MountNotOwned, or StoreUnavailable
        while the owner is not known (a passing state: the next maintenance round asks again)."""
        if not self.allows(action, key):
            raise self.refused()

    def refused(self) -> StoreUnavailable:
        """The error a refused write raises (see `require`)."""
        return (MountNotOwned if self.owner is not None else StoreUnavailable)(self.refusal())

    def refusal(self) -> str:
        """Why this lake changes nothing on the mount, for an error message or a log line."""
        if self.owner is None and self.unknown_because is not None:
            return self.unknown_because
        if self.owner is None:  # its store could not be asked yet (services/mount_owners.settle_owners)
            return (f"mount {self.mount!r}: which lake owns it is not known yet (its store could not be asked): this "
                    "lake writes and deletes nothing there until it is")
        return (f"mount {self.mount!r} belongs to another lake ({self.owner}), not to this one ({self.lake}): this lake "
                f"reads it and never writes or deletes there (a restored copy, say); `graphlake mounts adopt "
                f"{self.mount}` takes it over")
