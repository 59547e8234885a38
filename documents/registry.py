"""Every document model (what `init_beanie` receives) and the collections they live in."""

from documents.annotation import AnnotationRecord, AnnotationSchema, AnnotationSet
from documents.api_token import ApiToken
from documents.asset import Alias, Asset, AssetLink
from documents.collection import Collection, CollectionItem
from documents.dataset import Dataset, DatasetVersion, Datum, DatumAsset, VersionMember
from documents.event import Event
from documents.record_pack import VersionRecordPack
from documents.retention import AssetRetention
from documents.upload import UploadClaim, UploadSession

DOCUMENT_MODELS: list[type] = [
    ApiToken, Asset, AssetLink, Alias, Collection, CollectionItem, AssetRetention,
    Datum, DatumAsset, Dataset, DatasetVersion, VersionMember, VersionRecordPack,
    AnnotationSchema, AnnotationSet, AnnotationRecord, UploadSession, UploadClaim, Event,
]

# The collections those documents live in, known before any database is bound.
COLLECTION_NAMES = frozenset(model.Settings.name for model in DOCUMENT_MODELS)  # type: ignore[attr-defined]
