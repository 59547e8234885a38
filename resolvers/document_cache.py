"""Parse and validate each distinct GraphQL document once, not on every request.

Clients send the same few documents over and over; parsing and validating one took about 6 ms of a
14 ms createUpload. Strawberry's own ValidationCache cannot help here: the depth and alias limits
add validation rules built afresh for every request, so its cache key never repeats. The rules
are the same for every request of one schema (they come from its settings), so the document text
alone is a sound key: this extension remembers, per text, the parsed document and the validation
errors (usually none), and hands them to Strawberry, which then skips both steps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import DocumentNode, GraphQLError
from strawberry.extensions import SchemaExtension

MAX_ENTRIES = 512
MAX_TEXT = 64 * 1024  # longer documents are one-offs: not worth keeping


class DocumentMemo:
    """Parsed documents and their validation errors by text; least recently used go first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[DocumentNode, tuple[GraphQLError, ...]]] = OrderedDict()

    def get(self, text: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]] | None:
        entry = self.entries.get(text)
        if entry is not None:
            self.entries.move_to_end(text)
        return entry

    def put(self, text: str, document: DocumentNode, errors: tuple[GraphQLError, ...]) -> None:
        if len(text) <= MAX_TEXT:
            self.entries[text] = (document, errors)
            self.entries.move_to_end(text)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)


class DocumentCache(SchemaExtension):
    """Built per request (as Strawberry does with extension factories) around one shared memo."""

    def __init__(self, memo: DocumentMemo) -> None:
        super().__init__()
        self.memo = memo

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        entry = self.memo.get(context.query) if context.query else None
        if entry is not None:
            context.graphql_document = entry[0]  # Strawberry parses only when this is unset
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        entry = self.memo.get(context.query) if context.query else None
        if entry is not None:
            context.pre_execution_errors = list(entry[1])  # Strawberry validates only when this is unset
            yield
            return
        yield
        if context.query and context.graphql_document is not None and context.pre_execution_errors is not None:
            self.memo.put(context.query, context.graphql_document, tuple(context.pre_execution_errors))
