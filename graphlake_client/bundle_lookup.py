"""What a lake holds already of a bundle, read only: assets by SHA-256, datums by their assets,
schemas, sets and the records of a set. The importer matches by content, never by a marker: a
marker in a datum's metadata would change the version's manifest hash, which the import must keep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops
from graphlake_client.dataset_import import chunks, pages

if TYPE_CHECKING:
    from graphlake_client.client import Client

SHA_PAGE = 500  # digests a query asks about, and assets a page (the server's largest page by default)
NODES = 500  # assets per nodes() query for their datums (the server's largest list of ids by default)
FIRST_DATUMS = 20  # datums of each of them in that query (an image is in one or two): at most 10,000 an answer
NEXT_PAGES = 25  # assets paged on per query (aliased), under the server's alias limit (GRAPHLAKE_MAX_ALIASES, 30)
DATUM_PAGE = 500  # datums of one asset a page after its first (the server's largest page by default)


def canonical(value: Any) -> str:
    """A JSON value as text that equal values share (sorted keys)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def collection_named(lake: Client, name: str) -> str | None:
    """The id of the collection named `name`; None if there is none (nothing is created)."""
    found = (await lake.execute(ops.FIND_COLLECTION, {"name": name}))["collections"]["edges"]
    return next((e["node"]["id"] for e in found if e["node"]["name"] == name), None)


async def assets_by_sha(lake: Client, wanted: list[tuple[str, str]], collection: str | None) -> dict[tuple[str, str], str]:
    """An ACTIVE asset for each (kind, sha256) the lake holds (in `collection`, if given): its id, the
    newest when several hold it. One `sha256In` query per kind and SHA_PAGE digests (paged on while a
    digest held several times fills a page), where a filter per digest cost the server about 1.5 ms
    each: 3 s for a bundle of 2,000 files, made twice (prepare, then commit)."""
    by_kind: dict[str, set[str]] = {}
    for kind, sha256 in wanted:
        by_kind.setdefault(kind, set()).add(sha256)
    found: dict[tuple[str, str], str] = {}

    for kind, digests in by_kind.items():
        for chunk in chunks(sorted(digests), SHA_PAGE):
            filter_ = {"sha256In": chunk, "kinds": [kind], "statuses": ["ACTIVE"], "collectionId": collection}
            for node in await pages(lake, ops.ASSETS_BY_SHA, "assets", {"filter": filter_, "first": SHA_PAGE}):
                found.setdefault((kind, node["sha256"]), node["id"])  # newest first: a digest's first is its newest
    return found


def datum_key(split: str, roles: list[tuple[str, str]], metadata: Any) -> str:
    """What makes two datums the same for a version's hash: split, roles (by asset) and metadata."""
    return canonical([split, sorted([role, asset] for role, asset in roles), metadata or {}])


async def datums_using(lake: Client, asset_ids: list[str]) -> dict[str, list[str]]:
    """The datums that use any of these assets in a role, as {datum_key: [datum ids]}: every one of
    them. A first page of each asset's datums (FIRST_DATUMS) comes with NODES assets a query; an
    asset with more (thousands of datums on one image, say) is paged on with the others that have
    more, NEXT_PAGES of them a query, so the round trips grow with the datums, not with the assets."""
    found: dict[str, dict[str, None]] = {}
    more: dict[str, str] = {}  # asset id -> the cursor after its last datum read

    def take(asset_id: str, page: dict[str, Any]) -> None:
        for edge in page["edges"]:
            datum = edge["node"]
            key = datum_key(datum["split"], [(r["role"], r["asset"]["id"]) for r in datum["roles"]], datum["metadata"])
            found.setdefault(key, {})[datum["id"]] = None
        if page["pageInfo"]["hasNextPage"]:
            more[asset_id] = page["pageInfo"]["endCursor"]
        else:
            more.pop(asset_id, None)

    for chunk in chunks(sorted(set(asset_ids)), NODES):
        for node in (await lake.execute(ops.BUNDLE_ASSET_DATUMS, {"ids": chunk, "first": FIRST_DATUMS}))["nodes"]:
            if node and "datums" in node:
                take(node["id"], node["datums"])
    while more:  # each round asks for the next page of every asset that has more
        for chunk in chunks(sorted(more), NEXT_PAGES):
            await _next_pages(lake, chunk, more, take)
    return {key: list(ids) for key, ids in found.items()}


async def _next_pages(lake: Client, chunk: list[str], more: dict[str, str],
                      take: Callable[[str, dict[str, Any]], None]) -> None:
    """The next page of datums of each asset in `chunk`, after its cursor in `more`: one query."""
    params = ", ".join(f"$i{n}: ID!, $c{n}: String" for n in range(len(chunk)))
    fields = " ".join(f"a{n}: node(id: $i{n}) {{ ... on Asset {{ datums(first: $first, after: $c{n}) "
                      f"{{ {ops.BUNDLE_DATUM_PAGE} }} }} }}" for n in range(len(chunk)))
    variables: dict[str, Any] = {"first": DATUM_PAGE}
    for n, asset_id in enumerate(chunk):
        variables.update({f"i{n}": asset_id, f"c{n}": more[asset_id]})
    answer = await lake.execute(f"query BundleNextDatumPages($first: Int!, {params}) {{ {fields} }}", variables)
    for n, asset_id in enumerate(chunk):
        take(asset_id, answer[f"a{n}"]["datums"])


async def schemas(lake: Client) -> list[dict[str, Any]]:
    return await pages(lake, ops.BUNDLE_SCHEMAS, "annotationSchemas")


async def sets(lake: Client) -> list[dict[str, Any]]:
    return await pages(lake, ops.BUNDLE_SETS, "annotationSets")


async def set_records(lake: Client, set_id: str) -> list[dict[str, Any]]:
    """The set's current records (a correction's replaced ones aside), with every field the hash covers."""
    return await pages(lake, ops.BUNDLE_SET_RECORDS, "annotations", {"setId": set_id})


def record_key(datum: str | None, asset: str, record: dict[str, Any], geometry: dict[str, Any] | None) -> str:
    """What makes two records the same for a version's hash (verification aside: it is set apart)."""
    return canonical([datum, asset, record["kind"], record["label"], record["score"], record["value"], geometry,
                      record["attributes"] or {}, record["source"]])
