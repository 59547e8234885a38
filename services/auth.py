"""API tokens: authenticate a secret, create, list and revoke. Called by GraphQL and the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import DuplicateKeyError

from documents.api_token import ApiToken, hash_secret, new_secret
from documents.clock import to_millis, utcnow
from documents.common import Ownership
from documents.roles import Role
from services.errors import BadUserInput, Conflict, NotFound, Unauthenticated
from services.events import audit
from services.events.feed import FeedWriter
from services.events.log import EventSettings
from services.node_ids import NodeType, encode_id, is_node_id, split_id
from services.privacy.places import PSEUDONYM_PREFIX

BOOTSTRAP_TOKEN_NAME = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token they presented and what it may do."""

    token_id: str
    token_name: str
    role: Role
    user_id: str | None

    @property
    def actor(self) -> str:
        """How audit fields (createdBy, addedBy, ...) name this caller."""
        return self.user_id or f"{TOKEN_ACTOR}{self.token_name}"


TOKEN_ACTOR = "token:"  # how an audit field names a caller whose token carries no userId
MAX_USER_ID_CHARS = 200


def person_of(actor: str | None) -> str | None:
    """The user an audit field (createdBy, ...) names; None for a token that carries no userId."""
    return actor if actor and not actor.startswith(TOKEN_ACTOR) else None


def with_person(source: Ownership, actor: str | None) -> Ownership:
    """`source` with its userId, when it names none, the person `actor` is: what privacy requests
    find an event by (README, Privacy requests). Left out, the events a person logged, and their
    uploads' ASSET_STATUS events, were in no export and kept their text through an erase."""
    person = person_of(actor)
    return source.model_copy(update={"user_id": person}) if person and not source.user_id else source


def bearer_secret(header: str | None) -> str | None:
    """The secret in an `Authorization: Bearer ...` value (the scheme is case-insensitive)."""
    if not header:
        return None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header must be `Bearer <token>`")
    return secret.strip()


async def authenticate(secret: str) -> tuple[Principal, datetime | None]:
    """The caller a secret names, and when its token expires. Requests go through TokenCache."""
    token = await ApiToken.find_one({"secret_hash": hash_secret(secret)})
    if token is None or not token.is_usable(utcnow()):
        # One message for unknown, revoked and expired: nothing to learn by probing.
        raise Unauthenticated("the API token is not valid (unknown, revoked or expired)")
    principal = Principal(token_id=str(token.id), token_name=token.name, role=token.role, user_id=token.user_id)
    return principal, token.expires_at


def _check_user_id(user_id: str) -> None:
    """BAD_USER_INPUT on `userId` unless it can name a person everywhere it is written: privacy
    requests find a person by it (trimmed: an id with spaces around it, or none at all, was never
    found), an audit field names a token without one `token:NAME`, and a pseudonym begins `anon-`."""
    if not user_id.strip() or user_id != user_id.strip() or not user_id.isprintable():
        raise BadUserInput("must be a user's id: not empty, no spaces around it, no control characters", field="userId")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise BadUserInput(f"must be at most {MAX_USER_ID_CHARS} characters", field="userId")
    if user_id.startswith((TOKEN_ACTOR, PSEUDONYM_PREFIX)):
        raise BadUserInput(f"must not begin with {TOKEN_ACTOR!r} (a token without a user) or {PSEUDONYM_PREFIX!r} "
                           "(a pseudonym)", field="userId")


async def create_token(
    name: str,
    role: Role,
    *,
    user_id: str | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret. The secret is returned here once and never stored."""
    if not _NAME.match(name):
        raise BadUserInput("must be 1-64 letters, digits or ._@- and start with a letter or digit", field="name")
    if user_id is not None:
        _check_user_id(user_id)
    if expires_at is not None:
        expires_at = to_millis(expires_at)
        if expires_at <= utcnow():
            raise BadUserInput("must be in the future", field="expiresAt")
    secret = new_secret()
    token = ApiToken(
        name=name, secret_hash=hash_secret(secret), hint=secret[:8], role=role, user_id=user_id,
        expires_at=expires_at, created_by=created_by,
    )
    try:
        await token.insert()
    except DuplicateKeyError:
        raise Conflict(f"a token named {name!r} exists already", field="name") from None
    return token, secret


async def find_token(id_or_name: str) -> ApiToken:
    """A token by its global id (as the API and `token list` show it), its raw database id, or its name."""
    token = None
    raw = id_or_name
    if is_node_id(id_or_name) and split_id(id_or_name)[0] == NodeType.API_TOKEN.value:
        raw = split_id(id_or_name)[1]
    try:
        token = await ApiToken.get(ObjectId(raw))
    except InvalidId:
        pass
    token = token or await ApiToken.find_one({"name": id_or_name})
    if token is None:
        raise NotFound(f"no token with id or name {id_or_name!r}", field="id")
    return token


async def revoke_token(token: ApiToken) -> ApiToken:
    """Revoking is idempotent; the record stays so audit entries can still name it."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await token.save()
    return token


async def ensure_bootstrap_admin(feed: FeedWriter, settings: EventSettings) -> str | None:
    """On a database with no tokens at all, create the ADMIN token (audited) and return its secret.

    Only on an empty collection: an operator who revoked every admin token did so on purpose.
    """
    if await ApiToken.find_one({}) is not None:
        return None
    try:
        token, secret = await create_token(BOOTSTRAP_TOKEN_NAME, Role.ADMIN, created_by="bootstrap")
    except Conflict:  # another process bootstrapped the same database first
        return None
    await audit.record(feed, settings, "bootstrap admin token created at first start", user_id=None,
                       ids=[encode_id(NodeType.API_TOKEN, token.id)], command="bootstrap")
    return secret
