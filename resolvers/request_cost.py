"""A request's whole size bounded before it runs: the list items its connections may return.

The token, selection, depth and alias limits bound a document's text, not what it asks for. Each
connection multiplies what is nested in it by its page size: `assets(first: 500) { edges { node {
pins(first: 500) { ... } } } }` is 500 + 500 x 500 items, and a third level or a few aliases make it
billions. Such a request held a request slot for as long as it ran. So, as GitHub's API does, a
request is weighed before it runs: every connection field counts its page size times the page sizes
of the connections around it, and a request whose sum passes GRAPHLAKE_MAX_REQUEST_NODES is
refused with BAD_USER_INPUT naming the costliest connection's response path
(`extensions.connection`; `field` names inputs), with nothing run.

It is a worst case: a page asked for counts whole, and a field under `@skip` or `@include` counts
as included. A batch's list of results counts the longest list among its root field's arguments
(`nodes(ids:)`, `createDatums(inputs:)`, `completeUploads(ids:) { assets }`: arguments declared
as lists, not lists inside an input object or a JSON value). A list of other documents that is not
paged counts the most it may hold (UNPAGED: an asset's pins, a page at most), as a connection counts
its page; a list inside its own document (a datum's roles, at most 20; tallies; a shape's points)
counts none itself, that document's size bounding it, but multiplies what is paged beneath it
(WITHIN: each of a datum's roles names an asset, whose own connections each count).

Fragments are followed wherever they are spread: validation has bounded what they expand to
(resolvers/document_limits.py, count_expanded), so the walk is too.

The weighing is planned once per parsed document (resolvers/document_cache.py hands back the same
document for a text sent before): a plan is the product of page sizes for each connection, each
size a number written in the document or a variable; a request only looks its variables up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
    value_from_ast_untyped,
)

from resolvers.per_document import PerDocument
from services.checks import MAX_ALIASES, MAX_LINEAGE, MAX_ROLES, MAX_VERSION_SETS
from services.errors import BadUserInput

PAGE_ARGUMENTS = ("first", "last")  # a connection's: the larger one given, else the default page size
A_PAGE = -1  # an unpaged list's bound: the largest page (GRAPHLAKE_MAX_PAGE_SIZE)
# The unpaged lists of other documents (each one read), with the most each may hold.
UNPAGED = {
    ("Asset", "retentions"): A_PAGE,  # resolvers/assets/types.py
    ("Asset", "derivedFrom"): MAX_LINEAGE,
    ("Asset", "aliases"): MAX_ALIASES,
    ("DatasetVersion", "annotationSets"): MAX_VERSION_SETS,
    ("DatasetVersion", "annotationCounts"): MAX_VERSION_SETS,  # a count and the set it counts, each
}
# The lists inside their own document whose items lead to connections (see the module docstring).
WITHIN = {("Datum", "roles"): MAX_ROLES}


@dataclass(frozen=True)
class Size:
    """How many items one field may return: its `first` or `last` (`page`: each what the document
    writes there, a number or None, or the name of the variable it reads), or, for a batch's list
    of results (`nodes(ids:)`, `createDatums(inputs:)`, `completeUploads(ids:) { assets }`), the
    longest of its root field's arguments declared as lists (`batch`)."""

    page: tuple[int | str | None, ...] = ()  # first, last
    batch: tuple[ValueNode, ...] | None = None
    bound: int | None = None  # an unpaged list's (UNPAGED)

    def of(self, variables: dict[str, Any], default_page: int, max_page: int) -> int:
        if self.bound is not None:
            return max_page if self.bound == A_PAGE else self.bound
        if self.batch is not None:
            return max((_length(value_from_ast_untyped(v, variables)) for v in self.batch), default=1)
        asked = [variables.get(source) if isinstance(source, str) else source for source in self.page]
        given = [_page_size(value, max_page) for value in asked if value is not None]
        # Sizes out of range are refused where the page is read; weighed here as the most they could be.
        return max(0, min(max(given), max_page)) if given else default_page


def _page_size(value: Any, max_page: int) -> int:
    """A page size as graphql-core will read it (500.0 is 500), or the largest page for anything it refuses."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else max_page


def _length(value: Any) -> int:
    """The items of a list argument's value (a lone value is a list of one to graphql-core)."""
    return len(value) if isinstance(value, list) else int(value is not None)


@dataclass(frozen=True)
class Term:
    """One connection: where it is (for the error) and the sizes of it and every connection around it."""

    path: str
    sizes: tuple[Size, ...]


@dataclass(frozen=True)
class Plan:
    terms: tuple[Term, ...]
    defaults: dict[str, Any]  # the operation's variables' defaults, for those a request leaves out


