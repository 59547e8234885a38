"""Canary: the private parts of Strawberry and graphql-core that resolvers/internals.py gathers are
still there and still shaped as Graphlake uses them. A failure here names the part an upgrade changed."""

from __future__ import annotations

import dataclasses
import inspect

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import PermissionExtension

from resolvers import internals
from resolvers.permissions import CanRead


def test_is_leaf_type_still_takes_a_type_a_registry_and_classes_to_skip() -> None:
    parameters = list(inspect.signature(internals.is_leaf_type).parameters)
    assert parameters[:3] == ["type_", "scalar_registry", "skip_classes"], \
        f"strawberry.types.arguments._is_leaf_type changed: {parameters} (resolvers/inputs.py calls it)"


def test_input_definitions_still_have_a_from_input_hook() -> None:
    @strawberry.input
    class Probe:
        x: int

    definition = Probe.__strawberry_definition__
    assert hasattr(definition, "from_input") and definition.from_input is None, \
        "Strawberry's input definitions lost `from_input` (resolvers/inputs.py installs its planned conversion there)"


def test_the_execution_context_can_still_skip_parse_and_validation() -> None:
    fields = {f.name for f in dataclasses.fields(internals.ExecutionContext)}
    assert {"query", "graphql_document", "pre_execution_errors"} <= fields, \
        f"Strawberry's ExecutionContext changed: {sorted(fields)} (resolvers/document_cache.py sets these)"


def test_the_per_event_executor_hooks_are_still_there() -> None:
    context = internals.StrawberryGraphQLCoreExecutionContext
    for name, params in (("build_per_event_executor", ["self", "payload"]), ("execute_operation", ["self", "serially"])):
        method = getattr(context, name, None)
        assert method is not None, f"{context.__name__}.{name} is gone (resolvers/fanout.py overrides it)"
        assert list(inspect.signature(method).parameters) == params, f"{context.__name__}.{name} changed its signature"
    assert issubclass(internals.Executor, object) and hasattr(internals.Executor, "execute_operation"), \
        "graphql-core's per-event Executor changed (resolvers/fanout.py returns one)"


def test_list_completion_hooks_are_still_there() -> None:
    context = internals.StrawberryGraphQLCoreExecutionContext
    item_args = ["self", "item_type", "field_details_list", "info", "path", "items", "position_context"]
    for name, params in (
        ("complete_iterable_value", item_args),
        ("complete_list_item_value", ["self", "item", "complete_results", "item_type", "field_details_list", "info",
                                      "item_path", "position_context"]),
        ("complete_awaitable_list_item_value", ["self", "item", "item_type", "field_details_list", "info", "item_path",
                                                "position_context"]),
        ("get_stream_usage", ["self", "field_details_list", "path"]),
        ("settle_in_background", ["self", "awaitables"]),
    ):
        method = getattr(context, name, None)
        assert method is not None, f"graphql-core's {name} is gone (resolvers/loop_slices.py calls or overrides it)"
        assert list(inspect.signature(method).parameters) == params, f"graphql-core's {name} changed its signature"


def test_strawberry_still_refuses_unreadable_bodies_with_cross_webs_http_exception() -> None:
    import strawberry.asgi
    import strawberry.http.async_base_view

    for module in (strawberry.asgi, strawberry.http.async_base_view):
        assert getattr(module, "HTTPException", None) is internals.HTTPException, \
            f"{module.__name__} no longer uses cross_web.HTTPException (graphlake/view.py catches it)"
    error = internals.HTTPException(400, "x")
    assert (error.status_code, error.reason) == (400, "x")
    assert strawberry.http.async_base_view.InvalidOperationTypeError is internals.InvalidOperationTypeError, \
        "Strawberry no longer raises InvalidOperationTypeError (graphlake/view.py answers a GET mutation with 405)"
    view = strawberry.http.async_base_view.AsyncBaseHTTPView
    assert list(inspect.signature(view.execute_operation).parameters) == [
        "self", "request", "request_adapter", "request_data", "context", "root_value", "sub_response"], \
        "Strawberry's execute_operation changed its signature (graphlake/view.py overrides it)"
    source = inspect.getsource(view.run)
    assert source.index("get_context") < source.index("parse_http_body") < source.index("execute_operation"), \
        "Strawberry's run no longer makes the context before it parses and runs a request (graphlake/view.py)"


