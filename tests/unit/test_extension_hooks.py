"""resolvers/extension_hooks.py: hooks looked up once per class run as Strawberry runs them: in order,
around the stage, seeing the stage's errors, sync and async alike, once per operation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import strawberry
from strawberry.extensions import SchemaExtension

from resolvers.extension_hooks import KeptHooksRunner, _gives_results
from resolvers.schema import GraphlakeSchema

calls: list[str] = []
# The execution contexts First saw, kept alive: an id() alone can repeat once the first one is freed.
contexts_seen: list[object] = []


class First(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        calls.append("first operation in")
        yield
        calls.append("first operation out")

    def on_execute(self) -> Iterator[None]:
        calls.append(f"first execute in {id(self.execution_context)}")
        contexts_seen.append(self.execution_context)
        try:
            yield
        except Exception as error:  # never reached: resolver errors become result errors
            calls.append(f"first saw {error}")
            raise
        calls.append("first execute out")


class Second(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:
        calls.append("second operation in")
        yield
        calls.append(f"second operation out, errors: {len(self.execution_context.result.errors or [])}")

    def on_validate(self) -> Iterator[None]:
        calls.append("second validate in")
        yield
        calls.append("second validate out")


class Plain(SchemaExtension):
    def on_parse(self) -> None:  # not a generator: Strawberry's own path
        calls.append("plain parse")


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> int:
        return 1

    @strawberry.field
    def broken(self) -> int:
        raise ValueError("broken")


schema = GraphlakeSchema(query=Query, extensions=[First, Second, Plain])


async def test_hooks_run_in_order_around_each_stage_every_operation() -> None:
    assert isinstance(schema.create_extensions_runner(None, []), KeptHooksRunner)  # type: ignore[arg-type]
    for round_ in range(2):  # the second operation uses the kept lookups
        calls.clear()
        result = await schema.execute("{ ok broken }")
        assert result.data is None or result.data.get("ok") == 1
        assert [e.message for e in result.errors or []] == ["broken"]
        execute_in = [c for c in calls if c.startswith("first execute in")]
        assert len(execute_in) == 1, round_
        assert calls == [
            "first operation in", "second operation in",
            "plain parse",
            "second validate in", "second validate out",
            execute_in[0], "first execute out",
            "second operation out, errors: 1", "first operation out",
        ]


async def test_each_operation_binds_its_own_extension_instances() -> None:
    contexts_seen.clear()
    await schema.execute("{ ok }")
    await schema.execute("{ ok }")
    # Two operations, two extension instances, two execution contexts.
    assert len(contexts_seen) == 2 and contexts_seen[0] is not contexts_seen[1]
    contexts_seen.clear()


class Counting(SchemaExtension):
    """The one extension here that gives results: each answer says how many it gave."""

    given = 0

    async def get_results(self) -> dict:
        Counting.given += 1
        return {"counted": Counting.given}


counting_schema = GraphlakeSchema(query=Query, extensions=[First, Second, Plain, Counting])


async def test_results_come_from_the_extensions_that_give_them() -> None:
    assert [_gives_results(e) for e in (First, Second, Plain, Counting)] == [False, False, False, True]
    before = Counting.given
    first = await counting_schema.execute("{ ok }")
    second = await counting_schema.execute("{ ok }")
    assert first.extensions == {"counted": before + 1} and second.extensions == {"counted": before + 2}
    assert (await schema.execute("{ ok }")).extensions == {}  # none gives any: nothing to say


def test_strawberry_still_gathers_results_as_the_runner_expects() -> None:
    import inspect

    from strawberry.extensions.runner import SchemaExtensionsRunner

    assert list(inspect.signature(SchemaExtensionsRunner.__init__).parameters) == [
        "self", "execution_context", "extensions"], "Strawberry's runner changed (KeptHooksRunner makes one)"
    assert list(inspect.signature(SchemaExtensionsRunner.get_extensions_results).parameters) == ["self", "ctx"]
