"""The client's predicates (graphlake_client/predicates.py): is_in / not_in take a collection of
options, and refuse what list() would turn into something else than was meant."""

from __future__ import annotations

from typing import Any

import pytest

from graphlake_client import GraphlakeClientError, data, metadata, value


@pytest.mark.parametrize("options", ["A1", b"A1", bytearray(b"A1"), {"A1": 1}, 7, None])
def test_a_single_option_or_a_mapping_is_refused_naming_the_predicate(options: Any) -> None:
    """`is_in("A1")` became IN ["A", "1"] (other results, silently); `is_in(7)` a bare TypeError."""
    for method in ("is_in", "not_in"):
        with pytest.raises(GraphlakeClientError, match=rf"metadata\('well'\)\.{method}: takes a list of options") as refused:
            getattr(metadata("well"), method)(options)
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == f"metadata('well').{method}"


def test_collections_of_options_are_sent_as_lists() -> None:
    assert metadata("well").is_in(["A1"]).as_input() == {"path": "well", "op": "IN", "value": ["A1"]}
    assert value("n").not_in((1, 2)).as_input()["value"] == [1, 2]
    assert data("tag").is_in({"x"}).as_input()["value"] == ["x"]
    assert metadata("n").is_in(range(3)).as_input()["value"] == [0, 1, 2]  # type: ignore[arg-type]  # any iterable at run time


def test_a_verbs_names_take_one_str_as_a_list_of_one() -> None:
    """labels_all="raw" was sent as its letters (matching nothing; labels_any="raw" matched label "r")."""
    from graphlake_client.predicates import names

    assert names("raw", "labels_all") == ["raw"]
    assert names(("a", "b"), "labels_any") == ["a", "b"] and names({"a"}, "kinds") == ["a"]
    assert names(None, "kinds") is None and names([], "kinds") == []  # the server refuses an empty list
    for wrong in (b"raw", {"raw": 1}, 3):
        with pytest.raises(GraphlakeClientError) as refused:
            names(wrong, "event_types")
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == "event_types"
