"""Role checks for every root field: VIEWER reads, CONTRIBUTOR writes, ADMIN manages tokens."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from documents.roles import Role
from services.errors import Forbidden, Unauthenticated

NEEDS_TOKEN = "needs an API token: send the header `Authorization: Bearer <token>`"


def is_guest(context: Any) -> bool:
    """A caller who may call only what needs no role: no valid token, and anonymous reads off (or a
    token that is not valid). A schema run without a request (tests, tools) has no caller to refuse."""
    if context is None:
        return False
    return context.principal is None and (context.auth_error is not None or not context.settings.anonymous_read)


def has_role(context: Any, role: Role) -> bool:
    """Whether the caller's token holds `role` (or a higher one); no token holds none."""
    return context.principal is not None and context.principal.role.includes(role)


def require_role(context: Any, role: Role) -> None:
    """Raise UNAUTHENTICATED or FORBIDDEN unless the caller holds `role` (or a higher one)."""
    if context.auth_error:
        raise Unauthenticated(context.auth_error)
    principal = context.principal
    if principal is None:
        if role is Role.VIEWER and context.settings.anonymous_read:
            return
        raise Unauthenticated(f"this {NEEDS_TOKEN}")
    if not principal.role.includes(role):
        raise Forbidden(f"this needs role {role.value}; your token has {principal.role.value}")


class RoleRequired(BasePermission):
    """A role check and nothing else, which resolvers/direct_calls.py calls without Strawberry's chain."""

    role: Role

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        require_role(info.context, self.role)
        return True


class CanRead(RoleRequired):
    role = Role.VIEWER


class CanWrite(RoleRequired):
    role = Role.CONTRIBUTOR


class IsAdmin(RoleRequired):
    role = Role.ADMIN
