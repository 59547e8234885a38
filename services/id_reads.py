"""Reads of documents by a list of ids: `{_id: {$in: ids}}` alone, any other condition checked by
the caller on what comes back.

FerretDB (v1, SQLite backend) answers `{_id: {$in: ids}}` from its `_id` index only when that is
the whole filter. With a second condition beside it (`status`, `unpinned_at: {$ne: null}`) SQLite's
plan scans the whole collection, or every document of that status through its index, and tests
each one against the list (see `explain`): a read of 100 assets then cost as much as the lake's
assets, and grew with every import. An empty list with a second condition scans too. MongoDB
answers either form from the `_id` index; this one costs both the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from beanie import Document
from bson import ObjectId

D = TypeVar("D", bound=Document)


async def docs_by_ids(model: type[D], ids: Iterable[ObjectId]) -> list[D]:
    """The documents of `model` with these ids (those that exist), one round trip, none for no ids.
    A caller that only checks a field or two reads them raw with `fields_by_ids`: building a model of
    each asset and datum an addAnnotations batch named was a fifth of its CPU."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    # All in the first batch: one round trip, where the default first batch of 101 adds a getMore.
    # One more than can match, so that a full answer still tells the cursor is done (a first batch
    # of exactly batch_size leaves it open, and the driver asks a getMore to find it empty).
    return await model.find({"_id": {"$in": wanted}}, batch_size=len(wanted) + 1).to_list()


async def fields_by_ids(model: type[Document], ids: Iterable[ObjectId], fields: list[str]) -> dict[ObjectId, dict]:
    """Only `fields` of the documents of `model` with these ids (those that exist), raw, by id: for
    a check that needs a field or two, where building each document is most of its cost."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    return {doc["_id"]: doc async for doc in model.get_pymongo_collection().find(
        {"_id": {"$in": wanted}}, dict.fromkeys(fields, 1), batch_size=len(wanted) + 1)}  # as docs_by_ids
