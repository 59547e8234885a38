"""The audit trail: every successful mutation records an AUDIT event naming who, what, and which ids.

Only identifiers are recorded: the IDs among the mutation's arguments and the IDs of what it
returned, never a token secret, a value, a text or any other payload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension

from documents.common import Ownership
from documents.json_value import StoredJson
from resolvers.events import service
from resolvers.errors import BadUserInput
from resolvers.relay import split_id

AUDIT = "AUDIT"
MAX_IDS = 100  # a batch of 10,000 events is audited by its count and first ids


# Types whose IDs the audit names; a payload string that happens to decode is not one of them.
ID_TYPES = frozenset({"ApiToken", "Asset", "AssetRetention", "Collection", "CollectionItem", "Datum", "Dataset",
                      "DatasetVersion", "AnnotationSchema", "AnnotationSet", "AnnotationRecord", "UploadSession", "Event"})


def _is_id(value: str) -> bool:
    try:
        return split_id(value)[0] in ID_TYPES
    except BadUserInput:
        return False


def _ids_in(value: Any, depth: int = 0) -> Iterable[str]:
    """Global IDs inside arguments or a result: ID strings, walking lists, dicts, inputs and the
    declared GraphQL fields of returned objects (never private fields such as stored documents)."""
    if depth > 4 or value is None:
        return
    if isinstance(value, str):
        if _is_id(value):
            yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _ids_in(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _ids_in(item, depth + 1)
    elif (fields := getattr(getattr(value, "__strawberry_definition__", None), "fields", None)) is not None:
        for field in fields:  # object and input types (enums have a definition but no fields)
            if field.python_name != "secret":  # a created token's secret never reaches the log
                yield from _ids_in(getattr(value, field.python_name, None), depth + 1)


class AuditTrail(FieldExtension):
    """On root mutation fields: after success, log one AUDIT event."""

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info,
                            **kwargs: Any) -> Any:
        result = await next_(source, info, **kwargs)
        context = info.context
        principal = context.principal
        ids = list(dict.fromkeys([*_ids_in(kwargs), *_ids_in(result)]))
        event = service.NewEvent(
            event_type=AUDIT, message=f"{info.field_name} by {principal.actor if principal else 'anonymous'}",
            source=Ownership(user_id=principal.user_id if principal else None),
            data=StoredJson.encode({
                "mutation": info.field_name, "token": principal.token_name if principal else None,
                "ids": ids[:MAX_IDS], "idCount": len(ids), "requestId": context.request_id,
            }),
        )
        await service.log_events(context.state.feed, [event], context.settings)
        return result
