"""The target contract (tests/contract/graphlake.graphql, a copy of the shared one) is a subset of
our schema: its type names, fields, field types and arguments, root fields included.

What later work still owes is listed in PENDING; the test fails when a pending item appears
(remove it from the list) or when anything else is missing."""

from __future__ import annotations

from graphql import (
    EnumTypeDefinitionNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    InterfaceTypeDefinitionNode,
    ObjectTypeDefinitionNode,
    parse,
    print_ast,
)

from graphlake import PROJECT_ROOT
from resolvers.schema import build_schema

CONTRACT = PROJECT_ROOT / "tests" / "contract" / "graphlake.graphql"

# Whatever later work still owes; empty when the schema covers the whole contract.
PENDING: set[str] = set()


def contract_gaps() -> list[str]:
    ours = build_schema()._schema
    gaps = []
    for definition in parse(CONTRACT.read_text()).definitions:
        name = getattr(getattr(definition, "name", None), "value", None)
        if name is None:
            continue
        mine = ours.type_map.get(name)
        if mine is None:
            gaps.append(name)
            continue
        if isinstance(definition, ObjectTypeDefinitionNode | InterfaceTypeDefinitionNode):
            assert isinstance(mine, GraphQLObjectType | GraphQLInterfaceType), name
            for field in definition.fields or ():
                key = f"{name}.{field.name.value}"
                if field.name.value not in mine.fields:
                    gaps.append(key)
                    continue
                ours_field = mine.fields[field.name.value]
                if print_ast(field.type) != str(ours_field.type):
                    gaps.append(f"{key}: type {print_ast(field.type)} != {ours_field.type}")
                gaps += [f"{key}({arg.name.value})" for arg in field.arguments or () if arg.name.value not in ours_field.args]
        if isinstance(definition, EnumTypeDefinitionNode):
            assert isinstance(mine, GraphQLEnumType), name
            gaps += [f"{name}.{v.name.value}" for v in definition.values or () if v.name.value not in mine.values]
    return gaps


def test_schema_covers_the_contract() -> None:
    gaps = set(contract_gaps())
    assert gaps - PENDING == set(), "missing from the schema"
    assert PENDING - gaps == set(), "implemented now: remove from PENDING"
