"""Where the documents that use an asset without pinning it name it (services/asset_users.py): one
place, read by the queries for an asset's users and by the removal of documents taken back (a batch
rolled back or abandoned, records an addAnnotations takes back), which must find the assets they used
(services/use_removal.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from beanie import Document
from bson import ObjectId

from documents.annotation import AnnotationRecord
from documents.dataset import DatumAsset

# (collection, field naming the asset) of each kind of use. A datum's uses are its DatumAsset
# documents, written in its batch before it, not its `roles`.
USE_FIELDS: tuple[tuple[type[Document], str], ...] = (
    (DatumAsset, "asset_id"),
    (AnnotationRecord, "asset_id"),
    (AnnotationRecord, "geometry.asset_id"),
)


def fields_of(collection: str) -> list[str]:
    """The fields naming an asset in the documents of `collection` (none for a collection of no use)."""
    return [field for model, field in USE_FIELDS if model.Settings.name == collection]


def assets_named(collection: str, documents: Iterable[Mapping[str, Any]]) -> list[ObjectId]:
    """The assets these documents of `collection` use, each once, in the order met."""
    fields = fields_of(collection)
    found: dict[ObjectId, None] = {}
    for document in documents:
        for field in fields:
            value: Any = document
            for part in field.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if isinstance(value, ObjectId):
                found[value] = None
    return list(found)
