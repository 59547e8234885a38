"""Steps every dataset importer (COCO, Pascal VOC) takes through the GraphQL API: read a connection
page by page, find or make the image datums, the annotation schema, the annotation set and the
dataset version, so a rerun finds what an earlier run made instead of making it twice.

Kept apart from coco.py so an importer that needs no pycocotools does not import it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops

if TYPE_CHECKING:
    from graphlake_client.client import Client

BATCH = 1000  # records or datums per mutation, well under the server's batch limit
# addAnnotations batches under way at once: the server checks and builds one while the database writes
# the other. More would only queue up on a server of a few cores.
RECORD_BATCHES_IN_FLIGHT = 2
KINDS = ["BBOX", "POLYGON", "MASK", "KEYPOINTS"]


async def pages(lake: Client, query: str, root: str, variables: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every node of a connection, page by page."""
    nodes, after = [], None
    while True:
        page = (await lake.execute(query, {**(variables or {}), "after": after}))[root]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def chunks(items: list[Any], size: int = BATCH) -> list[list[Any]]:
    """`items` in lists of `size`."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def by_image(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` with each image's together, images in the order they first appear, each image's
    records in their own order. The server reads the asset and datum of every image a batch names:
    a COCO file lists its annotations by category, so a batch of 1,000 named hundreds of images
    (every image, in bench/exchange.py's set of 500) where grouped it names a few dozen."""
    first: dict[str, int] = {}
    for record in records:
        first.setdefault(record["assetId"], len(first))
    return sorted(records, key=lambda record: first[record["assetId"]])  # stable: order within an image kept


async def add_records(lake: Client, set_id: str, records: list[dict[str, Any]]) -> int:
    """Add `records` to the set grouped by image (`by_image`), BATCH a mutation, RECORD_BATCHES_IN_FLIGHT
    at once; every batch runs to its end before a failure is reported. Returns how many were added."""
    records = by_image(records)
    gate = asyncio.Semaphore(RECORD_BATCHES_IN_FLIGHT)

    async def add(chunk: list[dict[str, Any]]) -> None:
        async with gate:
            await lake.execute(ops.ADD_ANNOTATIONS, {"setId": set_id, "records": chunk})

    done = await asyncio.gather(*(add(chunk) for chunk in chunks(records, BATCH)), return_exceptions=True)
    if failed := next((d for d in done if isinstance(d, BaseException)), None):
        raise failed
    return len(records)


async def image_datums(lake: Client, key: str, images: list[dict[str, Any]], asset_of: dict[Any, str], dataset: str,
                       done: Any, split: str = "UNASSIGNED") -> dict[Any, str]:
    """One datum per image (role `image`, metadata {key: {dataset, id, file_name, width, height}}):
    those an earlier import made (found by the dataset named in their metadata and their image
    asset), and new ones, in `split`, for the rest. Sets `done.datums_created`."""
    existing = await pages(lake, ops.DATUMS_BY_METADATA, "datums",
                           {"metadata": [{"path": f"{key}.dataset", "op": "EQ", "value": dataset}]})
    by_asset = {r["asset"]["id"]: d["id"] for d in existing for r in d["roles"] if r["role"] == "image"}
    datum_of = {i["id"]: by_asset[asset_of[i["id"]]] for i in images if asset_of[i["id"]] in by_asset}
    new = [i for i in images if i["id"] not in datum_of]
    for chunk in chunks(new):
        inputs = [{"roles": [{"role": "image", "assetId": asset_of[i["id"]]}], "split": split,
                   "metadata": {key: {"dataset": dataset, "id": i["id"], "file_name": i["file_name"],
                                 "width": i.get("width"), "height": i.get("height")}}} for i in chunk]
        created = (await lake.execute(ops.CREATE_DATUMS, {"inputs": inputs}))["createDatums"]
        datum_of.update({i["id"]: d["id"] for i, d in zip(chunk, created, strict=True)})
    done.datums_created = len(new)
    return datum_of


async def labelled_schema(lake: Client, name: str, categories: list[dict[str, Any]]) -> str:
    """The schema named `name` whose labels are these categories' names; a new version of it when
    the categories changed."""
    labels = [c["name"] for c in categories]
    same_name = [s for s in await pages(lake, ops.SCHEMAS, "annotationSchemas") if s["name"] == name]
    for schema in same_name:
        if [label["name"] for label in schema["labels"]] == labels:
            return schema["id"]
    created = (await lake.execute(ops.CREATE_SCHEMA, {"input": {
        "name": name, "kinds": KINDS, "labels": [{"name": label} for label in labels], "allowScores": True,
        "version": max((s["version"] for s in same_name), default=0) + 1}}))["createAnnotationSchema"]
    return created["id"]


async def annotation_set(lake: Client, name: str, purpose: str, schema: str, source: dict[str, Any]) -> dict[str, Any]:
    """The set of that name, purpose and schema; a new one when there is none."""
    for found in await pages(lake, ops.SETS, "annotationSets"):
        if found["name"] == name and found["purpose"] == purpose and found["schema"]["id"] == schema:
            counted = (await lake.execute(ops.SET_RECORD_COUNT, {"id": found["id"]}))["node"]
            return {**found, "recordCount": counted["recordCount"]}
    return (await lake.execute(ops.CREATE_SET, {"input": {"name": name, "purpose": purpose, "schemaId": schema,
                                                          "source": source}}))["createAnnotationSet"]


async def dataset_version(lake: Client, dataset: str, version: str, datum_ids: list[str], set_ids: list[str]) -> dict[str, Any]:
    """Version `version` of the dataset with these datums and sets; the existing one on a rerun
    (versions are immutable: it is never rebuilt)."""
    found = (await lake.execute(ops.VERSION, {"dataset": dataset, "version": version}))["datasetVersion"]
    if found:
        return found
    return await lake.create_dataset_version(dataset, version, add_datums=datum_ids, add_annotation_sets=set_ids)
