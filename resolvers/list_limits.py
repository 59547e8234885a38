"""Input lists bounded before anything converts them.

A batch mutation checks its size in its service, but only after graphql-core has coerced every item
of the variables and Strawberry has built an object for each: a `createDatums` of 100,000 items held
the event loop for 11 s before it was refused. This extension walks the raw variables along their
declared input types first, and refuses any list longer than the largest batch a request may send,
naming where it is, before execution (and so coercion) starts. JSON scalars are not walked: a stored
value may hold long arrays, bounded by its byte size instead. Lists written into the document itself
are bounded by the token limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    get_operation_ast,
)
from graphql.utilities import type_from_ast
from strawberry.extensions import SchemaExtension

from resolvers.internals import graphql_schema
from services.errors import BadUserInput

# The schema's input types live as long as the process: a few dozen entries at most.
_HOLDS_LISTS: dict[GraphQLInputObjectType, bool] = {}


def _holds_lists(type_: Any, seen: frozenset = frozenset()) -> bool:
    """Whether values of an input type can contain a list (the answer is kept per type)."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        return True
    if not isinstance(type_, GraphQLInputObjectType) or type_.name in seen:
        return False
    if type_ in _HOLDS_LISTS:
        return _HOLDS_LISTS[type_]
    holds = any(_holds_lists(field.type, seen | {type_.name}) for field in type_.fields.values())
    if not seen:  # an answer found inside a cycle may be partial: only a whole walk's is kept
        _HOLDS_LISTS[type_] = holds
    return holds


class InputListLimit(SchemaExtension):
    def __init__(self, *, max_items: int) -> None:
        super().__init__()
        self.max_items = max_items

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        problem = self._oversized()
        if problem is not None:  # Strawberry executes nothing once a result is set
            context.result = ExecutionResult(data=None, errors=[GraphQLError(str(problem), original_error=problem)])
        yield

    def _oversized(self) -> BadUserInput | None:
        context = self.execution_context
        variables = context.variables or {}
        if not variables or context.graphql_document is None:
            return None
        schema = graphql_schema(context.schema)
        operation = get_operation_ast(context.graphql_document, context.operation_name)
        if operation is not None:  # None for several operations without a name: NamedOperation refuses those
            for declared in operation.variable_definitions or ():  # None when it declares none
                name = declared.variable.name.value
                type_ = type_from_ast(schema, declared.type)
                if name in variables and type_ is not None:
                    if (problem := self._walk(type_, variables[name], name)) is not None:
                        return problem
        return None

    def _walk(self, type_: Any, value: Any, where: str) -> BadUserInput | None:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList) and not isinstance(value, list) and value is not None:
            return self._walk(type_.of_type, value, where)  # graphql-core takes a lone value for a list of one
        if isinstance(type_, GraphQLList) and isinstance(value, list):
            if len(value) > self.max_items:
                return BadUserInput(f"at most {self.max_items} items in one request, got {len(value)}", field=where)
            item_type = type_.of_type
            if isinstance(item_type, GraphQLNonNull):
                item_type = item_type.of_type
            if _holds_lists(item_type):  # items of a type with no list inside need no walk (logEvents' events)
                for i, item in enumerate(value):
                    if (problem := self._walk(item_type, item, f"{where}[{i}]")) is not None:
                        return problem
        elif isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
            for field_name, field_type in _list_fields(type_):
                if field_name in value and (problem := self._walk(field_type, value[field_name], f"{where}.{field_name}")):
                    return problem
        return None


# The fields of each input type that can hold a list: the only ones a walk enters (an annotation
# record's geometry, not its eight other fields).
_LIST_FIELDS: dict[GraphQLInputObjectType, list[tuple[str, Any]]] = {}


def _list_fields(type_: GraphQLInputObjectType) -> list[tuple[str, Any]]:
    found = _LIST_FIELDS.get(type_)
    if found is None:
        found = _LIST_FIELDS[type_] = [(name, field.type) for name, field in type_.fields.items() if _holds_lists(field.type)]
    return found
