"""Beanie documents, one module per collection. `init_beanie` receives DOCUMENT_MODELS.

Each document declares its indexes in `Settings.indexes`, each with an explicit name and the servers
it is for (documents/indexes.py): `graphlake.database.ensure_indexes` creates the missing ones by that
name on the server it runs on.
"""

from documents.annotation import AnnotationRecord, AnnotationSchema, AnnotationSet
from documents.api_token import ApiToken
from documents.asset import Alias, Asset
from documents.collection import Collection, CollectionItem
from documents.dataset import Dataset, DatasetVersion, Datum, VersionMember, VersionRecord
from documents.event import Event
from documents.retention import AssetRetention
from documents.upload import UploadClaim, UploadSession

DOCUMENT_MODELS: list[type] = [
    ApiToken, Asset, Alias, Collection, CollectionItem, AssetRetention,
    Datum, Dataset, DatasetVersion, VersionMember, VersionRecord,
    AnnotationSchema, AnnotationSet, AnnotationRecord, UploadSession, UploadClaim, Event,
]

# The collections those documents live in, known before any database is bound.
COLLECTION_NAMES = frozenset(model.Settings.name for model in DOCUMENT_MODELS)  # type: ignore[attr-defined]

__all__ = [
    "COLLECTION_NAMES", "DOCUMENT_MODELS", "Alias", "AnnotationRecord", "AnnotationSchema", "AnnotationSet", "ApiToken", "Asset",
    "AssetRetention", "Collection", "CollectionItem", "Dataset", "DatasetVersion", "Datum", "Event", "UploadClaim", "UploadSession",
    "VersionMember", "VersionRecord",
]
