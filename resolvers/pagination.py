"""Keyset pagination over a MongoDB collection: the one helper every list in the API uses.

A cursor holds the sort-key values of the last item it points after, always ending in `_id`,
so items with equal sort keys are neither skipped nor repeated, and inserts elsewhere in the
list never shift a page (unlike offsets).

A cursor comes back from the client, and its values go into a query: it is decoded strictly. Each
value must be a plain scalar, or one of the two tagged forms the server writes (a date, an
ObjectId); anything else, an operator-shaped object first of all, is BAD_USER_INPUT. A cursor also
carries a tag of the list and the ordering it was made for, so one from another ordering, or from
another list in the same ordering, is refused too: read there, its values were a position in the
wrong list, and the page silently skipped or repeated items (a cursor of one version's datums took
another version's from its start, or gave none; one of `collections` went on in `datasets`). A
list is its collection of documents (every filter of it, which narrows one order of it), or for a
parent's children, that collection and parent (`child_scope`).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import orjson
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from strawberry.dataloader import DataLoader

from documents.lean import lean
from resolvers.loaders import ChildPage, Loaders
from resolvers.lookahead import now_or_later
from resolvers.relay import Connection, Edge, PageInfo
from services.errors import BadUserInput

T = TypeVar("T")
D = TypeVar("D")
SortSpec = Sequence[tuple[str, int]]


@dataclass(frozen=True)
class Page:
    """The validated paging arguments of a request: `first` items after `after`, or, paging backward
    (`last` / `before`), the `first` items just before `before` (or the list's last ones)."""

    first: int
    after: str | None
    before: str | None = None
    backward: bool = False

    @classmethod
    def of(cls, first: int | None, after: str | None, last: int | None = None, before: str | None = None, *,
           default_size: int, max_size: int) -> Page:
        # An empty cursor is none (a client's "no cursor yet"), as `after: ""` always read: `before: ""`
        # had paged back from the list's end yet said more items followed it (hasNextPage).
        after, before = after or None, before or None
        backward = last is not None or before is not None
        if backward and first is not None:
            raise BadUserInput("pages backward: give `first` or `last`, not both", field="first" if last is None else "last")
        if backward and after is not None:
            raise BadUserInput("pages backward, from `before`: it cannot also start after `after`", field="after")
        size = (last if backward else first)
        if size is None:
            size = default_size
        if not 1 <= size <= max_size:
            raise BadUserInput(f"must be between 1 and {max_size}, got {size}", field="last" if backward else "first")
        return cls(first=size, after=after, before=before, backward=backward)


# Times go into a cursor as whole milliseconds from this, counted in integers as BSON counts them: through
# a float (int(timestamp() * 1000), and back by fromtimestamp(ms / 1000)), 2004-10-05 20:17:19.465 was
# ...464.9999 ms, so .464, and 1900-08-14 10:21:53.616 came back .617 (one time in ten over most of
# 2004, more before 1970 and after 2100). A cursor a millisecond off skipped or repeated the items
# tied with its own at that time.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$d": ((value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH) // _MILLISECOND}
    if isinstance(value, ObjectId):
        return {"$o": str(value)}
    return value


MAX_CURSOR_STRING = 2048  # longer strings are no sort key this server wrote
# The longest cursor this server writes: base64 (4 characters for 3 bytes) of the JSON of its tag
# and sort keys, of which one at most is a string (an asset's name), of MAX_CURSOR_STRING characters
# at most 6 bytes each as JSON (a control character's \u escape); the others, a date and an id,
# take under 128 bytes. It is longer than a query's other strings may be (GRAPHLAKE_MAX_QUERY_STRING_CHARS,
# 1,000): a name of 500 accented letters is a cursor of 1,398 characters, which that bound refused,
# so that a list in name order could not be paged past it (resolvers/read_limits.py bounds cursors by this).
MAX_CURSOR_CHARS = (6 * MAX_CURSOR_STRING + 128) * 4 // 3 + 4


_INT64 = range(-(2**63), 2**63)  # what BSON stores: a larger int in a query was PyMongo's OverflowError, INTERNAL


def _decode_value(value: Any) -> Any:
    """A value the server could have written, or ValueError: never an object it did not tag itself."""
    if value is None or isinstance(value, bool) or (isinstance(value, int) and value in _INT64):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and len(value) <= MAX_CURSOR_STRING:
        return value
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("$d"), int) and not isinstance(value["$d"], bool):
            return _EPOCH + value["$d"] * _MILLISECOND
        if isinstance(value.get("$o"), str) and ObjectId.is_valid(value["$o"]) and len(value["$o"]) == 24:
            return ObjectId(value["$o"])
    raise ValueError("not a value this server writes into a cursor")


