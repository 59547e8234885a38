"""GraphQL enums over enums that documents/ defines (which import no Strawberry), each value described."""

from __future__ import annotations

from collections.abc import Mapping
from enum import EnumMeta
from typing import TypeVar

import strawberry

E = TypeVar("E", bound=EnumMeta)


def described_enum(cls: E, description: str, values: Mapping[str, str]) -> E:
    """`strawberry.enum(cls)` with a description for every value: `strawberry.enum_value` would have to sit
    in the document's own enum, so the descriptions are set on Strawberry's definition of each value."""
    wrapped = strawberry.enum(cls, description=description)
    definition = wrapped.__strawberry_definition__  # type: ignore[attr-defined]
    names = {value.name for value in definition.values}
    if names != set(values):  # a value added to the document's enum must be described here too
        raise ValueError(f"{definition.name}: described {sorted(values)}, defined {sorted(names)}")
    for value in definition.values:
        value.description = values[value.name]
    return wrapped
