"""resolvers/loop_slices.py: a long list is completed in slices with the event loop's other work
running between them, and gives the same result (errors and their paths included) as in one go."""

from __future__ import annotations

import asyncio
import time

from graphql import build_schema, execute, parse
from graphql.execution.executor import Executor

from resolvers.loop_slices import SLICE, SlicedExecutor, validate_all
from services.pauses import STRETCH, take_turn

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


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_many_ready_steps_let_a_timer_in_once_the_stretch_is_spent() -> None:
    # 200 tasks ready at once, 1 ms of work each: without turns the loop runs all of them before it
    # looks at its timers and sockets again (200 ms); with them, one stretch (STRETCH) at a time.
    order: list[str] = []

    async def worker(n: int) -> None:
        await take_turn()
        busy(0.001)
        order.append(f"w{n}")

    async def probe() -> None:
        await asyncio.sleep(0.001)
        order.append("probe")

    probing = asyncio.create_task(probe())
    await asyncio.sleep(0)  # the probe's timer is set
    await asyncio.gather(*(worker(n) for n in range(200)), probing)
    assert order.index("probe") <= 5 * STRETCH / 0.001  # a few stretches of 1 ms items, not all 200


async def test_awaited_resolver_results_take_their_turn() -> None:
    # 8 groups of SLICE items (short lists: no slices), each item's `child` awaited, then its
    # sub-selection completed (1 ms): that completion waits for its turn, so the probe's timer gets
    # in long before the 200th.
    schema = build_schema("type Child { n: Int! } type Item { child: Child! } type Group { items: [Item!]! } "
                          "type Query { groups: [Group!]! }")
    done: list[str] = []

    async def child(item: dict, _info: object) -> dict:
        return item

    def n(item: dict, _info: object) -> int:
        busy(0.001)
        done.append("item")
        return item["n"]

    async def probe() -> None:
        await asyncio.sleep(0.001)
        done.append("probe")

    schema.query_type.fields["groups"].resolve = lambda *_: [
        [{"n": g * SLICE + i} for i in range(SLICE)] for g in range(8)]
    schema.get_type("Group").fields["items"].resolve = lambda group, _info: group
    schema.get_type("Item").fields["child"].resolve = child
    schema.get_type("Child").fields["n"].resolve = n
    probing = asyncio.create_task(probe())
    await asyncio.sleep(0)
    result = await execute(schema, parse("{ groups { items { child { n } } } }"), executor_class=SlicedExecutor)
    await probing
    assert not result.errors
    assert [i["child"]["n"] for g in result.data["groups"] for i in g["items"]] == list(range(8 * SLICE))
    assert done.index("probe") <= 5 * STRETCH / 0.001  # a few stretches of 1 ms items, not all 200
