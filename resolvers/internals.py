"""Every private or undocumented part of Strawberry and graphql-core that Graphlake relies on, in one place.

Speedups that reach past the public API (each module says why it must):
- `inputs.py` plans input conversion once per type: it installs a type definition's `from_input`
  hook and asks Strawberry's `_is_leaf_type` which fields graphql-core has already coerced.
- `fanout.py` executes a live event once per distinct subscription: it subclasses Strawberry's
  graphql-core execution context and overrides `build_per_event_executor` and `execute_operation`
  (graphql-core 3.3's per-event executor), reading `variable_values.coerced` for its key.
- `document_cache.py` parses and validates each document text once: it sets the execution
  context's `graphql_document` and `pre_execution_errors`, which Strawberry honours by skipping
  the parse and the validation when they are already set.

- `plain_fields.py` completes plain scalar and enum attributes without graphql-core's per-field
  machinery: it overrides the execution context's `execute_field` (its arguments as graphql-core
  3.3 passes them), tells Strawberry's basic fields by the StrawberryField that Strawberry keeps in
  each graphql-core field's extensions (`strawberry_field`, its `is_basic_field` and
  `python_name`), and reads whether an extension wraps every resolver from the execution
  context's `middleware_manager`.

- `direct_calls.py` calls plain resolvers directly and tells a union's members by their class: it
  replaces graphql-core fields' `resolve` and unions' `resolve_type`, reads a resolver's `wrapped_func` and reserved parameters
  (`self_parameter`, `info_parameter`, `root_parameter`, `parent_parameter`), each argument's type
  (`StrawberryOptional`, `StrawberryMaybe`) and GraphQL name (the config's `name_converter`), makes the
  `Info` Strawberry would (the config's `info_class(_raw_info=..., _field=...)`), converts input
  arguments with Strawberry's `convert_arguments`, reads a PermissionExtension's `permissions` and
  `fail_silently` and a field extension's `map_arguments`, `has_resolver` and `supports_sync` /
  `supports_async` (which Strawberry's own chain builder reads), asks Strawberry's
  converter which exception handlers apply to a field (`field_exception_handlers`), finds each
  type's definition in its extensions (`strawberry_definition`) and leaves cast objects
  (`get_strawberry_type_cast`) to Strawberry.

`variable_coercion.py` coerces variables along a plan made once per input type: it replaces the
`coerce_input_value` and `input_is_nested_too_deeply` that graphql-core's private `execution.values`
module calls for each variable (`replace_variable_coercion`), answers `Undefined` where graphql-core
would (so graphql-core's own diagnostics still explain every refusal), and hands values of types
that nest without bound to graphql-core's nesting check (`graphql_variable_coercion`, its `MAX_NESTING_DEPTH`).

`schema.py` overrides Strawberry's `Schema._get_middleware_manager(extensions)` (one shared empty
manager when no extension wraps resolvers), which `extension_hooks.py` tells by Strawberry's
`SchemaExtension._implements_resolve()`.

`fanout.py` also replaces the executor's `async_helpers` (graphql-core 3.3's `GraphQLResolveInfoHelpers`,
which it builds from bound methods of the executor, `gather_async_work` and `track_async_work`) with
helpers that reach the executor through a weak reference (`weak_async_helpers`).

`list_limits.py` reads the graphql-core schema behind a Strawberry schema (`graphql_schema`) to
walk a request's variables along their declared types before graphql-core coerces them.

`named_operation.py` needs the operation name the request gave (`provided_operation_name`): the
execution context's public `operation_name` falls back to the document's first operation.

graphlake/websocket_handlers.py subclasses Strawberry's two WebSocket protocol handlers (the view's
`graphql_transport_ws_handler_class` and `graphql_ws_handler_class`) to time out a legacy socket
that never initialises, cap sockets per token and end a socket whose token stops being valid. It
overrides their `handle`, `handle_connection_init`, `handle_message` and `send_message`, and reads
their operations (`operations`, `tasks`), `cleanup_operation` and `connection_acknowledged`.

`document_limits.py` gives graphql-core's OverlappingFieldsCanBeMerged rule a budget of its own: the
rule's state (`rule_context.remaining_complexity_budget`) is private, and graphql-core's public knob
(the module's MAX_COMPLEXITY_BUDGET) is one value for the whole process, not one per schema. It knows
the rule ran out by the `ValidationAbortedError` it raises, which graphql-core does not export at its top.

`input_literals.py` subclasses graphql-core's ValuesOfCorrectType rule and overrides the method each
of its visits calls with a whole argument value and its type (`is_valid_value_node`, private), to
name the argument in each error; it imports the rule from here.

`guests.py` rewords graphql-core's error for a document over the token limit, which it recognises by
its text (`token_limit_exceeded`): the parser raises a plain syntax error for it.

graphlake/sse.py and graphlake/view.py serve GraphQL over Server-Sent Events with Strawberry's SSE
transport (`SSETransport`, chosen through the view's `stream_transport_classes_by_protocol`, its
`heartbeat_interval` read per stream), and take the stream over in the view's
`create_streaming_response(request, stream, sub_response, headers)`. The view also overrides
`execute_single` (its arguments as Strawberry passes them) to run plain HTTP requests without
subscriptions, translating the `InvalidOperationTypeError` and `CannotGetOperationTypeError` Strawberry
raises (`operation_type`, `as_http_error_reason`); resolvers/errors.py gives the first, raised inside
an SSE stream, a code.

And one shape for every error: graphlake/view.py catches the HTTPException (from cross-web, the
HTTP layer Strawberry is built on) that Strawberry raises for a body it cannot read, and answers it
as a GraphQL error with a code instead of plain text. It tells a mutation sent with GET (405) by the
InvalidOperationTypeError Strawberry chains to that HTTPException, and checks the operation name
(and finds a persisted query's document) in its `execute_operation`, which Strawberry's `run` calls
with the request's context, made before the body is parsed.

They import these names from here, and tests/test_internals.py (a canary) checks each of them and
its shape, so an upgrade that moves or changes one fails there, naming it, before any request does.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from cross_web import HTTPException
from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    GraphQLSyntaxError,
    OverlappingFieldsCanBeMergedRule,
    ValuesOfCorrectTypeRule,
)
from graphql.execution import values as graphql_values
from graphql.execution.executor import Executor
from graphql.validation.validate import ValidationAbortedError
from strawberry.exceptions import MissingQueryError
from strawberry.http.streaming import SSETransport
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.arguments import InputContext, convert_arguments
from strawberry.types.arguments import _is_leaf_type as is_leaf_type
from strawberry.types.base import StrawberryList, StrawberryMaybe, StrawberryOptional
from strawberry.types.cast import get_strawberry_type_cast
from strawberry.types.execution import ExecutionContext
from strawberry.types.field import StrawberryField

__all__ = ["MAX_NESTING_DEPTH", "BaseGraphQLTransportWSHandler", "BaseGraphQLWSHandler",
           "CannotGetOperationTypeError", "ExecutionContext", "Executor", "GraphQLResolveInfoHelpers",
           "HTTPException", "InputContext",
           "InvalidOperationTypeError", "MissingQueryError", "SSETransport", "StrawberryField",
           "StrawberryGraphQLCoreExecutionContext", "StrawberryList", "StrawberryMaybe", "StrawberryOptional", "ValidationAbortedError",
           "ValuesOfCorrectTypeRule", "convert_arguments", "field_exception_handlers", "get_strawberry_type_cast", "graphql_schema",
           "graphql_variable_coercion", "is_leaf_type", "provided_operation_name", "replace_variable_coercion",
           "set_merge_budget", "spent_merge_budget", "strawberry_definition", "strawberry_field",
           "token_limit_exceeded", "weak_async_helpers"]


def graphql_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema a Strawberry schema wraps (its private `_schema`)."""
    return schema._schema


