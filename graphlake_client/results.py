"""The shapes the client's verbs take and return, as TypedDicts and Literals: a type checker
(mypy, pyright) and an editor know each key and each allowed word, where `dict[str, Any]` let a
misspelt key pass until it raised KeyError at run time. They describe plain dicts, as returned:
a script can `json.dumps` any of them.

GraphQL answers keep the schema's field names (`datumCount`, `manifestSha256`); the reports the
client writes itself (exports, bundle imports) use snake_case, as the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, Required, TypedDict, TypeVar

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Split = Literal["TRAIN", "VALIDATION", "TEST", "UNASSIGNED"]
Policy = Literal["copy", "copy-if-missing", "reference"]
VersionState = Literal["new", "present", "conflict"]


class Source(TypedDict, total=False):
    """Where an event came from (OwnershipInput): every field is optional."""

    userId: str
    experimentId: str
    campaignId: str
    projectId: str
    workflowId: str
    stepId: str
    nodeId: str
    labId: str
    workcellId: str
    managerId: str


class EventInput(TypedDict, total=False):
    """One event for `log_events` (EventInput): only `eventType` is required."""

    eventType: Required[str]
    level: Level
    message: str | None
    data: Any
    source: Source
    timestamp: str  # ISO 8601; now if left out
    alert: bool
    traceId: str
    spanId: str
    key: str  # the client's own name for it (a UUID per event): sent again, it is not stored twice


class Event(TypedDict):
    """An event as `query_events` gives it (the Event type's fields)."""

    id: str
    eventType: str
    level: Level
    levelNumber: int
    message: str | None
    timestamp: str  # ISO 8601, by the sender's clock
    receivedAt: str  # ISO 8601, when the lake stored it
    alert: bool
    traceId: str | None
    spanId: str | None
    archived: bool
    origin: Literal["CLIENT", "LAKE"]
    data: Any
    source: dict[str, str | None]  # Source's fields, null where not given


T = TypeVar("T")


@dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a list the client walks a page at a time: its items, and the cursor to resume
    after it. Iterating it gives the items."""

    items: list[T]
    end_cursor: str | None
    has_next: bool

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class EventPage(Paged[Event]):
    """One page of `query_events`; resume after it with `cursor=page.end_cursor`."""

    @property
    def events(self) -> list[Event]:
        return self.items


class DatasetRef(TypedDict):
    id: str
    name: str


class ParentRef(TypedDict):
    id: str
    version: str


class DatasetVersion(TypedDict):
    """A dataset version as `create_dataset_version` and the importers' `version` give it."""

    id: str
    version: str
    description: str | None
    datumCount: int
    manifestSha256: str
    createdAt: str
    dataset: DatasetRef
    parent: ParentRef | None


class VersionRef(TypedDict):
    """The version an export came from."""

    dataset: str
    version: str
    id: str
    manifest_sha256: str


class ResultsFile(TypedDict):
    """One COCO results file of an export: the prediction set it holds (its name and id), that set's
    source (its model's name, `-<version>` when it has one; null without a source), and how many
    results it holds."""

    set: str
    set_id: str
    source: str | None
    results: int


class CocoExport(TypedDict):
    """What `export_coco` wrote: images, ground-truth annotations, results (predictions: all of
    them, and each results file's by its name under DEST, `results_files`), and what COCO cannot
    hold, counted by kind (`left_out`)."""

    images: int
    annotations: int
    results: int
    results_files: dict[str, ResultsFile]
    left_out: dict[str, int]
    version: VersionRef


class HfExport(TypedDict):
    """What `export_hf` wrote: `splits` counts images per split; `unreadable` names (`<split>/<path>`)
    the images Pillow could not read, left out (counted under `left_out` as IMAGE)."""

    images: int
    objects: int
    splits: dict[str, int]
    left_out: dict[str, int]
    unreadable: list[str]
    version: VersionRef


class YoloExport(HfExport):
    """What `export_yolo` wrote: the same counts, and the task its labels are for."""

    format: Literal["detect", "segment", "pose"]


class BundleExport(TypedDict):
    """What `export_bundle` wrote at `dest`."""

    datums: int
    records: int
    assets: int
    payloads: int
    payload_bytes: int
    dest: str
    version: VersionRef


class Tally(TypedDict):
    new: int
    present: int


class AssetTally(Tally):
    new_bytes: int  # of the new assets' payloads


class RecordTally(Tally):
    to_verify: int  # records the bundle has verified, marked verified here once made


class BundleImport(TypedDict):
    """What an import found (a dry run: would make) and made, whichever side imported it:
    `import_bundle` and `import_bundle_on_mount` give the same shape. `same_hash`: whether the
    version here hashes as the source's (None until one exists)."""

    dataset: str
    version: str
    manifest_sha256: str
    policy: Policy
    assets: AssetTally
    datums: Tally
    schemas: Tally
    sets: Tally
    records: RecordTally
    version_state: VersionState
    conflicts: list[str]
    committed: bool
    version_id: str | None
    same_hash: bool | None


class Ref(TypedDict):
    id: str


class FileRef(TypedDict):
    """An image or mask as `read_version` gives it: where to get its bytes (`downloadUrl`, or
    `storage` for a direct read from a mount this machine shares) and what to check them against."""

    id: str
    name: str
    sizeBytes: int | None
    sha256: str | None
    downloadUrl: str | None
    storage: dict[str, Any] | None


class RoleRef(TypedDict):
    role: str
    asset: Ref


class VersionDatum(TypedDict):
    """A datum as a version froze it (`read_version`): `asset` is its image role's file, if any."""

    id: str
    split: Split
    metadata: dict[str, Any]
    roles: list[RoleRef]
    asset: FileRef | None


class RecordSource(TypedDict):
    """What kind of source made a record: a person, a model, or a derivation (never a person's name:
    a privacy erase could not reach it in a version's file)."""

    kind: Literal["HUMAN", "MODEL", "DERIVED"]


class VersionRecord(TypedDict):
    """An annotation record as a version froze it (`read_version`). `geometry` is the API's union as
    JSON, told by `__typename` (BBox, RotatedBBox, Polygon, Polyline, Keypoints, Mask), a Mask's
    `asset` a FileRef; null for CLASSIFICATION and REGRESSION records."""

    id: str
    key: str | None
    kind: str
    label: str | None
    score: float | None
    value: float | None
    attributes: dict[str, Any] | None
    verified: bool
    source: RecordSource | None  # null from the file of a version built before Graphlake recorded it there
    set: Ref
    asset: Ref
    geometry: dict[str, Any] | None