def _ordering_tag(sort: SortSpec, scope: str) -> str:
    """A short tag of the list (`scope`) and the ordering (fields and directions) a cursor was made for."""
    return _tag_of(scope, tuple((field, int(direction)) for field, direction in sort))


@lru_cache(maxsize=4096)
def _tag_of(scope: str, sort: tuple[tuple[str, int], ...]) -> str:  # once per list and ordering, not per edge
    return hashlib.sha256(repr((scope, list(sort))).encode()).hexdigest()[:8]


def child_scope(model: type[Any], field: str, parent_id: Any) -> str:
    """The list of a parent's children: `model` documents whose `field` is `parent_id`."""
    return f"{model.get_pymongo_collection().name}.{field}={parent_id}"


def _field_value(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def encode_cursor(doc: Mapping[str, Any], sort: SortSpec, *, scope: str) -> str:
    """The cursor of `doc` in the list `scope` in `sort` order."""
    values = [_encode_value(_field_value(doc, field)) for field, _ in sort]
    return base64.urlsafe_b64encode(orjson.dumps([_ordering_tag(sort, scope), *values])).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortSpec, field: str = "after", *, scope: str, long_keys: bool = False) -> list[Any]:
    """The sort-key values of a cursor of the list `scope` in `sort` order; BAD_USER_INPUT naming
    `field` for any other string. With `long_keys` (a computed list's cursor, never a query's), a
    long key's tagged form (`_list_key`) is given back as it is, for `_window` to place."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadUserInput(f"is not a cursor from this list (longer than any cursor: {MAX_CURSOR_CHARS} characters)",
                           field=field)
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise BadUserInput("is not a cursor from this list", field=field) from None
    if not isinstance(values, list) or len(values) != len(sort) + 1 or values[0] != _ordering_tag(sort, scope):
        raise BadUserInput("is not a cursor from this list in this order (a cursor works only in the list, and the "
                           "order, it came from)", field=field)
    try:
        return [value if long_keys and isinstance(value, dict) and value.keys() == {_LONG_KEY} else _decode_value(value)
                for value in values[1:]]
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: a time beyond datetime's years
        raise BadUserInput("is not a cursor from this list", field=field) from None


def _after_condition(field: str, direction: int, value: Any) -> dict[str, Any] | None:
    """Items strictly after `value` on one key. MongoDB sorts null/missing before every value."""
    if direction == ASCENDING:
        return {field: {"$ne": None}} if value is None else {field: {"$gt": value}}
    if value is None:
        return None  # nothing sorts below null
    if field == "_id":  # never null: keep the condition simple enough for the index
        return {field: {"$lt": value}}
    return {"$or": [{field: {"$lt": value}}, {field: None}]}


def keyset_filter(sort: SortSpec, values: Sequence[Any]) -> dict[str, Any]:
    """The filter for every item after the one with sort-key `values`."""
    branches = []
    for i, (field, direction) in enumerate(sort):
        condition = _after_condition(field, direction, values[i])
        if condition is None:
            continue
        equal = {f: v for (f, _), v in zip(sort[:i], values[:i], strict=True)}
        branches.append({"$and": [equal, condition]} if equal else condition)
    return {"$or": branches} if branches else {"_id": {"$exists": False}}


def with_tiebreaker(sort: SortSpec) -> list[tuple[str, int]]:
    """The sort, ending in `_id` in the direction of its last key."""
    sort = list(sort)
    if not sort or sort[-1][0] != "_id":
        sort.append(("_id", sort[-1][1] if sort else DESCENDING))
    return sort


async def paginate(
    collection: Any,
    *,
    query: dict[str, Any],
    sort: SortSpec,
    page: Page,
    to_node: Callable[[dict[str, Any]], T],
    projection: Mapping[str, Any] | None = None,
    scope: str | None = None,
) -> Connection[T]:
    """One page of `collection` matching `query` in `sort` order (an `_id` tiebreaker is added).
    Its cursors are the list `scope`'s: by default, the collection's.

    One `find` per page; the total is counted only if a client asks for `totalCount`.
    """
    sort, scope = with_tiebreaker(sort), scope or collection.name
    page_query, read_sort = page_read(query, sort, page, scope=scope)
    docs = await collection.find(page_query, projection, sort=read_sort, limit=page.first + 1).to_list()

    async def count() -> int:
        return await collection.count_documents(query)

    return _connection(docs, sort, page, to_node, count, scope)


async def paginate_by(
    read: Callable[[list[tuple[str, int]], list[Any] | None, int], Awaitable[list[dict[str, Any]]]],
    *,
    sort: SortSpec,
    page: Page,
    to_node: Callable[[dict[str, Any]], T],
    count: Callable[[], Awaitable[int]],
    scope: str,
) -> Connection[T]:
    """paginate, for a list another read gives: `read(read_sort, start, limit)` returns at most
    `limit` raw documents in `read_sort` order (the list's, or reversed for a backward page), strictly
    past the sort-key values `start` (the cursor's; None from the start). The cursors are paginate's
    (given the same `scope`), so a page of one may follow a page of the other."""
    sort = with_tiebreaker(sort)
    _, read_sort = page_read({}, sort, page, scope=scope)
    cursor, cursor_field = (page.before, "before") if page.backward else (page.after, "after")
    start = decode_cursor(cursor, sort, cursor_field, scope=scope) if cursor else None
    return _connection(await read(read_sort, start, page.first + 1), sort, page, to_node, count, scope)


def _connection(docs: list[dict[str, Any]], sort: SortSpec, page: Page, to_node: Callable[[dict[str, Any]], T],
                count: Callable[[], Awaitable[int]], scope: str) -> Connection[T]:
    """The page of `docs` (read in the page's order, one more than the page if there are more)."""
    more = len(docs) > page.first
    docs = docs[: page.first]
    if page.backward:
        docs.reverse()
    edges = [Edge(cursor=encode_cursor(doc, sort, scope=scope), node=to_node(doc)) for doc in docs]
    return Connection(edges=edges, page_info=_page_info(page, edges, more), count=count)


def loaded_connection(docs: Sequence[D], sort: SortSpec, page: Page, to_node: Callable[[D], T], *,
                      scope: str) -> Connection[T]:
    """The page without a cursor (the first, or with `last` the last) of a list whose every document is
    loaded already (`docs`, models, in `sort` order: what a loader found by a unique key, one at most),
    as paginate gives it: the same cursors, of the list `scope`, and its totalCount, counted here. A
    page from a cursor is paginate's (or paginate_by's) own read."""
    if page.after or page.before:
        raise ValueError("a page from a cursor is read, not taken from loaded documents")
    sort = with_tiebreaker(sort)
    shown = docs[-page.first:] if page.backward else docs[:page.first]
    edges = [Edge(cursor=encode_cursor({key: getattr(doc, "id" if key == "_id" else key) for key, _ in sort}, sort,
                                       scope=scope), node=to_node(doc)) for doc in shown]
    total = len(docs)

    async def count() -> int:
        return total

    return Connection(edges=edges, page_info=_page_info(page, edges, total > page.first), count=count)


def page_read(query: dict[str, Any], sort: SortSpec, page: Page, *,
              scope: str) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The filter and the order a page of `query` in `sort` order (an `_id` tiebreaker is added) is
    read with: from its cursor on, in the list's order. Paging backward reads the reversed order from
    `before` (the same index, walked the other way); paginate then turns the page around, since
    cursors are always of the list's own order."""
    sort = with_tiebreaker(sort)
    read_sort = [(field, -direction) for field, direction in sort] if page.backward else sort
    cursor, cursor_field = (page.before, "before") if page.backward else (page.after, "after")
    if not cursor:
        return query, read_sort
    return _beside(query, keyset_filter(read_sort, decode_cursor(cursor, sort, cursor_field, scope=scope))), read_sort


def _beside(query: dict[str, Any], position: dict[str, Any]) -> dict[str, Any]:
    """`query` and the page's `position`. Ids the query pins stay at its top, where the embedded
    default reads them through their index (inside an `$and`, it walks the sort's index instead)."""
    if not query:
        return position
    if "_id" not in query:
        return {"$and": [query, position]}
    rest = {field: value for field, value in query.items() if field != "_id"}
    return {"_id": query["_id"], "$and": [rest, position] if rest else [position]}


def _page_info(page: Page, edges: Sequence[Edge[Any]], more: bool) -> PageInfo:
    """`more`: whether items lie beyond the page in the direction it was read."""
    return PageInfo(
        has_next_page=page.before is not None if page.backward else more,
        has_previous_page=more if page.backward else page.after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )




def first_children(loaders: Loaders, model: type[D], *, field: str, query: dict[str, Any],
                   first: int, order: Sequence[str] = ("_id",), last: bool = False) -> DataLoader[ObjectId, ChildPage[D]]:
    """The loader of each parent's first `first` children (with `last`, its last ones: see
    child_connection): one for the resolver and for a look-ahead (resolvers/lookahead.py), so both
    name the same batch."""
    return loaders.children(model, field, query, first, order, last=last)


def child_count(loaders: Loaders, model: type[D], *, field: str, parent_id: ObjectId,
                query: dict[str, Any]) -> Awaitable[int]:
    """How many children a parent has: the `totalCount` of its first page, one aggregation for every
    parent asked before the loader's batch goes. A resolver that awaits more before its connection's
    count is asked (a look-ahead) may ask for it first, while its siblings are there too."""
    return loaders.counts(model, field, query).load(parent_id)


def child_page_connection(loaders: Loaders, model: type[D], child_page: ChildPage[D], *, field: str, parent_id: ObjectId,
                          query: dict[str, Any], to_node: Callable[[D], T], order: Sequence[str] = ("_id",),
                          last: bool = False) -> Connection[T]:
    """The connection of a parent's first (with `last`, last) page of children, as its loader gave it."""
    sort, scope = [(key, ASCENDING) for key in order], child_scope(model, field, parent_id)
    edges = [Edge(cursor=encode_cursor({key: getattr(doc, "id" if key == "_id" else key) for key in order}, sort,
                                       scope=scope), node=to_node(doc)) for doc in child_page.docs]

    async def count() -> int:
        return await child_count(loaders, model, field=field, parent_id=parent_id, query=query)

    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=child_page.has_next and not last, has_previous_page=child_page.has_next and last,
                           start_cursor=edges[0].cursor if edges else None,
                           end_cursor=edges[-1].cursor if edges else None),
        count=count,
    )


def child_connection_now_or_later(
    loaders: Loaders,
    model: type[D],
    *,
    field: str,
    parent_id: ObjectId,
    query: dict[str, Any],
    page: Page,
    to_node: Callable[[D], T],
    order: Sequence[str] = ("_id",),
) -> Connection[T] | Awaitable[Connection[T]]:
    """A parent's children (`model` documents whose `field` is `parent_id`) in ascending `order`
    (fields ending in `_id`; by default `_id` alone).

    A page without a cursor (the first, or with `last` the last) comes from a DataLoader, so a list
    of parents costs one query for all their children; a page from a cursor (`after`, `before`) is a
    single parent's own keyset query. Both give the same cursors.

    Given at once (not as an awaitable) when the first page is loaded already, as a look-ahead leaves
    it (resolvers/lookahead.py): for a field resolver that is a plain `def`. Async resolvers await
    child_connection.
    """
    if page.after or page.before:  # one parent's own keyset query: the loader reads pages from an end only
        return paginate(
            model.get_pymongo_collection(), query={field: parent_id, **query}, sort=[(key, ASCENDING) for key in order],
            page=page, to_node=lambda raw: to_node(lean(model).model_validate(raw)),
            scope=child_scope(model, field, parent_id),
        )
    loaded = first_children(loaders, model, field=field, query=query, first=page.first, order=order, last=page.backward)
    return now_or_later(loaded, parent_id, lambda child_page: child_page_connection(
        loaders, model, child_page, field=field, parent_id=parent_id, query=query, to_node=to_node, order=order,
        last=page.backward))


async def child_connection(loaders: Loaders, model: type[D], **where: Any) -> Connection[Any]:
    """child_connection_now_or_later (the same arguments), awaited."""
    connection = child_connection_now_or_later(loaders, model, **where)
    return await connection if inspect.isawaitable(connection) else connection


async def linked_connection(loaders: Loaders, link: type[Any], *, field: str, target: str, parent_id: ObjectId,
                            page: Page, model: type[D], to_node: Callable[[D], T],
                            keep: Callable[[D], bool] = lambda doc: True) -> Connection[T]:
    """A parent's children reached through links: `link` documents whose `field` is the parent, paged
    in `_id` order like any children (an index range), then the documents their `target` names, read
    by id. A link's document that is missing or not kept (`keep`), or already listed on the page, is
    left out: links live beside what they point at (an asset's datums, its derived assets), and a
    crash between the two writes leaves one behind."""
    links = await child_connection(loaders, link, field=field, parent_id=parent_id, query={}, page=page,
                                   to_node=lambda doc: getattr(doc, target))

    async def targets(ids: list[ObjectId]) -> list[T | None]:
        found = await loaders.by_id(model).load_many(ids)
        first = {doc.id: i for i, doc in reversed(list(enumerate(found))) if doc is not None}  # type: ignore[attr-defined]
        return [to_node(doc) if doc is not None and first[doc.id] == i and keep(doc) else None  # type: ignore[attr-defined]
                for i, doc in enumerate(found)]

    async def count() -> int:
        # What the pages list, not the links: the first LINKS_COUNTED links are read (for every parent
        # asked at once, as a first page) and their targets checked as a page checks them, so a link
        # left by a crash (to a datum gone, an asset DELETED) is not counted where no page lists it.
        # Past them the links' index count stands for the rest: a count reads at most that many
        # links and targets a parent, whatever it holds.
        first = await loaders.children(link, field, {}, LINKS_COUNTED).load(parent_id)
        found = await loaders.by_id(model).load_many([getattr(doc, target) for doc in first.docs])
        listed = len({doc.id for doc in found if doc is not None and keep(doc)})  # type: ignore[attr-defined]
        if not first.has_next:
            return listed
        return await child_count(loaders, link, field=field, parent_id=parent_id, query={}) - len(first.docs) + listed

    connection = await map_nodes(links, targets)
    connection.count = count
    return connection


# Links whose targets a linked_connection's totalCount checks at most (see count there).
LINKS_COUNTED = 1_000


async def map_nodes(connection: Connection[T], convert: Callable[[list[T]], Awaitable[list[Any]]]) -> Connection[Any]:
    """The same page (cursors, pageInfo, count) with each node replaced, converted in one batch. An
    edge whose node converts to None (a link to something gone) is left out; the page's cursors stay
    its own, so the next page starts after it all the same."""
    nodes = await convert([edge.node for edge in connection.edges])
    edges = [Edge(cursor=edge.cursor, node=node) for edge, node in zip(connection.edges, nodes, strict=True)
             if node is not None]
    return Connection(edges=edges, page_info=connection.page_info, count=connection.count)


async def sorted_list_connection(
    ids: Sequence[Any], page: Page, load: Callable[[list[Any]], Awaitable[list[T]]], *, scope: str,
) -> Connection[T]:
    """A page of a computed list of keys in ascending order (the datum ids of a diff or a split,
    utilization groups), its nodes loaded in one batch. `scope` names the list (what it was computed
    from), whose cursors these are."""
    start, end = _window(ids, page, scope)
    chosen = list(ids[start:end])
    return _list_connection(ids, start, end, chosen, await load(chosen), scope)


def held_list_connection(docs: Sequence[Mapping[str, Any]], page: Page,
                         to_node: Callable[[Mapping[str, Any]], T], *, scope: str) -> Connection[T]:
    """A page of raw documents held already, in ascending `_id` order (a dataset version's copies of a
    datum's records, which it keeps packed: documents/record_pack.py), with the cursors a
    collection's page of them would have, of the list `scope` (the copies have ids of their own: a
    cursor of the live records is no position among them). Only the page's documents are made nodes."""
    ids = [doc["_id"] for doc in docs]
    start, end = _window(ids, page, scope)
    return _list_connection(ids, start, end, ids[start:end], [to_node(doc) for doc in docs[start:end]], scope)


# A key of a computed list longer than a cursor's string (MAX_CURSOR_STRING) goes into its cursor as
# its first LONG_KEY_PREFIX characters and the SHA-256 of the whole: a utilization group is a name
# from an event's source, of any length, and its whole name made a cursor the server then refused
# (longer than any cursor), so the list could not be paged past it. The prefix finds where the key
# lies, the digest which of the keys sharing it is the one.
LONG_KEY_PREFIX = MAX_CURSOR_STRING // 2
_LONG_KEY = "$l"


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode(errors="surrogatepass")).hexdigest()


