"""Automatic Persisted Queries (APQ), as Apollo defined them and Apollo Client, urql, Relay and others send them.

A client sends `extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}` with no `query`.
A server that knows the hash runs the document it stands for; one that does not answers
PERSISTED_QUERY_NOT_FOUND, and the client sends the hash again with the query, which the server checks
against the hash and remembers. A long document then travels once per server process, and a query can go
as a short GET whose URL a browser or CDN cache can key on.

The store is in memory, per process, least recently used first out, bounded by its number of entries
(GRAPHLAKE_PERSISTED_QUERIES_MAX_ENTRIES) and by the size of a document it keeps. A process that does not know a
hash costs the client one round trip more, never a wrong answer: the hash names the document exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

# Longer documents run but are not remembered (their client sends them whole each time): with the
# default 1000 entries, the store holds at most about 32 MB of text. Our own operations are under 2 KB.
MAX_STORED_CHARS = 32_768

_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}\Z")


class PersistedQueryError(Exception):
    """A persisted-query request the server will not run, answered as a GraphQL error with this code.

    `status` is the HTTP status for application/json clients; `new_status` the one for clients that
    accept application/graphql-response+json, whose answers without `data` must not be 2xx.
    """

    def __init__(self, message: str, code: str, *, status: int = 400, new_status: int = 400,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.new_status = new_status
        self.field = field

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": self.code, **({"field": self.field} if self.field else {})}


class PersistedQueries:
    """The documents this process has seen, by the SHA-256 of their text."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._documents: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    def document(self, query: str | None, extensions: dict[str, object] | None, *, guest: bool = False) -> str | None:
        """The document to run: `query` itself, or the one a persisted-query hash names.

        Raises PersistedQueryError when the hash is unknown (PERSISTED_QUERY_NOT_FOUND, which tells
        the client to send the query along), does not match the query, or is malformed.
        A `guest` (a caller without a valid token, an anonymous reader too) neither fills the store nor
        learns from it: every hash is unknown to them, and what they send is run (if they may) but
        not remembered. Else anyone could push out the documents the lake's clients use, and tell
        which documents those are by their hashes.
        """
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query
        if not isinstance(persisted, dict):
            raise PersistedQueryError("extensions.persistedQuery: must be an object with `version` and `sha256Hash`",
                                      "BAD_USER_INPUT", field="extensions.persistedQuery")
        if persisted.get("version") != 1:
            raise PersistedQueryError(f"extensions.persistedQuery.version: only version 1 is supported, "
                                      f"got {persisted.get('version')!r}", "BAD_USER_INPUT",
                                      field="extensions.persistedQuery.version")
        if self.max_entries == 0:
            # Apollo's message and code: its clients stop sending hashes to a server that says so.
            # 200 for application/json clients, as Apollo Server answers, or they take it for a network error.
            raise PersistedQueryError("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED",
                                      status=200, new_status=400)
        sha256 = persisted.get("sha256Hash")
        if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256):
            raise PersistedQueryError("extensions.persistedQuery.sha256Hash: must be the SHA-256 of the query's "
                                      "UTF-8 text, as 64 hexadecimal digits", "BAD_USER_INPUT",
                                      field="extensions.persistedQuery.sha256Hash")
        sha256 = sha256.lower()
        if query is None:
            document = None if guest else self._documents.get(sha256)
            if document is None:
                # Apollo's message and code, which its clients (and others) answer by sending the query.
                raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", status=200, new_status=404)
            self._documents.move_to_end(sha256)
            return document
        actual = hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()
        if actual != sha256:
            # The code most servers that answer APQ use (GraphQL Yoga's among them); Apollo's is the generic
            # BAD_REQUEST. Refused whole: running it would let a wrong hash stand for a document later.
            raise PersistedQueryError(
                f"extensions.persistedQuery.sha256Hash: {sha256} is not the SHA-256 of the query sent with it "
                f"({actual}); nothing was run or stored", "PERSISTED_QUERY_HASH_MISMATCH",
                field="extensions.persistedQuery.sha256Hash")
        if len(query) <= MAX_STORED_CHARS and not guest:
            self._documents[sha256] = query
            self._documents.move_to_end(sha256)
            while len(self._documents) > self.max_entries:
                self._documents.popitem(last=False)
        return query
