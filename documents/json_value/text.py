"""JSON text: writing a value out exactly and reading it back exactly.

The text is the only form of a StoredJson ever read back, so it must keep what BSON cannot: integers
beyond 64 bits, -0.0, any key. orjson is fast but not exact at the edges; the standard library is
exact but slow, so it only handles what orjson cannot. Validation is not done here: `dumps_json`
(in `encoding`) validates with the encoder's own walk before it writes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from documents.json_value.errors import InvalidJson

# orjson reads integers beyond 64 bits as floats; a run of 19+ digits may be one, and then the standard
# library (exact, slower) parses the text instead. Digits inside strings only cost the slower parser.
_LONG_DIGITS = re.compile(r"\d{19,}")


def dump_text(value: Any) -> str:
    """Compact JSON text of a value already validated (orjson alone would write NaN as null)."""
    text = orjson_text(value)
    if text is not None:
        return text
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        text.encode()
    except UnicodeEncodeError:
        raise InvalidJson("a string holds a lone surrogate, which is not valid Unicode") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidJson(str(error)) from None
    return text


def orjson_text(value: Any) -> str | None:
    """orjson's compact text of `value`, which is exact for what it writes, or None for what it cannot:
    integers beyond 64 bits, nesting beyond its 255 levels, a lone surrogate, or a type it does not know.
    Not validated: it writes NaN as null and a datetime as a string."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return None


def loads_json(text: str) -> Any:
    try:
        if _LONG_DIGITS.search(text):
            return json.loads(text, parse_constant=_refuse_constant)
        return orjson.loads(text)
    except (ValueError, RecursionError) as error:  # orjson.JSONDecodeError is a ValueError
        if isinstance(error, InvalidJson):
            raise
        raise InvalidJson(f"not JSON text: {error}") from None


def _refuse_constant(name: str) -> None:
    raise InvalidJson(f"{name} is not JSON")