def _list_key(key: Any) -> Any:
    """A computed list's key as its cursor holds it."""
    if isinstance(key, str) and len(key) > MAX_CURSOR_STRING:
        return {_LONG_KEY: [key[:LONG_KEY_PREFIX], _key_digest(key)]}
    return key


def _long_key_position(ids: Sequence[Any], value: Any, *, after: bool) -> int | None:
    """Where a cursor's long key (`_list_key`) lies in `ids`: the position after it (`after`) or at
    it; None if `value` is not such a key. A key no longer listed, of which only the prefix is known,
    lies after every key of the prefix alone and before the longer ones: its page may repeat some of
    those, never skip any."""
    if not (isinstance(value, dict) and value.keys() == {_LONG_KEY}):
        return None
    prefix, digest = value[_LONG_KEY] if isinstance(value[_LONG_KEY], list) and len(value[_LONG_KEY]) == 2 else (None, None)
    if not (isinstance(prefix, str) and len(prefix) == LONG_KEY_PREFIX and isinstance(digest, str)):
        raise ValueError("not a key this server writes into a cursor")
    position = bisect.bisect_right(ids, prefix)
    for i in range(position, len(ids)):
        key = ids[i]
        if not (isinstance(key, str) and key.startswith(prefix)):
            break
        if len(key) > MAX_CURSOR_STRING and _key_digest(key) == digest:
            return i + 1 if after else i
    return position


