"""Reading a collection a page at a time in the order of one field, through an index on (field, `_id`).

Each page is a query of its own: one cursor over them all would hold the request's time limit (or,
on the embedded default, a SQLite reader and its write-ahead log) for its whole life. And the order
is the field's, not `_id` alone: on the embedded default `_id` order is served by no index of ours,
so with a filter beside it the walk reads every document the filter's other conditions allow (a
version's records: every record of its set, for each batch of datums), and without one each page
reads the whole collection.
"""

from __future__ import annotations

import asyncio
import heapq
from bisect import bisect_right
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection

_BY_ID = [("_id", 1)]
_Page = TypeVar("_Page")


async def field_pages(collection: AsyncCollection, query: dict[str, Any], field: str, size: int, *,
                      values: Iterable[Any] | None = None,
                      projection: dict[str, int] | None = None) -> AsyncIterator[list[dict]]:
    """The documents matching `query`, in order of `field` then `_id`, at most `size` per read. With
    `values`, only those holding one of them (each searched in turn); else every one.

    Served by an index on (field, _id), or on fields `query` pins followed by those two (a version's
    record copies: version, datum, `_id`; a set's records: set, datum, `_id`). Unless such an index
    exists, `query` must hold no other field leading an index to one value: our FerretDB build would
    then leave the choice of index to SQLite, which walks that one (graphlakeOrder). A read of one
    value is sorted by `_id` alone: the value is pinned then, and the build walks an index whose
    fields before `_id` are pinned. `projection` must keep `field`."""
    by_field = [(field, 1), ("_id", 1)]
    pending = sorted(set(values)) if values is not None else None
    held: dict[str, Any] = {}
    while pending is None or pending:
        if pending is not None:
            held = {field: {"$in": pending}}
        one = pending is not None and len(pending) == 1
        page = await collection.find({**query, **held}, projection, sort=_BY_ID if one else by_field,
                                     limit=size, batch_size=size).to_list()
        if page:
            yield page
        if len(page) < size:
            return
        last, after = page[-1][field], page[-1]["_id"]
        async for rest in _rest(collection, {**query, field: last}, after, size, projection):  # the page may
            yield rest  # have stopped inside its last value: the rest of that one
        if pending is not None:
            pending = pending[bisect_right(pending, last):]
        else:
            held = {field: {"$gt": last}}


async def _rest(collection: AsyncCollection, query: dict[str, Any], after: Any, size: int,
                projection: dict[str, int] | None = None) -> AsyncIterator[list[dict]]:
    """The documents matching `query` past `_id` `after`, in `_id` order, `size` per read: the rest of
    the value (or pair) a page stopped inside."""
    while True:
        rest = await collection.find({**query, "_id": {"$gt": after}}, projection, sort=_BY_ID,
                                     limit=size, batch_size=size).to_list()
        if rest:
            yield rest
        if len(rest) < size:
            return
        after = rest[-1]["_id"]


async def pages_between(collection: AsyncCollection, query: dict[str, Any], field: str, size: int, *,
                        after: tuple[Any, Any] | None, before: Any,
                        projection: dict[str, int] | None = None) -> AsyncIterator[list[dict]]:
    """The documents matching `query` whose `field` is below `before`, in order of `field` then
    `_id`, at most `size` per read, from past the position `after` ((field, _id) of the last one read
    before, or None for the start): a walk that resumes where an earlier one stopped, however many
    documents share its last value. Served as field_pages (an index on what `query` pins, then
    `field`, `_id`); `query` must not hold `field`, and `projection` must keep it."""
    lower: dict[str, Any] = {}
    if after is not None:
        async for rest in _rest(collection, {**query, field: after[0]}, after[1], size, projection):
            yield rest
        lower = {"$gt": after[0]}
    while True:
        page = await collection.find({**query, field: {**lower, "$lt": before}}, projection,
                                     sort=[(field, 1), ("_id", 1)], limit=size, batch_size=size).to_list()
        if page:
            yield page
        if len(page) < size:
            return
        last = page[-1][field]
        async for rest in _rest(collection, {**query, field: last}, page[-1]["_id"], size, projection):
            yield rest  # the page may have stopped inside its last value: the rest of that one
        lower = {"$gt": last}


