"""Datums (a training example: assets by role), datasets and their immutable versions."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.annotation import AnnotationRecord
from documents.clock import utcnow
from documents.common import Split
from documents.indexes import Index, On
from documents.json_value import JsonText, StoredJson, json_indexes
from documents.manifest import PENDING


class RoleRef(BaseModel):
    role: str
    asset_id: PydanticObjectId


class Datum(Document):
    split: Split = Split.UNASSIGNED
    roles: list[RoleRef]
    metadata: StoredJson = Field(default_factory=lambda: StoredJson.encode({}))
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # Moved on by each updateDatum (services/datums.update_datum); until the first, its created_at stands.
    updated_at: datetime | None = None
    # Set by a deleteDatum while it looks for holders (services/delete_marks.py); addAnnotations refuses
    # a datum that bears it.
    deleting_at: datetime | None = None

    class Settings:
        name = "datums"
        indexes = [
            # The maintenance finds deletes cut short by their marks (services/unfinished_deletes.py): a
            # range on this index, not a scan of every datum. Nearly every datum is without one: partial on
            # the embedded default (documents/indexes.py), so a datum written makes no entry in it.
            Index("deleting_at", name="deleting", embedded_partial=True),
            IndexModel([("split", ASCENDING), ("_id", DESCENDING)], name="split"),
            # The `datums` list in `_id` order on the embedded default. FerretDB takes an index on `_id` alone
            # for its own `_id_`, whose key is not a value: a second field makes it a separate one.
            Index([("_id", ASCENDING), ("split", ASCENDING)], name="id_order", on=On.EMBEDDED),
            IndexModel("roles.role", name="role"),
            *json_indexes("metadata"),
        ]


USES_COLLECTION = "datum_assets"


class DatumAsset(Document):
    """A datum's use of an asset (one per asset of its roles): how the datums using an asset are found.

    A side collection because the embedded default indexes no arrays: a query on `roles.asset_id`
    read every datum there, for an asset's `datums`, a delete's check of what uses the asset, and a
    bundle import's lookups, each growing with the lake. Written with the datum in one batch (rows
    first, so a datum is never visible without them; services/datums.insert_datums), removed after
    it. A row whose datum is gone (a crash between the two deletes) lists nothing and names no holder;
    the collector still counts it as a use (keeping the asset) until a delete of the asset clears it
    (services/asset_users.py).
    Roles never change after a datum is made, so nothing else writes here.
    """

    asset_id: PydanticObjectId
    datum_id: PydanticObjectId

    class Settings:
        name = USES_COLLECTION
        indexes = [
            # An asset's uses in `_id` order (its datums' order: services/datums.insert_datums), read as a
            # range that stops after its page.
            Index([("asset_id", ASCENDING), ("_id", ASCENDING)], name="asset_uses"),
        ]


class Dataset(Document):
    name: str
    description: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # Set as a delete starts (services/datasets.delete_dataset): a version build refuses the dataset from then on.
    deleting_at: datetime | None = None
    # The highest `ready_seq` of a version deleted from it: no later version takes that place again
    # (services/version_order.py).
    deleted_ready_seq: int | None = None

    class Settings:
        name = "datasets"
        indexes = [
            IndexModel("name", name="name_unique", unique=True),
            # `dataset(name:)` on the embedded default, where a unique index serves no query (its keys must
            # differ from the unique one's, or the server takes it for the same index).
            Index([("name", ASCENDING), ("_id", ASCENDING)], name="name", on=On.EMBEDDED),
            Index([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at"),
        ]


class VersionStatus(str, Enum):
    # A version is written in steps (no transactions on FerretDB): BUILDING until every member and
    # pin is stored, then READY; deleted the other way round, DELETING first. Readers see READY only.
    BUILDING = "BUILDING"
    READY = "READY"
    DELETING = "DELETING"


class VersionContentFile(BaseModel):
    """Where a version's content file is stored (services/version_content.py), with its size and SHA-256."""

    format: str
    mount: str
    key: str
    size_bytes: int
    sha256: str


