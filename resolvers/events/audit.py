"""The audit trail's GraphQL half: every successful mutation records an AUDIT event (services/events/audit.py)
naming who, what, and which ids; and so does a logging mutation that fails after it stored events.

Only identifiers are recorded: the IDs among the mutation's arguments and the IDs of what it
returned, never a token secret, a value, a text or any other payload.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.relay.types import GlobalID
from strawberry.types.base import StrawberryList, StrawberryOptional
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.union import StrawberryUnion
from strawberry.utils.str_converters import to_camel_case

from services.availability import unavailable
from services.errors import GraphlakeError
from services.events import audit
from services.node_ids import NodeType, encode_id, is_node_id

if TYPE_CHECKING:
    from documents.event import Event
    from resolvers.context import Context

log = logging.getLogger("graphlake.audit")


def _may_hold_ids(type_: Any, seen: frozenset = frozenset()) -> bool:
    """Whether a declared GraphQL type can contain an ID (directly, in a list, or in its fields)."""
    while isinstance(type_, StrawberryOptional | StrawberryList | LazyType):
        type_ = type_.resolve_type() if isinstance(type_, LazyType) else type_.of_type
    if type_ is strawberry.ID or type_ is GlobalID:
        return True
    if isinstance(type_, StrawberryUnion):
        return any(_may_hold_ids(t, seen) for t in type_.types)
    fields = getattr(getattr(type_, "__strawberry_definition__", None), "fields", None)
    if not fields or type_ in seen:
        return False
    return any(_may_hold_ids(f.type, seen | {type_}) for f in fields)


def _unwrapped(type_: Any) -> Any:
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    return type_


@cache
def _id_fields(cls: type) -> tuple[str, ...]:
    """The fields of an object or input class worth walking for IDs (a created token's secret never is)."""
    return tuple(f.python_name for f in cls.__strawberry_definition__.fields
                 if f.python_name != "secret" and _may_hold_ids(f.type))


def audited_ids(arguments: Iterable[Any], result: Any) -> list[str]:
    """The global IDs among a mutation's arguments, then its result, each once, in the order first met."""
    found: dict[str, None] = {}  # an ordered set
    refused: set[str] = set()
    _collect_ids(list(arguments), found, refused, 0)
    _collect_ids(result, found, refused, 0)
    return list(found)


def _collect_ids(value: Any, found: dict[str, None], refused: set[str], depth: int) -> None:
    """Global IDs inside arguments or a result, following only what is declared to hold IDs: not
    free text, not JSON payloads, not private fields such as stored documents. A string met again is
    not decoded again: a batch names its set, datums and assets over and over (1,000 records of 100
    datums were 4,200 decodings, most of the walk's 4.1 ms; now 1.65 ms), and appending to one
    collection costs no generator per level."""
    if depth > 4 or value is None:
        return
    if isinstance(value, str):
        if value not in found and value not in refused:
            if is_node_id(value):
                found[value] = None
            else:
                refused.add(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_ids(item, found, refused, depth + 1)
    elif getattr(getattr(value, "__strawberry_definition__", None), "fields", None) is not None:
        for name in _id_fields(type(value)):  # object and input types (enums have a definition but no fields)
            _collect_ids(getattr(value, name, None), found, refused, depth + 1)


class AuditTrail(FieldExtension):
    """On root mutation fields: after success, log one AUDIT event."""

    def apply(self, field: StrawberryField) -> None:
        self.id_arguments = [a.python_name for a in field.arguments if _may_hold_ids(a.type)]
        # Its switches (verifyAnnotations' `verified`, deleteAsset's `force`), which say what it did to
        # those ids: verifying and un-verifying were the same entry.
        self.flags = {a.python_name: a.graphql_name or to_camel_case(a.python_name)
                      for a in field.arguments if _unwrapped(a.type) is bool}

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info,
                            **kwargs: Any) -> Any:
        context = info.context
        async with context.state.feed.together():  # the mutation's own events and this one: one write
            result = await next_(source, info, **kwargs)
            ids = audited_ids([kwargs.get(name) for name in self.id_arguments], result)
            flags = {shown: kwargs[name] for name, shown in self.flags.items() if kwargs.get(name) is not None}
            await record_mutation(context, info.field_name, ids, **({"arguments": flags} if flags else {}))
        return result


async def record_mutation(context: Context, mutation: str, ids: list[str], **what: object) -> None:
    """The AUDIT event of `mutation`, run by the request's principal, touching `ids`."""
    principal = context.principal
    await audit.record(context.state.feed, context.settings, f"{mutation} by {principal.actor if principal else 'anonymous'}",
                       user_id=principal.user_id if principal else None, ids=ids, mutation=mutation,
                       token=principal.token_name if principal else None, requestId=context.request_id, **what)


def failure_code(error: BaseException) -> str:
    """What a failed call ended in, as its client was told (CANCELLED: it was told nothing)."""
    if isinstance(error, GraphlakeError):
        return str(error.extensions["code"])
    if unavailable(error) is not None:
        return "UNAVAILABLE"
    return "CANCELLED" if isinstance(error, asyncio.CancelledError) else "INTERNAL"


class StoredEvents:
    """The events a logging mutation (logEvent, logEvents) stored, as the service tells them once
    they are stored, whatever the call ends in (services/events/log.log_events' `on_stored`), for the
    metrics and for the audit trail.

    AuditTrail records only a call that succeeds, naming every event it answers with, stored or
    found under its key. A call that fails after it stored some (a keyed batch refused at a key
    another call stored meanwhile, which ends in CONFLICT or UNAVAILABLE and keeps what it stored;
    an answer lost after the database stored the batch; the request cancelled) left them without
    an AUDIT event saying who logged them, unless a resend of the batch succeeded later: `failed`
    records it, naming those events, with `failed`: the error's code. Events stored only after
    the call ended (its write waited in a group insert as the request was cancelled) get theirs as
    they are stored. Each event is told once, though a cancelled keyed write can be found stored by
    its own lookup and then told again by its group insert."""

    def __init__(self, context: Context, mutation: str, count: Callable[[list[int]], None] | None) -> None:
        self.context = context
        self.mutation = mutation
        self.count = count
        self.events: list[Event] = []
        self._told: set[Any] = set()
        self._failure: str | None = None  # set once the call failed

    def __call__(self, events: list[Event]) -> None:
        events = [e for e in events if e.id not in self._told]
        self._told.update(e.id for e in events)
        if not events:
            return
        if self.count is not None:
            self.count([e.level for e in events])
        if self._failure is None:
            self.events.extend(events)
            return
        # The call has ended: a context of its own, not the request's (its time limit, its closed block).
        task = asyncio.get_running_loop().create_task(self._record_late(events, self._failure),
                                                      context=contextvars.Context())
        background = self.context.state.background  # held until done: the loop keeps only a weak reference
        background.add(task)
        task.add_done_callback(background.discard)

    async def failed(self, error: BaseException) -> None:
        """The call ends in `error`: record the AUDIT event of what it stored (inside its AuditTrail
        block, so it is stored with the block's write)."""
        self._failure = failure_code(error)
        if self.events:
            await self._record(self.events, self._failure)

    async def _record(self, events: list[Event], failure: str) -> None:
        await record_mutation(self.context, self.mutation, [encode_id(NodeType.EVENT, e.id) for e in events],
                              failed=failure)

    async def _record_late(self, events: list[Event], failure: str) -> None:
        try:
            await self._record(events, failure)
        except Exception:  # no request to fail: said here
            log.exception("audit: the AUDIT event of %d event(s) a failed %s stored could not be stored",
                          len(events), self.mutation)
