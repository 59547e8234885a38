"""Values kept per parsed document, by its identity.

resolvers/document_cache.py hands back the same parsed document for a text sent before, so what is
worked out from a document alone (its literals checked, its weighing planned) is worked out once.
Keyed by id() (a graphql-core node hashes its whole tree), each entry holding a weak reference that
removes it when the document goes: a document that is not cached (a guest's, a long one) leaves
nothing behind.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable
from typing import Generic, TypeVar

from graphql import DocumentNode

V = TypeVar("V")


class PerDocument(Generic[V]):
    def __init__(self) -> None:
        self._kept: dict[tuple[int, Hashable], tuple[weakref.ref[DocumentNode], V]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, document: DocumentNode, key: Hashable = None) -> V | None:
        kept = self._kept.get((id(document), key))
        return kept[1] if kept is not None and kept[0]() is document else None

    def put(self, document: DocumentNode, key: Hashable, value: V) -> None:
        at = (id(document), key)
        self._kept[at] = (weakref.ref(document, lambda _: self._kept.pop(at, None)), value)
