"""Resolvers and unions answered without Strawberry's per-call machinery.

A page of a dataset version (100 datums, 1,000 records) calls some resolvers once per record or
datum: a record's `set`, `asset` and `attributes`, a mask's `asset`, a datum's `asset(role:)`, an
image's `downloadUrl`. For each call Strawberry builds its `Info`, converts the arguments
(graphql-core has already coerced every scalar one), asks each field extension (there are none) to
map them, chains the extensions' resolvers with `functools.partial`s and only then calls the method.
Each record's geometry is a union member, and Strawberry tells which by walking the union's types
(and then every type of the schema) asking each whether it implements the object. Serving a COCO
version's 20 pages (bench/exchange.py's export: 2,000 images, 20,000 boxes) cost the server 2.25 s
of CPU, of which `set { id }` took 0.37 s and the geometry 0.34 s.

`install` replaces, once when the schema is built:
- the resolve function of every field whose resolver is a plain `def` taking the object, the info,
  and arguments of scalar or enum types (no field extension, no permission class, no exception
  handler that could turn its errors into values, no StrawberryField of its own kind: then
  Strawberry's own wrapping does nothing but call it) with a direct call of the method, with the
  same `Info` and the same argument values Strawberry would pass;
- the type resolver of every union of plain object types with a lookup of the object's own class,
  falling back to Strawberry's for anything else (a subclass, a `strawberry.cast`).

What the resolvers return, and how graphql-core completes, checks and reports it, is unchanged.
tests/unit/test_direct_calls.py compares both paths, errors included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLObjectType, GraphQLUnionType
from strawberry.relay import GlobalID
from strawberry.schema.config import StrawberryConfig

from resolvers.internals import (
    StrawberryField,
    StrawberryMaybe,
    StrawberryOptional,
    field_exception_handlers,
    get_strawberry_type_cast,
    graphql_schema,
    is_leaf_type,
    strawberry_definition,
    strawberry_field,
)


def install(schema: strawberry.Schema) -> None:
    """Direct resolver calls and union lookups for `schema` (see the module docstring)."""
    config, scalar_registry = schema.config, schema.schema_converter.scalar_registry
    for graphql_type in graphql_schema(schema).type_map.values():
        if isinstance(graphql_type, GraphQLObjectType) and not graphql_type.name.startswith("__"):
            for field in graphql_type.fields.values():
                direct = _direct_resolver(schema, field, config, scalar_registry)
                if direct is not None:
                    field.resolve = direct
        elif isinstance(graphql_type, GraphQLUnionType):
            graphql_type.resolve_type = _union_lookup(graphql_type)


def _direct_resolver(schema: strawberry.Schema, field: GraphQLField, config: StrawberryConfig,
                     scalar_registry: Mapping[object, Any]) -> Callable[..., Any] | None:
    definition = strawberry_field(field)
    resolver = definition.base_resolver if definition is not None else None
    if (resolver is None or resolver.is_async or definition.extensions
            or resolver.root_parameter is not None or resolver.parent_parameter is not None
            or getattr(field.resolve, "__name__", None) != "_resolver"  # not Strawberry's sync wrapper
            or type(definition).get_result is not StrawberryField.get_result  # a field that resolves its own way
            or field_exception_handlers(schema, definition)):  # its errors may become values of its type
        return None
    names = _plain_arguments(definition, config, scalar_registry)
    if names is None:
        return None
    method, takes_self, info_class = resolver.wrapped_func, resolver.self_parameter is not None, config.info_class
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    def direct(source: Any, info: Any, **arguments: Any) -> Any:
        kwargs = {names[name]: value for name, value in arguments.items()}
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=definition)
        return method(source, **kwargs) if takes_self else method(**kwargs)

    return direct


def _plain_arguments(definition: StrawberryField, config: StrawberryConfig,
                     scalar_registry: Mapping[object, Any]) -> dict[str, str] | None:
    """{GraphQL name: Python name} of the field's arguments when Strawberry passes each one on as
    graphql-core coerced it (a scalar or an enum, or null); None when one needs converting."""
    names = {}
    for argument in definition.arguments:
        argument_type = argument.type
        if isinstance(argument_type, StrawberryOptional) and not isinstance(argument_type, StrawberryMaybe):
            argument_type = argument_type.of_type
        if isinstance(argument_type, StrawberryMaybe) or not is_leaf_type(argument_type, scalar_registry,
                                                                            skip_classes=(GlobalID,)):
            return None
        names[config.name_converter.from_argument(argument)] = argument.python_name
    return names


def _union_lookup(union: GraphQLUnionType) -> Callable[[Any, Any, Any], Any]:
    by_class = {}
    for member in union.types:
        definition = strawberry_definition(member)
        origin = getattr(definition, "origin", None)
        if origin is None or getattr(definition, "is_graphql_generic", False) or getattr(definition, "type_var_map", None):
            return union.resolve_type  # a generic member: Strawberry's own resolution throughout
        by_class[origin] = member.name
    strawberry_resolution = union.resolve_type

    def resolve_type(value: Any, info: Any, abstract_type: Any) -> Any:
        found = by_class.get(type(value))
        if found is not None and get_strawberry_type_cast(value) is None:
            return found
        return strawberry_resolution(value, info, abstract_type)

    return resolve_type
