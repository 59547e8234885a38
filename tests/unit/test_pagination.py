"""Keyset filters and cursors (resolvers/pagination.py), built and read without a database.
Pages served through the API: tests/test_pagination.py."""

from __future__ import annotations

from documents.clock import utcnow
from resolvers.pagination import decode_cursor, encode_cursor, keyset_filter, with_tiebreaker


def test_keyset_filter_handles_nulls_in_both_directions() -> None:
    sort = with_tiebreaker([("d", 1)])
    assert sort == [("d", 1), ("_id", 1)]
    # Ascending from a null: every non-null comes after, and equal nulls after by _id.
    assert keyset_filter(sort, [None, 5]) == {"$or": [{"d": {"$ne": None}}, {"$and": [{"d": None}, {"_id": {"$gt": 5}}]}]}
    desc = with_tiebreaker([("d", -1)])
    # Descending from a value: smaller values and nulls come after.
    assert keyset_filter(desc, [3, 5])["$or"][0] == {"$or": [{"d": {"$lt": 3}}, {"d": None}]}
    # Descending from a null: only equal nulls with a smaller _id remain.
    assert keyset_filter(desc, [None, 5]) == {"$or": [{"$and": [{"d": None}, {"_id": {"$lt": 5}}]}]}
    now = utcnow()
    assert decode_cursor(encode_cursor({"d": now, "_id": 7}, sort), sort) == [now, 7]
