"""resolvers/loop_slices.py: a long list is completed in slices with the event loop's other work
running between them, and gives the same result (errors and their paths included) as in one go."""

from __future__ import annotations

import asyncio

from graphql import build_schema, execute, parse
from graphql.execution.executor import Executor

from resolvers.loop_slices import SLICE, SlicedExecutor, validate_all

SCHEMA = build_schema("type Item { n: Int! turn: Int! } type Query { items(count: Int!, bad: Int): [Item!] }")
QUERY = parse("query Items($count: Int!, $bad: Int) { items(count: $count, bad: $bad) { n turn } }")


class Loop:
    """Counts the turns other work gets on the loop while a query runs."""

    def __init__(self) -> None:
        self.turns = 0

    async def spin(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)


async def run(executor: type[Executor], count: int, bad: int | None = None) -> tuple[dict, list]:
    loop = Loop()
    spinner = asyncio.create_task(loop.spin())
    await asyncio.sleep(0)

    def items(_root: object, _info: object, count: int, bad: int | None = None) -> list[dict]:
        return [{"n": None if n == bad else n} for n in range(count)]  # a null n breaks Item.n: Int!

    def turn(_item: object, _info: object) -> int:
        return loop.turns

    SCHEMA.query_type.fields["items"].resolve = items
    SCHEMA.get_type("Item").fields["turn"].resolve = turn
    result = execute(SCHEMA, QUERY, variable_values={"count": count, "bad": bad}, executor_class=executor)
    if not isinstance(result, dict) and hasattr(result, "__await__"):
        result = await result
    spinner.cancel()
    return result.data, [(e.message, e.path) for e in result.errors or []]


async def test_a_long_list_lets_other_work_run_between_slices() -> None:
    data, errors = await run(SlicedExecutor, 10 * SLICE)
    assert not errors
    assert [item["n"] for item in data["items"]] == list(range(10 * SLICE))
    turns = {item["turn"] for item in data["items"]}
    assert len(turns) >= 10  # graphql-core alone: every item completed within one turn
    plain, _ = await run(Executor, 10 * SLICE)
    assert len({item["turn"] for item in plain["items"]}) == 1


async def test_a_short_list_is_completed_in_one_go() -> None:
    data, errors = await run(SlicedExecutor, SLICE)
    assert not errors and len({item["turn"] for item in data["items"]}) == 1


async def test_an_error_in_a_late_item_has_its_own_path_and_nulls_the_list_as_graphql_core_does() -> None:
    bad = 3 * SLICE + 2
    sliced = await run(SlicedExecutor, 5 * SLICE, bad=bad)
    plain = await run(Executor, 5 * SLICE, bad=bad)
    assert sliced[1] == plain[1] == [("Cannot return null for non-nullable field Item.n.", ["items", bad, "n"])]
    assert sliced[0] == plain[0] == {"items": None}


async def test_validate_all_keeps_order_and_yields_between_slices() -> None:
    class Model:
        @staticmethod
        def model_validate(doc: dict) -> tuple:
            return (doc["n"], loop.turns)

    loop = Loop()
    spinner = asyncio.create_task(loop.spin())
    await asyncio.sleep(0)
    validated = await validate_all(Model, [{"n": n} for n in range(4 * SLICE)])
    spinner.cancel()
    assert [n for n, _ in validated] == list(range(4 * SLICE))
    assert len({turn for _, turn in validated}) == 4