def _window(ids: Sequence[Any], page: Page, scope: str) -> tuple[int, int]:
    """Where the page lies in `ids` (ascending): its first and one past its last position."""
    sort = [("_id", ASCENDING)]
    start, end = 0, len(ids)
    cursor, cursor_field = (page.before, "before") if page.backward else (page.after, "after")
    if cursor:
        try:
            key = decode_cursor(cursor, sort, cursor_field, scope=scope, long_keys=True)[0]
            position = _long_key_position(ids, key, after=not page.backward)
            if page.backward:
                end = bisect.bisect_left(ids, key) if position is None else position
            else:
                start = bisect.bisect_right(ids, key) if position is None else position
        except (TypeError, ValueError):  # a value of another type than the list's keys: not a cursor of this list
            raise BadUserInput("is not a cursor from this list", field=cursor_field) from None
    if page.backward:
        start = max(0, end - page.first)
    else:
        end = min(end, start + page.first)
    return start, end


def _list_connection(ids: Sequence[Any], start: int, end: int, chosen: Sequence[Any], nodes: list[T],
                     scope: str) -> Connection[T]:
    sort = [("_id", ASCENDING)]
    edges = [Edge(cursor=encode_cursor({"_id": _list_key(i)}, sort, scope=scope), node=n)
             for i, n in zip(chosen, nodes, strict=True)]
    total = len(ids)

    async def count() -> int:
        return total

    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=end < total, has_previous_page=start > 0,
                           start_cursor=edges[0].cursor if edges else None,
                           end_cursor=edges[-1].cursor if edges else None),
        count=count,
    )
