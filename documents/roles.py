"""What a token may do. Its own module, free of Beanie, so the `graphlake` command can name roles
(`token create --role`) without importing every document model."""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    """What a token may do; each role includes the ones below it."""

    VIEWER = "VIEWER"
    CONTRIBUTOR = "CONTRIBUTOR"
    ADMIN = "ADMIN"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {Role.VIEWER: 1, Role.CONTRIBUTOR: 2, Role.ADMIN: 3}
