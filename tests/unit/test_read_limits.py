"""resolvers/read_limits.py: a document's written values are checked once per parsed document, and a
document over a limit is refused every time it is sent."""

from __future__ import annotations

import gc

from graphql import parse

from resolvers import read_limits
from resolvers.read_limits import oversized_read


def test_a_document_within_the_limits_is_walked_once_and_forgotten_with_it() -> None:
    document = parse('query Q { assets(filter: {nameContains: "abc"}) { id } }')
    walks = []
    original = read_limits._Limits.check_document

    def counting(self: read_limits._Limits, doc: object) -> object:
        walks.append(doc)
        return original(self, doc)  # type: ignore[arg-type]

    read_limits._Limits.check_document = counting  # type: ignore[method-assign]
    try:
        for _ in range(3):
            assert oversized_read(document, {}, None, max_chars=10, max_items=5) is None
        assert len(walks) == 1
        # Other limits are another question: walked again.
        problem = oversized_read(document, {}, None, max_chars=2, max_items=5)
        assert problem is not None and problem.extensions["field"] == "filter.nameContains"
        assert len(walks) == 2
    finally:
        read_limits._Limits.check_document = original  # type: ignore[method-assign]
    kept = len(read_limits._within)
    walks.clear()  # it holds the document too
    del document
    gc.collect()
    assert len(read_limits._within) == kept - 1


def test_a_document_over_a_limit_is_refused_every_time() -> None:
    document = parse('query Q { assets(filter: {labels: ["a", "b", "c"]}) { id } }')
    for _ in range(2):
        problem = oversized_read(document, {}, None, max_chars=100, max_items=2)
        assert problem is not None and "at most 2 items" in str(problem)
    # Variables are this request's own: checked every time, even for a document kept as within.
    document = parse("query Q($n: String) { assets(filter: {nameContains: $n}) { id } }")
    assert oversized_read(document, {"n": "short"}, None, max_chars=10, max_items=2) is None
    problem = oversized_read(document, {"n": "far too long a string"}, None, max_chars=10, max_items=2)
    assert problem is not None and problem.extensions["field"] == "n"
