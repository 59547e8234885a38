"""Relay building blocks: the Node interface, opaque global IDs and generic connections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry
from bson import ObjectId

from resolvers.errors import BadUserInput

T = TypeVar("T")


@strawberry.interface(description="An object with a global, opaque ID that `node(id:)` resolves.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global ID.")


def encode_id(type_name: str, raw_id: object) -> strawberry.ID:
    """The global ID of object `raw_id` of GraphQL type `type_name`."""
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{raw_id}".encode()).decode().rstrip("="))


def split_id(global_id: str, *, field: str = "id") -> tuple[str, str]:
    """(type name, raw id) of a global ID; BAD_USER_INPUT naming `field` when it is not one."""
    try:
        decoded = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, raw_id = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field) from None
    if not type_name or not raw_id:
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field)
    return type_name, raw_id


def decode_id(global_id: str, type_name: str, *, field: str = "id") -> str:
    """The raw id inside a global ID that must name an object of `type_name`."""
    actual, raw_id = split_id(global_id, field=field)
    if actual != type_name:
        raise BadUserInput(f"expected the ID of a {type_name}, got one of a {actual}", field=field)
    return raw_id


@strawberry.type(description="Where a page sits in its list (Relay).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="One item of a page and the cursor that points just after it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list; pass `endCursor` as `after` to get the next page.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds (costs a count; ask only when needed).")
    async def total_count(self) -> int:
        return await self.count()


def decode_object_id(global_id: str, type_name: str, *, field: str = "id") -> ObjectId:
    """The ObjectId inside a global ID of `type_name`; BAD_USER_INPUT naming `field` otherwise."""
    raw = decode_id(global_id, type_name, field=field)
    if not ObjectId.is_valid(raw):
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field)
    return ObjectId(raw)


def decode_object_ids(global_ids: list[str], type_name: str, *, field: str) -> list[ObjectId]:
    """Many IDs of one type, each error naming its position: `field[i]`."""
    return [decode_object_id(g, type_name, field=f"{field}[{i}]") for i, g in enumerate(global_ids)]
