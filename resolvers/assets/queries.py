"""Reading assets: by id, by alias, and the filtered, ordered `assets` list."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from bson import ObjectId

from documents.asset import Alias
from documents.asset import Asset as AssetDocument
from documents.common import AssetKind as AssetKindValue
from documents.common import AssetStatus as AssetStatusValue
from documents.json_value import holds_without_path
from documents.lean import lean
from resolvers.assets.inputs import AssetFilter, AssetOrder, AssetOrderField
from resolvers.assets.types import Asset
from resolvers.common import OrderDirection, json_filters
from resolvers.context import Info
from resolvers.list_filters import refuse_empty_lists
from resolvers.pagination import Page, SortSpec, page_read, paginate, paginate_by
from resolvers.permissions import CanRead
from resolvers.relay import After, Before, Connection, First, Last
from services import collections
from services.checks import check_at_most, text_contains, text_starts_with, time_bounds
from services.node_ids import NodeType, decode_object_id

MAX_SHA256_IN = 500  # digests in one `sha256In`: the embedded default searches its index for lists this short (graphlakeNarrowing)


def assets_list() -> str:
    """The scope of the assets list's cursors (resolvers/pagination.py): the list's, whichever way a page is read."""
    return AssetDocument.get_pymongo_collection().name


def asset_query(filter: AssetFilter | None) -> dict[str, Any]:
    """The MongoDB filter for an AssetFilter; each part is served by one of the asset indexes."""
    f = filter or AssetFilter()
    refuse_empty_lists(f, "filter")
    clauses: list[dict[str, Any]] = [status_clause(f)]
    if f.kinds:
        clauses.append({"kind": {"$in": [k.value for k in f.kinds]}})
    if f.labels_all:
        clauses.append({"labels": {"$all": f.labels_all}})
    if f.labels_any:
        clauses.append({"labels": {"$in": f.labels_any}})
    if f.media_type_prefix:
        clauses.append(text_starts_with("media_type", f.media_type_prefix))
    if f.name_contains:
        clauses.append(text_contains("name", f.name_contains))
    if f.sha256 is not None:  # "" too: it names no digest (read as no filter, it listed every asset)
        clauses.append({"sha256": f.sha256.lower()})
    if f.sha256_in is not None:
        digests = sorted({d.lower() for d in f.sha256_in})
        check_at_most(digests, MAX_SHA256_IN, "digests", "filter.sha256In")
        clauses.append({"sha256": {"$in": digests}})
    clauses += time_bounds("created_at", f.created_after, f.created_before)
    clauses += time_bounds("data_timestamp", f.data_timestamp_after, f.data_timestamp_before)
    if f.owner:
        clauses.extend({k: v} for k, v in f.owner.to_filter("owner").items())
    if f.collection_id is not None:  # "" too: BAD_USER_INPUT, not the whole lake's assets
        clauses.append({"collection_ids": collection_of(f)})
    clauses += json_filters("metadata", f.metadata, input_field="filter.metadata")
    clauses += json_filters("value", f.value, input_field="filter.value")
    if any(holds_without_path(p.op.value, p.value) for p in f.value or ()):
        # Only a VALUE asset has a `value`: the others, without the path, met NE, NIN and EXISTS false.
        clauses.append({"kind": AssetKindValue.VALUE.value})
    return {"$and": clauses}


def status_clause(f: AssetFilter) -> dict[str, Any]:
    """The statuses a filter lists: every one but DELETED unless it says which."""
    statuses = [s.value for s in f.statuses] if f.statuses else [s.value for s in AssetStatusValue if s is not AssetStatusValue.DELETED]
    return {"status": {"$in": statuses}}


def collection_of(f: AssetFilter) -> ObjectId:
    """The collection a filter's `collectionId` names (it must name one)."""
    return decode_object_id(f.collection_id, NodeType.COLLECTION, field="filter.collectionId")


