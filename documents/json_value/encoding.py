"""The stored form of client JSON (asset values, metadata, attributes): StoredJson, built by `encode`
so the value round-trips exactly and its leaves can be queried by path.

BSON cannot hold every JSON value on our servers: FerretDB v1 refuses nested arrays, keys containing "."
or starting with "$", and NaN, and BSON has no integer wider than 64 bits. So a StoredJson keeps the
exact JSON as text, the only thing ever read back, beside views of its scalar leaves made for queries:

- `attrs`: [{k: path, v: scalar}], the attribute pattern. An index on its whole elements answers equality
  and range predicates on MongoDB with tight bounds.
- `leaves`: {escaped path: [scalar, ...]}, the same leaves keyed by path.
- `paths`: every path present, containers included, for EXISTS.

Why the leaves twice: a predicate means "some leaf at this path satisfies the condition", a condition on
two fields (k and v) of one array element. MongoDB says that with $elemMatch {k: ..., v: ...}, but
FerretDB v1.24 rejects field conditions inside $elemMatch ("unknown operator: k") and evaluates an
operator-only $elemMatch operator by operator over the whole array, so its two bounds may be met by two
different elements. In `leaves` the path is the field name, so each predicate is one operator on one
field, which both servers evaluate alike (how a query uses both: `query`).
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any, Self

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from documents.json_value.errors import InvalidJson, kind_of
from documents.json_value.paths import escape_key, leaf_field
from documents.json_value.text import dump_text, loads_json, orjson_text

MAX_INDEXED_LEAVES = 1000
MAX_DEPTH = 500  # nesting levels; deeper input is refused rather than risking a RecursionError
# The views write every path out in full: each member's under its whole path, and `attrs` that path
# again for each indexed leaf. So they grow with the square of how deep long keys nest (1 MB of JSON,
# 200 levels of 5,000-character keys, made 100 M characters of paths) and with a long path over an
# array (a 1 MB key over 1,000 numbers made 1 G). The walk counts the characters of the paths it
# writes and refuses the value once they pass PATH_CHARS_PER_CHAR per character of its JSON text, or
# MIN_PATH_CHARS if that is more, so the work and the views stay linear in the input. Over 1,633 real
# JSON documents (AWS's API models, Babel's data, npm lockfiles, SBOMs) the most was 5 per character,
# and 2.6 over 100 KB. MIN_PATH_CHARS lets a small value nest objects 300 deep with one-character
# keys (90,000) or hold a thousand leaves in one array under an 80-character path.
PATH_CHARS_PER_CHAR = 8
MIN_PATH_CHARS = 100_000

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = sys.float_info.max
_MAX_INT_BITS = 13_000  # Python refuses int <-> text beyond 4300 digits; stay well below with a clear message

Scalar = str | int | float | bool | None


class JsonAttr(BaseModel):
    """One scalar leaf: its path and its value as indexed (see `indexed`). Field order matters: the
    index compares whole elements, k first."""

    k: str
    v: Scalar = None


with warnings.catch_warnings():
    # The field is named `json` by contract; it shadows pydantic's deprecated BaseModel.json() method.
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class JsonText(BaseModel):
        """A JSON value kept as its exact text alone, for values nothing queries by path (annotation
        attributes). The query views a StoredJson adds are what a document costs most to store and
        read on the embedded default: FerretDB handles every field of every document, and an annotation
        record with them took twice as long to insert and to read back as one without (bench/exchange.py).
        A stored StoredJson reads as a JsonText (its views are ignored), so documents written before
        this form need no migration."""

        json: str

        @classmethod
        def encode(cls, value: Any, *, max_bytes: int | None = None) -> Self:
            """Raises InvalidJson for what is not JSON, or JSON text over `max_bytes` (as StoredJson.encode)."""
            text = _text_within(value, max_bytes)
            _check(value, 0)
            return cls(json=text)

        def decode(self) -> Any:
            return loads_json(self.json)

    class StoredJson(JsonText):
        """One JSON value in its stored form, with the views of its leaves that predicates query; build
        it with `encode`, read it with `decode`."""

        # Each view is stored only when it holds something (an empty object or array, or a scalar, has
        # no paths; most `metadata` is {}), and `truncated` only when true: a missing view reads as
        # empty, and every predicate (`query`) treats a missing array as an empty one. On the
        # embedded FerretDB every stored field costs on each write and read (documents/sparse.py):
        # 20,000 value assets with empty metadata took 10% less of its CPU to insert, 12% less to read.
        attrs: list[JsonAttr] = Field(default_factory=list)
        paths: list[str] = Field(default_factory=list)
        truncated: bool = False
        # Derived from `attrs` when not given (see module docstring for why it exists).
        leaves: dict[str, list[Scalar]] = Field(default_factory=dict)

        @model_validator(mode="after")
        def _derive_leaves(self) -> StoredJson:
            if "leaves" not in self.model_fields_set:
                self.leaves = _leaves_of(self.attrs)
            return self

        @model_serializer(mode="wrap")
        def _without_empty_views(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
            return {key: value for key, value in dump(self).items() if key == "json" or value}

        @classmethod
        def encode(cls, value: Any, *, max_bytes: int | None = None, budget_paths: bool = True) -> StoredJson:
            """Raises InvalidJson for NaN, Infinity, non-JSON Python types, nesting beyond MAX_DEPTH, JSON
            text over `max_bytes` (UTF-8) or paths beyond their budget (PATH_CHARS_PER_CHAR). The budget is
            a client's: `budget_paths=False` for JSON the lake holds already, written again (a privacy
            erasure's), which the lake took before there was one and must still be able to rewrite."""
            text = _text_within(value, max_bytes)
            walk = _Walk(max(MIN_PATH_CHARS, PATH_CHARS_PER_CHAR * len(text)) if budget_paths else sys.maxsize)
            walk.visit(value, None, 0)
            return cls(json=text, attrs=walk.attrs, paths=list(walk.paths),
                       truncated=walk.leaf_count > MAX_INDEXED_LEAVES)


