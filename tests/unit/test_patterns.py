"""Searches typed by clients reach the servers' $regex as literal patterns (documents/patterns.py)."""

import re

import pytest
import re2

from documents.patterns import literal
from services.checks import text_contains, text_starts_with

TEXTS = ["plain", "a.b", "(x)*[y]+?", "^start$", "back\\slash", "nul\x00inside", "\x00", "ünï cödé", "tab\tnew\nline"]


@pytest.mark.parametrize("text", TEXTS)
def test_a_literal_pattern_matches_its_text_alone_in_both_engines(text: str) -> None:
    pattern = literal(text)
    assert "\x00" not in pattern  # MongoDB refuses NUL in a pattern
    for engine in (re, re2):  # PCRE-like (MongoDB) and RE2 (FerretDB's Go regexp)
        assert engine.fullmatch(pattern, text), (engine.__name__, text)
        assert not engine.fullmatch(pattern, text + "x")


@pytest.mark.parametrize(("text", "other"), [("a.b", "axb"), ("(x)*", "xx"), ("^start$", "start"), ("nul\x00", "nul0")])
def test_what_a_pattern_would_mean_is_not_matched(text: str, other: str) -> None:
    for engine in (re, re2):
        assert not engine.search(literal(text), other), (engine.__name__, text)


def test_contains_and_starts_with_filters_use_literal_patterns() -> None:
    assert text_contains("name", "a.\x00") == {"name": {"$regex": literal("a.\x00"), "$options": "i"}}
    assert text_starts_with("path", "cam1/(x)") == {"path": {"$regex": "^" + literal("cam1/(x)")}}