# graphql-core's own, kept before anything replaces them.
_GRAPHQL_COERCION = graphql_values.coerce_input_value
_GRAPHQL_NESTING_CHECK = graphql_values.input_is_nested_too_deeply
MAX_NESTING_DEPTH: int = graphql_values.MAX_NESTING_DEPTH  # type: ignore[attr-defined]


def graphql_variable_coercion() -> tuple[Callable[[Any, Any], Any], Callable[[Any, Any], bool]]:
    """graphql-core's own `coerce_input_value(value, type)` and `input_is_nested_too_deeply(value,
    type)`, the two functions its private `execution.values` module looks up by name for each
    variable: the nesting check first (it walks the whole value, so that coercing it cannot
    recurse past MAX_NESTING_DEPTH), then the coercion."""
    return _GRAPHQL_COERCION, _GRAPHQL_NESTING_CHECK


def replace_variable_coercion(coerce: Callable[[Any, Any], Any], nesting_check: Callable[[Any, Any], bool]) -> None:
    """Have graphql-core coerce and check every variable's value with these (same signatures and results)."""
    graphql_values.coerce_input_value = coerce  # type: ignore[attr-defined]
    graphql_values.input_is_nested_too_deeply = nesting_check  # type: ignore[attr-defined]


def strawberry_field(field: GraphQLField) -> StrawberryField | None:
    """The Strawberry field a graphql-core field was made from (None for graphql-core's own, such as
    `__typename`): Strawberry keeps it in the field's extensions."""
    return field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)


