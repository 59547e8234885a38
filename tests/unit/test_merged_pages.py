"""services/field_pages.merged_pages: reads each in key order, merged into one read in key order; and
read_ahead, which asks for a read's next page while the caller handles one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from services.field_pages import merged_pages, read_ahead


class Read:
    """Pages of documents with these keys; counts the pages asked for, and fails at one if told to."""

    def __init__(self, keys: list[int], size: int, fail_at: int | None = None) -> None:
        self.pages = [[{"k": k} for k in keys[i:i + size]] for i in range(0, len(keys), size)]
        self.asked, self.fail_at, self.closed = 0, fail_at, False

    async def __call__(self) -> AsyncIterator[list[dict]]:
        try:
            for n, page in enumerate(self.pages):
                self.asked += 1
                await asyncio.sleep(0)  # a database read
                if n == self.fail_at:
                    raise OSError(f"page {n} failed")
                yield page
        finally:
            self.closed = True


def key(doc: dict) -> int:
    return doc["k"]


async def collect(reads: list[Read], size: int) -> list[list[int]]:
    return [[d["k"] for d in page] async for page in merged_pages([read() for read in reads], key, size)]


async def test_reads_merge_into_key_order_in_pages_of_the_size_asked() -> None:
    rng = random.Random(7)
    keys = list(range(100))
    rng.shuffle(keys)
    parts = [sorted(keys[:50]), sorted(keys[50:53]), sorted(keys[53:])]
    pages = await collect([Read(part, size) for part, size in zip(parts, (4, 1, 10), strict=True)], 6)
    assert [k for page in pages for k in page] == list(range(100))
    assert [len(page) for page in pages] == [6] * 16 + [4]


async def test_each_read_runs_one_page_ahead_of_the_merge() -> None:
    """The reads go on while the caller handles a page (their next pages are asked for at once),
    never more than one page ahead, so a read holds at most two pages."""
    early, late = Read(list(range(20)), 2), Read(list(range(100, 120)), 2)
    pages = merged_pages([early(), late()], key, 3)
    assert [d["k"] for d in await anext(pages)] == [0, 1, 2]
    await asyncio.sleep(0.01)  # the caller's work on the page
    assert (early.asked, late.asked) == (3, 2)  # early: two pages used, one coming; late: one, and one coming
    rest = [d["k"] for page in [page async for page in pages] for d in page]
    assert rest == [*range(3, 20), *range(100, 120)]
    assert early.closed and late.closed


async def test_a_failed_read_is_raised_and_the_other_reads_are_closed() -> None:
    failing, other = Read(list(range(0, 10, 2)), 1, fail_at=2), Read(list(range(1, 10, 2)), 1)
    seen = []
    with pytest.raises(OSError, match="page 2 failed"):
        async for page in merged_pages([failing(), other()], key, 1):
            seen += [d["k"] for d in page]
    assert seen == [0, 1]  # 2 waits for the page after it, which it is the failed read's turn to give
    assert failing.closed and other.closed


@pytest.mark.parametrize("count", [1, 3])
async def test_a_caller_that_stops_early_leaves_every_read_closed(count: int) -> None:
    reads = [Read(list(range(n, 60, count)), 2) for n in range(count)]
    pages = merged_pages([read() for read in reads], key, 2)
    assert [d["k"] for d in await anext(pages)] == [0, 1]
    await pages.aclose()
    assert all(read.closed for read in reads)


async def test_one_read_passes_through_and_empty_reads_give_nothing() -> None:
    alone = Read([1, 2, 3, 4, 5], 2)
    assert await collect([alone], 1000) == [[1, 2], [3, 4], [5]]  # its own pages, as they come
    assert await collect([Read([], 3), Read([], 3)], 5) == []
    assert await collect([Read([], 3), Read([2, 3], 3)], 5) == [[2, 3]]


async def test_one_read_runs_one_page_ahead_of_its_caller() -> None:
    """read_ahead (and so a merge of one read) asks for the next page as it gives one, and no further."""
    alone = Read(list(range(10)), 2)
    pages = read_ahead(alone())
    assert [d["k"] for d in await anext(pages)] == [0, 1]
    await asyncio.sleep(0.01)  # the caller's work on the page
    assert alone.asked == 2  # the page given, and the next one coming
    await asyncio.sleep(0.01)
    assert alone.asked == 2  # never two ahead
    assert [d["k"] for page in [page async for page in pages] for d in page] == list(range(2, 10))
    assert alone.closed


async def test_read_ahead_raises_a_failed_read_where_its_page_is_asked_for() -> None:
    failing = Read(list(range(6)), 2, fail_at=1)
    pages = read_ahead(failing())
    assert [d["k"] for d in await anext(pages)] == [0, 1]  # the failure is the next page's, not this one's
    with pytest.raises(OSError, match="page 1 failed"):
        await anext(pages)
    assert failing.closed


async def test_read_ahead_closed_early_drops_the_read_under_way() -> None:
    slow = Read(list(range(10)), 2)
    pages = read_ahead(slow())
    await anext(pages)
    await asyncio.sleep(0)  # the next page's read begins (a database read: it waits)
    assert slow.asked == 2
    await pages.aclose()
    assert slow.closed and slow.asked == 2
