"""Where the documents that use an asset without pinning it name it (services/asset_users.py): one
place, read by the queries for an asset's users and by the removal of documents taken back (a batch
rolled back or abandoned, records an addAnnotations takes back), which must find the assets they used
(services/use_removal.py)."""

from __future__ import annotations

from beanie import Document

from documents.annotation import AnnotationRecord
from documents.dataset import DatumAsset

# (collection, field naming the asset) of each kind of use. A datum's uses are its DatumAsset
# documents, written in its batch before it, not its `roles`.
USE_FIELDS: tuple[tuple[type[Document], str], ...] = (
    (DatumAsset, "asset_id"),
    (AnnotationRecord, "asset_id"),
    (AnnotationRecord, "geometry.asset_id"),
)
