"""Strings and lists a read (query or subscription) sends, bounded before anything runs.

A read's arguments become database filters: a `nameContains` of megabytes kept the database busy
for minutes, and an IN list of thousands of values is a scan per value. No read needs more than a
search string, a pattern or a page of ids, so every string a query or subscription sends (in its
variables, JSON values included, or written in the document) and every list are bounded here,
naming where the value is. Mutations carry payloads (texts, values, batches), bounded by their own
limits (sizes in bytes, InputListLimit).

A cursor (`after`, `before`, `newerThan`) is the exception: it holds its item's sort key, as long
as an asset's name may be, so it is bounded by the longest cursor the server writes
(resolvers/pagination.py) instead, and its values are decoded strictly before they reach a filter.

The check runs where graphql-core builds its executor (resolvers/fanout.py), before variables are
coerced, for queries and subscriptions alike: a subscription goes on even when a Strawberry
extension sets a result, and errors set as validation errors would be memoized with the document
(resolvers/document_cache.py) though they belong to this request's values.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ListValueNode,
    ObjectValueNode,
    OperationType,
    StringValueNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    get_operation_ast,
    visit,
)
from graphql.language import Visitor

from resolvers.pagination import MAX_CURSOR_CHARS
from resolvers.per_document import PerDocument
from services.errors import BadUserInput

# The arguments that take a cursor the server wrote (connections' `after` and `before`, `events`'
# `newerThan`, the events subscription's `after`). A field's `after` that takes a time instead is
# bounded alike: it is read as a time, never as a filter's string.
CURSOR_ARGUMENTS = frozenset({"after", "before", "newerThan"})


def oversized_read(document: DocumentNode, variables: dict[str, Any] | None, operation_name: str | None, *,
                   max_chars: int, max_items: int) -> BadUserInput | None:
    """The first string or list over its limit, when the operation to run is a query or a subscription."""
    if not _reads(document, operation_name):
        return None
    limits = _Limits(max_chars, max_items)
    return limits.check_variables(variables or {}, _cursor_variables(document)) or _document_problem(limits, document)


_cursors: PerDocument[frozenset[str]] = PerDocument()


def _cursor_variables(document: DocumentNode) -> frozenset[str]:
    """The variables the document gives only as a cursor argument (one used elsewhere too keeps the
    bound of a query's strings)."""
    found = _cursors.get(document)
    if found is None:
        finder = _CursorFinder()
        visit(document, finder)
        found = frozenset(finder.cursors - finder.others)
        _cursors.put(document, None, found)
    return found


class _CursorFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.cursors: set[str] = set()
        self.others: set[str] = set()

    def enter_variable(self, node: VariableNode, _key: Any, parent: Any, *_: Any) -> None:
        if isinstance(parent, VariableDefinitionNode):
            return
        cursor = isinstance(parent, ArgumentNode) and parent.name.value in CURSOR_ARGUMENTS
        (self.cursors if cursor else self.others).add(node.name.value)


# Documents whose written values are within the limits (walking them again was 5% of a by-id read);
# those over a limit are not kept (their error is rare and new).
_within: PerDocument[bool] = PerDocument()


def _document_problem(limits: _Limits, document: DocumentNode) -> BadUserInput | None:
    key = (limits.max_chars, limits.max_items)
    if _within.get(document, key):
        return None
    problem = limits.check_document(document)
    if problem is None:
        _within.put(document, key, True)
    return problem


def _reads(document: DocumentNode, name: str | None) -> bool:
    operation = get_operation_ast(document, name)  # None for several without a name: refused elsewhere
    return operation is not None and operation.operation in (OperationType.QUERY, OperationType.SUBSCRIPTION)


class _Limits:
    def __init__(self, max_chars: int, max_items: int) -> None:
        self.max_chars = max_chars
        self.max_items = max_items

    @property
    def max_cursor_chars(self) -> int:
        return max(self.max_chars, MAX_CURSOR_CHARS)

    def check_cursor(self, value: str, where: str) -> BadUserInput | None:
        if len(value) > self.max_cursor_chars:
            return BadUserInput(f"at most {self.max_cursor_chars} characters in a cursor, got {len(value)}", field=where)
        return None

    def check_variables(self, variables: dict[str, Any], cursors: frozenset[str]) -> BadUserInput | None:
        """The request's variables, those given only as cursors (`cursors`) bounded as cursors."""
        for name, value in variables.items():
            if name in cursors and isinstance(value, str):
                problem = self.check_value(name, name) or self.check_cursor(value, name)
            else:
                problem = self.check_value(name, name) or self.check_value(value, name)
            if problem is not None:
                return problem
        return None

    def check_value(self, value: Any, where: str) -> BadUserInput | None:
        """A variable's raw value, walked whole: its size is bounded by the request body's."""
        if isinstance(value, str):
            if len(value) > self.max_chars:
                return BadUserInput(f"at most {self.max_chars} characters in a query's string, got {len(value)}",
                                    field=where or None)
        elif isinstance(value, list):
            if len(value) > self.max_items:
                return BadUserInput(f"at most {self.max_items} items in a query's list, got {len(value)}", field=where or None)
            for i, item in enumerate(value):
                if (problem := self.check_value(item, f"{where}[{i}]")) is not None:
                    return problem
        elif isinstance(value, dict):
            for key, item in value.items():
                here = f"{where}.{key}" if where else str(key)
                if (problem := self.check_value(key, here) or self.check_value(item, here)) is not None:
                    return problem
        return None

    def check_document(self, document: DocumentNode) -> BadUserInput | None:
        """Values written in the document: arguments and variable defaults (in fragments too)."""
        checker = _LiteralChecker(self)
        visit(document, checker)
        return checker.problem


class _LiteralChecker(Visitor):
    def __init__(self, limit: _Limits) -> None:
        super().__init__()
        self.limit = limit
        self.problem: BadUserInput | None = None

    def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
        if node.name.value in CURSOR_ARGUMENTS and isinstance(node.value, StringValueNode):
            self.problem = self.limit.check_cursor(node.value.value, node.name.value)
            return Visitor.BREAK if self.problem else Visitor.SKIP
        return self._check(node.value, node.name.value)

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> Any:
        return self._check(node.default_value, node.variable.name.value) if node.default_value else None

    def _check(self, value: ValueNode, where: str) -> Any:
        self.problem = self._walk(value, where)
        return Visitor.BREAK if self.problem else Visitor.SKIP

    def _walk(self, value: ValueNode, where: str) -> BadUserInput | None:
        limit = self.limit
        if isinstance(value, StringValueNode) and len(value.value) > limit.max_chars:
            return BadUserInput(f"at most {limit.max_chars} characters in a query's string, got {len(value.value)}",
                                field=where)
        if isinstance(value, ListValueNode):
            if len(value.values) > limit.max_items:
                return BadUserInput(f"at most {limit.max_items} items in a query's list, got {len(value.values)}",
                                    field=where)
            return next(filter(None, (self._walk(item, f"{where}[{i}]") for i, item in enumerate(value.values))), None)
        if isinstance(value, ObjectValueNode):
            return next(filter(None, (self._walk(f.value, f"{where}.{f.name.value}") for f in value.fields)), None)
        return None
