"""Canary: the private parts of Strawberry and graphql-core that resolvers/internals.py gathers are
still there and still shaped as Graphlake uses them. A failure here names the part an upgrade changed."""

from __future__ import annotations

import dataclasses
import inspect

import strawberry

from resolvers import internals


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


def test_strawberry_still_refuses_unreadable_bodies_with_cross_webs_http_exception() -> None:
    import strawberry.asgi
    import strawberry.http.async_base_view

    for module in (strawberry.asgi, strawberry.http.async_base_view):
        assert getattr(module, "HTTPException", None) is internals.HTTPException, \
            f"{module.__name__} no longer uses cross_web.HTTPException (graphlake/view.py catches it)"
    error = internals.HTTPException(400, "x")
    assert (error.status_code, error.reason) == (400, "x")


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