def test_a_strawberry_schema_still_wraps_a_graphql_core_schema() -> None:
    from graphql import GraphQLSchema

    from resolvers.schema import build_schema

    assert isinstance(internals.graphql_schema(build_schema()), GraphQLSchema), \
        "strawberry.Schema._schema is gone (resolvers/list_limits.py walks variables with it)"


def test_the_execution_context_still_keeps_the_operation_name_the_request_gave() -> None:
    context = internals.ExecutionContext(query="query A { a } query B { b }", schema=None, allowed_operations=(),  # type: ignore[arg-type]
                                         provided_operation_name=None)
    assert internals.provided_operation_name(context) is None, \
        "Strawberry's ExecutionContext no longer keeps `_provided_operation_name` (resolvers/named_operation.py reads it)"
    named = internals.ExecutionContext(query="query A { a }", schema=None, allowed_operations=(),  # type: ignore[arg-type]
                                       provided_operation_name="A")
    assert internals.provided_operation_name(named) == "A"


def test_the_websocket_handlers_are_still_strawberrys_to_replace_and_shaped_as_graphlake_extends_them() -> None:
    """graphlake/websocket_handlers.py subclasses both and the view installs them by these names."""
    import typing
    from datetime import timedelta

    from strawberry.http.async_base_view import AsyncBaseHTTPView

    for name, handler in (("graphql_transport_ws_handler_class", internals.BaseGraphQLTransportWSHandler),
                          ("graphql_ws_handler_class", internals.BaseGraphQLWSHandler)):
        installed = getattr(AsyncBaseHTTPView, name, None)
        assert (typing.get_origin(installed) or installed) is handler, f"the view's {name} changed: {installed}"
        for method, params in (("handle", ["self"]), ("handle_message", ["self", "message"]),
                               ("handle_connection_init", ["self", "message"]), ("send_message", ["self", "message"]),
                               ("cleanup_operation", ["self", "operation_id"])):
            assert list(inspect.signature(getattr(handler, method)).parameters) == params, \
                f"{handler.__name__}.{method} changed its signature (graphlake/websocket_handlers.py overrides or calls it)"
    common = {"view": object(), "websocket": object(), "context": object(), "root_value": None, "schema": object(),
              "max_subscriptions_per_connection": None}
    transport = internals.BaseGraphQLTransportWSHandler(**common, connection_init_wait_timeout=timedelta(seconds=1))
    legacy = internals.BaseGraphQLWSHandler(**common, keep_alive=False, keep_alive_interval=None)
    for handler, attributes in ((transport, ("operations", "connection_init_wait_timeout")), (legacy, ("tasks",))):
        for attribute in ("view", "websocket", "context", "connection_acknowledged", *attributes):
            assert hasattr(handler, attribute), f"{type(handler).__name__} no longer sets `{attribute}` (graphlake/websocket_handlers.py reads it)"
    assert transport.operations == {} and legacy.tasks == {}, "the handlers no longer keep their operations in a dict by id"
