"""What client JSON may cost before it is stored: its text's size, checked before the query views are
built, and the characters of the paths those views write out (documents/json_value/encoding.py,
PATH_CHARS_PER_CHAR). Costly shapes are refused after a bounded amount of work; ordinary JSON is kept
exactly as before. The API's side (each field named in BAD_USER_INPUT): tests/test_json_limits.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from documents.json_value import (
    MAX_INDEXED_LEAVES,
    MIN_PATH_CHARS,
    PATH_CHARS_PER_CHAR,
    InvalidJson,
    JsonText,
    StoredJson,
    dumps_json,
)
from services.privacy.places import replaced
from tests.json_value_cases import COSTLY, deep, nested

TOO_LONG = "has paths too long to index"


def path_chars(stored: StoredJson) -> int:
    return sum(map(len, stored.paths)) + sum(len(attr.k) for attr in stored.attrs)


@pytest.mark.parametrize("name", COSTLY)
def test_costly_shapes_are_refused_quickly(name: str) -> None:
    value = COSTLY[name]
    budget = PATH_CHARS_PER_CHAR * len(dumps_json(value))
    with pytest.raises(InvalidJson, match=f"^{TOO_LONG}: .* more than {budget:,} characters .* use shorter keys$"):
        StoredJson.encode(value, max_bytes=1_048_576)  # about 10 ms here (no timed assertion: a machine's speed varies)


def test_json_the_lake_holds_is_written_again_past_the_budget() -> None:
    """A privacy erasure rewrites stored JSON (services/privacy/places.replaced): what the lake took
    before there was a budget must still be rewritable, its mentions replaced, its views made again."""
    value = {"owner": "ann@lab.example", "history": deep(120, 500)}
    with pytest.raises(InvalidJson, match=TOO_LONG):
        StoredJson.encode(value)
    held = StoredJson.encode(value, budget_paths=False).model_dump()
    erased = replaced(held, re.compile(re.escape("ann@lab.example")), "user-1f3a")
    assert "ann@lab.example" not in erased["json"] and "user-1f3a" in erased["json"]
    assert erased["attrs"] and erased["paths"]  # its query views made again, as the form it had


def test_the_size_is_checked_before_the_views_are_built() -> None:
    value = COSTLY["long keys nested deep"]
    with pytest.raises(InvalidJson, match=r"^is 1001001 bytes of JSON; the limit is 1000000$"):
        StoredJson.encode(value, max_bytes=1_000_000)
    # UTF-8 bytes, not characters; at the limit exactly is fine
    assert StoredJson.encode({"é": "😀"}, max_bytes=13).decode() == {"é": "😀"}
    with pytest.raises(InvalidJson, match="is 13 bytes of JSON; the limit is 12"):
        StoredJson.encode({"é": "😀"}, max_bytes=12)
    with pytest.raises(InvalidJson, match="is 13 bytes of JSON; the limit is 12"):
        JsonText.encode({"é": "😀"}, max_bytes=12)
    # what orjson cannot write goes through the standard library, and is measured alike
    with pytest.raises(InvalidJson, match="is 22 bytes of JSON; the limit is 21"):
        StoredJson.encode([2**64], max_bytes=21)
    # what is not JSON is refused as ever when it fits
    with pytest.raises(InvalidJson, match="NaN is not JSON"):
        StoredJson.encode({"a": float("nan")}, max_bytes=100)


def test_a_large_flat_value_is_stored_whole() -> None:
    value = {f"reading_{i:06d}": {"od600": i / 7, "well": f"A{i % 12}"} for i in range(17_000)}
    stored = StoredJson.encode(value, max_bytes=1_048_576)
    assert 900_000 < len(stored.json) < 1_048_576
    assert stored.decode() == value
    assert len(stored.paths) == 3 * 17_000 and stored.truncated and len(stored.attrs) == MAX_INDEXED_LEAVES
    assert path_chars(stored) < len(stored.json)


@pytest.mark.parametrize("value", [
    deep(300, 1),  # 90,000 characters of paths: the floor
    nested(500),  # objects and arrays in turn, as deep as JSON may nest
    {"instrument": {"spectrometer_01": {"calibration": {"reference_wavelengths_nm": list(range(MAX_INDEXED_LEAVES))}}}},
    {"a" * 75: [0] * MAX_INDEXED_LEAVES},  # a thousand leaves under a long path in 2 KB of JSON
    {"model": {"encoder": {"layers": [{"attention": {"heads": 8, "dropout": 0.1}, "mlp": {"ratio": 4}}] * 24}},
     "optimizer": {"name": "adamw", "lr": 3e-4, "betas": [0.9, 0.999], "schedule": {"warmup": 1000}}},
])
def test_ordinary_and_small_deep_values_are_stored(value: Any) -> None:
    stored = StoredJson.encode(value)
    assert stored.decode() == value
    assert path_chars(stored) <= max(MIN_PATH_CHARS, PATH_CHARS_PER_CHAR * len(stored.json))


def test_the_budget_grows_with_the_text() -> None:
    # 320 levels of one-character keys: 102,400 characters of paths in 2 KB of JSON
    with pytest.raises(InvalidJson, match=f"more than {MIN_PATH_CHARS:,} characters"):
        StoredJson.encode(deep(320, 1))
    # the same paths beside enough other JSON to pay for them
    assert StoredJson.encode({"deep": deep(320, 1), "notes": "x" * 13_000}).decode()["notes"] == "x" * 13_000