def is_stored_json(value: dict[str, Any]) -> bool:
    """Whether a raw document's dict is a stored JSON value (either form), to be read with `decode`."""
    return isinstance(value.get("json"), str) and value.keys() <= StoredJson.model_fields.keys()


def dumps_json(value: Any) -> str:
    """Compact, exact JSON text. Raises InvalidJson for what is not JSON (orjson would write NaN as null)."""
    # Here rather than in `text`: what counts as JSON is decided here, by the rules the encoding walk follows.
    _check(value, 0)
    return dump_text(value)


def _text_within(value: Any, max_bytes: int | None) -> str:
    """The exact JSON text of `value`, refused when over `max_bytes` before anything else is built from
    it; the caller validates `value` after (`_check`, or the walk)."""
    # Written before validating, so that an oversized value costs no walk: orjson writes 1 MB in about a
    # millisecond. It also writes what is not JSON (NaN as null, a datetime as a string), which the
    # caller's validation then refuses; for a value it accepts, this is the text dump_text writes. What
    # orjson cannot write (integers beyond 64 bits, nesting beyond 255 levels, a lone surrogate) goes to
    # the standard library, validated first, as its errors would not say what is wrong in our words.
    text = orjson_text(value)
    if text is None:
        text = dumps_json(value)
    if max_bytes is not None and (size := len(text.encode())) > max_bytes:
        raise InvalidJson(f"is {size} bytes of JSON; the limit is {max_bytes}")
    return text


def _check(value: Any, depth: int) -> None:
    """What `_Walk.visit` checks, without collecting leaves and paths: a JsonText keeps none, and
    building them was most of the cost of storing an annotation record's attributes."""
    if depth > MAX_DEPTH:
        raise InvalidJson(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                _check_key(key)
            # A member `indexed` takes as it is, told without a call (most members are such: an
            # addAnnotations box's COCO id, crowd flag and area: 0.43 us for the walk, 1.04 with a call each).
            kind = type(item)
            if depth < MAX_DEPTH and (kind is str or kind is bool or item is None or (kind is float and math.isfinite(item))
                                      or (kind is int and _INT64_MIN <= item <= _INT64_MAX)):
                continue
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    else:
        indexed(value)


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise InvalidJson(f"object keys must be strings, got {key!r}")


def indexed(value: Any) -> Scalar:
    """A JSON scalar as indexed. BSON has no integer beyond int64: such an int is indexed as the nearest
    double (clamped to the largest finite one, as FerretDB refuses to store infinity); `json` stays exact."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return int(value)
        if value.bit_length() > _MAX_INT_BITS:
            raise InvalidJson("an integer of more than about 3900 digits is not accepted")
        try:
            return float(value)
        except OverflowError:
            return _FLOAT_MAX if value > 0 else -_FLOAT_MAX
    if isinstance(value, float):
        if math.isnan(value):
            raise InvalidJson("NaN is not JSON")
        if math.isinf(value):
            raise InvalidJson(f"{'-' if value < 0 else ''}Infinity is not JSON")
        return value
    raise InvalidJson(f"{kind_of(value)} is not JSON")


class _Walk:
    """Validates a value and collects its leaves and paths in document order.

    A path of None is the root's own path: the root and, recursively, its array elements. It is never
    listed in `paths`, and its leaves are indexed under k "".
    """

    def __init__(self, path_chars: int) -> None:
        self.attrs: list[JsonAttr] = []
        self.paths: dict[str, None] = {}  # an ordered set
        self.leaf_count = 0
        self.path_chars = path_chars  # characters of paths it may write (see PATH_CHARS_PER_CHAR)
        self.left = path_chars

    def spend(self, path: str) -> None:
        """Count a path written: each member's (made once per member, even where `paths` lists it
        already, as under an array of objects) and each indexed leaf's (`attrs` repeats it)."""
        self.left -= len(path)
        if self.left < 0:
            raise InvalidJson(
                f"has paths too long to index: the path to each of its members and leaves, written out in full, "
                f"would come to more than {self.path_chars:,} characters ({PATH_CHARS_PER_CHAR} per character of "
                f"its JSON, at least {MIN_PATH_CHARS:,}); nest it less deeply or use shorter keys")

    def visit(self, value: Any, path: str | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidJson(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict | list) and path is not None:
            self.paths[path] = None
        if isinstance(value, dict):
            for key, item in value.items():
                _check_key(key)
                escaped = escape_key(key)
                member = escaped if path is None else f"{path}.{escaped}"
                self.spend(member)
                self.visit(item, member, depth + 1)
        elif isinstance(value, list):
            for item in value:  # elements share the array's path; nested arrays flatten into it
                self.visit(item, path, depth + 1)
        else:
            v = indexed(value)
            if path is not None:
                self.paths[path] = None
            self.leaf_count += 1
            if self.leaf_count <= MAX_INDEXED_LEAVES:
                self.spend(path or "")
                self.attrs.append(JsonAttr(k=path or "", v=v))


def _leaves_of(attrs: list[JsonAttr]) -> dict[str, list[Scalar]]:
    leaves: dict[str, list[Scalar]] = {}
    for attr in attrs:
        if attr.k:  # path "" cannot be queried (and an empty field name is best not stored)
            leaves.setdefault(leaf_field(attr.k), []).append(attr.v)
    return leaves
