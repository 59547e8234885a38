"""Keyset filters and cursors (resolvers/pagination.py), built and read without a database.
Pages served through the API: tests/test_pagination.py."""

from __future__ import annotations

import base64

import orjson
import pytest

from documents.clock import utcnow
from resolvers.pagination import _ordering_tag, decode_cursor, encode_cursor, keyset_filter, with_tiebreaker
from services.errors import BadUserInput


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
    assert decode_cursor(encode_cursor({"d": now, "_id": 7}, sort, scope="things"), sort, scope="things") == [now, 7]


def test_a_cursor_carries_no_operator_and_fits_only_its_ordering() -> None:
    """A cursor's values go into a query: one the client shaped as an operator, or any value the server
    never writes, is refused; so is a cursor made for another ordering."""
    sort = with_tiebreaker([("name", 1)])

    def forged(*values: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps([_ordering_tag(sort, "things"), *values])).decode().rstrip("=")

    assert decode_cursor(forged("b", {"$o": "64b000000000000000000001"}), sort, scope="things")[0] == "b"
    for values in (({"$ne": None}, 5), ("b", {"$gt": 0}), (["b"], 5), ("b", {"$o": "x"}), ("b", {"$d": "soon"}),
                   ({"$d": 1, "$o": "64b000000000000000000001"}, 5), ("x" * 5000, 5),
                   ({"$d": 10**18}, 5)):  # a time beyond datetime's years
        with pytest.raises(BadUserInput) as refused:
            decode_cursor(forged(*values), sort, scope="things")
        assert refused.value.extensions["field"] == "after", values
    other = with_tiebreaker([("name", -1)])
    for made_for, scope in ((other, "things"), (sort, "others")):  # another ordering; the same order of another list
        with pytest.raises(BadUserInput) as refused:
            decode_cursor(encode_cursor({"name": "b", "_id": 5}, made_for, scope=scope), sort, scope="things")
        assert refused.value.extensions["field"] == "after", scope


async def test_a_computed_list_pages_backward_as_it_pages_forward() -> None:
    """sorted_list_connection (version diffs, splits, utilization groups): `last` / `before` give the
    items just ahead of a cursor, in the list's order, and the same cursors as forward pages."""
    from resolvers.pagination import Page, sorted_list_connection

    ids = list(range(10, 20))

    async def load(chosen: list[int]) -> list[int]:
        return chosen

    async def read(**arguments: object) -> tuple[list[int], bool, bool, list[str]]:
        page = await sorted_list_connection(ids, Page.of(**arguments, default_size=4, max_size=50), load, scope="ids")
        return ([e.node for e in page.edges], page.page_info.has_previous_page, page.page_info.has_next_page,
                [e.cursor for e in page.edges])

    everything = await read(first=10, after=None)
    assert everything[:3] == (ids, False, False)
    assert (await read(first=None, after=None, last=3))[:3] == ([17, 18, 19], True, False)
    before_15 = everything[3][5]
    assert (await read(first=None, after=None, last=3, before=before_15))[:3] == ([12, 13, 14], True, True)
    assert (await read(first=None, after=None, last=9, before=before_15))[:3] == ([10, 11, 12, 13, 14], False, True)
    assert (await read(first=None, after=None, before=before_15))[0] == [11, 12, 13, 14]  # the default size
    assert (await read(first=None, after=None, last=2, before=everything[3][0]))[:3] == ([], False, True)
    with pytest.raises(BadUserInput) as refused:
        await read(first=2, after=None, last=2)
    assert refused.value.extensions["field"] == "last"
