"""GraphQL types of datasets, versions, diffs and training splits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from bson import ObjectId

from documents.annotation import AnnotationSet as SetDocument
from documents.common import Split as SplitValue
from documents.dataset import Dataset as DatasetDocument
from documents.dataset import DatasetVersion as VersionDocument
from documents.dataset import VersionMember, VersionStatus
from resolvers.annotations.types import AnnotationSet
from resolvers.common import Split, who_did
from resolvers.context import Info
from resolvers.datums.types import Datum
from resolvers.lookahead import node_selections, selected
from resolvers.pagination import Page, child_connection, child_count, sorted_list_connection
from resolvers.relay import After, Before, Connection, First, Last, Node
from resolvers.scalars import BigInt
from services import datasets as service
from services import version_content
from services.node_ids import NodeType, decode_object_id, encode_id
from services.snapshots import Verification

READY = {"status": VersionStatus.READY.value}


async def load_members(info: Info, version_id: ObjectId, datum_ids: list[ObjectId]) -> list[Datum]:
    """Datums as version `version_id` holds them, in the order asked: through the request's loader,
    so the pages of every diff (or split) in a list of versions are one query."""
    members = await info.context.loaders.version_members().load_many([(version_id, d) for d in datum_ids])
    return [Datum.from_member(m) for m in members if m is not None]


@strawberry.type(description="How many of a version's datums are in one split.")
class SplitCount:
    split: Split = strawberry.field(description="The split.")
    count: int = strawberry.field(description="How many datums the version holds in it.")


@strawberry.type(description="How two versions differ: datums added and removed, and datums in both whose split, "
                             "roles, metadata or annotations differ.")
class DatasetDiff:
    version_id: strawberry.Private[ObjectId]
    against_id: strawberry.Private[ObjectId]
    added_ids: strawberry.Private[list[ObjectId]]
    removed_ids: strawberry.Private[list[ObjectId]]
    changed_ids: strawberry.Private[list[ObjectId]]

    def _scope(self, part: str) -> str:
        """The list of one part of this diff, whose cursors its pages give."""
        return f"diff {part} of {self.version_id} against {self.against_id}"

    @strawberry.field(description="How many datums this version has that the other does not.")
    def added_count(self) -> int:
        return len(self.added_ids)

    @strawberry.field(description="How many datums the other version has that this one does not.")
    def removed_count(self) -> int:
        return len(self.removed_ids)

    @strawberry.field(description="How many datums both versions hold, differently.")
    def changed_count(self) -> int:
        return len(self.changed_ids)

    @strawberry.field(description="Datums in both versions whose split, roles, metadata or annotations differ, as "
                                  "this version holds them (read the other's through `against`).")
    async def changed(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Datum]:
        return await sorted_list_connection(self.changed_ids, info.context.page(first, after, last, before),
                                            lambda ids: load_members(info, self.version_id, ids), scope=self._scope("changed"))

    @strawberry.field(description="Datums in this version and not in the other, as this version holds them.")
    async def added(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Datum]:
        return await sorted_list_connection(self.added_ids, info.context.page(first, after, last, before),
                                            lambda ids: load_members(info, self.version_id, ids), scope=self._scope("added"))

    @strawberry.field(description="Datums in the other version and not in this one, as the other holds them.")
    async def removed(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Datum]:
        return await sorted_list_connection(self.removed_ids, info.context.page(first, after, last, before),
                                            lambda ids: load_members(info, self.against_id, ids), scope=self._scope("removed"))


@strawberry.type(description="A deterministic partition of a version's datums for a seed and ratios.")
class TrainingSplit:
    version_id: strawberry.Private[ObjectId]
    parts: strawberry.Private[dict[SplitValue, list[ObjectId]]]

    async def _part(self, info: Info, split: SplitValue, page: Page) -> Connection[Datum]:
        return await sorted_list_connection(self.parts[split], page, lambda ids: load_members(info, self.version_id, ids),
                                            scope=f"training split {split.value} of {self.version_id}")

    @strawberry.field(description="The datums to fit a model on, in ID order.")
    async def train(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Datum]:
        return await self._part(info, SplitValue.TRAIN, info.context.page(first, after, last, before))

    @strawberry.field(description="The datums to tune and choose a model on, in ID order.")
    async def validation(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Datum]:
        return await self._part(info, SplitValue.VALIDATION, info.context.page(first, after, last, before))

    @strawberry.field(description="The datums held out for the final evaluation, in ID order.")
    async def test(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[Datum]:
        return await self._part(info, SplitValue.TEST, info.context.page(first, after, last, before))


@strawberry.type(description="A dataset version checked against its manifest hash.")
class VersionVerification:
    ok: bool = strawberry.field(description="The hash matches and every asset it names still has its digest.")
    stored_sha256: str = strawberry.field(description="The manifest hash recorded when the version was built.")
    computed_sha256: str = strawberry.field(description="The hash of what the version holds now.")
    datums: int = strawberry.field(description="Datums checked.")
    records: int = strawberry.field(description="Annotation records checked.")
    problems: list[str] = strawberry.field(description="What differs (at most 100).")

    @classmethod
    def from_value(cls, checked: Verification) -> VersionVerification:
        return cls(ok=checked.ok, stored_sha256=checked.stored, computed_sha256=checked.computed, datums=checked.datums,
                   records=checked.records, problems=checked.problems)


@strawberry.type(description=(
    "A version's whole content as one stored file, written when it was built: one JSON line per datum, in the "
    "order `datums` lists them, each with the fields `datums` gives (id, split, metadata, roles) and its "
    "`annotations` (id, key, kind, label, score, value, attributes, verified, set, asset, geometry with its "
    "`__typename`); every asset named by `{\"id\"}` alone. Who made or verified a record is left out. Exporters "
    "read it instead of paging through the version."))
class VersionContent:
    format: str = strawberry.field(description="Its format's name: `graphlake-version-content-1`.")
    mount: str = strawberry.field(description="The mount holding it (a client sharing that directory may read it there).")
    key: str = strawberry.field(description="Its key inside the mount.")
    size_bytes: BigInt = strawberry.field(description="Its size in bytes.")
    sha256: str = strawberry.field(description="The hex SHA-256 of its bytes: check it before trusting the file.")
    version: strawberry.Private[VersionDocument]  # whose `content` this is

    @strawberry.field(description=(
        "A signed, short-lived URL to GET the file, which a browser saves as `<dataset>-<version>.jsonl`; null if "
        "its mount is gone."))
    async def download_url(
        self, info: Info,
        expires_in_seconds: Annotated[int, strawberry.argument(description=(
            "How long the URL stays valid, in seconds: 1 up to GRAPHLAKE_MAX_DOWNLOAD_URL_SECONDS. Default 900."))] = 900,
    ) -> str | None:
        content = self.version.content
        if content is None:  # (never: made only for a version that has one)
            return None
        dataset = await info.context.loaders.by_id(DatasetDocument).load(self.version.dataset_id)
        name = f"{dataset.name}-{self.version.version}.jsonl" if dataset else None
        return await version_content.download_url(content, info.context.stores, expires_in_seconds,
                                                  info.context.settings.max_download_url_seconds, filename=name)


@strawberry.type(description="One of a version's annotation sets, with how many of its records the version holds.")
class VersionAnnotationCount:
    set: AnnotationSet = strawberry.field(description="The annotation set.")
    records: int = strawberry.field(description="Its records the version holds (as its build froze them).")


@strawberry.type(description="An immutable version of a dataset: its datums (with the split each had), and annotation sets.")
class DatasetVersion(Node):
    version: str = strawberry.field(description="Its name, unique in its dataset, e.g. `v3` or `2026-11-23`.")
    description: str | None = strawberry.field(description="Free text; null if none was given.")
    created_at: datetime = strawberry.field(description="When it was built (UTC).")
    created_by: str | None = strawberry.field(description=who_did("built", "for system writes"))
    datum_count: int = strawberry.field(description="How many datums it holds.")
    manifest_sha256: str = strawberry.field(description="SHA-256 of what the version holds (each datum's split, roles "
                                            "by their assets' content digests, metadata, annotations), never of ids: "
                                            "the same content gives the same hash in any lake.")
    doc: strawberry.Private[VersionDocument]

    @strawberry.field(description=(
        "Its content as one file (see `VersionContent`); null for a version built before such files were written, "
        "or whose file could not be stored: then read `datums`."))
    def content(self) -> VersionContent | None:
        found = self.doc.content
        if found is None:
            return None
        return VersionContent(format=found.format, mount=found.mount, key=found.key, size_bytes=BigInt(found.size_bytes),
                              sha256=found.sha256, version=self.doc)

    @strawberry.field(description="The dataset it is a version of.")
    async def dataset(self, info: Info) -> Dataset:
        return Dataset.from_document(await info.context.loaders.by_id(DatasetDocument).load(self.doc.dataset_id))

    @strawberry.field(description="The version it was built from (`parentId`); null if it was built without one.")
    async def parent(self, info: Info) -> DatasetVersion | None:
        if self.doc.parent_id is None:
            return None
        return DatasetVersion.from_document(await info.context.loaders.by_id(VersionDocument).load(self.doc.parent_id))

    @strawberry.field(description="How many of its datums are in each split, every split listed (0 where it has none).")
    def split_counts(self) -> list[SplitCount]:
        return [SplitCount(split=SplitValue(s), count=n) for s, n in self.doc.split_counts.items()]

    @strawberry.field(description="Its datums; `split` is the split each had when the version was built.")
    async def datums(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
                     split: Annotated[Split | None, strawberry.argument(description=(
                         "Only datums that were in this split when the version was built; null for all."))] = None,
                     ) -> Connection[Datum]:
        page, query = info.context.page(first, after, last, before), {"split": split.value} if split else {}
        datums = await child_connection(info.context.loaders, VersionMember, field="version_id", parent_id=self.doc.id,
                                        query=query, page=page, to_node=Datum.from_member)
        if not (page.after or page.before) and selected([s for f in info.selected_fields for s in f.selections], "totalCount"):
            # Counted now, while every version of a list is at this point: after the look-ahead (whose reads
            # end at different times for each) their counts went in batches of one or a few.
            child_count(info.context.loaders, VersionMember, field="version_id", parent_id=self.doc.id, query=query)
        await Datum.look_ahead(info.context, [edge.node for edge in datums.edges], node_selections(info.selected_fields))
        return datums

    @strawberry.field(description="The annotation sets it holds (their records as they were when it was built; at most 100, a whole list).")
    async def annotation_sets(self, info: Info) -> list[AnnotationSet]:
        docs = await info.context.loaders.by_id(SetDocument).load_many(self.doc.annotation_set_ids)
        return [AnnotationSet.from_document(d) for d in docs if d is not None]

    @strawberry.field(description="How many records the version holds of each of its annotation sets, as its build "
                                  "froze them (a set's own `recordCount` is what the set holds now).")
    async def annotation_counts(self, info: Info) -> list[VersionAnnotationCount]:
        counts = await service.record_counts(self.doc)
        docs = await info.context.loaders.by_id(SetDocument).load_many(self.doc.annotation_set_ids)
        return [VersionAnnotationCount(set=AnnotationSet.from_document(d), records=counts.get(str(d.id), 0))
                for d in docs if d is not None]

    @strawberry.field(description="Recompute the manifest hash from what the version holds, and check that every "
                                  "asset it names still has the digest it had at build (reads the whole version; "
                                  "`graphlake datasets verify --deep` also re-reads the stored bytes).")
    async def verification(self, info: Info) -> VersionVerification:
        return VersionVerification.from_value(await info.context.loaders.verifications().load(self.doc))

    @strawberry.field(description="How this version differs from another (`against`): datums added, removed and changed.")
    async def diff(
        self, info: Info,
        against: Annotated[strawberry.ID, strawberry.argument(description="The other version (of any dataset).")],
    ) -> DatasetDiff:
        against_id = decode_object_id(against, NodeType.DATASET_VERSION, field="against")
        other = service.ready(await info.context.loaders.by_id(VersionDocument).load(against_id), against_id, "against")
        found = await info.context.loaders.version_diffs().load((self.doc.id, other.id))
        return DatasetDiff(version_id=self.doc.id, against_id=other.id, added_ids=found.added,
                           removed_ids=found.removed, changed_ids=found.changed)

    @classmethod
    def from_document(cls, doc: VersionDocument) -> DatasetVersion:
        return cls(id=encode_id(NodeType.DATASET_VERSION, doc.id), version=doc.version, description=doc.description,
                   created_at=doc.created_at, created_by=doc.created_by, datum_count=doc.datum_count,
                   manifest_sha256=doc.manifest_sha256, doc=doc)


@strawberry.type(description="A named line of immutable versions.")
class Dataset(Node):
    name: str = strawberry.field(description="Its name, unique in the lake.")
    description: str | None = strawberry.field(description="Free text; null if none was given.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    doc: strawberry.Private[DatasetDocument]

    @strawberry.field(description=(
        "Its versions in the order they became READY (a version being built is not listed). Each takes its place as it "
        "becomes READY, after every version listed before, so a client following the list forward (`after` its last "
        "`endCursor`) sees every version once it is READY, also one whose build began before versions it has seen; at "
        "worst (two builds finishing at once, or a version a refused delete hid and showed again) it sees one twice, "
        "never none. Versions that became READY before versions were placed so come first, in the order they were made."))
    async def versions(self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None) -> Connection[DatasetVersion]:
        return await child_connection(
            info.context.loaders, VersionDocument, field="dataset_id", parent_id=self.doc.id, query=READY,
            page=info.context.page(first, after, last, before), to_node=DatasetVersion.from_document,
            order=("ready_seq", "_id"),
        )

    @strawberry.field(description="The newest version; null while it has none.")
    async def latest(self, info: Info) -> DatasetVersion | None:
        newest = await info.context.loaders.newest(VersionDocument, "dataset_id", READY).load(self.doc.id)
        return DatasetVersion.from_document(newest) if newest else None

    @strawberry.field(description="The version with this name; null if it has none by that name.")
    async def version(
        self, info: Info, version: Annotated[str, strawberry.argument(description="The version's name, e.g. `v3`.")],
    ) -> DatasetVersion | None:
        # Through a loader, as `latest`: a page of datasets asking each for its `v1` (or aliases asking
        # for `v1` and `v2`) is one query, not one each. One the `datasetVersion` root shares.
        found = await info.context.loaders.unique(VersionDocument, ("dataset_id", "version")).load((self.doc.id, version))
        return DatasetVersion.from_document(found) if found and found.status is VersionStatus.READY else None

    @classmethod
    def from_document(cls, doc: DatasetDocument) -> Dataset:
        return cls(id=encode_id(NodeType.DATASET, doc.id), name=doc.name, description=doc.description,
                   created_at=doc.created_at, doc=doc)


