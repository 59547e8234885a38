"""services/field_pages.merged_pages: reads each in key order, merged into one read in key order."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

from services.field_pages import merged_pages


class Read:
    """Pages of documents with these keys; counts the pages asked for."""

    def __init__(self, keys: list[int], size: int) -> None:
        self.pages = [[{"k": k} for k in keys[i:i + size]] for i in range(0, len(keys), size)]
        self.asked = 0

    async def __call__(self) -> AsyncIterator[list[dict]]:
        for page in self.pages:
            self.asked += 1
            yield page


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


async def test_a_read_is_asked_for_a_page_only_when_its_last_is_used_up() -> None:
    early, late = Read([1, 2, 3, 4], 2), Read([10, 11, 12, 13], 2)
    pages = merged_pages([early(), late()], key, 3)
    assert [d["k"] for d in await anext(pages)] == [1, 2, 3]
    assert (early.asked, late.asked) == (2, 1)
    assert [[d["k"] for d in page] async for page in pages] == [[4, 10, 11], [12, 13]]


async def test_one_read_passes_through_and_empty_reads_give_nothing() -> None:
    alone = Read([1, 2, 3, 4, 5], 2)
    assert await collect([alone], 1000) == [[1, 2], [3, 4], [5]]  # its own pages, as they come
    assert await collect([Read([], 3), Read([], 3)], 5) == []
    assert await collect([Read([], 3), Read([2, 3], 3)], 5) == [[2, 3]]
