"""Live fan-out: execute a streamed event once per distinct subscription, not once per subscriber.

Without this, Strawberry runs a subscription's selection set for every subscriber and every event:
200 browser tabs watching the same filter cost 200 identical executions per event. A payload that
opts in (it carries `shared_results`, as `Event` does) instead keeps the results computed
for it, keyed by everything that can change one: the operation text, its variables, and the
subscriber's role. Subscribers that share a key share the result; each still gets its own message.

Only payloads whose fields read nothing per subscriber may opt in: a field that looked at the
caller's identity beyond its role would leak across subscribers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema, print_ast

from resolvers.internals import Executor, weak_async_helpers
from resolvers.loop_slices import SlicedExecutor
from resolvers.read_limits import oversized_read
from resolvers.request_cost import weighed


class SharedResults:
    """Results of one payload per subscription key; lives as long as the payload."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, Any] = {}


class FanoutExecutor(SlicedExecutor):
    _share_key: tuple | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # No reference cycle through the helpers: the executor and all it holds are freed as the
        # operation ends, not by the next garbage collection (resolvers/internals.weak_async_helpers).
        self.async_helpers = weak_async_helpers(self)

    @classmethod
    def build(cls, schema: GraphQLSchema, document: DocumentNode, root_value: Any = None, context_value: Any = None,
              raw_variable_values: dict[str, Any] | None = None, operation_name: str | None = None,
              *args: Any, **kwargs: Any) -> Any:
        # Every operation passes here before its variables are coerced: where reads are bounded, and
        # every request weighed.
        settings = getattr(context_value, "settings", None)
        if settings is not None:
            problem = oversized_read(document, raw_variable_values, operation_name,
                                     max_chars=settings.max_query_string_chars, max_items=settings.max_query_list_items)
            problem = problem or weighed(schema, document, raw_variable_values, operation_name,
                                         max_nodes=settings.max_request_nodes, default_page=settings.default_page_size,
                                         max_page=settings.max_page_size)
            if problem is not None:
                return [GraphQLError(str(problem), original_error=problem, extensions=problem.extensions)]
        return super().build(schema, document, root_value, context_value, raw_variable_values, operation_name,
                             *args, **kwargs)

    def build_per_event_executor(self, payload: Any) -> Executor:
        if self._share_key is None:  # once per subscription: copies of this executor inherit it
            self._share_key = self._key()
        executor = super().build_per_event_executor(payload)
        # A copy (graphql-core's): its helpers must reach it, not this executor, which a subscriber
        # gone meanwhile may have let go while another subscriber's event shares the copy's work.
        executor.async_helpers = weak_async_helpers(executor)
        return executor

    def _key(self) -> tuple:
        principal = getattr(self.context_value, "principal", None)
        fragments = "".join(print_ast(fragment) for _, fragment in sorted(self.fragment_definitions.items()))
        return (print_ast(self.operation), fragments,
                json.dumps(self.variable_values.coerced, sort_keys=True, default=repr),
                getattr(principal, "role", None))

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared: SharedResults | None = getattr(self.root_value, "shared_results", None)
        if shared is None or self._share_key is None:
            return super().execute_operation(serially)
        if (result := shared.by_key.get(self._share_key)) is None:
            result = super().execute_operation(serially)
            if not isinstance(result, ExecutionResult):  # awaitable: every sharer awaits the one task
                result = asyncio.ensure_future(result)
            shared.by_key[self._share_key] = result
        return result
