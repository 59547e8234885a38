"""How a request is weighed (resolvers/request_cost.py) and that what we send fits the default budget.
Refusals over HTTP and WebSockets: tests/test_request_cost.py."""

from __future__ import annotations

import re

from graphql import OperationDefinitionNode, parse, print_ast, separate_operations

import graphlake_client.operations as ops
from graphlake import PROJECT_ROOT
from graphlake.settings import Settings
from graphlake_client import bundle_lookup, version_reading
from resolvers.internals import graphql_schema
from resolvers.request_cost import plan, weighed
from resolvers.schema import build_schema
from tests.operations import document, operations

SETTINGS = Settings(_env_file=None)
SCHEMA = graphql_schema(build_schema(SETTINGS))


def _weight(text: str, variables: dict | None = None, name: str | None = None) -> int | None:
    """The items the request may return, when over a budget of 0 (None when it counts none)."""
    problem = weighed(SCHEMA, parse(text), variables, name, max_nodes=0, default_page=50, max_page=500)
    if problem is None:
        return None
    return int(str(problem).split("may return ")[1].split(" items")[0].replace(",", ""))


def test_page_sizes_multiply_and_add_up() -> None:
    assert _weight("{ assets(first: 10) { edges { node { datums(first: 7) { totalCount } } } } }") == 10 + 70
    assert _weight("{ assets { totalCount } }") == 50  # unset: the default page size
    assert _weight("{ assets(first: 9000) { totalCount } }") == 500  # out of range: weighed at the most it could be
    assert _weight("{ assets(last: 30) { totalCount } a: assets(first: 5) { totalCount } }") == 35
    assert _weight("{ health { ok } }") is None  # no connection
    # Fragments and inline fragments weigh where they are spread.
    text = ("query Q { assets(first: 4) { edges { node { ...D } } } } "
            "fragment D on Asset { datums(first: 3) { edges { node { ... on Datum { annotations(first: 2) { totalCount } } } } } }")
    assert _weight(text, name="Q") == 4 + 12 + 24


def test_variables_their_defaults_and_ids() -> None:
    text = "query Q($n: Int = 20, $m: Int) { assets(first: $n) { edges { node { datums(first: $m) { totalCount } } } } }"
    assert _weight(text, {}, "Q") == 20 + 20 * 50
    assert _weight(text, {"n": 2, "m": 3}, "Q") == 2 + 6
    assert _weight(text, {"n": None}, "Q") == 50 + 50 * 50  # an explicit null is the default page size, not $n's default
    by_ids = "query Q($ids: [ID!]!) { nodes(ids: $ids) { ... on Asset { datums(first: 10) { totalCount } } } }"
    assert _weight(by_ids, {"ids": ["a"] * 7}, "Q") == 7 + 70
    assert _weight(by_ids, {"ids": "a"}, "Q") == 1 + 10  # a lone id is a list of one
    assert _weight('{ nodes(ids: ["a", "b"]) { id } }') == 2
    # A filter by ids is not one item each: a subscription's answer is one asset an event.
    assert _weight("subscription { assetStatusChanged(ids: [\"a\", \"b\"]) { datums(first: 5) { totalCount } } }") == 5
    # A page size sent as a whole float is read as the number (graphql-core takes 500.0 for Int 500).
    assert _weight(text, {"n": 500.0, "m": 500.0}, "Q") == 500 + 500 * 500
    assert _weight(text, {"n": "many"}, "Q") == 500 + 500 * 50  # refused later; weighed at the most


def test_a_batch_weighs_its_results_by_its_inputs() -> None:
    # A mutation's list of results counts its longest input list, once, where it first meets one.
    create = ("mutation M($inputs: [CreateDatumInput!]!) { createDatums(inputs: $inputs) { roles { asset { "
              "datums(first: 10) { totalCount } } } } }")
    assert _weight(create, {"inputs": [{}] * 300}, "M") == 300 + 300 * 20 * 10  # each role's asset's datums
    complete = ("mutation C($ids: [ID!]!) { completeUploads(ids: $ids) { assets { datums(first: 4) { totalCount } } "
                "failures { code } } }")
    assert _weight(complete, {"ids": ["x"] * 50}, "C") == 50 + 50 * 4 + 50
    # Lists inside an input object or a JSON value are not a batch: a version of 60,000 datums weighs its
    # split counts (a tally) as none and its sets (read each) as the most it may hold, once.
    version = ("mutation V($input: CreateDatasetVersionInput!) { createDatasetVersion(input: $input) { "
               "splitCounts { split count } annotationSets { id } } }")
    assert _weight(version, {"input": {"datasetId": "d", "version": "v", "addDatums": ["x"] * 60_000}}, "V") == 100
    # Nor a list below what the root field returns: an asset's pins are not one per alias added.
    aliased = ("mutation A($aliases: [String!]!) { addAliases(assetId: \"a\", aliases: $aliases) { retentions { "
               "asset { datums(first: 5) { totalCount } } } } }")
    assert _weight(aliased, {"aliases": ["x"] * 100}, "A") == 500 + 500 * 5  # its pins: a page at most
    # Not past a connection: its edges are its page.
    paged = ('mutation P($input: StoreValueInput!) { storeValue(input: $input) { datums(first: 3) { edges { node { '
             'roles { role } } } } } }')
    assert _weight(paged, {"input": {"name": "x", "value": {"a": [1, 2, 3, 4]}}}, "P") == 3