class DatasetVersion(Document):
    dataset_id: PydanticObjectId
    version: str
    description: str | None = None
    parent_id: PydanticObjectId | None = None
    status: VersionStatus = VersionStatus.BUILDING
    annotation_set_ids: list[PydanticObjectId] = Field(default_factory=list)
    datum_count: int = 0
    split_counts: dict[str, int] = Field(default_factory=dict)
    # Its records per annotation set (set id as text), counted as its build copied them; None for a
    # version built before they were counted (services/datasets.record_counts counts those).
    record_counts: dict[str, int] | None = None
    manifest_sha256: str = ""
    content: VersionContentFile | None = None  # none: built before content files, or its write failed
    # When its content file was last begun (by its build, or the maintenance writing a missing one):
    # the maintenance tries a version again a day after (services/snapshots.write_missing_contents).
    content_tried_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    # Its place in its dataset's list of versions, taken as it became READY: after every version
    # listed before (services/version_order.py). None while BUILDING, and for a version that became
    # READY before versions were placed so (those come first, in the order they were made).
    ready_seq: int | None = None

    class Settings:
        name = "dataset_versions"
        indexes = [
            IndexModel([("dataset_id", ASCENDING), ("version", ASCENDING)], name="dataset_version_unique", unique=True),
            Index([("dataset_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                  name="dataset_created"),
            # A dataset's newest READY version, in `_id` order.
            Index([("dataset_id", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)], name="dataset_status"),
            # A dataset's versions page, in the order they became READY.
            Index([("dataset_id", ASCENDING), ("status", ASCENDING), ("ready_seq", ASCENDING), ("_id", ASCENDING)],
                  name="dataset_ready"),
        ]


class VersionMember(Document):
    """One datum of one version as it was when the version was built: its split, roles, metadata
    and creation time are copied here (frozen), so later changes to the datum never reach the version."""

    version_id: PydanticObjectId
    datum_id: PydanticObjectId
    split: Split
    roles: list[RoleRef] = Field(default_factory=list)
    digests: dict[str, str] = Field(default_factory=dict)  # role -> its asset's digest (documents/manifest.py)
    # The text alone: nothing queries a version's members by their metadata, and the predicate views a
    # datum's metadata carries were most of what a member cost to write. Members written with them
    # read the same (a StoredJson reads as a JsonText).
    metadata: JsonText = Field(default_factory=lambda: JsonText.encode({}))
    datum_created_at: datetime = Field(default_factory=utcnow)
    entry: str = ""  # hex SHA-256 of its content with its annotations (documents/manifest.datum_entry)

    def as_datum(self) -> Datum:
        """The datum as the version holds it."""
        return Datum.model_construct(id=self.datum_id, split=self.split, roles=self.roles, metadata=self.metadata,
                                     created_at=self.datum_created_at)

    class Settings:
        name = "version_members"
        indexes = [
            IndexModel([("version_id", ASCENDING), ("datum_id", ASCENDING)], name="version_datum_unique", unique=True),
            Index([("version_id", ASCENDING), ("split", ASCENDING), ("datum_id", ASCENDING)], name="version_split"),
            Index([("version_id", ASCENDING), ("_id", ASCENDING)], name="version_members"),  # a version's page
            # The versions holding a datum (a datum's delete names them, an erase finds them): without it
            # both read every member of every version.
            Index([("datum_id", ASCENDING), ("version_id", ASCENDING)], name="datum_versions"),
        ]


class VersionRecord(AnnotationRecord):
    """One annotation record of one version as it was when the version was built (a copy: adding,
    changing or verifying records later never reaches the version). `record_id` is the original's.
    Copies are stored packed, a datum's to a document (documents/record_pack.py): this is the model
    each reads as, not a collection of its own."""

    version_id: PydanticObjectId
    record_id: PydanticObjectId
    asset_digest: str = PENDING  # of the asset it annotates, and of its mask (documents/manifest.py)
    mask_digest: str | None = None

    class Settings:
        # Where copies lived, one a document, until schema version 11. Not registered: what Beanie's
        # methods would reach through it is the originals' collection (its settings are inherited).
        name = "version_records"
