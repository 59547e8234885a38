"""Volumes of linked data, written through the services in bulk (tests and bench/ share it)."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId

from documents.annotation import AnnotationKind, AnnotationPurpose, AnnotationSource, LabelClass, SourceKind
from documents.asset import Asset
from documents.common import AssetKind, AssetStatus, Split
from documents.dataset import Datum, RoleRef
from documents.json_value import StoredJson
from services import annotations, datasets
from services.datums import insert_datums

ROLES = ("image", "mask")


async def seed_version(datum_count: int, annotations_per_datum: int = 3, name: str = "bench",
                       assets_created_at: datetime | None = None) -> ObjectId:
    """A READY version of `datum_count` datums, each with an image and a mask asset and
    `annotations_per_datum` ground-truth labels; returns the version id. The role assets are
    created now, or at `assets_created_at` (a bench keeps them out of the newest assets' way)."""
    when = {"created_at": assets_created_at} if assets_created_at else {}
    assets = [
        Asset(id=ObjectId(), kind=AssetKind.TEXT, status=AssetStatus.ACTIVE, name=f"{role}-{i}.png", media_type="image/png",
              size_bytes=1024, text="", metadata=StoredJson.encode({"camera": i % 4, "exposure": 0.01 * i}), **when)
        for i in range(datum_count) for role in ROLES
    ]
    await Asset.get_pymongo_collection().insert_many([a.model_dump(by_alias=True) for a in assets])
    datums = [
        Datum(id=ObjectId(), split=[Split.TRAIN, Split.VALIDATION, Split.TEST][i % 3],
              roles=[RoleRef(role=role, asset_id=assets[2 * i + j].id) for j, role in enumerate(ROLES)],
              metadata=StoredJson.encode({"index": i}))
        for i in range(datum_count)
    ]
    await insert_datums(datums)  # with their uses of their assets
    schema = await annotations.create_schema(f"{name}-schema", [AnnotationKind.CLASSIFICATION],
                                             [LabelClass(name="ok"), LabelClass(name="defect")], None, True, [], "seed")
    labels = await annotations.create_set(f"{name}-labels", AnnotationPurpose.GROUND_TRUTH, schema.id,
                                          AnnotationSource(kind=SourceKind.HUMAN, name="seed"), "seed")
    records = [
        annotations.NewRecord(asset_id=d.roles[0].asset_id, datum_id=d.id, kind=AnnotationKind.CLASSIFICATION,
                              label="ok" if k % 2 else "defect", score=0.5)
        for d in datums for k in range(annotations_per_datum)
    ]
    for start in range(0, len(records), 10_000):
        await annotations.add_records(labels.id, records[start:start + 10_000], "seed", 10_000)
    ds = await datasets.create_dataset(f"{name}-{ObjectId()}", None, "seed")
    version = await datasets.create_version(
        datasets.VersionPlan(dataset_id=ds.id, version="v1", add_datums=[d.id for d in datums], add_sets=[labels.id]), "seed")
    return version.id
