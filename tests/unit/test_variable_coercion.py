"""Variables coerced along planned types (resolvers/variable_coercion.py) give what graphql-core's own
coercion gives, for every input type of the schema: the same value, or Undefined for the same inputs
(graphql-core then explains the refusal itself). Values are generated from each type, right and wrong
alike: missing and unknown fields, nulls where a type refuses them, a single value where a list is
declared, values of other kinds."""

from __future__ import annotations

import math
import sys
import threading
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    parse,
)
from graphql.execution.values import get_variable_values
from graphql.pyutils import Undefined
from graphql.type import is_required_input_field
from graphql.type.definition import GraphQLDefaultInput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolvers import variable_coercion
from resolvers.internals import MAX_NESTING_DEPTH, graphql_variable_coercion
from resolvers.schema import build_schema

SCHEMA = build_schema()._schema  # builds install the planned coercion
INPUT_TYPES = sorted((t for t in SCHEMA.type_map.values() if isinstance(t, GraphQLInputObjectType)), key=lambda t: t.name)
GRAPHQL_COERCE, GRAPHQL_NESTING_CHECK = graphql_variable_coercion()

_WRONG = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                   st.text(max_size=4), st.sampled_from(["2024-05-01T12:00:00Z", "1e3", ""]), st.just([1]), st.just({"a": 1}))
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4)),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                     max_leaves=6)
_LEAVES = {
    "String": st.text(max_size=6), "ID": st.text(max_size=12), "Boolean": st.booleans(),
    "Int": st.integers(-(2**31), 2**31 - 1), "BigInt": st.integers(-(2**62), 2**62),
    "Float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40),
    "DateTime": st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00.250000+00:00"]),
    "JSON": _JSON,
}


