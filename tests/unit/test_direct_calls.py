"""resolvers/direct_calls.py: resolvers called directly and unions told by class give what Strawberry's
own path gives, values and errors alike, and every resolver Strawberry would wrap keeps its wrapping;
no server."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from documents.roles import Role
from resolvers import direct_calls
from resolvers.inputs import batch_input
from resolvers.internals import graphql_schema
from resolvers.permissions import CanRead, CanWrite, IsAdmin, RoleRequired
from resolvers.scalars import SCALAR_MAP


@strawberry.enum
class Size(enum.Enum):
    SMALL = "SMALL"
    LARGE = "LARGE"


@strawberry.input
class Shout:
    times: int


@batch_input
@strawberry.input
class Inner:
    width: float


@batch_input
@strawberry.input
class Piece:
    """A list argument of a batch_input type: the direct call converts its items itself."""

    count: int
    inner: Inner | None = None
    size: Size = Size.SMALL


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


class Tagged(FieldExtension):
    """Notes in the caller's log when it starts and ends: the chain's order shows in the log."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def resolve(self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        info.context.log.append(f"{self.tag}<{sorted(kwargs)}")
        result = next_(source, info, **kwargs)
        info.context.log.append(f"{self.tag}>")
        return f"{self.tag}({result})"

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info,
                            **kwargs: Any) -> Any:
        info.context.log.append(f"{self.tag}<{sorted(kwargs)}")
        result = await next_(source, info, **kwargs)
        info.context.log.append(f"{self.tag}>")
        return f"{self.tag}({result})"


class Renamed(FieldExtension):
    """Reshapes the arguments: Strawberry's chain must keep such a field."""

    def map_arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "times": kwargs["count"]}


class Caller(dict):
    """A context with a role, as resolvers/permissions.py reads one, and a log of the chain's steps."""

    def __init__(self, role: Role) -> None:
        super().__init__(who="tester")
        self.auth_error = None
        self.principal = SimpleNamespace(role=role)
        self.settings = SimpleNamespace(anonymous_read=False)
        self.log: list[str] = []


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

    @strawberry.field
    def tally(self, pieces: list[Piece], more: list[Piece | None] | None = None, sep: str = ",") -> str:
        return sep.join(f"{type(p).__name__}{p.count}{p.size.value}{p.inner.width if p.inner else '-'}"
                        for p in [*pieces, *(more or [])] if p is not None)

    @strawberry.field(permission_classes=[Nobody])
    def secret(self) -> str | None:
        return "leaked"

    @strawberry.field(permission_classes=[CanRead], extensions=[Tagged("outer"), Tagged("outermost")])
    async def checked(self, info: strawberry.Info, how: Shout | None = None) -> str:
        info.context.log.append("checked")
        return self.name * (how.times if how else 1)

    @strawberry.field(permission_classes=[CanRead], extensions=[Tagged("sync")])
    def checked_sync(self, info: strawberry.Info, times: int = 1) -> str:
        info.context.log.append("checked_sync")
        return self.name * times

    @strawberry.field(permission_classes=[CanWrite], extensions=[Tagged("refused")])
    async def writer(self, info: strawberry.Info) -> str | None:
        info.context.log.append("writer ran")  # never: the caller only reads
        return "written"

    @strawberry.field(extensions=[PermissionExtension([IsAdmin()], fail_silently=True)])
    async def quiet(self) -> str | None:
        return "admin"

    @strawberry.field(extensions=[Renamed()])
    def renamed(self, count: int, times: int = 0) -> str:
        return self.name * times

    @strawberry.field
    async def named(self, i: strawberry.Info, source: str = "dflt") -> str:
        # An argument named as graphql-core's first parameter (which Strawberry's chain of extensions
        # could not take either), and an Info under another name.
        i.context.log.append(f"named {i.field_name}")
        return f"{self.name}:{source}"

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
              checked loud: checked(how: {times: 2}) checkedSync(times: 3) writer quiet renamed(count: 2)
              named other: named(source: "s")
              tally(pieces: [{count: 1, inner: {width: 2}}, {count: 3, size: LARGE}])
              tally2: tally(pieces: [], more: [{count: 5}, null], sep: "+") tally3: tally(pieces: [{count: 4}], more: null)
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


def test_resolvers_are_called_directly_unless_strawberry_must_wrap_them() -> None:
    """Sync and async ones alike, with input arguments, role checks and field extensions; not one
    with a permission of another kind (`secret`), one that fails silently (`quiet`), one whose
    extension reshapes its arguments (`renamed`), nor one whose errors an exception handler may turn
    into a value (`risky`)."""
    assert resolved_directly(schema(True)) == {
        "Thing.plain", "Thing.context", "Thing.scalars", "Thing.failing", "Thing.failingRequired", "Thing.shapes",
        "Thing.later", "Thing.shout", "Thing.tally", "Thing.checked", "Thing.checkedSync", "Thing.writer", "Thing.named",
        "Query.things", "Query.hello"}
    assert resolved_directly(schema(False)) == set()
    assert graphql_schema(schema(True)).type_map["Shape"].resolve_type.__name__ == "resolve_type"  # the lookup's
    assert graphql_schema(schema(False)).type_map["Shape"].resolve_type.__name__ == "_resolve_union_type"


