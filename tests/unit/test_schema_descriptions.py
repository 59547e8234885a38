"""The schema describes itself: every type, field, argument, input field and enum value has a description
(GraphiQL and generated clients show them; graphql-schema-linter's description rules check the SDL too)."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

from resolvers.schema import build_schema


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Every element of the schema (introspection's own aside) that has no description, by coordinate."""
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__"):
            continue
        if not (graphql_type.description or "").strip():
            missing.append(name)
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in graphql_type.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{name}.{field_name}")
                missing += [f"{name}.{field_name}({arg_name}:)" for arg_name, arg in field.args.items()
                            if not (arg.description or "").strip()]
        elif isinstance(graphql_type, GraphQLInputObjectType):
            missing += [f"{name}.{field_name}" for field_name, field in graphql_type.fields.items()
                        if not (field.description or "").strip()]
        elif isinstance(graphql_type, GraphQLEnumType):
            missing += [f"{name}.{value_name}" for value_name, value in graphql_type.values.items()
                        if not (value.description or "").strip()]
    return missing


def test_every_schema_element_has_a_description() -> None:
    missing = undescribed(build_schema()._schema)
    assert not missing, f"{len(missing)} without a description: {', '.join(missing)}"


def test_the_check_sees_a_missing_description() -> None:
    from graphql import build_schema as from_sdl

    schema = from_sdl('"""Q"""\ntype Query {\n  "f"\n  f(a: Int): E\n}\n"""E"""\nenum E {\n  "x"\n  X\n  Y\n}\n')
    assert undescribed(schema) == ["Query.f(a:)", "E.Y"]
