"""Mutations refused with UNAVAILABLE once the database's schema changed under this server
(services/schema_watch.py): it would write in the shapes it started on, which the database may no
longer read. Reads go on: they change nothing, and a client may still want what it can get."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.extensions.field_extension import FieldExtension


class SchemaGate(FieldExtension):
    """On root mutation fields (the outermost of their extensions): UNAVAILABLE, saying why, once
    the schema changed under this server."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        info.context.state.schema_watch.refuse_writes()
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info,
                            **kwargs: Any) -> Any:
        info.context.state.schema_watch.refuse_writes()
        return await next_(source, info, **kwargs)
