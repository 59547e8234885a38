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


# --- the unusual cases, run on Strawberry's own runner and on ours: the same calls, the same outcome


class Watch(SchemaExtension):
    """Outermost: records what passes through its operation and lets it go on."""

    async def on_operation(self) -> AsyncIterator[None]:
        try:
            yield
        except Exception as error:
            calls.append(f"watch saw {type(error).__name__}: {error}")
            raise
        calls.append("watch out")


class Swallow(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            calls.append(f"swallowed {error}")


class RaiseOnExit(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        raise ValueError("raised on exit")


class AsyncRaiseOnExit(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        yield
        raise KeyError("async raised on exit")


class RaiseOnEnter(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        raise LookupError("raised on enter")
        yield  # a generator all the same


class YieldTwice(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield
        calls.append("yield twice: second")
        yield


class NoYield(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        return
        yield


class Inner(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        calls.append("inner in")
        try:
            yield
        finally:
            calls.append("inner out")


UNUSUAL = {
    "a hook raising as it ends": [Watch, Inner, RaiseOnExit],
    "an async hook raising as it ends": [Watch, Inner, AsyncRaiseOnExit],
    "a hook swallowing what a later one raised": [Watch, Swallow, Inner, RaiseOnExit],
    "a hook raising before it yields": [Watch, Inner, RaiseOnEnter],
    "a hook yielding twice": [Watch, Inner, YieldTwice],
    "a hook never yielding": [Watch, Inner, NoYield],
}


async def outcome(schema: strawberry.Schema) -> tuple[list[str], str]:
    calls.clear()
    try:
        result = await schema.execute("{ ok }")
    except Exception as error:
        told = f"raised {type(error).__name__}: {error}"
    else:
        told = f"data {result.data}, errors {[e.message for e in result.errors or []]}"
    return list(calls), told


async def test_unusual_hooks_behave_as_on_strawberrys_runner() -> None:
    for case, extensions in UNUSUAL.items():
        ours = GraphlakeSchema(query=Query, extensions=extensions)
        stock = strawberry.Schema(query=Query, extensions=extensions)
        assert not isinstance(stock.create_extensions_runner(None, []), KeptHooksRunner)  # type: ignore[arg-type]
        expected = await outcome(stock)
        assert await outcome(ours) == expected, case
        assert expected[0] or "raised" in expected[1], case  # each case does something to compare


class Wrapping(SchemaExtension):
    """Wraps every resolver, as tracing's spans do: such a schema still builds its middleware."""

    def resolve(self, _next, root, info, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(f"resolve {info.field_name}")
        return _next(root, info, *args, **kwargs)


async def test_resolvers_are_wrapped_only_where_an_extension_asks() -> None:
    calls.clear()
    assert (await GraphlakeSchema(query=Query, extensions=[Wrapping]).execute("{ ok }")).data == {"ok": 1}
    assert calls == ["resolve ok"]
    calls.clear()
    assert (await schema.execute("{ ok }")).data == {"ok": 1}  # none wraps: the one empty manager
    assert not [c for c in calls if c.startswith("resolve")]
