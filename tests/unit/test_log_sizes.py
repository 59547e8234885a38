"""The log handler's measure of a record (graphlake_client/logs.rough_size): the size of its JSON,
found by walking it once in the caller's thread, without serialising it."""

from __future__ import annotations

import json

import pytest

from graphlake_client.logs import jsonable, rough_size

CASES = {
    "ascii": {"message": "plate 7 read", "plate": 7},
    "two- and three-byte text": {"name": "Zürich", "note": "測定値", "deep": [{"é": ["ü" * 40]}]},
    "four-byte text": {"emoji": "🧪" * 10},
    "numbers": {"int": 12345678901234567890, "negative": -3, "float": 0.1234567890123, "big": 1e300, "small": 5e-324},
    "constants": {"yes": True, "no": False, "none": None},
    "empty": {"list": [], "dict": {}, "text": ""},
    "a record's shape": {"run": 42, "log": {"logger": "plates", "module": "reader", "function": "read", "line": 120,
                                            "thread": "MainThread", "process": 4242, "levelno": 30}},
}


@pytest.mark.parametrize("value", CASES.values(), ids=CASES.keys())
def test_the_measure_is_the_size_of_the_json(value: object) -> None:
    """Text was counted in characters, not bytes (two-byte text at half its size, three-byte at a
    third), every number and constant at 5 bytes, and no commas: a queue bounded by it held far
    more bytes than max_queue_bytes said. Exact now, for anything that needs no JSON escapes."""
    data = jsonable(value)
    assert rough_size(data) == len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())


def test_escapes_are_all_it_misses() -> None:
    data = jsonable({"traceback": 'line "1"\nline 2\n\ttab\\'})
    exact = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
    assert exact - 6 <= rough_size(data) <= exact  # one byte short per quote, newline, tab, backslash