async def pair_pages(collection: AsyncCollection, fields: tuple[str, str], pairs: Iterable[tuple[Any, Any]],
                     size: int) -> AsyncIterator[list[dict]]:
    """The documents whose two `fields` hold one of `pairs`, in order of both fields then `_id`, at
    most `size` per read: several parents' children in one read (the copies a page of datums holds
    in each of several versions), where field_pages reads one parent's.

    Served by an index on (both fields, `_id`). A read asks for the first field among the pairs'
    firsts and the second among their seconds, which the index searches value by value and gives in
    its order; so it may find documents of pairs not asked for (a version holding another's datum),
    which are left out here. A read that stops inside a first value finishes that value apart (its
    own rest, then field_pages of it), and the next read starts after it: each read moves past at
    least one first value, whatever pairs not asked for lie before the next one asked."""
    by_fields = [(fields[0], 1), (fields[1], 1), ("_id", 1)]
    pending = sorted(set(pairs))
    while pending:
        wanted = set(pending)
        query = {fields[0]: {"$in": sorted({p[0] for p in pending})}, fields[1]: {"$in": sorted({p[1] for p in pending})}}
        page = await collection.find(query, sort=by_fields, limit=size, batch_size=size).to_list()
        kept = [doc for doc in page if (doc[fields[0]], doc[fields[1]]) in wanted]
        if kept:
            yield kept
        if len(page) < size:
            return
        first, second, after = page[-1][fields[0]], page[-1][fields[1]], page[-1]["_id"]
        if (first, second) in wanted:  # the page may have stopped inside its last pair: the rest of that one
            async for rest in _rest(collection, {fields[0]: first, fields[1]: second}, after, size):
                yield rest
        later = [p[1] for p in pending if p[0] == first and p[1] > second]
        if later:  # the rest of this first value's pairs
            async for rest in field_pages(collection, {fields[0]: first}, fields[1], size, values=later):
                yield rest
        pending = [p for p in pending if p[0] > first]


async def key_pages(collection: AsyncCollection, query: dict[str, Any], key: str, size: int, *,
                    projection: dict[str, int] | None = None) -> AsyncIterator[list[dict]]:
    """The documents matching `query` in order of `key` (unique among them), `size` per read: each
    read is an operation of its own (see above), resuming after the last `key` read. Served by an
    index on the fields `query` pins followed by `key`. `projection` must keep `key`."""
    after: dict[str, Any] = {}
    while True:
        # The whole page in the first batch: one round trip, not a find and a getMore.
        page = await collection.find({**query, **after}, projection, sort=[(key, 1)], limit=size,
                                     batch_size=size).to_list()
        if page:
            yield page
        if len(page) < size:
            return
        after = {key: {"$gt": page[-1][key]}}


async def read_ahead(pages: AsyncIterator[_Page]) -> AsyncGenerator[_Page, None]:
    """The pages of a read, the next one asked for as each is given: the database reads it while the
    caller handles this one. (A version's build spent 14% of its time waiting on each page of its
    records, then kept the database idle while it made their copies.) Holds two pages at most.
    Closing it drops the read under way and closes `pages`."""
    coming: asyncio.Future[_Page | None] = asyncio.ensure_future(anext(pages, None))
    try:
        while (page := await coming) is not None:
            coming = asyncio.ensure_future(anext(pages, None))
            yield page
    finally:  # the caller stopped early, or the read failed (its error raised where it was awaited)
        if not coming.done():
            coming.cancel()
            await asyncio.wait([coming])
        if not coming.cancelled():
            coming.exception()  # retrieved: raised above already, or a read the caller no longer wants
        await pages.aclose()  # type: ignore[attr-defined]  # field_pages' async generators; none is running now


async def merged_pages(reads: Sequence[AsyncIterator[list[dict]]], key: Callable[[dict], Any],
                       size: int) -> AsyncIterator[list[dict]]:
    """The documents of several reads, each in `key` order (unique keys, no empty pages), as one read
    in `key` order, `size` per page. Each read's next page is asked for as soon as its last one
    arrives (all the first pages at once), so the reads go on while the caller handles what came:
    a merge gives nothing before it has every read's first page. Each read holds at most two pages
    here. One read's pages come through as they are, read ahead (read_ahead)."""
    if len(reads) == 1:
        async with aclosing(read_ahead(reads[0])) as ahead:
            async for page in ahead:
                yield page
        return
    coming: list[asyncio.Future[list[dict]] | None] = [asyncio.ensure_future(anext(read, [])) for read in reads]

    async def next_page(n: int) -> list[dict]:
        arriving = coming[n]
        page = await arriving if arriving is not None else []
        coming[n] = asyncio.ensure_future(anext(reads[n], [])) if page else None
        return page

    try:
        pages = [await next_page(n) for n in range(len(reads))]
        at = [0] * len(reads)
        heads = [(key(page[0]), n) for n, page in enumerate(pages) if page]  # (key of a read's next document, which read)
        heapq.heapify(heads)
        out: list[dict] = []
        while heads:
            n = heads[0][1]
            out.append(pages[n][at[n]])
            at[n] += 1
            if at[n] == len(pages[n]):
                pages[n], at[n] = await next_page(n), 0
            if pages[n]:
                heapq.heapreplace(heads, (key(pages[n][at[n]]), n))
            else:
                heapq.heappop(heads)
            if len(out) == size:
                yield out
                out = []
        if out:
            yield out
    finally:  # the caller stopped early or a read failed: the reads under way are dropped
        pending = [future for future in coming if future is not None and not future.done()]
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.wait(pending)
        for future in coming:
            if future is not None and future.done() and not future.cancelled():
                future.exception()  # retrieved: a failed read is raised where its page was awaited
        for read in reads:  # none is running now
            await read.aclose()  # type: ignore[attr-defined]  # field_pages' async generators
