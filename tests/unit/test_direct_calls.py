"""resolvers/direct_calls.py: resolvers called directly and unions told by class give what Strawberry's
own path gives, values and errors alike, and every resolver Strawberry would wrap keeps its wrapping;
no server."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import pytest
import strawberry
from strawberry.permission import BasePermission

from resolvers import direct_calls
from resolvers.internals import graphql_schema
from resolvers.scalars import SCALAR_MAP


@strawberry.enum
class Size(enum.Enum):
    SMALL = "SMALL"
    LARGE = "LARGE"


@strawberry.input
class Shout:
    times: int


class Nobody(BasePermission):
    message = "nobody may"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


class Oops(Exception):
    """What `risky` raises, and the handler below turns into a value."""


@strawberry.type
class Refusal:
    reason: str


@strawberry.type
class Fine:
    value: int


class Handled(strawberry.ExceptionHandler[Oops, Refusal]):
    def handle(self, exception: Oops, *, field: Any, info: Any) -> Refusal:
        return Refusal(reason=str(exception))


@strawberry.type
class Box:
    width: float


@strawberry.type
class Dot:
    x: float


@strawberry.type
class BigBox(Box):
    """A subclass of a union member, which is not one: the lookup leaves it to Strawberry, which refuses it."""


Shape = Annotated[Box | Dot, strawberry.union("Shape")]


@strawberry.type
class Thing:
    name: str

    @strawberry.field
    def plain(self) -> str:
        return self.name.upper()

    @strawberry.field
    def context(self, info: strawberry.Info) -> str:
        return f"{info.context['who']} asked {info.field_name} at {list(info.path.as_list())}"

    @strawberry.field
    def scalars(self, times: int = 1, sep: str | None = None, size: Size = Size.SMALL, how_loud: int | None = None) -> str:
        return (sep or "-").join([self.name] * times) + size.value + "!" * (how_loud or 0)

    @strawberry.field
    def risky(self) -> Annotated[Fine | Refusal, strawberry.union("Outcome")]:
        raise Oops(f"{self.name} refused")

    @strawberry.field
    def failing(self) -> str | None:
        raise ValueError(f"no {self.name}")

    @strawberry.field
    def failing_required(self) -> int:  # its error nulls the whole thing
        raise ValueError("required")

    @strawberry.field
    async def later(self) -> str:
        return self.name

    @strawberry.field
    def shout(self, how: Shout) -> str:
        return self.name * how.times

    @strawberry.field(permission_classes=[Nobody])
    def secret(self) -> str | None:
        return "leaked"

    @strawberry.field
    def shapes(self) -> list[Shape | None]:
        # A Box cast as a Dot: Strawberry's resolution decides it (the lookup leaves casts alone).
        box = Box(width=4.0)
        box.x = 5.0  # type: ignore[attr-defined]
        return [Box(width=2.0), Dot(x=1.0), BigBox(width=3.0), strawberry.cast(Dot, box)]


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing | None]:
        return [Thing(name="a"), Thing(name="b")]

    @strawberry.field
    @staticmethod
    def hello(name: str = "you") -> str:
        return f"hello {name}"


QUERY = """{ things { name plain context scalars two: scalars(times: 2, sep: "+", size: LARGE, howLoud: 2) nulled: scalars(sep: null)
              failing later shout(how: {times: 3}) secret shapes { __typename ... on Box { width } ... on Dot { x } }
              risky { __typename ... on Refusal { reason } } }
            hello named: hello(name: "me") }"""
FAILING_REQUIRED = "{ things { name failingRequired } }"


def schema(direct: bool) -> strawberry.Schema:
    made = strawberry.Schema(query=Query, scalar_overrides=SCALAR_MAP, exception_handlers=[Handled()])
    if direct:
        direct_calls.install(made)
    return made


def resolved_directly(made: strawberry.Schema) -> set[str]:
    return {f"{type_name}.{name}" for type_name in ("Thing", "Query")
            for name, field in graphql_schema(made).type_map[type_name].fields.items()
            if getattr(field.resolve, "__name__", None) == "direct"}


def test_only_plain_sync_resolvers_with_scalar_arguments_are_called_directly() -> None:
    """Not an async one, one with an input argument, one with a permission class (a field extension),
    nor one whose errors an exception handler may turn into a value (`risky`)."""
    assert resolved_directly(schema(True)) == {"Thing.plain", "Thing.context", "Thing.scalars", "Thing.failing",
                                               "Thing.failingRequired", "Thing.shapes", "Query.things", "Query.hello"}
    assert resolved_directly(schema(False)) == set()
    assert graphql_schema(schema(True)).type_map["Shape"].resolve_type.__name__ == "resolve_type"  # the lookup's
    assert graphql_schema(schema(False)).type_map["Shape"].resolve_type.__name__ == "_resolve_union_type"


@pytest.mark.parametrize("query", [QUERY, FAILING_REQUIRED])
async def test_direct_calls_give_what_strawberry_gives_values_and_errors_alike(query: str) -> None:
    usual = await schema(False).execute(query, context_value={"who": "tester"})
    direct = await schema(True).execute(query, context_value={"who": "tester"})
    assert direct.data == usual.data
    assert [(e.message, e.path) for e in direct.errors or []] == [(e.message, e.path) for e in usual.errors or []]
    assert usual.errors  # each query has some: a raising resolver, a refused permission


async def test_the_answers_are_the_resolvers_own() -> None:
    result = await schema(True).execute(QUERY, context_value={"who": "tester"})
    first = result.data["things"][0]
    assert first["plain"] == "A" and first["context"] == "tester asked context at ['things', 0, 'context']"
    assert (first["scalars"], first["two"], first["nulled"]) == ("aSMALL", "a+aLARGE!!", "aSMALL")
    assert first["risky"] == {"__typename": "Refusal", "reason": "a refused"}  # the handler's, not an error
    assert first["secret"] is None and first["shout"] == "aaa" and first["later"] == "a"
    assert first["shapes"][:3] == [{"__typename": "Box", "width": 2.0}, {"__typename": "Dot", "x": 1.0}, None]
    assert first["shapes"][3] == {"__typename": "Dot", "x": 5.0}  # as cast
    assert (result.data["hello"], result.data["named"]) == ("hello you", "hello me")
    assert first["failing"] is None and {e.message.split(" of ")[0] for e in result.errors} == {
        "no a", "no b", "nobody may", "The type \"<class 'tests.unit.test_direct_calls.BigBox'>\""}
