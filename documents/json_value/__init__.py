"""Client JSON stored so it round-trips exactly and queried by path, one responsibility per module:
errors (what is refused), text (exact JSON text), paths (the path grammar), encoding (StoredJson, and
JsonText for values never queried by path),
query (predicates compiled to MongoDB filters, and their indexes), evaluator (the same predicates in Python,
compiled once to run on many values).

Only the names the rest of the code imports are re-exported here.
"""

from documents.json_value.encoding import (
    MAX_DEPTH,
    MAX_INDEXED_LEAVES,
    MIN_PATH_CHARS,
    PATH_CHARS_PER_CHAR,
    JsonAttr,
    JsonText,
    StoredJson,
    dumps_json,
    is_stored_json,
)
from documents.json_value.errors import InvalidJson, InvalidPredicate
from documents.json_value.evaluator import Predicate, compile_predicate, matches
from documents.json_value.paths import path_of, split_path
from documents.json_value.query import JsonOp, holds_without_path, json_indexes, predicate_filter
from documents.json_value.text import loads_json

__all__ = [
    "MAX_DEPTH", "MAX_INDEXED_LEAVES", "MIN_PATH_CHARS", "PATH_CHARS_PER_CHAR", "InvalidJson", "InvalidPredicate",
    "JsonAttr", "JsonOp", "JsonText", "Predicate", "StoredJson", "compile_predicate", "dumps_json",
    "holds_without_path", "is_stored_json", "json_indexes", "loads_json", "matches", "path_of", "predicate_filter", "split_path",
]
