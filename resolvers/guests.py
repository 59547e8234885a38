"""What a caller without a role may send, refused as cheaply as possible.

A guest (no token while GRAPHLAKE_ANONYMOUS_READ is off, or a token that is not valid) may call only
the root fields that need no role: those declared without a permission class (`health`, `me`), and
`__typename`. Parsing and validation are CPU work on the event loop that anyone could otherwise
have the server do at will (validation ran for seconds on some documents, see
resolvers/document_limits.py), so a guest's document
- is parsed only up to GRAPHLAKE_MAX_TOKENS_UNAUTHENTICATED tokens (`TokenBudget`), and
- is refused UNAUTHENTICATED before validation if any of its operations is not a query or selects,
  at its root (through fragments too), a field that needs a role (`GuestGate`).
Introspection needs a token too: answering GraphiQL's introspection query costs about 130 ms of
CPU, too much to give to anyone who asks. Guests never use the document memo (resolvers/document_cache.py),
so they can neither fill it nor learn from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
)
from strawberry.extensions import SchemaExtension

from resolvers.internals import token_limit_exceeded
from resolvers.permissions import NEEDS_TOKEN, is_guest
from services.errors import BadUserInput, Unauthenticated


@cache
def public_root_fields(schema: Any) -> frozenset[str]:
    """The Query fields a guest may call: those declared without a permission class, by their GraphQL names."""
    converter = schema.config.name_converter
    fields = schema.query.__strawberry_definition__.fields
    return frozenset(converter.from_field(f) for f in fields if not f.permission_classes) | {"__typename"}


def first_private_selection(document: DocumentNode, public: frozenset[str]) -> str | None:
    """What in the document needs a role: a non-query operation's kind or a root field's name; None if nothing."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        if operation.operation is not OperationType.QUERY:
            return f"a {operation.operation.value}"
        stack, spread = list(operation.selection_set.selections), set()
        while stack:
            selection = stack.pop()
            if isinstance(selection, FieldNode):
                if selection.name.value not in public:
                    return f"`{selection.name.value}`"
            elif isinstance(selection, InlineFragmentNode):
                stack.extend(selection.selection_set.selections)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in spread:
                spread.add(selection.name.value)  # each fragment once: fragments may spread each other in a cycle
                if (fragment := fragments.get(selection.name.value)) is not None:
                    stack.extend(fragment.selection_set.selections)
    return None


def _refusal(problem: Exception) -> GraphQLError:
    return GraphQLError(str(problem), original_error=problem)


class TokenBudget(SchemaExtension):
    """GRAPHLAKE_MAX_TOKENS, or the smaller GRAPHLAKE_MAX_TOKENS_UNAUTHENTICATED for a guest, with an error naming it.

    graphql-core stops parsing at the first token over (Strawberry's MaxTokensLimiter sets the same
    parser option); this picks the budget by caller and says which limit it was and what to do.
    """

    def __init__(self, *, max_tokens: int, max_tokens_unauthenticated: int) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.max_tokens_unauthenticated = min(max_tokens, max_tokens_unauthenticated)
        self.budget = max_tokens

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        if is_guest(context.context):
            self.budget = self.max_tokens_unauthenticated
        context.parse_options["max_tokens"] = self.budget
        yield

    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        errors = context.pre_execution_errors
        if context.graphql_document is not None or not errors or not token_limit_exceeded(errors[0], self.budget):
            return
        if self.budget < self.max_tokens and is_guest(context.context):
            problem: Exception = Unauthenticated(
                f"a document of more than {self.budget} tokens (GRAPHLAKE_MAX_TOKENS_UNAUTHENTICATED) {NEEDS_TOKEN}")
        else:
            problem = BadUserInput(f"the document has more than {self.budget} tokens (GRAPHLAKE_MAX_TOKENS)")
        # Strawberry answers with this very error object: it is reworded in place, keeping where parsing stopped.
        errors[0].message = str(problem)
        errors[0].extensions = dict(problem.extensions)  # type: ignore[attr-defined]


class GuestGate(SchemaExtension):
    """Refuses a guest's document that asks for anything needing a role, before it is validated."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if context.pre_execution_errors is None and document is not None and is_guest(context.context):
            private = first_private_selection(document, public_root_fields(context.schema))
            if private is not None:
                reason = context.context.auth_error
                message = f"{private} needs a valid API token: {reason}" if reason else f"{private} {NEEDS_TOKEN}"
                context.pre_execution_errors = [_refusal(Unauthenticated(message))]
        yield
