"""Per-request DataLoaders: every relation costs one `$in` query per level, whatever the page size
(child pages of parents with very many children add one limited query for each such parent). Results
computed over a whole version (diffs, training splits) are kept the same way: once per request,
whatever number of aliases and pages ask.

A fresh `Loaders` comes with each request (see Context), so cached documents never outlive it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
from beanie import Document
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension

from documents.asset import Alias
from documents.common import Split
from documents.dataset import DatasetVersion, VersionMember
from documents.lean import lean
from resolvers.loop_slices import validate_all
from services import datasets, snapshots
from services.checks import MAX_ALIASES
from services.errors import GraphlakeError
from services.id_reads import docs_by_ids
from services.query_match import matcher
from services.uploads.sessions import PartUrls

if TYPE_CHECKING:
    from services.metrics import Metrics

D = TypeVar("D", bound=Document)
K = TypeVar("K")
T = TypeVar("T")
# A training split's arguments: its version, normalised ratios, seed, and whether verified datums only.
SplitKey = tuple[ObjectId, tuple[float, float, float], int, bool]
# A datum as one version holds it: (version, datum).
VersionDatum = tuple[ObjectId, ObjectId]


@dataclass(frozen=True)
class ChildPage(Generic[D]):
    """The first (or last) children of one parent, and whether more exist before (after) them."""

    docs: list[D]
    has_next: bool


def _cache_key(*parts: Any) -> bytes:
    return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)


class FreshLoaders(SchemaExtension):
    """New loaders for every operation. An HTTP request has its own context anyway, but a
    WebSocket's context lives as long as the connection: without this, a second query on the same
    socket would read documents cached by the first."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if context is None or not hasattr(context, "loaders"):
            yield
            return
        context.loaders = Loaders(getattr(context.state, "metrics", None))
        try:
            yield
        finally:
            # Let go of every document the operation loaded as it ends. graphql-core's executor is a
            # reference cycle (it keeps bound methods of itself) holding the context, so the loaders'
            # caches would otherwise wait for a garbage collection: 13,000 objects after a nested
            # read of 100 datums, surviving into older generations and making collections long.
            context.loaders = Loaders(getattr(context.state, "metrics", None))


# What one batch of child pages may read beyond the pages themselves: enough that parents with a
# few children each (the usual page) cost one query, little enough that a page of huge parents
# cannot pull their every child into this process.
CHILD_BUDGET = 1000


async def _first_children(model: type[Document], field: str, query: dict[str, Any], parent_ids: Sequence[ObjectId],
                          n: int, order: Sequence[tuple[str, int]]) -> dict[ObjectId, list[dict]]:
    """Up to `n` raw children of each parent (documents whose `field` is its id), in `order` (sort keys
    ending in `_id`).

    FerretDB has no per-group limit ($lookup with a pipeline, $firstN), so this takes two steps. One
    `$in` query, sorted by parent, reads at most max(CHILD_BUDGET, n per parent) documents. Every
    parent it got past is then complete; each parent it did not reach (the one it stopped in, and
    those after it) has many children, and gets its own query limited to `n`, all at once. So a
    batch reads at most its pages and the budget, and parents with few children cost one query.
    Parent ids are ObjectIds: Python orders them as the database does.
    """
    collection = model.get_pymongo_collection()
    ids = list(parent_ids)
    budget = n if len(ids) == 1 else max(CHILD_BUDGET, n * len(ids))
    raw = await collection.find({field: {"$in": ids}, **query}, sort=[(field, ASCENDING), *order],
                                limit=budget).to_list()
    grouped: dict[ObjectId, list[dict]] = defaultdict(list)
    for doc in raw:
        grouped[doc[field]].append(doc)
    if len(ids) > 1 and len(raw) == budget:  # cut short: parents from the last one read on may be incomplete
        last = raw[-1][field]
        unreached = [p for p in ids if p > last or (p == last and len(grouped[p]) < n)]

        async def own_page(parent: ObjectId) -> list[dict]:
            return await collection.find({field: parent, **query}, sort=list(order), limit=n).to_list()

        for parent, docs in zip(unreached, await asyncio.gather(*(own_page(p) for p in unreached)), strict=True):
            grouped[parent] = docs
    return grouped


