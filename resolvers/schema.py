"""The schema: root types composed from the per-domain query, mutation and subscription classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLInputObjectType, MiddlewareManager
from strawberry.extensions import AddValidationRules, DisableIntrospection, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from resolvers import direct_calls, variable_coercion
from resolvers.annotations.mutations import AnnotationMutations
from resolvers.annotations.queries import AnnotationQueries
from resolvers.assets.mutations import AssetMutations
from resolvers.assets.queries import AssetQueries
from resolvers.auth.mutations import AuthMutations
from resolvers.auth.queries import AuthQueries
from resolvers.auth.types import ApiToken
from resolvers.bundles.mutations import BundleMutations
from resolvers.collections.mutations import CollectionMutations
from resolvers.collections.queries import CollectionQueries
from resolvers.context import ServerSettings
from resolvers.datasets.mutations import DatasetMutations
from resolvers.datasets.queries import DatasetQueries
from resolvers.datums.mutations import DatumMutations
from resolvers.datums.queries import DatumQueries
from resolvers.document_cache import DocumentCache, DocumentMemo
from resolvers.document_limits import DocumentLimits
from resolvers.errors import ErrorPolicy
from resolvers.events.audit import AuditTrail
from resolvers.events.mutations import EventMutations
from resolvers.events.queries import EventQueries, EventSubscriptions
from resolvers.extension_hooks import KeptHooksRunner, wraps_resolvers
from resolvers.fanout import FanoutExecutor
from resolvers.guests import GuestGate, TokenBudget
from resolvers.input_literals import InputLiteralErrors
from resolvers.list_limits import InputListLimit
from resolvers.loaders import FreshLoaders
from resolvers.named_operation import NamedOperation
from resolvers.node import NodeQueries
from resolvers.operation_metrics import OperationMetrics
from resolvers.scalars import SCALAR_MAP
from resolvers.schema_gate import SchemaGate
from resolvers.summary.queries import SummaryQueries
from resolvers.system.queries import SystemQueries, SystemSubscriptions
from resolvers.uploads.mutations import UploadMutations
from resolvers.uploads.queries import UploadQueries, UploadSubscriptions

Query = merge_types("Query", (
    NodeQueries, AssetQueries, UploadQueries, CollectionQueries, DatumQueries, DatasetQueries, AnnotationQueries,
    EventQueries, SystemQueries, AuthQueries, SummaryQueries,
))
Mutation = merge_types("Mutation", (
    AssetMutations, UploadMutations, CollectionMutations, DatumMutations, DatasetMutations, AnnotationMutations,
    EventMutations, AuthMutations, BundleMutations,
))
Subscription = merge_types("Subscription", (EventSubscriptions, UploadSubscriptions, SystemSubscriptions))
# merge_types takes no description: set on the merged types' definitions, which the schema is built from.
Query.__strawberry_definition__.description = (
    "Reading the lake. Every field but `health` and `me` needs VIEWER at least (a token, unless "
    "GRAPHLAKE_ANONYMOUS_READ is on; some fields say they need ADMIN); every list that can grow is a Relay connection "
    "paged with `first` and `after`.")
Mutation.__strawberry_definition__.description = (
    "Writing the lake: CONTRIBUTOR at least (some say they need ADMIN). Each successful mutation leaves an AUDIT event; "
    "a batch is checked whole before anything is written.")
Subscription.__strawberry_definition__.description = (
    "Live streams over WebSocket (the graphql-transport-ws protocol), VIEWER at least; the token goes in the "
    "connection_init payload.")

# Every successful mutation leaves an AUDIT event (who, which mutation, which ids); none runs once the
# schema changed under this server (services/schema_watch.py).
for _field in Mutation.__strawberry_definition__.fields:
    _field.extensions.append(AuditTrail())
    _field.extensions.append(SchemaGate())

# Node types no root field returns directly still belong in the schema, for node(id:).
NODE_TYPES: list[type] = [ApiToken]


def limit_extensions(settings: ServerSettings) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """The error policy, the per-request limits (each from its setting) and the operation metrics.

    Factories, not instances: Strawberry builds a fresh extension per operation, so concurrent
    requests never share an extension's execution context.
    """
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        partial(ErrorPolicy, hide_suggestions=not settings.introspection),
        FreshLoaders,
        partial(TokenBudget, max_tokens=settings.max_tokens,
                max_tokens_unauthenticated=settings.max_tokens_unauthenticated),
        # Strawberry's QueryDepthLimiter and MaxAliasesLimiter, with their rules made once here: those
        # extensions make a new rule class in every operation's constructor (a tenth of a by-id read's CPU).
        partial(AddValidationRules, [depth_rule(settings.max_query_depth, None), alias_rule(settings.max_aliases)]),
        partial(DocumentCache, DocumentMemo()),  # one memo per schema: its rules come from these settings
        GuestGate,  # after the memo, which guests do not use; before the limits and validation
        partial(DocumentLimits, max_selections=settings.max_selections, max_merge_cost=settings.max_merge_cost),
        InputLiteralErrors,
        partial(InputListLimit, max_items=max(settings.max_batch_items, settings.max_events_per_batch)),
        NamedOperation,
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    if settings.metrics != "off":
        extensions.append(OperationMetrics)  # last: it reads the outcome ErrorPolicy has shaped
    return extensions


_NO_MIDDLEWARE = MiddlewareManager()


class GraphlakeSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry checks a @oneOf input in its own conversion, whose error names neither the variable
        # nor where in it ("OneOf Input Object 'GeometryInput' must specify exactly one key."): marked
        # here, graphql-core checks it first, as it does every other rule of a variable's value
        # ("Variable '$records' has invalid value at [0].geometry: ...").
        for graphql_type in self._schema.type_map.values():
            definition = getattr(graphql_type, "extensions", {}).get("strawberry-definition")
            if isinstance(graphql_type, GraphQLInputObjectType) and getattr(definition, "is_one_of", False):
                graphql_type.is_one_of = True
        direct_calls.install(self)

    def create_extensions_runner(self, execution_context: ExecutionContext,
                                 extensions: list[SchemaExtension]) -> KeptHooksRunner:
        return KeptHooksRunner(execution_context=execution_context, extensions=extensions)

    def _get_middleware_manager(self, extensions: list[SchemaExtension]) -> MiddlewareManager:
        # Strawberry builds a manager per operation from the extensions that wrap resolvers. With
        # none (tracing off), one empty manager serves every operation: it holds no state, and
        # asking each of the eleven extensions per operation was 2% of `{ __typename }`'s CPU.
        return super()._get_middleware_manager(extensions) if wraps_resolvers(extensions) else _NO_MIDDLEWARE

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Strawberry logs every error with a traceback; most are the client's (bad input, no token).
        # ErrorPolicy logs the unexpected ones, with the request id.
        return None


def build_schema(settings: ServerSettings | None = None,
                 tracing: Sequence[Callable[[], SchemaExtension]] = ()) -> strawberry.Schema:
    """The schema; without settings (for export) it carries no limits, which do not change its SDL.
    `tracing` extensions come first, so their spans hold the work of every other extension."""
    variable_coercion.install()  # graphql-core coerces variables along plans made once per input type
    return GraphlakeSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=NODE_TYPES,
        extensions=[*tracing, *(limit_extensions(settings) if settings else [])],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
        execution_context_class=FanoutExecutor,  # live events: one execution per distinct subscription
    )
