"""graphlake_client/version_reading.version_datums against a lake that answers from a list: every
datum once and in order whatever the page size, pages asked for two at a time as their starts become
known, a failed page raised with nothing left running, and a server allowing smaller pages than
the cursor read asks for; no server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphlake_client import operations as ops
from graphlake_client import version_reading
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.version_reading import version_datums
from tests.waiting import wait_for


class Lake:
    """A version of `count` datums (cursors c0, c1, ...), answering cursor reads and pages as the
    server does; `failing` names the `after` of a page that fails (the pages after it hang), `max_page`
    the largest `first`."""

    def __init__(self, count: int, *, failing: str | None = None, max_page: int = 500) -> None:
        self.count, self.failing, self.max_page = count, failing, max_page
        self.asked: list[tuple[str, str | None, int]] = []  # (cursors or page, after, first)

    async def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        kind = "cursors" if query == ops.VERSION_DATUM_CURSORS else "page"
        self.asked.append((kind, variables["after"], variables["first"]))
        await asyncio.sleep(0.001)
        if variables["first"] > self.max_page:
            raise GraphlakeClientError(f"must be between 1 and {self.max_page}", "BAD_USER_INPUT", "first")
        start = 0 if variables["after"] is None else int(variables["after"][1:]) + 1
        if kind == "page" and self.failing is not None:
            if variables["after"] == self.failing:
                raise GraphlakeClientError("the database did not answer", "UNAVAILABLE")
            if start > int(self.failing[1:]):
                await asyncio.sleep(60)  # pages after the failed one never come, unless they are dropped
        ids = range(start, min(self.count, start + variables["first"]))
        edges = [{"cursor": f"c{i}", "node": {"id": i, "annotations": {"edges": [], "pageInfo": {"hasNextPage": False}}}}
                 for i in ids]
        return {"datasetVersion": {"datums": {"edges": edges, "pageInfo": {
            "hasNextPage": start + variables["first"] < self.count, "endCursor": edges[-1]["cursor"] if edges else None}}}}

    def pages(self) -> list[str | None]:
        return [after for kind, after, _ in self.asked if kind == "page"]


def running_pages() -> list[asyncio.Task]:
    """The lake's answers still on their way (the suite's loop runs other tasks beside these)."""
    return [t for t in asyncio.all_tasks() if not t.done() and t.get_coro().__qualname__ == "Lake.execute"]


@pytest.mark.parametrize(("count", "per_page"), [(0, 100), (50, 100), (100, 100), (250, 100), (1000, 100),
                                                 (1001, 100), (3, 1), (501, 1000), (1200, 600)])
async def test_every_datum_comes_once_and_in_order_from_one_page_per_page_size(count: int, per_page: int) -> None:
    lake = Lake(count, max_page=1000)
    assert [datum["id"] async for datum, _ in version_datums(lake, "v", per_page)] == list(range(count))
    pages = max(1, -(-count // per_page))  # a version without datums still reads one (empty) page
    assert lake.pages() == [None] + [f"c{n * per_page - 1}" for n in range(1, pages)]
    per_read = max(500, per_page)
    assert [first for kind, _, first in lake.asked if kind == "cursors"] == [per_read] * max(1, -(-count // per_read))


async def test_two_pages_are_on_their_way_while_one_is_used() -> None:
    lake = Lake(400)
    pages = version_datums(lake, "v", 100)
    await anext(pages)
    await asyncio.sleep(0.01)
    assert version_reading.PAGES_AT_ONCE == 2
    # The first page asked for at once, beside the read of the cursors; the second once its start was
    # known, and the third as soon as the first had come.
    asked = [(kind, after) for kind, after, _ in lake.asked]
    assert sorted(asked[:2]) == [("cursors", None), ("page", None)] and asked[2:] == [("page", "c99"), ("page", "c199")]
    await pages.aclose()


async def test_a_failed_page_is_raised_and_the_pages_read_ahead_are_dropped() -> None:
    lake = Lake(500, failing="c199")
    seen = []
    with pytest.raises(GraphlakeClientError, match="did not answer"):
        async for datum, _ in version_datums(lake, "v", 100):
            seen.append(datum["id"])
    assert seen == list(range(200))
    # Nothing left running: the pages after the failed one hang for a minute unless they are dropped.
    await wait_for(lambda: not running_pages(), what="the pages read ahead to be dropped")


async def test_a_reader_that_stops_after_a_page_failed_meanwhile_drops_it_quietly() -> None:
    lake = Lake(500, failing="c199")
    pages = version_datums(lake, "v", 100)
    async for datum, _ in pages:
        if datum["id"] == 150:
            await asyncio.sleep(0.02)  # the page after the next one fails meanwhile
            break
    await pages.aclose()
    assert "c199" in lake.pages()
    await wait_for(lambda: not running_pages(), what="the dropped pages to see their cancellation")


async def test_a_server_with_smaller_pages_has_its_cursors_read_a_page_at_a_time() -> None:
    lake = Lake(250, max_page=100)  # GRAPHLAKE_MAX_PAGE_SIZE=100: reads of 500 cursors are refused
    assert [datum["id"] async for datum, _ in version_datums(lake, "v", 100)] == list(range(250))
    assert [first for kind, _, first in lake.asked if kind == "cursors"] == [500, 100, 100, 100]
    lake = Lake(10, max_page=5)  # and pages larger than the server allows fail as they always did
    with pytest.raises(GraphlakeClientError, match="between 1 and 5"):
        [pair async for pair in version_datums(lake, "v", 10)]