def _values(type_: GraphQLInputType, *, wrong: bool, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of `type_`'s shape; with `wrong`, about one part in five is wrong (a null where it is
    refused, a missing or unknown field, a value of another kind)."""
    def mostly(right: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(right, right, right, right, bad) if wrong else right

    def inner(of: GraphQLInputType) -> st.SearchStrategy[Any]:
        return _values(of, wrong=wrong, depth=depth + 1)

    if depth > 12:  # no input type of the schema nests this deep (the one that holds itself is tested apart)
        return st.none()
    if isinstance(type_, GraphQLNonNull):
        return mostly(_values(type_.of_type, wrong=wrong, depth=depth), st.none())
    if isinstance(type_, GraphQLList):
        return mostly(st.lists(inner(type_.of_type), max_size=3), inner(type_.of_type) | st.none())  # one: a list of one
    if isinstance(type_, GraphQLInputObjectType):
        required = {n: inner(f.type) for n, f in type_.fields.items() if is_required_input_field(f)}
        optional = {n: inner(f.type) for n, f in type_.fields.items() if not is_required_input_field(f)}
        if type_.is_one_of:  # exactly one field, not null
            shaped = st.one_of(*(st.fixed_dictionaries({n: inner(GraphQLNonNull(f.type))}) for n, f in type_.fields.items()))
        else:
            shaped = st.fixed_dictionaries(required, optional=optional)
        careless = st.fixed_dictionaries({}, optional={**required, **optional, "notAField": st.integers()})
        return mostly(shaped, careless | _WRONG)
    if isinstance(type_, GraphQLEnumType):
        return mostly(st.sampled_from(list(type_.values)), _WRONG)
    return mostly(_LEAVES[type_.name], _WRONG)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def _wrapped(type_: GraphQLInputObjectType) -> list[tuple[GraphQLInputType, st.SearchStrategy[Any], st.SearchStrategy[Any]]]:
    """The type as a variable may declare it, each with its right and its maybe-wrong values."""
    forms = (type_, GraphQLNonNull(type_), GraphQLList(GraphQLNonNull(type_)))
    return [(form, _values(form, wrong=False), _values(form, wrong=True)) for form in forms]


@pytest.mark.parametrize("type_", INPUT_TYPES, ids=lambda t: t.name)
def test_every_input_type_coerces_as_graphql_core_does(type_: GraphQLInputObjectType) -> None:
    forms = _wrapped(type_)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def compare(data: st.DataObject) -> None:
        for form, right_values, any_values in forms:
            right = data.draw(right_values, label=f"{form}, right")
            expected = GRAPHQL_COERCE(right, form)
            assert expected is not Undefined, f"the generator made a value graphql-core refuses: {right!r}"
            assert _same(variable_coercion.coerce_input_value(right, form), expected)
            value = data.draw(any_values, label=f"{form}, maybe wrong")
            expected = GRAPHQL_COERCE(value, form)
            got = variable_coercion.coerce_input_value(value, form)
            assert _same(got, expected), f"{form}: {value!r} -> {got!r}, graphql-core {expected!r}"
            for checked in (right, value):
                assert variable_coercion.input_is_nested_too_deeply(checked, form) == GRAPHQL_NESTING_CHECK(checked, form)

    compare()


def test_a_batch_of_annotation_records_coerces_to_what_graphql_core_gives() -> None:
    records = [{"assetId": f"QXNzZXQ6{i}", "datumId": None, "label": "cat", "kind": "BBOX", "attributes": {"area": i},
                "geometry": {"bbox": {"x": 1, "y": 2.5, "width": 3, "height": 4}}} for i in range(50)]
    expected = GRAPHQL_COERCE(records, SCHEMA.get_type("AnnotationRecordInput") and GraphQLList(
        GraphQLNonNull(SCHEMA.get_type("AnnotationRecordInput"))))
    got = variable_coercion.coerce_input_value(records, GraphQLList(GraphQLNonNull(SCHEMA.get_type("AnnotationRecordInput"))))
    assert got == expected and got is not Undefined
    assert got[0]["geometry"]["bbox"]["x"] == 1.0 and isinstance(got[0]["geometry"]["bbox"]["x"], float)
    # A geometry naming two shapes (a oneOf input) refuses the whole list, as graphql-core does.
    records[7]["geometry"]["polygon"] = {"points": []}
    assert variable_coercion.coerce_input_value(records, GraphQLList(SCHEMA.get_type("AnnotationRecordInput"))) is Undefined


def _nested_schema() -> tuple[GraphQLSchema, GraphQLInputObjectType]:
    """A filter holding itself, the one kind of type whose values can nest without bound."""
    node = GraphQLInputObjectType("Node", lambda: {"name": GraphQLInputField(GraphQLString),
                                                  "and": GraphQLInputField(GraphQLList(GraphQLNonNull(node)))})
    query = GraphQLObjectType("Query", {"find": GraphQLField(GraphQLString, args={"where": GraphQLArgument(node)})})
    return GraphQLSchema(query), node


def test_a_type_that_holds_itself_is_walked_and_too_deep_a_value_refused_as_graphql_core_refuses_it() -> None:
    schema, node = _nested_schema()
    shallow: dict[str, Any] = {"name": "x", "and": [{"name": "y", "and": []}]}
    assert variable_coercion.coerce_input_value(shallow, node) == GRAPHQL_COERCE(shallow, node)
    deep: dict[str, Any] = {"name": "leaf"}
    for _ in range(MAX_NESTING_DEPTH):
        deep = {"and": [deep]}
    assert variable_coercion.input_is_nested_too_deeply(deep, node) is True
    assert GRAPHQL_NESTING_CHECK(deep, node) is True
    operation = parse("query ($where: Node) { find(where: $where) }").definitions[0]
    result = get_variable_values(schema, operation.variable_definitions, {"where": deep})  # type: ignore[attr-defined]
    assert isinstance(result, list) and "nested too deeply" in result[0].message.lower()


def test_refusals_are_still_explained_by_graphql_core() -> None:
    operation = parse("mutation ($records: [AnnotationRecordInput!]!) { addAnnotations(setId: \"x\", records: $records)"
                      " { count } }").definitions[0]
    bad = [{"assetId": "a", "kind": "BBOX"}, {"assetId": "b", "kind": "NOT_A_KIND"}]
    errors = get_variable_values(SCHEMA, operation.variable_definitions, {"records": bad})  # type: ignore[attr-defined]
    assert isinstance(errors, list) and len(errors) == 1
    assert "records" in errors[0].message and "at [1].kind" in errors[0].message and "NOT_A_KIND" in errors[0].message


def test_a_type_no_plan_can_be_made_for_is_coerced_by_graphql_core_every_time() -> None:
    # A default graphql-core cannot coerce (a schema that was never validated): the plan fails to be made.
    broken = GraphQLInputObjectType("Broken", {"a": GraphQLInputField(GraphQLInt, default=GraphQLDefaultInput(value="x")),
                                               "b": GraphQLInputField(GraphQLInt)})
    holder = GraphQLInputObjectType("Holder", {"broken": GraphQLInputField(broken), "n": GraphQLInputField(GraphQLInt)})
    for _ in range(2):  # nothing half-made is kept from the first failure
        assert variable_coercion.coerce_input_value({"a": 1, "b": 2}, broken) == {"a": 1, "b": 2}
        assert variable_coercion.coerce_input_value({"n": 1}, holder) == GRAPHQL_COERCE({"n": 1}, holder) == {"n": 1}


def test_threads_making_the_same_plans_at_once_all_get_whole_ones() -> None:
    failures: list[str] = []

    def coerce_together(new_type: GraphQLInputObjectType) -> None:
        start = threading.Barrier(4)

        def one() -> None:
            start.wait()
            try:
                assert variable_coercion.coerce_input_value([{"f1": [1]}], GraphQLList(new_type)) == [{"f1": [1]}]
            except Exception as error:  # collected, asserted below
                failures.append(repr(error))
        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        for k in range(30):
            coerce_together(GraphQLInputObjectType(f"Wide{k}", {f"f{i}": GraphQLInputField(GraphQLList(GraphQLNonNull(GraphQLInt)))
                                                                for i in range(300)}))
    finally:
        sys.setswitchinterval(switching)
    assert failures == []