class _Walk:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> None:
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.defaults = {d.variable.name.value: _literal(d.default_value) for d in operation.variable_definitions or ()
                         if d.default_value is not None}
        self.terms: list[Term] = []
        self.mutation = operation.operation is OperationType.MUTATION

    def selections(self, parent: Any, selection_set: SelectionSetNode, sizes: tuple[Size, ...], path: str,
                   spreading: frozenset[str], batch: tuple[ValueNode, ...] | None) -> None:
        """`batch`: the root field's arguments, while no list of results has counted them and no
        connection has been passed on the way here."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self.field(parent, selection, sizes, path, batch)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                self.selections(self.schema.get_type(condition.name.value) if condition else parent,
                                selection.selection_set, sizes, path, spreading, batch)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in spreading:  # a cycle is a validation error already
                    self.selections(self.schema.get_type(fragment.type_condition.name.value), fragment.selection_set,
                                    sizes, path, spreading | {name}, batch)

    def field(self, parent: Any, node: FieldNode, sizes: tuple[Size, ...], path: str,
              batch: tuple[ValueNode, ...] | None) -> None:
        definition = getattr(parent, "fields", {}).get(node.name.value)
        if definition is None:  # __typename, or a field validation refused
            return
        here = f"{path}.{(node.alias or node.name).value}" if path else (node.alias or node.name).value
        if not path:  # a root field: its list arguments are a batch's, when it returns a list, or a mutation's
            # payload (not a node, whose own lists are not one per input: addAliases' asset)
            listed = tuple(a.value for a in node.arguments or ()
                           if (declared := definition.args.get(a.name.value)) is not None and _is_list(declared.type))
            payload = self.mutation and not _is_node(get_named_type(definition.type))
            batch = listed if listed and (payload or _is_list(definition.type)) else None
        size = None
        arguments_of = {a.name.value: a.value for a in node.arguments or ()}
        if any(name in definition.args for name in PAGE_ARGUMENTS):
            size = Size(page=tuple(self.source(arguments_of.get(name)) for name in PAGE_ARGUMENTS))
            batch = None  # a connection's `edges` are its page, counted above
        elif batch is not None and _is_list(definition.type) and not is_leaf_type(get_named_type(definition.type)):
            size, batch = Size(batch=batch), None
        elif (bound := UNPAGED.get((parent.name, node.name.value))) is not None:
            size = Size(bound=bound)
        if size is not None:
            sizes = (*sizes, size)
            self.terms.append(Term(here, sizes))
        elif (bound := WITHIN.get((parent.name, node.name.value))) is not None:
            sizes = (*sizes, Size(bound=bound))  # no term of its own
        if node.selection_set is not None:
            # A batch's results are the root field's list or a list on the payload it returns (`assets`),
            # no deeper.
            self.selections(get_named_type(definition.type), node.selection_set, sizes, here, frozenset(),
                            batch if not path else None)

    @staticmethod
    def source(value: ValueNode | None) -> int | str | None:
        return value.name.value if isinstance(value, VariableNode) else _literal(value)


def _literal(value: ValueNode | None) -> Any:
    """A page size or list of ids written in the document, as a request's variables would hold it."""
    if isinstance(value, IntValueNode):
        return int(value.value)
    if isinstance(value, ListValueNode):
        return [None] * len(value.values)
    return None  # absent, null, or of a type validation refused


def _is_node(type_: Any) -> bool:
    return any(interface.name == "Node" for interface in getattr(type_, "interfaces", ()))


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def plan(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> Plan:
    operation = get_operation_ast(document, operation_name)
    if operation is None:  # several without a name: refused elsewhere
        return Plan((), {})
    walk = _Walk(schema, document, operation)
    walk.selections(schema.get_root_type(operation.operation), operation.selection_set, (), "", frozenset(), None)
    return Plan(tuple(walk.terms), walk.defaults)


_plans: PerDocument[Plan] = PerDocument()  # by document and operation name


def _plan_of(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> Plan:
    made = _plans.get(document, operation_name)
    if made is None:
        made = plan(schema, document, operation_name)
        _plans.put(document, operation_name, made)
    return made


def weighed(schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None,
            operation_name: str | None, *, max_nodes: int, default_page: int, max_page: int) -> BadUserInput | None:
    """BAD_USER_INPUT when the request may return more than `max_nodes` items, naming its costliest connection."""
    found = _plan_of(schema, document, operation_name)
    if not found.terms:
        return None
    values = {**found.defaults, **variables} if found.defaults and variables else found.defaults or variables or {}
    total, costliest, most = 0, None, -1
    for term in found.terms:
        items = math.prod(size.of(values, default_page, max_page) for size in term.sizes)
        total += items
        if items > most:
            costliest, most = term, items
    if total <= max_nodes or costliest is None:
        return None
    return BadUserInput(
        f"the request may return {total:,} items (each connection's page size times the page sizes of those around "
        f"it), more than GRAPHLAKE_MAX_REQUEST_NODES ({max_nodes:,}); {costliest.path} alone may return {most:,}: "
        "ask for smaller pages, or page the inner connection in requests of its own", connection=costliest.path)
