"""Parse and validate each distinct GraphQL document once, not on every request.

Clients send the same few documents over and over; parsing and validating one took about 6 ms of a
14 ms createUpload. Strawberry's own ValidationCache cannot help here: the depth and alias limits
add validation rules built afresh for every request, so its cache key never repeats. The rules
are the same for every request of one schema (they come from its settings), so the document text
alone is a sound key: this extension remembers, per text, the parsed document and the validation
errors (usually none), and hands them to Strawberry, which then skips both steps.

Only callers with a role use it: a guest's document is small (resolvers/guests.py), and a guest must
neither push members' documents out nor get an outcome remembered from someone else.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import DocumentNode, GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.permissions import is_guest

# Bounded by the text kept, not only by count: any member may send documents, and a parsed document
# takes several times its text in memory.
MAX_TEXT = 16 * 1024  # longer documents are one-offs: not worth keeping
MAX_TOTAL_TEXT = 4 * 1024 * 1024


class DocumentMemo:
    """Parsed documents and their validation errors by text; least recently used go first."""

    def __init__(self, max_total_text: int = MAX_TOTAL_TEXT) -> None:
        self.max_total_text = max_total_text
        self.total_text = 0
        self.entries: OrderedDict[str, tuple[DocumentNode, tuple[GraphQLError, ...]]] = OrderedDict()

    def get(self, text: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]] | None:
        entry = self.entries.get(text)
        if entry is not None:
            self.entries.move_to_end(text)
        return entry

    def put(self, text: str, document: DocumentNode, errors: tuple[GraphQLError, ...]) -> None:
        if len(text) > MAX_TEXT or text in self.entries:
            return
        self.entries[text] = (document, errors)
        self.total_text += len(text)
        while self.total_text > self.max_total_text:
            evicted, _ = self.entries.popitem(last=False)
            self.total_text -= len(evicted)


class DocumentCache(SchemaExtension):
    """Built per request (as Strawberry does with extension factories) around one shared memo."""

    def __init__(self, memo: DocumentMemo) -> None:
        super().__init__()
        self.memo = memo

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        entry = self.memo.get(context.query) if context.query and not is_guest(context.context) else None
        if entry is not None:
            context.graphql_document = entry[0]  # Strawberry parses only when this is unset
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if is_guest(context.context):
            yield
            return
        entry = self.memo.get(context.query) if context.query else None
        if entry is not None:
            context.pre_execution_errors = list(entry[1])  # Strawberry validates only when this is unset
            yield
            return
        yield
        if context.query and context.graphql_document is not None and context.pre_execution_errors is not None:
            self.memo.put(context.query, context.graphql_document, tuple(context.pre_execution_errors))
