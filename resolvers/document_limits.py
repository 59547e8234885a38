"""Validation work bounded before and while graphql-core validates a document.

Validation is pure CPU on the event loop, so one expensive document stalls every other request. Two
parts grow past what the token limit bounds well:
- every rule visits every node: about 65-150 us per selection. `max_selections` counts the fields,
  fragment spreads and inline fragments in one linear walk before validation starts, and refuses
  the document without validating it.
- Strawberry's depth and alias limits walk a fragment again wherever it is spread, so a fragment
  spreading the next one five times, nine deep (551 bytes), was two million fields to walk: 4.9 s
  before anything refused it, five times longer per level. `count_expanded` counts the fields as
  those walks meet them, in one pass that counts each fragment once, and a document past
  EXPANSION_FACTOR times `max_selections` is refused before validation too.
- OverlappingFieldsCanBeMerged compares fields that share a response name pairwise, so it grows with
  the square of repeated fields: `{ me { role } me { role } ... }` in 14 KB held the loop about 2 s,
  until graphql-core's own complexity budget (500,000) stopped it. `max_merge_cost` gives that rule
  a budget of its own (our largest operation spends 45, GraphiQL's introspection query none).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
)
from strawberry.extensions import SchemaExtension

from resolvers.internals import ValidationAbortedError, set_merge_budget, spent_merge_budget
from resolvers.validation_rules import replaced
from services.errors import BadUserInput


def count_selections(document: DocumentNode, stop_after: int) -> int:
    """Fields, fragment spreads and inline fragments written in the document (a fragment's once,
    however often it is spread); stops counting past `stop_after`."""
    count = 0
    stack = [d.selection_set for d in document.definitions
             if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)]
    while stack and count <= stop_after:
        for selection in stack.pop().selections:
            count += 1
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set is not None:
                stack.append(selection.selection_set)
            # A FragmentSpreadNode has no selections of its own: its fragment's are counted once above.
    return count


# Fields a document may expand to (its fragments written out where spread), per field of
# GRAPHLAKE_MAX_SELECTIONS: our largest operation expands to 61, the web app's whole file of asset
# operations to 319, GraphiQL's introspection query to 239; 3,000 take the limits' walks about 15 ms.
EXPANSION_FACTOR = 10


def count_expanded(document: DocumentNode, stop_after: int) -> int:
    """Fields, fragment spreads and inline fragments with every fragment written out where it is
    spread, as Strawberry's depth and alias limits walk them; each fragment counted once and its
    count reused (a spread within a cycle counts as one: validation refuses the cycle). Stops
    counting past `stop_after`."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    counted: dict[str, int] = {}

    def count(selection_set: Any, spreading: frozenset[str]) -> int:
        total = 0
        for selection in selection_set.selections:
            total += 1
            if isinstance(selection, FieldNode | InlineFragmentNode):
                if selection.selection_set is not None:
                    total += count(selection.selection_set, spreading)
            elif (name := selection.name.value) in fragments and name not in spreading:
                if name not in counted:
                    counted[name] = count(fragments[name].selection_set, spreading | {name})
                total += counted[name]
            if total > stop_after:
                break
        return total

    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and total <= stop_after:
            total += count(definition.selection_set, frozenset())
    return total


@cache  # one class per budget: DocumentLimits is built for every operation
def merge_rule(budget: int) -> type[OverlappingFieldsCanBeMergedRule]:
    """graphql-core's field-merging rule with `budget` instead of its own, and an error naming the limit."""

    class BoundedOverlappingFields(OverlappingFieldsCanBeMergedRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            set_merge_budget(self, budget)

        def enter_selection_set(self, *args: Any) -> None:
            try:
                super().enter_selection_set(*args)
            except ValidationAbortedError:
                if not spent_merge_budget(self):
                    raise
                # validate() ends on this error and returns it with those found so far.
                raise ValidationAbortedError(
                    f"the document repeats fields too often to check that they merge (more than {budget} units of "
                    "work, GRAPHLAKE_MAX_MERGE_COST): give repeated fields aliases or select each once",
                    extensions={"code": "BAD_USER_INPUT"}) from None

    return BoundedOverlappingFields


class DocumentLimits(SchemaExtension):
    """Swaps in the bounded merging rule, and refuses a document of too many selections unvalidated.

    Placed after DocumentCache: a remembered document skips the count (its outcome is remembered with
    it), and a refusal here is remembered like any validation error, since it depends on the text alone.
    """

    def __init__(self, *, max_selections: int, max_merge_cost: int) -> None:
        super().__init__()
        self.max_selections = max_selections
        self.rule = merge_rule(max_merge_cost)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = replaced(context.validation_rules, OverlappingFieldsCanBeMergedRule, self.rule)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if context.pre_execution_errors is None and document is not None:
            problem = None
            expanded = self.max_selections * EXPANSION_FACTOR
            if count_selections(document, self.max_selections) > self.max_selections:
                problem = BadUserInput(f"the document has more than {self.max_selections} fields, fragment spreads and "
                                       "inline fragments (GRAPHLAKE_MAX_SELECTIONS)")
            elif count_expanded(document, expanded) > expanded:
                problem = BadUserInput(f"the document's fragments, written out where they are spread, make more than "
                                       f"{expanded} fields ({EXPANSION_FACTOR} times GRAPHLAKE_MAX_SELECTIONS): "
                                       "spread each fragment fewer times")
            if problem is not None:
                context.pre_execution_errors = [GraphQLError(str(problem), original_error=problem)]
        yield
