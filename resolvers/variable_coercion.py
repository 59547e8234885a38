"""Variables coerced along a plan made once per input type.

graphql-core coerces a request's variables with one generic function that asks, for every value,
what kind of type it has (non-null, list, input object, leaf), walks every field of an input
object whether the value has it or not, and looks up each absent field's default again; and before
that it walks the whole value once more, to be sure the coercion cannot recurse too deeply. For an
`addAnnotations` of 1,000 boxes the two took 23 ms, about a sixth of the server's time for the
request. This module plans each input type once (which fields it has, which are required, which
defaults apply, how each is coerced) and coerces with the plan, and it knows from the type alone
when no value can nest too deeply (none of the schema's input types holds itself): 8 ms for the
same records. Results are graphql-core's for every input (tests/unit/test_variable_coercion.py
compares the two on generated values of every input type of the schema, right and wrong).

It answers graphql-core's `Undefined` for any input its plan refuses, as graphql-core does, and
graphql-core then explains the problem with its own `validate_input_value`: error messages are
graphql-core's. `install()` puts both functions where graphql-core's variable coercion calls them
(resolvers/internals.py names the private names they replace).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLString,
)
from graphql.pyutils import Undefined, is_iterable
from graphql.type import assert_leaf_type, is_required_input_field
from graphql.utilities.coerce_input_value import coerce_default_value

from resolvers.internals import MAX_NESTING_DEPTH, graphql_variable_coercion, replace_variable_coercion

Coerce = Callable[[Any], Any]


class _Refused(Exception):
    """A value its type does not accept: the whole variable is Undefined."""


# Plans by named type, then by the wrappers around it ("!" non-null, "[" list, outermost first): a
# request's variable types are new wrapper objects each time, compared by identity, so only the
# named types can be keys. They live as long as the process, as the schema does (an app builds
# it once; a test process a few times): a few hundred small entries. Only finished plans are
# published here, under a lock while they are made, so a thread never finds one half-made.
_PLANS: dict[GraphQLNamedType, dict[str, Coerce]] = {}
_MAKING = threading.Lock()


def coerce_input_value(input_value: Any, type_: GraphQLInputType) -> Any:
    """graphql-core's `coerce_input_value`, planned: the coerced value, or Undefined."""
    try:
        plan = _plan(type_)
    except Exception:  # a type no plan can be made for (an invalid default, say): graphql-core's way
        return graphql_variable_coercion()[0](input_value, type_)
    try:
        return plan(input_value)
    except _Refused:
        return Undefined


def input_is_nested_too_deeply(value: Any, type_: GraphQLInputType) -> bool:
    """graphql-core's check that coercing `value` cannot recurse too deeply. It counts only the
    nesting the type follows (a list's items, an object's fields), so a type whose own nesting is
    bounded by MAX_NESTING_DEPTH passes every value without a walk; only types that hold
    themselves (a filter's `and`) are walked, by graphql-core."""
    if _depth(type_) <= MAX_NESTING_DEPTH:
        return False
    return graphql_variable_coercion()[1](value, type_)


def install() -> None:
    """Make graphql-core coerce variables with these plans (idempotent)."""
    replace_variable_coercion(coerce_input_value, input_is_nested_too_deeply)


# The deepest a value of each named type can nest, as graphql-core counts (unbounded: a float
# infinity). Kept as the plans are; a value found while a cycle is measured is only ever too high,
# which hands the value to graphql-core's own walk.
_DEPTHS: dict[GraphQLNamedType, float] = {}


def _depth(type_: GraphQLInputType) -> float:
    named, shape = _shape(type_)
    found = _DEPTHS.get(named)
    if found is None:
        if isinstance(named, GraphQLInputObjectType):
            _DEPTHS[named] = math.inf  # while its fields are measured: a field holding this type again
            found = 1 + max((_depth(field.type) for field in named.fields.values()), default=-1)
        else:
            found = 0
        _DEPTHS[named] = found
    return shape.count("[") + found  # each list is a level; non-null is none


def _shape(type_: GraphQLInputType) -> tuple[GraphQLNamedType, str]:
    shape = ""
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        shape += "!" if isinstance(type_, GraphQLNonNull) else "["
        type_ = type_.of_type
    return type_, shape


def _plan(type_: GraphQLInputType) -> Coerce:
    named, shape = _shape(type_)
    found = _PLANS.get(named, {}).get(shape)
    if found is None:
        with _MAKING:
            making: dict[tuple[GraphQLNamedType, str], Coerce] = {}
            found = _planned(type_, making)
            for (each, each_shape), plan in making.items():  # published whole, or not at all
                _PLANS.setdefault(each, {})[each_shape] = plan
    return found