def test_the_field_merging_rule_still_keeps_its_budget_where_graphlake_sets_it() -> None:
    """resolvers/document_limits.py gives the rule a budget per schema and tells its abort from others."""
    from graphql import build_schema as sdl_schema
    from graphql import parse, validate

    from resolvers.document_limits import merge_rule

    schema = sdl_schema("type Query { a: Query b: Int }")
    repeated = parse("{ " + "a { b } " * 20 + "}")  # 190 pairs of `a` fields to compare
    rules_seen = []

    class Probe(internals.OverlappingFieldsCanBeMergedRule):
        def __init__(self, context) -> None:
            super().__init__(context)
            internals.set_merge_budget(self, 10)
            rules_seen.append(self)

    errors = validate(schema, repeated, [Probe])
    assert [type(e) for e in errors] == [internals.ValidationAbortedError], \
        f"graphql-core no longer aborts on the merging rule's budget ({errors}); resolvers/document_limits.py relies on it"
    assert internals.spent_merge_budget(rules_seen[0]), \
        "the merging rule's rule_context.remaining_complexity_budget is gone or no longer spent"
    assert validate(schema, repeated, [merge_rule(10_000)]) == []
    [error] = validate(schema, repeated, [merge_rule(10)])
    assert "GRAPHLAKE_MAX_MERGE_COST" in error.message and error.extensions == {"code": "BAD_USER_INPUT"}


def test_graphql_core_still_names_the_token_limit_in_its_parse_error() -> None:
    """resolvers/guests.py recognises the parser's token-limit error by its text, to name the limit that applied."""
    from graphql import GraphQLError, parse

    try:
        parse("{ a b c }", max_tokens=3)
    except GraphQLError as error:
        assert internals.token_limit_exceeded(error, 3), \
            f"graphql-core's token-limit error changed: {error.message!r} (resolvers/guests.py rewords it)"
        assert not internals.token_limit_exceeded(error, 4)
    else:
        raise AssertionError("parse(max_tokens=...) no longer stops at the limit (Strawberry's parse option)")
    try:
        parse("{ a b", max_tokens=100)
    except GraphQLError as error:
        assert not internals.token_limit_exceeded(error, 100)  # other syntax errors are left alone


def test_the_literal_rule_still_checks_each_whole_value_through_one_method() -> None:
    """resolvers/input_literals.py overrides ValuesOfCorrectType's `is_valid_value_node` to name each argument."""
    from graphql import build_schema as sdl_schema
    from graphql import parse, validate

    seen = []

    class Probe(internals.ValuesOfCorrectTypeRule):
        def is_valid_value_node(self, node, input_type):  # type: ignore[no-untyped-def]
            seen.append((type(node).__name__, str(input_type)))
            return super().is_valid_value_node(node, input_type)

    schema = sdl_schema("input I { x: Int } type Query { f(a: Int, b: [I]): Int }")
    assert validate(schema, parse('{ f(a: 1, b: [{x: 2}]) }'), [Probe]) == []
    assert seen == [("IntValueNode", "Int"), ("ListValueNode", "[I]")], \
        f"ValuesOfCorrectTypeRule no longer calls is_valid_value_node once per whole value: {seen}"


def test_the_sse_transport_and_view_hooks_are_still_there() -> None:
    from strawberry.http.async_base_view import AsyncBaseHTTPView
    from strawberry.http.base import BaseView
    from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL

    assert BaseView.stream_transport_classes_by_protocol.get(GRAPHQL_SSE_PROTOCOL) is internals.SSETransport, \
        "Strawberry no longer picks its SSE transport by protocol (graphlake/view.py replaces it there)"
    transport = internals.SSETransport()
    assert isinstance(transport.heartbeat_interval, int | float) and transport.accepts("text/event-stream"), \
        "Strawberry's SSETransport changed (graphlake/sse.py reads its heartbeat_interval per stream)"
    assert transport.encode_complete().startswith("event: complete"), "Strawberry's SSE framing changed"
    hooks = (("create_streaming_response", ["self", "request", "stream", "sub_response", "headers"]),
             ("execute_single", ["self", "request", "request_adapter", "sub_response", "context", "root_value",
                                 "request_data"]))
    for name, params in hooks:
        assert list(inspect.signature(getattr(AsyncBaseHTTPView, name)).parameters) == params, \
            f"AsyncBaseHTTPView.{name} changed its signature (graphlake/view.py overrides it)"
    from strawberry.types.graphql import OperationType

    error = internals.InvalidOperationTypeError(OperationType.MUTATION)
    assert error.operation_type is OperationType.MUTATION and "mutations" in error.as_http_error_reason("GET"), \
        "Strawberry's InvalidOperationTypeError changed (graphlake/view.py and resolvers/errors.py read it)"
    assert internals.CannotGetOperationTypeError(None).as_http_error_reason()