def test_an_unpaged_list_weighs_the_most_it_may_hold() -> None:
    """A list of other documents without pages counts its bound (request_cost.UNPAGED), times the
    pages around it: a page of 500 assets, each with up to a page of pins, is 250,000 items, not 500."""
    assert _weight("{ assets(first: 500) { edges { node { retentions { ownerType } } } } }") == 500 + 500 * 500
    assert _weight("{ assets(first: 2) { edges { node { derivedFrom { derivedFrom { id } } } } } }") == 2 + 200 + 20_000
    versions = "{ datasets(first: 5) { edges { node { versions(first: 10) { edges { node { annotationCounts { records } } } } } } } }"
    assert _weight(versions) == 5 + 50 + 50 * 100
    # One inside its document (a datum's roles, a tally by kind, a shape's points) counts none, but
    # what is paged beneath a datum's roles counts once for each role it may have.
    assert _weight("{ datums(first: 10) { edges { node { roles { role } } } } }") == 10
    beneath = "{ datums(first: 200) { edges { node { roles { asset { datums(first: 400) { totalCount } } } } } } }"
    assert _weight(beneath) == 200 + 200 * 20 * 400
    assert _weight("{ summary { assets { byKind { kind count } } } }") is None


def test_plans_are_made_once_per_document() -> None:
    parsed = parse("query Q($n: Int) { assets(first: $n) { totalCount } }")
    first = plan(SCHEMA, parsed, "Q")
    assert [term.path for term in first.terms] == ["assets"]
    weighed(SCHEMA, parsed, {"n": 3}, "Q", max_nodes=10, default_page=50, max_page=500)
    from resolvers import request_cost
    kept = request_cost._plans.get(parsed, "Q")
    assert weighed(SCHEMA, parsed, {"n": 4}, "Q", max_nodes=10, default_page=50, max_page=500) is None
    assert request_cost._plans.get(parsed, "Q") is kept


def test_what_we_send_fits_the_default_budget_with_room() -> None:
    budget = SETTINGS.max_request_nodes
    for name in operations():  # the operations the tests and README send, at their default page sizes
        assert (_weight(document(name), {}, name) or 0) <= budget // 2, name
    # The Python client's nested reads, with the page sizes it sends.
    records = {"id": "x", "first": version_reading.DATUMS_PER_PAGE, "records": version_reading.RECORDS_PER_PAGE}
    assert _weight(ops.VERSION_DATUMS, records) == 100 + 100 * 500 <= 0.6 * budget
    assert _weight(ops.BUNDLE_DATUMS, records) <= 0.6 * budget
    nodes = {"ids": ["x"] * bundle_lookup.NODES, "first": bundle_lookup.FIRST_DATUMS}
    assert _weight(ops.BUNDLE_ASSET_DATUMS, nodes) <= 0.6 * budget
    # Every operation with each of its list variables as long as a batch may be (the page sizes at their
    # defaults): a batch of results is weighed by its inputs, and none of ours is refused for it.
    for name in operations():
        parsed = parse(document(name))
        (declared,) = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
        batches = {d.variable.name.value: [{}] * SETTINGS.max_batch_items for d in declared.variable_definitions or ()
                   if "[" in print_ast(d.type)}
        problem = weighed(SCHEMA, parsed, batches, name, max_nodes=budget, default_page=50, max_page=500)
        assert problem is None, (name, str(problem))
    # The web app's, each page size it leaves to a variable at the largest page it sends (its pages'
    # PAGE constants) within half the budget, and at the server's largest page within the budget.
    sent = max(int(size) for page in (PROJECT_ROOT / "webapp" / "src" / "pages").glob("*.tsx")
               for size in re.findall(r"^const [A-Z_]*PAGE[A-Z_]* = (\d+);", page.read_text(), re.MULTILINE))
    assert 50 <= sent <= SETTINGS.max_page_size
    webapp_operations = sorted((PROJECT_ROOT / "webapp" / "src" / "operations").glob("*.graphql"))
    assert webapp_operations, "the web app's operations moved: this check would weigh none"
    for path in webapp_operations:
        for name, operation in separate_operations(parse(path.read_text())).items():
            (declared,) = [d for d in operation.definitions if isinstance(d, OperationDefinitionNode)]
            for page, most in ((sent, budget // 2), (SETTINGS.max_page_size, budget)):
                pages = {d.variable.name.value: page for d in declared.variable_definitions or ()}
                problem = weighed(SCHEMA, operation, pages, name, max_nodes=most, default_page=50, max_page=500)
                assert problem is None, (path.name, name, page, str(problem))
