"""Errors in the values written into a document name the argument, and never quote Python.

graphql-core's ValuesOfCorrectType rule says what is wrong with a literal but not where ("Int
cannot represent non 32-bit signed integer value: 99999999999"), and Python leaked through it:
- an integer of more digits than `int()` converts (4300 by default) made it raise ValueError, which
  the error policy rightly masked as INTERNAL: a client's typo became "a bug, quote this request id";
- `1e400` became infinity, which it accepted for a Float argument;
- a scalar that raised a plain exception put Python's own words in the message.
`NamedInputLiterals` is that rule with each error prefixed by the argument's path (also given as
`extensions.field`, as resolvers do: `filter.metadata[0].value`), numbers Python cannot hold refused
first, and a scalar's plain exception reduced to "not a valid <type>". Values in variables are
checked by graphql-core when it coerces them, with the variable's name in the message.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

from graphql import (
    SKIP,
    ArgumentNode,
    FloatValueNode,
    GraphQLError,
    GraphQLFloat,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
    VariableDefinitionNode,
    VisitorAction,
    get_named_type,
    get_nullable_type,
    validate_input_literal,
)
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import SchemaExtension

from resolvers.internals import ValuesOfCorrectTypeRule
from resolvers.validation_rules import replaced

Path = list[str | int]


def _path(where: str, path: Path) -> str:
    return where + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)


def _type_at(type_: Any, path: Path) -> Any:
    """The input type at `path` inside a value of `type_`, or None where the path leaves it."""
    for key in path:
        type_ = get_nullable_type(type_)
        if isinstance(key, int):
            type_ = type_.of_type if isinstance(type_, GraphQLList) else type_  # one value may stand for a list
        elif isinstance(type_, GraphQLInputObjectType) and key in type_.fields:
            type_ = type_.fields[key].type
        else:
            return None
    return type_


def unreadable_numbers(node: ValueNode, type_: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """Number literals Python cannot read as asked: too many digits for `int()`, or beyond a float's range."""
    nullable = get_nullable_type(type_) if type_ is not None else None
    if isinstance(node, ObjectValueNode):
        fields = nullable.fields if isinstance(nullable, GraphQLInputObjectType) else {}
        for field in node.fields:
            declared = fields.get(field.name.value)
            yield from unreadable_numbers(field.value, declared.type if declared else None, [*path, field.name.value])
    elif isinstance(node, ListValueNode):
        item = nullable.of_type if isinstance(nullable, GraphQLList) else None
        for index, value in enumerate(node.values):
            yield from unreadable_numbers(value, item, [*path, index])
    elif isinstance(node, IntValueNode):
        digits, limit = len(node.value.lstrip("-")), sys.get_int_max_str_digits()
        if limit and digits > limit:
            yield path, f"an integer of {digits} digits is longer than the {limit} digits allowed"
        elif nullable is GraphQLFloat and not math.isfinite(float(node.value)):
            yield path, f"an integer of {digits} digits does not fit in a Float"
    elif isinstance(node, FloatValueNode) and not math.isfinite(float(node.value)):
        # Wherever it is written: a Float argument took it as infinity, a JSON value cannot hold it.
        shown = node.value if len(node.value) <= 40 else node.value[:20] + "..."
        yield path, f"{shown} is beyond the range of a 64-bit float"


class NamedInputLiterals(ValuesOfCorrectTypeRule):
    """ValuesOfCorrectType whose errors name the argument (or variable default) they are in."""

    where = ""

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self.where = node.name.value

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: Any) -> None:
        self.where = f"${node.variable.name.value}"  # its default value, if it has one

    def is_valid_value_node(self, node: ValueNode, input_type: GraphQLInputType | None) -> VisitorAction:
        # The rule calls this for each argument's (and default's) whole value, then skips inside it.
        if input_type is None:
            return SKIP
        for path, message in unreadable_numbers(node, input_type, []):
            self.report_error(self._named(message, path, [node]))
            return SKIP

        def on_error(error: GraphQLError, path: Path) -> None:
            message = error.message
            if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
                # A scalar raised a plain exception: its words are Python's, not the client's.
                named = _type_at(input_type, path)
                message = f"not a valid {get_named_type(named).name}" if named is not None else "not a valid value"
            self.report_error(self._named(message, path, error.nodes or [node]))

        validate_input_literal(node, input_type, on_error, None, None, self.context.hide_suggestions)
        return SKIP

    def _named(self, message: str, path: Path, nodes: Any) -> GraphQLError:
        if not self.where:
            return GraphQLError(message, nodes, extensions={"code": "BAD_USER_INPUT"})
        field = _path(self.where, path)
        return GraphQLError(f"{field}: {message}", nodes, extensions={"code": "BAD_USER_INPUT", "field": field})


class InputLiteralErrors(SchemaExtension):
    """Validates literals with NamedInputLiterals instead of graphql-core's rule."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = replaced(context.validation_rules, ValuesOfCorrectTypeRule, NamedInputLiterals)
        yield

    def on_validate(self) -> Iterator[None]:
        yield
        # Strawberry always adds its own @oneOf (and Maybe) rules. The schema marks those inputs for
        # graphql-core (resolvers/schema.py), whose rules, with NamedInputLiterals, say the same with the
        # argument's path: an error of Strawberry's rules at a place where another rule reported one is
        # dropped, so none is ever left without an error. (Where graphql-core reports elsewhere, e.g. a
        # nullable variable used as a member, at its definition and its use, both remain.)
        # In place: Strawberry has already put this list into the result it returns.
        errors = self.execution_context.pre_execution_errors
        if errors:
            errors[:] = _without_repeats(errors)


def _without_repeats(errors: list[GraphQLError]) -> list[GraphQLError]:
    ours = {_where(e) for e in errors if not isinstance(e, StrawberryInputCoercionError)}
    return [e for e in errors if not (isinstance(e, StrawberryInputCoercionError) and _where(e) in ours)]


def _where(error: GraphQLError) -> tuple:
    return tuple((location.line, location.column) for location in error.locations or ())
