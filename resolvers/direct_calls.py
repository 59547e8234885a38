"""Resolvers and unions answered without Strawberry's per-call machinery.

A page of a dataset version (100 datums, 1,000 records) calls some resolvers once per record or
datum: a record's `set`, `asset` and `attributes`, a mask's `asset`, a datum's `asset(role:)`, an
image's `downloadUrl`. For each call Strawberry builds its `Info`, converts the arguments
(graphql-core has already coerced every scalar one), asks each field extension to map them,
chains the extensions' resolvers with `functools.partial`s made anew for the call, and only then
calls the method. Each record's geometry is a union member, and Strawberry tells which by walking
the union's types (and then every type of the schema) asking each whether it implements the
object. Serving a COCO version's 20 pages (bench/exchange.py's export: 2,000 images, 20,000 boxes)
cost the server 2.25 s of CPU, of which `set { id }` took 0.37 s and the geometry 0.34 s. Every
root field pays the same wrapping once per request, and more: its role check is a field extension
(Strawberry's PermissionExtension) and a mutation's audit entry another (AuditTrail), each one more
coroutine and partial per call: about 60 us of a by-id read's 750 in-process.

`install` replaces, once when the schema is built:
- the resolve function of every field whose resolver is a plain `def` or `async def` taking the
  object, the info and its arguments (not a subscription's generator; no exception handler that
  could turn its errors into values; no StrawberryField of its own kind, which resolves its own
  way) and whose field extensions are only role checks (resolvers/permissions.py) and extensions
  that neither reshape the arguments nor fail silently, with a direct call: the same `Info`, the same
  argument values (scalars and enums as graphql-core coerced them, anything else through
  Strawberry's own `convert_arguments`), the role checks and the extensions' `resolve` or
  `resolve_async` chained once, in Strawberry's order (the last extension outermost);
- the type resolver of every union of plain object types with a lookup of the object's own class,
  falling back to Strawberry's for anything else (a subclass, a `strawberry.cast`).

What the resolvers return, and how graphql-core completes, checks and reports it, is unchanged;
an async field's work, its role check included, still starts when graphql-core awaits it.
tests/unit/test_direct_calls.py compares both paths, errors included.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLObjectType, GraphQLUnionType
from strawberry.extensions import FieldExtension
from strawberry.permission import PermissionExtension
from strawberry.relay import GlobalID
from strawberry.schema.config import StrawberryConfig

from resolvers.inputs import is_batch_input
from resolvers.internals import (
    InputContext,
    StrawberryField,
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    convert_arguments,
    field_exception_handlers,
    get_strawberry_type_cast,
    graphql_schema,
    is_leaf_type,
    strawberry_definition,
    strawberry_field,
)
from resolvers.permissions import RoleRequired


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
    if (resolver is None or resolver.root_parameter is not None or resolver.parent_parameter is not None
            or inspect.isasyncgenfunction(resolver.wrapped_func)  # a subscription's stream
            # Strawberry's sync or async wrapper, not a resolver someone else set
            or getattr(field.resolve, "__name__", None) != ("_async_resolver" if resolver.is_async else "_resolver")
            or type(definition).get_result is not StrawberryField.get_result  # a field that resolves its own way
            or field_exception_handlers(schema, definition)):  # its errors may become values of its type
        return None
    steps = _steps(definition.extensions, resolver.is_async)
    if steps is None:
        return None
    names = _plain_arguments(definition, config, scalar_registry)
    arguments = definition.arguments
    method, takes_self, info_class = resolver.wrapped_func, resolver.self_parameter is not None, config.info_class
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    # Strawberry hands the chain an Info parameter named `info` apart, and puts it back for the
    # method; one named otherwise rides in the arguments every step sees, as here.
    info_apart = info_name == "info"

    # Positional-only: a GraphQL argument may be named `source` or `info`.
    def call(source: Any, info: Any, /, **kwargs: Any) -> Any:
        if info_apart:
            kwargs["info"] = info
        return method(source, **kwargs) if takes_self else method(**kwargs)

    chained = _chain(steps, call, resolver.is_async)

    lists = _batch_lists(definition, config, scalar_registry) if names is None else None

    def converted(arguments_in: dict[str, Any], info: Any) -> dict[str, Any]:
        if names is not None:
            kwargs = {names[name]: value for name, value in arguments_in.items()}
        elif lists is not None:
            kwargs = _converted_with_lists(arguments_in, lists, arguments, config, scalar_registry, info)
        else:
            kwargs = convert_arguments(arguments_in, arguments, scalar_registry=scalar_registry, config=config,
                                       info=info)
        if info_name is not None and not info_apart:
            kwargs[info_name] = info
        return kwargs

    if resolver.is_async:
        async def direct_async(source: Any, info: Any, /, **arguments_in: Any) -> Any:
            strawberry_info = info_class(_raw_info=info, _field=definition)
            result = chained(source, strawberry_info, **converted(arguments_in, strawberry_info))
            return await result if inspect.isawaitable(result) else result  # Strawberry's `await_maybe`

        direct_async.__name__ = "direct"
        return direct_async

    def direct(source: Any, info: Any, /, **arguments_in: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=definition)
        return chained(source, strawberry_info, **converted(arguments_in, strawberry_info))

    return direct


# A step of a field's chain: the role checks of a PermissionExtension, or another field extension
# (called by its `resolve` or `resolve_async`, as the field is sync or async).
_Step = tuple[RoleRequired, ...] | FieldExtension


def _steps(extensions: list[FieldExtension], is_async: bool) -> list[_Step] | None:
    """The field's extensions as steps, innermost first; None when one cannot be called directly:
    it reshapes the arguments, its permissions are not plain role checks or may fail silently, or
    it lacks the resolve hook the field's kind needs (Strawberry then makes a chain of its own).
    An extension must pass on the source and info it was given (AuditTrail does): Strawberry binds
    the method's `self` and its Info before the chain runs, this path when the chain reaches it."""
    steps: list[_Step] = []
    for extension in extensions:
        if type(extension).map_arguments is not FieldExtension.map_arguments:
            return None
        if type(extension) is PermissionExtension:  # a subclass may check its own way
            if extension.fail_silently or not all(type(p).has_permission is RoleRequired.has_permission
                                                  for p in extension.permissions):
                return None
            steps.append(tuple(extension.permissions))
        elif not extension.has_resolver:
            continue  # Strawberry leaves it out of the chain too
        elif extension.supports_async if is_async else extension.supports_sync:
            steps.append(extension)
        else:
            return None
    return steps