async def _child_pages(model: type[D], grouped: dict[ObjectId, list[dict]], parent_ids: Sequence[ObjectId],
                       first: int) -> list[ChildPage[D]]:
    """Each parent's first `first` raw children as models (all parents' together, validated in slices),
    and whether it has more."""
    pages = [grouped[p][:first] for p in parent_ids]
    docs = iter(await validate_all(lean(model), [doc for page in pages for doc in page]))
    return [ChildPage(docs=list(itertools.islice(docs, len(page))), has_next=len(grouped[p]) > first)
            for p, page in zip(parent_ids, pages, strict=True)]


class ByIdLoader(DataLoader[K, T]):
    """A loader of documents by id, which also keeps each one's GraphQL object once one is made, with
    the answer it was made from (resolvers/lookahead.node_now_or_later)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes: dict[K, tuple[Any, Any]] = {}


def _measured(load_fn: Any, batch_size: Any) -> Any:
    async def load(keys: Sequence[Any]) -> Any:
        batch_size.observe(len(keys))
        return await load_fn(keys)

    return load


class Loaders:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._loaders: dict[bytes, DataLoader] = {}
        self._by_id: dict[type, ByIdLoader] = {}  # by_id's, by class: asked once per item of a page
        self._metrics = metrics

    @functools.cached_property
    def part_urls(self) -> PartUrls:
        """The upload part URLs the request may still be handed, whichever fields sign them (aliases
        of uploadSession, nodes, createUploads): new with the loaders, so for each operation. Made
        when first asked: every operation makes loaders twice (FreshLoaders), few sign uploads."""
        return PartUrls()

    def _get(self, key: bytes, load_fn: Any, label: str, kind: type[DataLoader] = DataLoader, **options: Any) -> DataLoader:
        """The loader of `key`; `label` (the kind of loader and its collection: a closed set) names
        its batch sizes in the metrics."""
        loader = self._loaders.get(key)
        if loader is None:
            if self._metrics is not None:
                load_fn = _measured(load_fn, self._metrics.child(self._metrics.loader_batch, label))
            loader = self._loaders[key] = kind(load_fn=load_fn, **options)
        return loader

    def by_id(self, model: type[D]) -> ByIdLoader[ObjectId, D | None]:
        """Documents of `model` by `_id` (None where missing)."""
        loader = self._by_id.get(model)
        if loader is not None:
            return loader

        async def load(ids: Sequence[ObjectId]) -> list[D | None]:
            raw = await model.get_pymongo_collection().find({"_id": {"$in": list(ids)}}).to_list()
            found = {doc.id: doc for doc in await validate_all(lean(model), raw)}
            return [found.get(i) for i in ids]

        loader = self._by_id[model] = self._get(_cache_key("by_id", model.__name__), load, f"by_id:{model.__name__}",
                                                ByIdLoader)
        return loader

    def documents(self, model: type[D]) -> DataLoader[ObjectId, D | None]:
        """Documents of `model` by `_id` as Beanie documents, not lean twins (None where missing): for
        reads that hand them to a service that takes them (an upload session's signing)."""
        async def load(ids: Sequence[ObjectId]) -> list[D | None]:
            found = {doc.id: doc for doc in await docs_by_ids(model, ids)}
            return [found.get(i) for i in ids]

        return self._get(_cache_key("documents", model.__name__), load, f"documents:{model.__name__}")

    def known(self, docs: Sequence[Document]) -> None:
        """Documents this request just wrote: fields that load them by id need not read them back.
        A lean twin (documents/lean.py) primes the loader of the class it twins."""
        loaders: dict[type, DataLoader] = {}  # by class: an ingest primes hundreds of one class at once
        for doc in docs:
            kind = type(doc)
            if (loader := loaders.get(kind)) is None:
                loader = loaders[kind] = self.by_id(getattr(kind, "document_class", kind))
            loader.prime(doc.id, doc)

    def children(self, model: type[D], field: str, query: dict[str, Any], first: int,
                 order: Sequence[str] = ("_id",), *, last: bool = False) -> DataLoader[ObjectId, ChildPage[D]]:
        """The first `first` documents of `model` whose `field` is each parent id, in ascending `order`
        (fields ending in `_id`); with `last`, the last `first` of them (a `last: n` page without a
        cursor), still given in ascending order, `has_next` telling whether more come before them."""
        direction = DESCENDING if last else ASCENDING

        async def load(parent_ids: Sequence[ObjectId]) -> list[ChildPage[D]]:
            grouped = await _first_children(model, field, query, parent_ids, first + 1,  # one more: a next page?
                                            [(key, direction) for key in order])
            pages = await _child_pages(model, grouped, parent_ids, first)
            return [ChildPage(docs=page.docs[::-1], has_next=page.has_next) for page in pages] if last else pages

        return self._get(_cache_key("children", model.__name__, field, query, first, order, last), load,
                         f"children:{model.__name__}")

    def newest(self, model: type[D], field: str, query: dict[str, Any]) -> DataLoader[ObjectId, D | None]:
        """The newest (highest `_id`) document of `model` for each parent id."""

        async def load(parent_ids: Sequence[ObjectId]) -> list[D | None]:
            grouped = await _first_children(model, field, query, parent_ids, 1, [("_id", DESCENDING)])
            found = iter(await validate_all(lean(model), [grouped[p][0] for p in parent_ids if grouped[p]]))  # in slices
            return [next(found) if grouped[p] else None for p in parent_ids]

        return self._get(_cache_key("newest", model.__name__, field, query), load, f"newest:{model.__name__}")

    def unique(self, model: type[D], fields: tuple[str, ...]) -> DataLoader[tuple[Any, ...], D | None]:
        """The document of `model` whose `fields` hold each key's values, where a unique index on them
        allows one at most (a dataset by name, a version by dataset and name), or None: every key the
        operation asks (aliases of `dataset(name:)`, a page of datasets each asking for a version) in
        one query of each field's values `$in`. That reads at most the documents of every combination
        of the values asked, and keeps those asked; should several match a key after all, the oldest."""

        async def load(keys: Sequence[tuple[Any, ...]]) -> list[D | None]:
            query = {name: {"$in": list(dict.fromkeys(key[k] for key in keys))} for k, name in enumerate(fields)}
            asked = set(keys)
            found: dict[tuple[Any, ...], dict] = {}
            for doc in await model.get_pymongo_collection().find(query).to_list():
                key = tuple(doc.get(name) for name in fields)
                if key in asked and (key not in found or doc["_id"] < found[key]["_id"]):
                    found[key] = doc
            docs = iter(await validate_all(lean(model), [found[key] for key in keys if key in found]))
            return [next(docs) if key in found else None for key in keys]

        return self._get(_cache_key("unique", model.__name__, fields), load, f"unique:{model.__name__}")

    def counts(self, model: type[D], field: str, query: dict[str, Any]) -> DataLoader[ObjectId, int]:
        """How many documents of `model` have `field` equal to each parent id: one aggregation."""

        async def load(parent_ids: Sequence[ObjectId]) -> list[int]:
            pipeline = [
                {"$match": {field: {"$in": list(parent_ids)}, **query}},
                {"$group": {"_id": f"${field}", "n": {"$sum": 1}}},
            ]
            counted = {row["_id"]: row["n"] async for row in await model.get_pymongo_collection().aggregate(pipeline)}
            return [counted.get(p, 0) for p in parent_ids]

        return self._get(_cache_key("counts", model.__name__, field, query), load, f"counts:{model.__name__}")

    def version_copies(self, query: dict[str, Any]) -> DataLoader[VersionDatum, list[dict]]:
        """The copies a dataset version froze of a datum's records that match `query` (a record
        filter's: services/query_match.py), by (version, datum), in `_id` order, as stored: the packs
        of a batch of datums in one read, whichever versions hold them (a list of versions, each with
        a page of datums). A page validates only the copies it shows (a datum may hold thousands)."""

        async def load(keys: Sequence[VersionDatum]) -> list[list[dict]]:
            keep = matcher(query)
            grouped: dict[VersionDatum, list[dict]] = defaultdict(list)
            for copy in await snapshots.copies_held(keys):
                if keep(copy):
                    grouped[copy["version_id"], copy["datum_id"]].append(copy)
            for copies in grouped.values():  # in `_id` order already (a pack keeps its build's), unless
                copies.sort(key=itemgetter("_id"))  # ObjectId's counter wrapped within one second of it: cursors bisect
            return [grouped[key] for key in keys]

        return self._get(_cache_key("version_copies", query), load, "version_copies")

    def version_members(self) -> DataLoader[VersionDatum, VersionMember | None]:
        """Datums as a version holds them, by (version, datum): a batch in one read, whichever versions
        hold them (the records of several versions' pages naming their datums, several diffs' pages)."""
        async def load(keys: Sequence[VersionDatum]) -> list[VersionMember | None]:
            return await snapshots.members_held(keys)

        return self._get(_cache_key("version_members"), load, "version_members")

    def version_diffs(self) -> DataLoader[tuple[ObjectId, ObjectId], datasets.Diff]:
        """The diff of each (version, against): computed once per operation, however many of its
        fields (aliases, pages of added/removed/changed) ask; pairs asked together against one
        version read its members once (services/datasets.diffs). A pair with a version deleted
        while it was read fails alone."""
        async def load(pairs: Sequence[tuple[ObjectId, ObjectId]]) -> list[datasets.Diff | datasets.NotFound]:
            return await datasets.diffs(pairs)

        return self._get(_cache_key("version_diffs"), load, "version_diffs")

    def verifications(self) -> DataLoader[DatasetVersion, snapshots.Verification]:
        """Versions checked against their manifest hashes (by the version, keyed by its id): a list of
        versions each asking for its `verification` is checked in one pass (services/snapshots.verify_many)."""
        async def load(versions: Sequence[DatasetVersion]) -> list[snapshots.Verification]:
            return await snapshots.verify_many(versions)

        return self._get(_cache_key("verifications"), load, "verifications", cache_key_fn=lambda version: version.id)

    def training_splits(self) -> DataLoader[SplitKey, dict[Split, list[ObjectId]]]:
        """Training splits by (version, normalised ratios, seed, verified only): each computed once per
        operation, however many `trainingSplit` fields ask for it. One after the other: each holds its
        version's members while it runs. A version that is not READY fails its own keys alone."""
        async def load(keys: Sequence[SplitKey]) -> list[dict[Split, list[ObjectId]] | BaseException]:
            found: list[dict[Split, list[ObjectId]] | BaseException] = []
            for key in keys:
                try:
                    found.append(await datasets.training_split(*key))
                except GraphlakeError as error:
                    found.append(error)
            return found

        return self._get(_cache_key("training_splits"), load, "training_splits")

    def aliases(self) -> DataLoader[ObjectId, list[str]]:
        async def load(asset_ids: Sequence[ObjectId]) -> list[list[str]]:
            grouped: dict[ObjectId, list[str]] = defaultdict(list)
            # At most MAX_ALIASES an asset (services/assets._room_for_aliases); should racing writers
            # have passed it, each asset still shows its first MAX_ALIASES, as the request was weighed.
            raw = await Alias.get_pymongo_collection().find({"asset_id": {"$in": list(asset_ids)}}, sort=[("_id", 1)]).to_list()
            for doc in raw:
                grouped[doc["asset_id"]].append(doc["_id"])
            return [grouped[a][:MAX_ALIASES] for a in asset_ids]

        return self._get(_cache_key("aliases"), load, "aliases")
