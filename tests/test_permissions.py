"""The permission matrix (tests/permission_matrix.py): every root field, called by every role, is
allowed or refused as it should be."""

from __future__ import annotations

import pytest

from documents.roles import Role
from tests.conftest import MakeToken
from tests.operations import Api
from tests.permission_matrix import MATRIX, ROLES


@pytest.mark.parametrize("field", [f for f in MATRIX if not f.startswith("Subscription.")])
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
async def test_role_matrix(api: Api, make_token: MakeToken, field: str, role: Role | None) -> None:
    operation, variables, least = MATRIX[field]
    token = await make_token(role) if role else None
    body = await api.run(operation, variables, token=token)
    codes = {e["extensions"]["code"] for e in body.get("errors", [])}
    if least is None or (role is not None and role.includes(least)):
        assert not codes & {"UNAUTHENTICATED", "FORBIDDEN"}, body
    else:
        assert codes == {"UNAUTHENTICATED" if role is None else "FORBIDDEN"}, body
