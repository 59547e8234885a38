"""The permission matrix (tests/permission_matrix.py) names every root field of the schema, and no other.
Calling them: tests/test_permissions.py."""

from __future__ import annotations

from graphql import GraphQLObjectType

from resolvers.schema import build_schema
from tests.permission_matrix import MATRIX


def test_matrix_covers_every_root_field() -> None:
    schema = build_schema()._schema
    root_fields = {
        f"{root.name}.{name}"
        for root in (schema.query_type, schema.mutation_type, schema.subscription_type)
        if isinstance(root, GraphQLObjectType)
        for name in root.fields
    }
    assert root_fields == set(MATRIX), "add new root fields to MATRIX (and remove gone ones)"
