"""Nested pages answered without an awaitable per field: what a page's items will ask for is
loaded for all of them before they ask.

graphql-core completes a list item by item, depth first. A field whose resolver awaits a loader
(each datum's `annotations`, each role's `asset`, each record's `set`) hands the executor an
awaitable, which it awaits in a task of its own: seven per datum of VersionGraph, 7,000 for a page
of 1,000, and the tasks, their gathers and their turns on the event loop (resolvers/loop_slices.py)
cost the server more than the fields' data. The loaders already batch these reads into one query
per level; the items just do not know their answer is coming.

So a resolver of a list whose items are known (a version's datums) looks ahead: it reads what the
operation selects on its items and loads it for all of them at once, level by level, through the
same per-request loaders and the same loader keys the item resolvers use. Those resolvers are plain
`def`s that return `now_or_later(loader, key, convert)` (`node_now_or_later` for an object by id,
converted once per request): the value itself when the loader has it, which graphql-core completes
synchronously, or else an awaitable of it.

Nothing relies on a look-ahead being complete or right. A field it does not cover (one with cursors
or a filter, say), or one it loaded under another key, is loaded by its resolver as before, in the
same one-query-per-level batches; at worst a look-ahead reads a level that an @skip then drops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.types.nodes import SelectedField, Selection

from resolvers.loaders import ByIdLoader
from services.errors import BadUserInput

K = TypeVar("K")
T = TypeVar("T")
R = TypeVar("R")


def now_or_later(loader: DataLoader[K, T], key: K, convert: Callable[[T], R]) -> R | Awaitable[R]:
    """`convert` of what `loader` gives for `key`: at once when it has it already (a look-ahead
    loaded it), so the executor completes the field without an awaitable; else an awaitable that
    asks the loader for it when the executor runs it. Asked only then, as an `async def` resolver
    would: graphql-core completes a long list in slices with a yield between them
    (resolvers/loop_slices.py), and a load asked for in each slice would make a batch of each."""
    loaded = loader.cache_map.get(key) if loader.cache else None
    if loaded is not None and loaded.done():
        return convert(loaded.result())
    return _later(loader, key, convert)


def node_now_or_later(loader: ByIdLoader[K, T], key: K, convert: Callable[[T], R]) -> R | Awaitable[R]:
    """now_or_later for a node a by-id loader holds, converted once per request: a page's 1,000
    records name their one set 1,000 times, and one object can stand for it in every place. It is
    kept with the loader's answer it was made from, so a document cleared or primed anew is converted anew."""
    loaded = loader.cache_map.get(key) if loader.cache else None
    if loaded is not None and loaded.done():
        made = loader.nodes.get(key)
        if made is not None and made[0] is loaded:
            return made[1]
        node = convert(loaded.result())
        loader.nodes[key] = (loaded, node)
        return node
    return _later(loader, key, convert)


async def _later(loader: DataLoader[K, T], key: K, convert: Callable[[T], R]) -> R:
    return convert(await loader.load(key))


def selected(selections: Iterable[Selection], name: str) -> list[SelectedField]:
    """Each selection of the field `name` among `selections`, inside fragments too (a field can be
    selected more than once: under aliases, or by several fragments)."""
    return [field for field in _fields(selections) if field.name == name]


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:  # a fragment spread or an inline fragment
            yield from _fields(selection.selections)


def node_selections(connections: Iterable[SelectedField]) -> list[Selection]:
    """What the operation selects on the items of these connection fields (`edges { node { … } }`)."""
    return [selection for connection in connections for edges in selected(connection.selections, "edges")
            for node in selected(edges.selections, "node") for selection in node.selections]


def first_page_size(field: SelectedField, page_of: Callable[[int | None, None], Any]) -> int | None:
    """The page size a connection field's resolver will read, when it reads a first page only (no
    cursor, no `last`) and takes no other argument (or only nulls, as a client that pages with
    `after: $after` sends for its first page): what a look-ahead can load for it. None for anything
    else, a size out of range included (the resolver then reports it, on its own field)."""
    if {name for name, value in field.arguments.items() if value is not None} - {"first"}:
        return None
    first = field.arguments.get("first")
    if isinstance(first, str):  # an Int literal: Strawberry gives its source text, variables their values
        first = int(first)
    try:
        return page_of(first, None).first
    except BadUserInput:  # the field's own resolver reports it
        return None
