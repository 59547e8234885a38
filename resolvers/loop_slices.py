"""Big results are built in slices, giving the event loop back between them.

One process serves every request on one event loop, and graphql-core completes a list's items one
after the other without yielding once their data is there: a page of 100 datums with 20 annotations
each was one stretch of about 100 ms of the loop (more on a loaded machine), and so were the
loaders' conversions of 2,000 raw documents into models. Every other request, /healthz included,
waited for each such stretch (#16: /healthz p99 was 0.6-0.9 s under 50 clients). Here both are cut
into slices of SLICE items with a yield to the loop between them, so a stretch stays a few
milliseconds whatever the page size. The total work is the same; graphlake/admission.py keeps how
many requests interleave their slices small.

Slices bound one step of one task. They do not bound a loop iteration: asyncio runs every step that
is ready before it looks at its sockets again, and a nested page makes thousands of ready steps at
once (each datum's resolvers, then each record's, as their loaders answer). Eight such requests
queued about 300 ms of steps ahead of a /healthz that had just arrived (#16). So every awaited
resolver result also takes a turn (`take_turn`, services/pauses.py): once the loop's current stretch
of work has lasted STRETCH, the step waits for the next iteration, after the sockets have been read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from graphql.pyutils import gather_with_cancel

from resolvers.plain_fields import PlainLeafExecutor
from services.pauses import take_turn

# Items completed (or documents validated) between two yields. A yield costs about a microsecond of
# loop bookkeeping; 25 items of a nested page cost about 1-3 ms.
SLICE = 25

M = TypeVar("M")
T = TypeVar("T")


async def validate_all(model: Any, docs: Sequence[Mapping[str, Any]]) -> list[M]:
    """`model.model_validate` of each raw document, yielding to the loop every SLICE documents."""
    validated = []
    for start in range(0, len(docs), SLICE):
        if start:
            await asyncio.sleep(0)
        validated.extend(model.model_validate(doc) for doc in docs[start:start + SLICE])
    return validated


class SlicedExecutor(PlainLeafExecutor):
    """graphql-core's executor, completing a list longer than SLICE in slices, and each awaited
    result after its turn (see above)."""

    async def with_abort_signal(self, awaitable: Awaitable[T]) -> T:
        # graphql-core awaits every resolver's awaitable result (and awaitable list item) here,
        # then completes its sub-selection synchronously: the step to give its turn.
        value = await super().with_abort_signal(awaitable)
        await take_turn()
        return value

    def complete_iterable_value(self, item_type: Any, field_details_list: Any, info: Any, path: Any,
                                items: Iterable[Any], position_context: Any) -> Any:
        if (not isinstance(items, Sequence) or len(items) <= SLICE
                or self.get_stream_usage(field_details_list, path) is not None):  # @stream: graphql-core's own path
            return super().complete_iterable_value(item_type, field_details_list, info, path, items, position_context)
        return self._complete_in_slices(item_type, field_details_list, info, path, items, position_context)

    async def _complete_in_slices(self, item_type: Any, field_details_list: Any, info: Any, path: Any,
                                  items: Sequence[Any], position_context: Any) -> list[Any]:
        # graphql-core's complete_iterable_value, less @stream, with a yield every SLICE items.
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                if index and index % SLICE == 0:
                    await asyncio.sleep(0)
                item_path = path.add_key(index, None)
                if self.is_awaitable(item):
                    completed.append(self.complete_awaitable_list_item_value(
                        item, item_type, field_details_list, info, item_path, position_context))
                    awaitable_indices.append(index)
                elif self.complete_list_item_value(item, completed, item_type, field_details_list, info, item_path,
                                                   position_context):
                    awaitable_indices.append(index)
        except BaseException:
            # As graphql-core does: the items' pending work is settled in the background, never orphaned.
            if pending := [completed[i] for i in awaitable_indices]:
                self.settle_in_background(pending)
            raise
        if awaitable_indices:
            for index, value in zip(awaitable_indices,
                                    await gather_with_cancel(*(completed[i] for i in awaitable_indices)), strict=True):
                completed[index] = value
        return completed