def strawberry_definition(graphql_type: Any) -> Any:
    """The Strawberry type definition a graphql-core type was made from (None for graphql-core's
    own): Strawberry keeps it in the type's extensions, as it does a field's."""
    return getattr(graphql_type, "extensions", {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)


def field_exception_handlers(schema: Any, field: StrawberryField) -> tuple[Any, ...]:
    """The schema's exception handlers that may turn the field's errors into values (its private
    converter's `_get_field_exception_handlers`, worked out once per field)."""
    return schema.schema_converter._get_field_exception_handlers(field)


def provided_operation_name(context: ExecutionContext) -> str | None:
    """The operationName the request gave, None when it gave none (its private `_provided_operation_name`)."""
    return context._provided_operation_name  # type: ignore[attr-defined]


def set_merge_budget(rule: OverlappingFieldsCanBeMergedRule, budget: int) -> None:
    """Gives one run of the field-merging rule `budget` units of work (its private rule context's)."""
    rule.rule_context.remaining_complexity_budget = budget  # type: ignore[attr-defined]


def spent_merge_budget(rule: OverlappingFieldsCanBeMergedRule) -> bool:
    """Whether that run used up its budget (graphql-core then aborts the validation)."""
    return rule.rule_context.remaining_complexity_budget < 0  # type: ignore[attr-defined]


def token_limit_exceeded(error: GraphQLError, max_tokens: int) -> bool:
    """Whether parsing stopped because the document has more than `max_tokens` tokens."""
    return (isinstance(error, GraphQLSyntaxError)
            and error.description == f"Document contains more than {max_tokens} tokens. Parsing aborted.")  # type: ignore[attr-defined]


def weak_async_helpers(executor: Executor) -> GraphQLResolveInfoHelpers:
    """The helpers graphql-core hands resolvers (`info.async_helpers`), reaching `executor` weakly.
    graphql-core builds them from the executor's bound methods and keeps them on it: a reference
    cycle, so every operation's executor, with its context, the request and whatever the operation
    built, waited for a garbage collection instead of being freed as the request ends (35 such
    objects per `{ __typename }`, and young collections of them cost about a quarter of its CPU in
    a serving process's settings). They are called only while the executor runs (its own frames hold it)."""
    ref = weakref.ref(executor)

    def gather(values: Any) -> Any:
        return ref().gather_async_work(values)  # type: ignore[union-attr]

    def track(values: Any) -> None:
        ref().track_async_work(values)  # type: ignore[union-attr]

    return GraphQLResolveInfoHelpers(gather=gather, track=track)