def test_plain_fields_still_find_strawberrys_basic_fields_and_the_field_hook() -> None:
    from graphql import GraphQLObjectType

    from resolvers.schema import build_schema

    schema = internals.graphql_schema(build_schema())
    record = schema.get_type("AnnotationRecord")
    assert isinstance(record, GraphQLObjectType)
    kind, attributes = internals.strawberry_field(record.fields["kind"]), internals.strawberry_field(record.fields["attributes"])
    assert kind is not None and attributes is not None, \
        "Strawberry no longer keeps its field in a graphql-core field's extensions (resolvers/plain_fields.py reads it)"
    assert (kind.is_basic_field, kind.python_name) == (True, "kind"), "StrawberryField.is_basic_field or python_name changed"
    assert attributes.is_basic_field is False, "a field with a resolver counts as basic: plain_fields.py would skip it"
    assert internals.strawberry_field(schema.get_field(record, "__typename")) is None
    context = internals.StrawberryGraphQLCoreExecutionContext
    assert list(inspect.signature(context.execute_field).parameters) == \
        ["self", "parent_type", "source", "field_details_list", "path", "position_context"], \
        "graphql-core's execute_field changed its signature (resolvers/plain_fields.py overrides it)"
    from graphql import parse

    built = context.build(schema, parse("{ __typename }"))
    assert not isinstance(built, list), built
    assert built.middleware_manager is None, \
        "the execution context no longer keeps its middleware manager (plain_fields.py reads it)"


def test_graphql_core_still_coerces_each_variable_through_the_two_names_graphlake_replaces() -> None:
    import graphql.execution.values as values

    from resolvers import variable_coercion
    source = inspect.getsource(values.coerce_variable_values)
    assert "input_is_nested_too_deeply(value, var_type)" in source and "coerce_input_value(value, var_type)" in source, \
        "graphql-core's coerce_variable_values no longer calls the two functions variable_coercion.py replaces"
    coerce, nesting_check = internals.graphql_variable_coercion()
    assert list(inspect.signature(coerce).parameters) == ["input_value", "type_"]
    assert list(inspect.signature(nesting_check).parameters) == ["value", "type_"]
    assert isinstance(internals.MAX_NESTING_DEPTH, int) and internals.MAX_NESTING_DEPTH > 10
    variable_coercion.install()
    assert values.coerce_input_value is variable_coercion.coerce_input_value
    assert values.input_is_nested_too_deeply is variable_coercion.input_is_nested_too_deeply


@strawberry.type
class ResolverProbe:
    @strawberry.field
    def shout(self, info: strawberry.Info, times: int | None = 1) -> str:
        return "x"

    @strawberry.field(permission_classes=[CanRead])
    async def later(self, how: ProbeInput) -> str:
        return "x" * how.times


@strawberry.input
class ProbeInput:
    times: int


@strawberry.type
class ProbeQuery:
    probe: ResolverProbe


