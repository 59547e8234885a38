"""Index declarations (documents/indexes.py) that cannot be made as declared are refused where they are written."""

from __future__ import annotations

import pytest

from documents.indexes import Index, On, embedded_filter, with_filter


def test_an_embedded_partial_index_makes_its_own_filter() -> None:
    index = Index([("owner.user_id", 1), ("_id", 1)], name="owner", embedded_partial=True)
    partial = embedded_filter(index)
    assert partial == {"owner.user_id": {"$exists": True}}
    assert with_filter(index, partial).document["partialFilterExpression"] == partial
    # Declared with a filter of its own (for the embedded default), it was made again at every start
    # there (the listed filter never equal to the wanted one), or failed with a TypeError.
    for declared in ({"embedded_partial": True}, {"on": On.BOTH}, {"on": On.EMBEDDED}):
        with pytest.raises(ValueError, match="makes its own partialFilterExpression"):
            Index([("key", 1)], name="key", partialFilterExpression={"key": {"$type": "string"}}, **declared)
    # MongoDB's alone, a filter of its own is MongoDB's to use (events' and records' keys).
    assert Index([("key", 1)], name="key", partialFilterExpression={"key": {"$type": "string"}}, on=On.MONGODB)