def _chain(steps: list[_Step], call: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """`call` inside the steps, the first innermost, made once for the field."""
    chained = call
    for step in steps:
        if isinstance(step, tuple):
            chained = _checked_async(step, chained) if is_async else _checked(step, chained)
        else:
            chained = partial(step.resolve_async if is_async else step.resolve, chained)
    return chained


def _checked(permissions: tuple[RoleRequired, ...], next_: Callable[..., Any]) -> Callable[..., Any]:
    def checked(source: Any, info: Any, /, **kwargs: Any) -> Any:
        for permission in permissions:
            # Refused unless it says True (a role check raises first): closed, whatever it answers.
            if permission.has_permission(source, info, **kwargs) is not True:
                return permission.on_unauthorized()
        return next_(source, info, **kwargs)

    return checked


def _checked_async(permissions: tuple[RoleRequired, ...], next_: Callable[..., Any]) -> Callable[..., Any]:
    async def checked(source: Any, info: Any, /, **kwargs: Any) -> Any:
        for permission in permissions:
            if permission.has_permission(source, info, **kwargs) is not True:
                return permission.on_unauthorized()
        return await next_(source, info, **kwargs)  # as PermissionExtension.resolve_async awaits it

    return checked


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


def _batch_lists(definition: StrawberryField, config: StrawberryConfig,
                 scalar_registry: Mapping[object, Any]) -> dict[str, tuple[str, type]] | None:
    """{GraphQL name: (Python name, item type)} of the field's arguments that are lists of an input
    type batch_input planned (resolvers/inputs.py), each item of which `_converted_with_lists` hands
    to the type's `from_input` itself; None when there is none. Strawberry's list conversion asks of
    every item again what its type is before it gets there: for addAnnotations' 1,000 records, 3.3
    of the 6.8 us a record its conversion took (scratch timing)."""
    lists = {}
    for argument in definition.arguments:
        argument_type = argument.type
        if isinstance(argument_type, StrawberryOptional) and not isinstance(argument_type, StrawberryMaybe):
            argument_type = argument_type.of_type
        if isinstance(argument_type, StrawberryList) and is_batch_input(argument_type.of_type):
            lists[config.name_converter.from_argument(argument)] = (argument.python_name, argument_type.of_type)
    return lists or None


def _converted_with_lists(arguments_in: dict[str, Any], lists: dict[str, tuple[str, type]], arguments: list[Any],
                          config: StrawberryConfig, scalar_registry: Mapping[object, Any], info: Any) -> dict[str, Any]:
    """Strawberry's `convert_arguments`, the lists of `lists` converted item by item by their type's
    `from_input`, with the context (and path: the argument's name, the item's index) Strawberry gives it."""
    kwargs = convert_arguments({name: value for name, value in arguments_in.items() if name not in lists}, arguments,
                               scalar_registry=scalar_registry, config=config, info=info)
    for name, (python_name, item_type) in lists.items():
        if name in arguments_in:
            value = arguments_in[name]
            if value is None:
                kwargs[python_name] = None
                continue
            from_input = item_type.__strawberry_definition__.from_input
            kwargs[python_name] = [
                None if item is None else from_input(item_type, item, InputContext(
                    info=info, config=config, scalar_registry=scalar_registry, path=(name, index)))
                for index, item in enumerate(value)]
    return kwargs


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
