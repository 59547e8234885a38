"""Parse and validate each distinct GraphQL document once, not on every request.

Clients send the same few documents over and over; parsing and validating one took about 6 ms of a
14 ms createUpload. Strawberry's own ParserCache and ValidationCache cannot help here: they key on
the raw text, and the depth and alias limits add validation rules built afresh for every request,
so the validation cache key never repeats. The rules are the same for every request of one schema
(they come from its settings), so this extension remembers, per schema:
- per text, the parsed document and its validation errors (usually none): a text sent before skips
  both steps, at the cost of a dictionary lookup;
- per token stream (the text without its comments, whitespace and commas, which mean nothing in
  GraphQL), that a document is valid: a document sent before with other comments or layout is
  parsed again (its errors must point into its own text) but not validated again. Validation is
  the expensive step, and a client that puts a request id in a comment would miss every time.
Invalid documents are remembered by text only: their errors carry positions in that text.

Only callers with a role use it: a guest's document is small (resolvers/guests.py), and a guest must
neither push members' documents out nor get an outcome remembered from someone else.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

from graphql import DocumentNode, GraphQLError, TokenKind
from strawberry.extensions import SchemaExtension

from resolvers.permissions import is_guest

# Bounded by the text kept, not only by count: any member may send documents, and a parsed document
# takes several times its text in memory.
MAX_TEXT = 16 * 1024  # longer documents are one-offs: not worth keeping
MAX_TOTAL_TEXT = 4 * 1024 * 1024

_STRINGS = {TokenKind.STRING: "", TokenKind.BLOCK_STRING: "b"}
_VALUE = TypeVar("_VALUE")


def token_key(document: DocumentNode) -> str | None:
    """The document's tokens, comments left out, one a line: equal for texts that differ only in layout.

    Read from the token chain the parser kept (no second lexing). Strings are JSON-quoted, so a key
    splits back into exactly its tokens: two different token streams never share a key.
    """
    if document.loc is None:
        return None
    tokens = []
    token = document.loc.start_token.next
    while token is not None and token.kind is not TokenKind.EOF:
        if token.kind in _STRINGS:
            tokens.append(_STRINGS[token.kind] + json.dumps(token.value))
        elif token.kind is not TokenKind.COMMENT:
            tokens.append(token.kind.value if token.value is None else token.value)
        token = token.next
    return "\n".join(tokens)


class _LeastRecentlyUsed(Generic[_VALUE]):
    """Values by text, bounded by the total length of the texts; the least recently used go first."""

    def __init__(self, max_total_text: int) -> None:
        self.max_total_text = max_total_text
        self.total_text = 0
        self.entries: OrderedDict[str, _VALUE] = OrderedDict()

    def get(self, text: str) -> _VALUE | None:
        value = self.entries.get(text)
        if value is not None:
            self.entries.move_to_end(text)
        return value

    def put(self, text: str, value: _VALUE) -> None:
        if len(text) > MAX_TEXT or text in self.entries:
            return
        self.entries[text] = value
        self.total_text += len(text)
        while self.total_text > self.max_total_text:
            evicted, _ = self.entries.popitem(last=False)
            self.total_text -= len(evicted)


class DocumentMemo:
    """What one schema remembers: documents and their errors by text, valid token streams by key."""

    def __init__(self, max_total_text: int = MAX_TOTAL_TEXT) -> None:
        self.texts: _LeastRecentlyUsed[tuple[DocumentNode, tuple[GraphQLError, ...]]] = _LeastRecentlyUsed(max_total_text)
        self.valid: _LeastRecentlyUsed[bool] = _LeastRecentlyUsed(max_total_text // 4)

    def get(self, text: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]] | None:
        return self.texts.get(text)

    def put(self, text: str, document: DocumentNode, errors: tuple[GraphQLError, ...]) -> None:
        self.texts.put(text, (document, errors))


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
        text, document = context.query, context.graphql_document
        if is_guest(context.context) or not text or document is None:
            yield
            return
        entry = self.memo.get(text)
        if entry is not None:
            context.pre_execution_errors = list(entry[1])  # Strawberry validates only when this is unset
            yield
            return
        key = token_key(document)
        if key is not None and self.memo.valid.get(key):
            context.pre_execution_errors = []  # the same tokens passed before: only the layout differs
            yield
            self.memo.put(text, document, ())
            return
        yield
        if context.pre_execution_errors is not None:
            self.memo.put(text, document, tuple(context.pre_execution_errors))
            if not context.pre_execution_errors and key is not None:
                self.memo.valid.put(key, True)
