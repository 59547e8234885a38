"""Value types shared by several documents: ownership, splits, kinds and statuses."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel


class Ownership(BaseModel):
    """Who or what produced a thing (MADSci's OwnershipInfo)."""

    user_id: str | None = None
    experiment_id: str | None = None
    campaign_id: str | None = None
    project_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    node_id: str | None = None
    lab_id: str | None = None


OWNERSHIP_FIELDS = tuple(Ownership.model_fields)


class Split(str, Enum):
    TRAIN = "TRAIN"
    VALIDATION = "VALIDATION"
    TEST = "TEST"
    UNASSIGNED = "UNASSIGNED"


class AssetKind(str, Enum):
    FILE = "FILE"
    VALUE = "VALUE"
    TEXT = "TEXT"
    EXTERNAL = "EXTERNAL"


class AssetStatus(str, Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DELETED = "DELETED"


class RetentionOwnerType(str, Enum):
    COLLECTION = "COLLECTION"
    DATASET_VERSION = "DATASET_VERSION"
    MANUAL_PIN = "MANUAL_PIN"
