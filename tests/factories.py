"""Small async factories that make data through the API, as a client would."""

from __future__ import annotations

from typing import Any

from tests.operations import Api

_DEFAULT = object()


async def value_asset(api: Api, token: str, name: str = "reading", value: Any = _DEFAULT, **fields: Any) -> dict:
    data = await api.data("StoreValue", {"input": {"name": name, "value": {"t": 1} if value is _DEFAULT else value, **fields}},
                          token=token)
    return data["storeValue"]


async def image_asset(api: Api, token: str, name: str = "img.png", **fields: Any) -> dict:
    """A TEXT asset with an image media type: stands in for an uploaded image until uploads exist.
    `fields` are more of StoreText's input (labels, aliases, derivedFrom, ...)."""
    data = await api.data("StoreText", {"input": {"name": name, "text": "PNG", "mediaType": "image/png", **fields}},
                          token=token)
    return data["storeText"]


async def collection(api: Api, token: str, name: str = "raw") -> dict:
    return (await api.data("CreateCollection", {"input": {"name": name}}, token=token))["createCollection"]


async def datums(api: Api, token: str, count: int, roles: tuple[str, ...] = ("image", "mask"),
                 split: str = "UNASSIGNED") -> list[dict]:
    """`count` datums, each with a fresh asset per role."""
    inputs = []
    for i in range(count):
        role_inputs = [{"role": role, "assetId": (await image_asset(api, token, f"{role}-{i}.png"))["id"]} for role in roles]
        inputs.append({"roles": role_inputs, "split": split, "metadata": {"index": i}})
    return (await api.data("CreateDatums", {"inputs": inputs}, token=token))["createDatums"]


async def dataset(api: Api, token: str, name: str = "widgets") -> dict:
    return (await api.data("CreateDataset", {"input": {"name": name}}, token=token))["createDataset"]


async def version(api: Api, token: str, dataset_id: str, name: str, **fields: Any) -> dict:
    data = await api.data("CreateDatasetVersion", {"input": {"datasetId": dataset_id, "version": name, **fields}}, token=token)
    return data["createDatasetVersion"]


async def schema(api: Api, token: str, name: str = "defects", **fields: Any) -> dict:
    defaults = {"kinds": ["CLASSIFICATION", "BBOX", "POLYGON", "MASK", "REGRESSION", "ROTATED_BBOX", "POLYLINE", "KEYPOINTS"],
                "labels": [{"name": "scratch"}, {"name": "dent", "color": "#ff0000"}]}
    data = await api.data("CreateAnnotationSchema", {"input": {"name": name, **{**defaults, **fields}}}, token=token)
    return data["createAnnotationSchema"]


async def annotation_set(api: Api, token: str, schema_id: str, purpose: str = "GROUND_TRUTH",
                         source: dict | None = None, name: str = "labels") -> dict:
    source = source or {"kind": "HUMAN", "name": "alice"}
    data = await api.data("CreateAnnotationSet", {"input": {"name": name, "purpose": purpose, "schemaId": schema_id,
                                                            "source": source}}, token=token)
    return data["createAnnotationSet"]


async def labelled_set(api: Api, token: str, datums_made: list[dict], label: str = "dent") -> dict:
    """A ground-truth set holding one CLASSIFICATION record on each datum's first role asset."""
    labels = await annotation_set(api, token, (await schema(api, token))["id"])
    await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": label}
        for d in datums_made]}, token=token)
    return labels


async def version_copies(version_id: str) -> list[dict]:
    """The copies of records a version froze, as stored (packed a datum's to a document:
    documents/record_pack.py) and unpacked, in (datum, `_id`) order."""
    from services.snapshots import version_copies as pages
    from tests.operations import object_id

    return [copy async for page in pages(object_id(version_id)) for copy in page]
