"""`node(id:)` and `nodes(ids:)`: any object by its global ID, authorized per type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry

from documents.api_token import Role
from graphlake.context import Info
from resolvers.auth.loaders import fetch_api_tokens
from resolvers.errors import BadUserInput
from resolvers.permissions import CanRead, require_role
from resolvers.relay import Node, split_id


@dataclass(frozen=True)
class NodeKind:
    """What reading one type of node takes: a role, and a batch fetch by raw ids."""

    role: Role
    fetch: Callable[[Sequence[str]], Awaitable[dict[str, Any]]]


# Every type that implements Node has a row here; a test checks that against the schema.
NODE_KINDS: dict[str, NodeKind] = {
    "ApiToken": NodeKind(Role.ADMIN, fetch_api_tokens),
}


def _kind(type_name: str, global_id: str, field: str) -> NodeKind:
    try:
        return NODE_KINDS[type_name]
    except KeyError:
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field) from None


@strawberry.type
class NodeQueries:
    @strawberry.field(permission_classes=[CanRead], description="Any object by its global ID; null if it does not exist.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, raw_id = split_id(id)
        kind = _kind(type_name, id, "id")
        require_role(info.context, kind.role)
        return (await kind.fetch([raw_id])).get(raw_id)

    @strawberry.field(permission_classes=[CanRead], description="Objects by global ID, in the order asked; null where missing.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > info.context.settings.max_page_size:
            raise BadUserInput(f"at most {info.context.settings.max_page_size} ids at once", field="ids")
        wanted: dict[str, list[str]] = defaultdict(list)
        parsed = []
        for position, global_id in enumerate(ids):
            type_name, raw_id = split_id(global_id, field=f"ids[{position}]")
            _kind(type_name, global_id, f"ids[{position}]")
            wanted[type_name].append(raw_id)
            parsed.append((type_name, raw_id))
        for type_name in wanted:  # authorize every type before reading any
            require_role(info.context, NODE_KINDS[type_name].role)
        found = {type_name: await NODE_KINDS[type_name].fetch(raw_ids) for type_name, raw_ids in wanted.items()}
        return [found[type_name].get(raw_id) for type_name, raw_id in parsed]