async def asset_list_query(filter: AssetFilter | None, sort: SortSpec, page: Page) -> dict[str, Any]:
    """asset_query; for a collection's assets in an order its items keep no key of (name, size, data
    timestamp), with the ids of its items beside it when the list's walk would not meet them soon
    (services/collections.assets_to_read), at the top of the filter, where the embedded default
    reads ids through their index: those assets alone are read and sorted. A digest filter keeps its
    own index, narrower still."""
    query = asset_query(filter)
    if filter is None or filter.collection_id is None or filter.sha256 is not None or filter.sha256_in:
        return query
    # The walk as far as the collection goes: the list's statuses, from the page's cursor on.
    walk, read_sort = page_read(status_clause(filter), sort, page, scope=assets_list())
    held = await collections.assets_to_read(collection_of(filter), walk, read_sort, wanted=page.first + 1)
    return query if held is None else {"_id": {"$in": held}, **query}


def through_items(filter: AssetFilter, order: AssetOrder) -> bool:
    """Whether the page is a collection's assets in the order its items keep (creation time, either
    way), read through them (services/collections.assets_by_items). A digest filter keeps its own
    index; the other orders, asset_list_query's reads."""
    return (filter.collection_id is not None and filter.sha256 is None and not filter.sha256_in
            and order.field is AssetOrderField.CREATED_AT)


async def collection_page(filter: AssetFilter, sort: SortSpec, page: Page) -> Connection[Asset]:
    """A page of a collection's assets newest (or oldest) first, through its items: its cost grows
    with the items read, not with the lake. Cursors and `totalCount` are the list's."""
    collection_id, query = collection_of(filter), asset_query(filter)

    async def read(read_sort: list[tuple[str, int]], start: list[Any] | None, limit: int) -> list[dict[str, Any]]:
        return await collections.assets_by_items(collection_id, query, read_sort[0][1],
                                                 (start[0], start[1]) if start else None, limit)

    async def count() -> int:  # as the list counts it (asset_list_query)
        held = await collections.held_asset_ids(collection_id)
        return await AssetDocument.get_pymongo_collection().count_documents(
            query if held is None else {"_id": {"$in": held}, **query})

    return await paginate_by(read, sort=sort, page=page, count=count, scope=assets_list(),
                             to_node=lambda raw: Asset.from_document(lean(AssetDocument).model_validate(raw)))


@strawberry.type
class AssetQueries:
    @strawberry.field(permission_classes=[CanRead], description="An asset by ID (also a DELETED one); null if none.")
    async def asset(self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The asset's ID.")]) -> Asset | None:
        doc = await info.context.loaders.by_id(AssetDocument).load(decode_object_id(id, NodeType.ASSET))
        return Asset.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="The asset with this lake-wide alias; null if none.")
    async def asset_by_alias(
        self, info: Info, alias: Annotated[str, strawberry.argument(description="One of the asset's aliases (exact).")],
    ) -> Asset | None:
        # Through the request's loaders: aliases of this field (a client's batch of lookups) read
        # their aliases in one query, then their assets in one more, not two reads each.
        found = await info.context.loaders.by_id(Alias).load(alias)  # type: ignore[arg-type]  # keyed by the alias itself
        doc = await info.context.loaders.by_id(AssetDocument).load(found.asset_id) if found else None
        return Asset.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="Assets matching `filter`, newest first unless `orderBy` says otherwise.")
    async def assets(
        self, info: Info,
        filter: Annotated[AssetFilter | None, strawberry.argument(description=(
            "Which assets; null lists every asset but DELETED ones."))] = None,
        order_by: Annotated[AssetOrder | None, strawberry.argument(description=(
            "Sort order; null is newest first (CREATED_AT, DESC)."))] = None,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[Asset]:
        order = order_by or AssetOrder(field=AssetOrderField.CREATED_AT, direction=OrderDirection.DESC)
        sort, page = [(order.field.value, order.direction.value)], info.context.page(first, after, last, before)
        if filter is not None and through_items(filter, order):
            return await collection_page(filter, sort, page)
        return await paginate(
            AssetDocument.get_pymongo_collection(), query=await asset_list_query(filter, sort, page), sort=sort, page=page,
            to_node=lambda raw: Asset.from_document(lean(AssetDocument).model_validate(raw)),
        )
