"""An operation leaves no reference cycle behind: its executor, context and results are freed as it
ends, by reference counting, not by the next garbage collection (resolvers/internals.weak_async_helpers).
Young collections of what every request left cost a serving process about a quarter of an empty
query's CPU (docs/performance-history.md, session 64)."""

from __future__ import annotations

import gc
from functools import partial

import strawberry
from graphql import parse

from resolvers.document_cache import DocumentCache, DocumentMemo
from resolvers.fanout import FanoutExecutor
from resolvers.schema import GraphlakeSchema


@strawberry.type
class Item:
    name: str


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> int:
        return 1

    @strawberry.field
    async def items(self) -> list[Item]:
        return [Item(name="a"), Item(name="b")]


# Parsed and validated once (graphql-core's validation leaves cycles, once per document text), as the server's schema does.
schema = GraphlakeSchema(query=Query, extensions=[partial(DocumentCache, DocumentMemo())], execution_context_class=FanoutExecutor)


async def test_operations_leave_nothing_for_the_collector() -> None:
    for document in ("{ ok }", "{ ok items { name } }"):
        assert (await schema.execute(document)).errors is None  # anything made once is made now
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                await schema.execute(document)
            left = gc.collect()
        finally:
            gc.enable()
        assert left == 0, f"{document}: {left} objects freed only by the collector"


def test_an_events_executor_helpers_reach_that_executor() -> None:
    """A subscription's event runs in a copy of its executor: the copy's helpers reach the copy, not
    the subscription's executor (which a subscriber gone meanwhile may have let go)."""
    executor = FanoutExecutor.build(schema._schema, parse("{ ok }"))
    event = executor.build_per_event_executor({"ok": 1})
    tracked: list[object] = []
    event.track_async_work = tracked.append  # type: ignore[method-assign]
    event.async_helpers.track("work")
    assert tracked == ["work"]
