"""resolvers/plain_fields.py: plain scalar and enum attributes completed without graphql-core's
per-field machinery give what graphql-core gives, errors included; no server."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from resolvers.plain_fields import PlainLeafExecutor
from resolvers.scalars import JSON, SCALAR_MAP


@strawberry.enum
class Colour(enum.Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.type
class Thing:
    name: str
    count: int
    weight: float | None
    colour: Colour
    maybe_colour: Colour | None
    data: JSON
    note: str | None = None

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


GOOD = Thing(name="a", count=3, weight=None, colour=Colour.BLUE, maybe_colour=None, data={"k": [1, 2]}, note="n")
# Values a type refuses, and a null where the schema promises a value: graphql-core's errors, at the field.
BAD = [
    Thing(name=None, count=1, weight=1.0, colour=Colour.RED, maybe_colour=Colour.RED, data=None),  # type: ignore[arg-type]
    Thing(name="b", count="x", weight=2.5, colour=Colour.RED, maybe_colour=None, data=1),  # type: ignore[arg-type]
    Thing(name="c", count=2, weight=float("nan"), colour="GREEN", maybe_colour=None, data="s"),  # type: ignore[arg-type]
    Thing(name="d", count=2**40, weight=0.5, colour=Colour.RED, maybe_colour="RED", data=[]),  # type: ignore[arg-type]
]


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing | None]:  # nullable items: each bad one is null alone, with its error
        return [GOOD, *BAD]

    @strawberry.field
    def good(self) -> Thing:
        return GOOD


class EveryResolver(SchemaExtension):
    """An extension that wraps every resolver (as tracing's does): plain fields must go through it."""

    seen: list[str] = []

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        EveryResolver.seen.append(info.field_name)
        return _next(root, info, *args, **kwargs)


QUERY = """{ things { __typename name count weight colour maybeColour data note shout loud: shout(times: 2)
             again: name ... on Thing { count } } }"""


def schema(executor: type | None, *extensions: Any) -> strawberry.Schema:
    return strawberry.Schema(query=Query, scalar_overrides=SCALAR_MAP, extensions=list(extensions),
                             **({"execution_context_class": executor} if executor else {}))


def count_fields(monkeypatch: pytest.MonkeyPatch, executor: type) -> list[str]:
    """The name of each field `executor.execute_field` is called for, from now on."""
    calls: list[str] = []
    original = executor.execute_field

    def counted(self: Any, parent_type: Any, source: Any, fields: Any, path: Any, position: Any) -> Any:
        calls.append(fields[0].node.name.value)
        return original(self, parent_type, source, fields, path, position)

    monkeypatch.setattr(executor, "execute_field", counted)
    return calls


async def test_plain_leaves_give_what_graphql_core_gives_values_and_errors_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    usual = await schema(None).execute(QUERY)
    calls = count_fields(monkeypatch, PlainLeafExecutor)
    plain = await schema(PlainLeafExecutor).execute(QUERY)
    assert calls, "the plain executor was not used"
    assert plain.data == usual.data
    assert usual.errors and [(e.message, e.path) for e in plain.errors or []] == [(e.message, e.path) for e in usual.errors]
    assert {tuple(e.path) for e in usual.errors} >= {("things", 1, "name"), ("things", 2, "count"), ("things", 3, "weight"),
                                                   ("things", 3, "colour"), ("things", 4, "count")}


async def test_an_extension_that_wraps_every_resolver_still_sees_plain_fields() -> None:
    EveryResolver.seen = []
    result = await schema(PlainLeafExecutor, EveryResolver).execute("{ good { name count colour note } }")
    assert result.errors is None and result.data == {"good": {"name": "a", "count": 3, "colour": "BLUE", "note": "n"}}
    assert EveryResolver.seen == ["good", "name", "count", "colour", "note"]


async def test_only_fields_with_resolvers_or_arguments_take_graphql_cores_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from resolvers.internals import StrawberryGraphQLCoreExecutionContext

    usual = count_fields(monkeypatch, StrawberryGraphQLCoreExecutionContext)
    result = await schema(PlainLeafExecutor).execute("{ good { __typename name count colour maybeColour data note shout } }")
    assert result.errors is None and result.data == {"good": {
        "__typename": "Thing", "name": "a", "count": 3, "colour": "BLUE", "maybeColour": None, "data": {"k": [1, 2]},
        "note": "n", "shout": "A"}}
    assert usual == ["good", "shout"]