@pytest.mark.parametrize("query", [QUERY, FAILING_REQUIRED])
async def test_direct_calls_give_what_strawberry_gives_values_and_errors_alike(query: str) -> None:
    """The same answers, the same errors in the same order, and the chain's steps run in the same order."""
    usual_caller, direct_caller = Caller(Role.VIEWER), Caller(Role.VIEWER)
    usual = await schema(False).execute(query, context_value=usual_caller)
    direct = await schema(True).execute(query, context_value=direct_caller)
    assert direct.data == usual.data
    assert [(e.message, e.path) for e in direct.errors or []] == [(e.message, e.path) for e in usual.errors or []]
    assert usual.errors  # each query has some: a raising resolver, a refused permission
    assert direct_caller.log == usual_caller.log


async def test_a_direct_chain_checks_the_role_inside_its_extensions_as_strawberry_does() -> None:
    """The last extension is outermost, and so is the role check of `permission_classes` (Strawberry
    appends it); each step sees the converted arguments, and a refused role stops the chain there."""
    for direct in (False, True):
        caller = Caller(Role.VIEWER)
        result = await schema(direct).execute(
            '{ things { loud: checked(how: {times: 2}) checkedSync(times: 3) writer } }', context_value=caller)
        assert result.data["things"][0] == {"loud": "outermost(outer(aa))", "checkedSync": "sync(aaa)", "writer": None}
        assert [e.message for e in result.errors] == ["this needs role CONTRIBUTOR; your token has VIEWER"] * 2
        start = caller.log.index("outermost<['how']")
        assert caller.log[start:start + 5] == ["outermost<['how']", "outer<['how']", "checked", "outer>", "outermost>"]
        assert caller.log[:3] == ["sync<['times']", "checked_sync", "sync>"]  # sync fields resolve as they are met
        assert not [step for step in caller.log if step.startswith(("refused", "writer"))]  # refused first
        admin = await schema(direct).execute('{ things { writer quiet } }', context_value=Caller(Role.ADMIN))
        assert admin.data["things"][0] == {"writer": "refused(written)", "quiet": "admin"} and not admin.errors


async def test_the_answers_are_the_resolvers_own() -> None:
    result = await schema(True).execute(QUERY, context_value=Caller(Role.VIEWER))
    first = result.data["things"][0]
    assert first["plain"] == "A" and first["context"] == "tester asked context at ['things', 0, 'context']"
    assert (first["scalars"], first["two"], first["nulled"]) == ("aSMALL", "a+aLARGE!!", "aSMALL")
    assert first["risky"] == {"__typename": "Refusal", "reason": "a refused"}  # the handler's, not an error
    assert first["secret"] is None and first["shout"] == "aaa" and first["later"] == "a"
    assert first["shapes"][:3] == [{"__typename": "Box", "width": 2.0}, {"__typename": "Dot", "x": 1.0}, None]
    assert first["shapes"][3] == {"__typename": "Dot", "x": 5.0}  # as cast
    assert (result.data["hello"], result.data["named"]) == ("hello you", "hello me")
    assert (first["checked"], first["loud"], first["checkedSync"]) == ("outermost(outer(a))", "outermost(outer(aa))",
                                                                       "sync(aaa)")
    assert (first["writer"], first["quiet"], first["renamed"]) == (None, None, "aa")
    assert (first["named"], first["other"]) == ("a:dflt", "a:s")
    assert first["failing"] is None and {e.message.split(" of ")[0] for e in result.errors} == {
        "no a", "no b", "nobody may", "The type \"<class 'tests.unit.test_direct_calls.BigBox'>\"",
        "this needs role CONTRIBUTOR; your token has VIEWER", "this needs role ADMIN; your token has VIEWER"}


async def test_a_role_check_that_answers_false_refuses_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our role checks raise when they refuse; one that answered False instead must still refuse,
    never let the caller through, and as Strawberry refuses it."""
    def refusing(self: Any, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False

    monkeypatch.setattr(RoleRequired, "has_permission", refusing)
    results = []
    for direct in (False, True):
        made = schema(direct)
        assert ("Thing.checked" in resolved_directly(made)) is direct
        results.append(await made.execute("{ things { checked checkedSync } }", context_value=Caller(Role.ADMIN)))
    usual, direct_result = results
    assert direct_result.data == usual.data == {"things": [None, None]}  # refused: the non-null fields null each thing
    assert [(e.message, e.path) for e in direct_result.errors] == [(e.message, e.path) for e in usual.errors]
    assert direct_result.errors and {e.path[0] for e in direct_result.errors} == {"things"}