def test_what_direct_calls_reads_of_a_resolver_is_still_there() -> None:
    """resolvers/direct_calls.py calls a plain resolver as Strawberry would: it reads the resolver's
    function and reserved parameters, tells Strawberry's sync unhandled path by its name, and finds
    each type's and each argument's definition where Strawberry keeps them."""
    schema = strawberry.Schema(query=ProbeQuery)
    graphql_type = internals.graphql_schema(schema).type_map["ResolverProbe"]
    assert internals.strawberry_definition(graphql_type).origin is ResolverProbe, "Strawberry no longer keeps a type's definition"
    field = graphql_type.fields["shout"]
    assert field.resolve.__name__ == "_resolver", "Strawberry renamed its sync resolver wrapper"
    resolver = internals.strawberry_field(field).base_resolver
    for name in ("wrapped_func", "self_parameter", "info_parameter", "root_parameter", "parent_parameter", "is_async"):
        assert hasattr(resolver, name), f"StrawberryResolver lost `{name}`"
    assert resolver.info_parameter.name == "info" and resolver.self_parameter is not None
    argument = internals.strawberry_field(field).arguments[0]
    assert isinstance(argument.type, internals.StrawberryOptional) and argument.python_name == "times"
    assert issubclass(internals.StrawberryMaybe, internals.StrawberryOptional)
    assert schema.config.name_converter.from_argument(argument) == "times" and hasattr(schema.config, "info_class")
    assert internals.get_strawberry_type_cast(ResolverProbe()) is None


def test_what_direct_calls_reads_of_a_checked_async_resolver_is_still_there() -> None:
    """direct_calls.py also calls async resolvers behind role checks and field extensions: it tells
    Strawberry's async wrapper by its name, finds the role check in a PermissionExtension's
    `permissions` (and `fail_silently`), reads what Strawberry's chain builder reads of an extension,
    and converts input arguments with Strawberry's `convert_arguments`."""
    schema = strawberry.Schema(query=ProbeQuery)
    field = internals.graphql_schema(schema).type_map["ResolverProbe"].fields["later"]
    assert field.resolve.__name__ == "_async_resolver", "Strawberry renamed its async resolver wrapper"
    definition = internals.strawberry_field(field)
    (extension,) = definition.extensions
    assert isinstance(extension, PermissionExtension) and extension.fail_silently is False
    assert [type(p) for p in extension.permissions] == [CanRead], "PermissionExtension no longer keeps `permissions`"
    for name in ("map_arguments", "has_resolver", "supports_sync", "supports_async", "resolve", "resolve_async"):
        assert hasattr(FieldExtension, name), f"FieldExtension lost `{name}`"
    assert list(inspect.signature(internals.convert_arguments).parameters) == [
        "value", "arguments", "scalar_registry", "config", "info"], "convert_arguments changed its signature"
    converted = internals.convert_arguments({"how": {"times": 2}}, definition.arguments,
                                            scalar_registry=schema.schema_converter.scalar_registry, config=schema.config)
    assert converted["how"].times == 2 and isinstance(converted["how"], ProbeInput)


def test_the_executor_still_keeps_resolver_helpers_of_its_own_two_methods() -> None:
    # resolvers/fanout.py replaces them (internals.weak_async_helpers) with helpers that call the same two.
    assert list(internals.GraphQLResolveInfoHelpers._fields) == ["gather", "track"], \
        "graphql-core's GraphQLResolveInfoHelpers changed"
    source = inspect.getsource(internals.Executor.__init__)
    assert "self.async_helpers = GraphQLResolveInfoHelpers(" in source and "gather=self.gather_async_work" in source \
        and "track=self.track_async_work" in source, "graphql-core builds the executor's async_helpers differently"


def test_strawberry_still_builds_a_middleware_manager_per_operation_where_graphlake_overrides_it() -> None:
    from strawberry.extensions import SchemaExtension

    method = getattr(strawberry.Schema, "_get_middleware_manager", None)
    assert method is not None and list(inspect.signature(method).parameters) == ["self", "extensions"], \
        "Strawberry's Schema._get_middleware_manager changed (resolvers/schema.py overrides it)"
    assert "_get_middleware_manager(" in inspect.getsource(strawberry.Schema.execute), \
        "Strawberry no longer asks _get_middleware_manager for each operation"

    class Wrapping(SchemaExtension):
        def resolve(self, _next, root, info, *args, **kwargs):  # type: ignore[no-untyped-def]
            return _next(root, info, *args, **kwargs)

    assert Wrapping._implements_resolve() and not SchemaExtension._implements_resolve(), \
        "SchemaExtension._implements_resolve changed (resolvers/extension_hooks.py reads it)"
