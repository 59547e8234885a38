"""Relay building blocks: the Node interface and generic connections (global ids: services/node_ids.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, TypeVar

import strawberry

T = TypeVar("T")

# The paging arguments every connection field takes, described once.
First = Annotated[int | None, strawberry.argument(description=(
    "At most this many items, from 1 to the server's maximum page size (GRAPHLAKE_MAX_PAGE_SIZE, 500 by default); "
    "null gives the default page size (GRAPHLAKE_DEFAULT_PAGE_SIZE, 50). Out of range: BAD_USER_INPUT."))]
After = Annotated[str | None, strawberry.argument(description=(
    "Start just after this cursor (`pageInfo.endCursor` or an edge's `cursor` from the same list with the same "
    "arguments); null starts at the beginning. Cursors are keyset positions: inserts never shift a page. A cursor "
    "this server did not write: BAD_USER_INPUT."))]
Last = Annotated[int | None, strawberry.argument(description=(
    "Page backward: the last this many items (of the list, or just before `before`), 1 to the maximum page size; "
    "not with `first` or `after`. They come in the list's order, and `pageInfo.hasPreviousPage` says whether more "
    "precede them (pass `startCursor` as `before`)."))]
Before = Annotated[str | None, strawberry.argument(description=(
    "Page backward: end just before this cursor (`pageInfo.startCursor` or an edge's `cursor` from the same list "
    "with the same arguments), with `last` items (default page size if null); not with `first` or `after`. A "
    "cursor this server did not write: BAD_USER_INPUT."))]


@strawberry.interface(description="An object with a global, opaque ID that `node(id:)` resolves.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global ID.")


@strawberry.type(description="Where a page sits in its list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description=(
        "Whether more items follow this page (pass `endCursor` as `after`); paging backward, whether the page "
        "ended before a `before` cursor."))
    has_previous_page: bool = strawberry.field(description=(
        "Whether items precede this page: paging backward (`last`), whether more were there; paging forward, whether "
        "the page followed an `after` cursor."))
    start_cursor: str | None = strawberry.field(description="The cursor of the page's first item; null on an empty page.")
    end_cursor: str | None = strawberry.field(description="The cursor of the page's last item; null on an empty page.")


@strawberry.type(description="One item of a page and its cursor (its place in the list).")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description=(
        "Opaque keyset cursor of this item: pass it as `after` to continue after it, or as `before` to page back from it."))
    node: T = strawberry.field(description="The item.")


@strawberry.type(description=(
    "A page of a list; pass `endCursor` as `after` for the next page, or `startCursor` as `before` with `last` for "
    "the one before."))
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The page's items, in the list's order, each with its cursor.")
    page_info: PageInfo = strawberry.field(description="Where this page sits: whether more follow, and its cursors.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds (costs a count; ask only when needed).")
    async def total_count(self) -> int:
        return await self.count()
