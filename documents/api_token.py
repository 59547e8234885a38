"""API tokens: what a client presents to authenticate. Only a hash of the secret is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.indexes import Index, On
from documents.roles import Role

TOKEN_PREFIX = "glk_"


def new_secret() -> str:
    """A fresh token secret: 256 random bits, recognisable by its prefix in logs and scanners."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # The secret is 256 random bits, so a fast hash is enough: nothing to brute-force, and the
    # lookup on every request stays one indexed equality match.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(Document):
    name: str
    secret_hash: str
    hint: str = Field(description="First characters of the secret, to tell tokens apart in lists.")
    role: Role
    user_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    class Settings:
        name = "api_tokens"
        indexes = [
            IndexModel("name", name="name_unique", unique=True),
            IndexModel("secret_hash", name="secret_hash_unique", unique=True),
            # A token's first request finds it by hash: on the embedded default a unique index serves no
            # query, so this one does (its keys differ from the unique one's, or the server takes it for it).
            Index([("secret_hash", ASCENDING), ("_id", ASCENDING)], name="secret_hash", on=On.EMBEDDED),
            Index([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at_id"),
        ]

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
