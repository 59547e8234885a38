"""An empty list in a filter is BAD_USER_INPUT naming the field, in every filter alike
(resolvers/list_filters.py). `kinds: []` and `labels: []` had meant no filter and `sha256In: []`
matching nothing, so a client learnt from its results, if at all, what an empty list did."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, GraphQLList, GraphQLNonNull, get_named_type

from resolvers.schema import build_schema
from tests import factories
from tests.conftest import Served
from tests.operations import Api
from tests.ws_client import Subscriber

# (operation, variables holding the empty list, the field named): one per list a filter takes.
QUERIES = [
    *[("Assets", {"filter": {name: []}}, f"filter.{name}")
      for name in ("kinds", "statuses", "labelsAll", "labelsAny", "sha256In", "metadata", "value")],
    *[("Annotations", {"filter": {name: []}}, f"filter.{name}")
      for name in ("kinds", "labels", "setIds", "purposes", "sourceKinds")],
    *[("Events", {"filter": {name: []}}, f"filter.{name}") for name in ("eventTypes", "data")],
    ("Datums", {"metadata": []}, "metadata"),
]
SUBSCRIPTIONS = [
    ("EventStream", {"filter": {"eventTypes": []}}, "filter.eventTypes"),
    ("EventStream", {"filter": {"data": []}}, "filter.data"),
    ("AssetStatusChanged", {"ids": []}, "ids"),
]

# List arguments that name what to fetch, not what to filter by: `nodes(ids: [])` is an empty answer.
NOT_FILTERS = {"Query.nodes(ids)"}


@pytest.mark.parametrize(("operation", "variables", "field"), QUERIES, ids=[f"{o}:{f}" for o, _, f in QUERIES])
async def test_an_empty_list_in_a_filter_is_refused_naming_it(api: Api, contributor: str, operation: str,
                                                              variables: dict[str, Any], field: str) -> None:
    await factories.value_asset(api, contributor)  # something the filter would otherwise list
    error = await api.error(operation, variables, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
    assert "empty list" in error["message"], error
    unfiltered = {key: ({} if key == "filter" else None) for key in variables}  # the field left out: no filter
    await api.data(operation, unfiltered, token=contributor)


@pytest.mark.parametrize(("operation", "variables", "field"), SUBSCRIPTIONS, ids=[f"{o}:{f}" for o, _, f in SUBSCRIPTIONS])
async def test_an_empty_list_in_a_subscriptions_filter_is_refused_naming_it(served: Served, viewer: str, operation: str,
                                                                            variables: dict[str, Any], field: str) -> None:
    async with Subscriber(served.ws_url) as ws:
        await ws.connect({"Authorization": f"Bearer {viewer}"})
        await ws.subscribe(operation, variables)
        message = await asyncio.wait_for(ws.receive(), 10)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, message


def test_every_list_a_filter_takes_says_so_and_is_tested() -> None:
    """Each list field of a filter input (and each list argument a list or subscription filters by)
    says what an empty list does, and a test above sends it one: a filter list added later without
    the rule fails here."""
    from resolvers.list_filters import EMPTY_LIST  # (here: the tests above run on code without the rule too)

    graphql = build_schema()._schema
    listed: set[str] = set()
    for type_ in graphql.type_map.values():
        if isinstance(type_, GraphQLInputObjectType) and type_.name.endswith("Filter"):
            listed |= {f"{type_.name}.{name}" for name, field in type_.fields.items() if _is_list(field.type)}
    for root in (graphql.query_type, graphql.subscription_type):
        for field_name, field in root.fields.items():
            listed |= {f"{root.name}.{field_name}({name})" for name, argument in field.args.items() if _is_list(argument.type)}
    listed -= NOT_FILTERS
    described = {where for where in listed if EMPTY_LIST in _description(graphql, where)}
    assert described == listed, sorted(listed - described)
    filter_types = {"Assets": "AssetFilter", "Annotations": "AnnotationFilter", "Events": "EventFilter",
                    "EventStream": "EventFilter"}
    tested = {f"{filter_types[o]}.{f.split('.', 1)[1]}" if f.startswith("filter.") else
              {"Datums": "Query.datums", "AssetStatusChanged": "Subscription.assetStatusChanged"}[o] + f"({f})"
              for o, _, f in QUERIES + SUBSCRIPTIONS}
    assert tested == listed, (sorted(listed - tested), sorted(tested - listed))


def _is_list(type_: Any) -> bool:
    return isinstance(type_.of_type if isinstance(type_, GraphQLNonNull) else type_, GraphQLList)


def _description(graphql: Any, where: str) -> str:
    if "(" in where:
        root, rest = where.split(".", 1)
        field, argument = rest.rstrip(")").split("(")
        return graphql.get_type(root).fields[field].args[argument].description or ""
    type_name, field = where.split(".")
    return get_named_type(graphql.get_type(type_name)).fields[field].description or ""
