"""Fast conversion of input objects that arrive by the thousand (a `logEvents` batch).

Strawberry converts an input value field by field, resolving each field's type and GraphQL name
again for every item: 40% of a 1,000-event `logEvents` request went there. `batch_input` plans a
type's conversion once (which fields pass through as graphql-core coerced them, which nest another
planned input, which need Strawberry's general conversion) and installs it as the type's
`from_input` hook, so the result is the same instance Strawberry would build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any, TypeVar

from strawberry.relay.types import GlobalID
from strawberry.types.base import StrawberryOptional, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition

from resolvers.internals import InputContext, is_leaf_type

T = TypeVar("T", bound=type)

# (GraphQL name, Python name, converter of a present non-null value)
_Plan = list[tuple[str, str, Callable[[Any, InputContext], Any]]]


def batch_input(cls: T) -> T:
    """Give a Strawberry input type a planned `from_input` (decorate after @strawberry.input). Not for
    types with `strawberry.Maybe` fields: the plan does not wrap values in `Some`, and Strawberry's
    Maybe rule skips types that convert themselves."""
    definition = cls.__strawberry_definition__
    plan: _Plan | None = None
    # The plan's fields that pass through as graphql-core coerced them, (GraphQL name, Python name):
    # copied without a call each (an addAnnotations record has eight of its ten so: 3.5 us a COCO box
    # against 3.8), and those converted, as the plan says.
    same: list[tuple[str, str]] = []
    converted: _Plan = []
    implicit_nulls = {f.python_name: None for f in definition.fields
                      if f.default_value is MISSING and f.default_factory is MISSING}

    def from_input(type_: type, value: Mapping[str, Any], context: InputContext) -> Any:
        nonlocal plan
        if plan is None:
            made = _plan(definition, context)
            same.extend((g, p) for g, p, convert in made if convert is _identity)
            converted.extend(entry for entry in made if entry[2] is not _identity)
            plan = made
        kwargs = dict(implicit_nulls)
        for graphql_name, python_name in same:
            if graphql_name in value:
                kwargs[python_name] = value[graphql_name]
        for graphql_name, python_name, convert in converted:
            if graphql_name in value:
                item = value[graphql_name]
                kwargs[python_name] = None if item is None else convert(item, context)
        return type_(**kwargs)

    definition.from_input = from_input
    _PLANNED.add(cls)
    return cls


_PLANNED: set[type] = set()  # the types batch_input planned


def is_batch_input(type_: Any) -> bool:
    """Whether `type_` is an input type batch_input planned (its items may be converted by its
    `from_input` directly: resolvers/direct_calls.py)."""
    return type_ in _PLANNED if isinstance(type_, type) else False


def _plan(definition: Any, context: InputContext) -> _Plan:
    plan: _Plan = []
    for field in definition.fields:
        graphql_name = context.config.name_converter.from_field(field)
        plan.append((graphql_name, field.python_name, _converter(field.resolve_type(type_definition=definition),
                                                                   graphql_name, context)))
    return plan


def _identity(value: Any, _: InputContext) -> Any:
    return value


def _converter(type_: Any, graphql_name: str, context: InputContext) -> Callable[[Any, InputContext], Any]:
    inner = type_.of_type if isinstance(type_, StrawberryOptional) else type_
    if isinstance(inner, StrawberryEnumDefinition) or is_leaf_type(inner, context.scalar_registry, skip_classes=(GlobalID,)):
        return _identity  # graphql-core has already coerced scalars and enums
    if has_object_definition(inner) and inner.__strawberry_definition__.from_input is not None:
        nested = inner.__strawberry_definition__.from_input
        return lambda value, ctx: nested(inner, value, ctx)
    return lambda value, ctx: ctx.convert(value, type_, graphql_name)