def _planned(type_: GraphQLInputType, making: dict[tuple[GraphQLNamedType, str], Coerce]) -> Coerce:
    """The plan of `type_`, made now with every plan it needs that is not published yet (into `making`)."""
    key = _shape(type_)
    found = _PLANS.get(key[0], {}).get(key[1]) or making.get(key)
    if found is None:
        # An input type may hold itself (a filter's `and`): its plan names the plan being made.
        made: list[Coerce] = []
        making[key] = lambda value: made[0](value)
        made.append(_make(type_, making))
        found = making[key] = made[0]
    return found


def _make(type_: GraphQLInputType, making: dict[tuple[GraphQLNamedType, str], Coerce]) -> Coerce:
    if isinstance(type_, GraphQLNonNull):
        return _non_null(_planned(type_.of_type, making))
    if isinstance(type_, GraphQLList):
        return _list(_planned(type_.of_type, making))
    if isinstance(type_, GraphQLInputObjectType):
        return _input_object(type_, making)
    return _leaf(type_)


def _non_null(inner: Coerce) -> Coerce:
    def coerce(value: Any) -> Any:
        if value is None or value is Undefined:
            raise _Refused
        return inner(value)
    return coerce


def _list(item: Coerce) -> Coerce:
    def coerce(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        if not is_iterable(value):  # a value that is not a list is a list of one
            return [item(value)]
        return [item(element) for element in value]
    return coerce


def _input_object(type_: GraphQLInputObjectType, making: dict[tuple[GraphQLNamedType, str], Coerce]) -> Coerce:
    names = frozenset(type_.fields)
    fields: list[tuple[str, str, Coerce, bool, Any]] = []  # name, out name, plan, required, its default
    for name, field in type_.fields.items():
        required = is_required_input_field(field)
        default = Undefined if required else coerce_default_value(field)
        fields.append((name, field.out_name or name, _planned(field.type, making), required, default))
    one_of, out_type = type_.is_one_of, type_.out_type

    def coerce(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        if not isinstance(value, dict):
            raise _Refused
        # Keys holding Undefined count as absent (graphql-core's rule; JSON has none): looked at only
        # when some key is not a field.
        if not names.issuperset(value) and not names.issuperset([k for k, v in value.items() if v is not Undefined]):
            raise _Refused
        coerced: dict[str, Any] = {}
        for name, out_name, plan, required, default in fields:
            item = value.get(name, Undefined)
            if item is Undefined:
                if required:
                    raise _Refused
                if default is not Undefined:
                    coerced[out_name] = default
            else:
                coerced[out_name] = plan(item)  # plans raise rather than answer Undefined
        if one_of:
            given = sum(1 for v in value.values() if v is not Undefined)
            if given != 1 or len(coerced) != 1 or next(iter(coerced.values())) is None:
                raise _Refused
        return out_type(coerced)

    if one_of and all(not required and default is Undefined for _, _, _, required, default in fields):
        # A one-of input (GeometryInput: seven shapes, one given) told by its one key, not a look for
        # each of its fields; anything else (no key, two, Undefined) is the general plan's to decide.
        by_name = {name: (out_name, plan) for name, out_name, plan, _, _ in fields}

        def coerce_one_of(value: Any) -> Any:
            if type(value) is dict and len(value) == 1:
                ((name, item),) = value.items()
                found = by_name.get(name)
                if found is not None and item is not Undefined:
                    result = found[1](item)
                    if result is None:
                        raise _Refused
                    return out_type({found[0]: result})
            return coerce(value)
        return coerce_one_of
    return coerce


# graphql-core's built-in scalars answer a value of exactly their own Python type with that value
# (a Float, a finite one): checked here first, the call, its `try` and its Undefined test are spared.
# An addAnnotations box has ten such leaves: with the one-of plan (`_input_object`), coercing one
# took 3.9 us against 5.4 (1,000 boxes).
_SAME_TYPE: dict[object, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _leaf(type_: GraphQLInputType) -> Coerce:
    leaf = assert_leaf_type(type_).coerce_input_value
    if type_ is GraphQLFloat:
        general = _general_leaf(leaf)

        def coerce_float(value: Any) -> Any:
            return value if type(value) is float and math.isfinite(value) else general(value)
        return coerce_float
    if (same := _SAME_TYPE.get(type_)) is not None:
        general = _general_leaf(leaf)

        def coerce_same(value: Any) -> Any:
            return value if type(value) is same else general(value)
        return coerce_same
    return _general_leaf(leaf)


def _general_leaf(leaf: Callable[[Any], Any]) -> Coerce:
    def coerce(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        try:
            result = leaf(value)
        except Exception:  # graphql-core's rule: any failure of a leaf refuses the value
            raise _Refused from None
        if result is Undefined:
            raise _Refused
        return result
    return coerce
