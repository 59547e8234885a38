"""GraphQL types of bundle imports: the policy, the input naming a bundle on a mount, and the report."""

from __future__ import annotations

from enum import Enum

import strawberry

from resolvers.context import Info
from resolvers.datasets.types import DatasetVersion
from resolvers.enums import described_enum
from resolvers.scalars import BigInt
from services import datasets as service
from services.node_ids import NodeType, decode_object_id


class BundlePolicy(Enum):
    COPY = "copy"
    COPY_IF_MISSING = "copy-if-missing"
    REFERENCE = "reference"


BundlePolicy = described_enum(BundlePolicy, "What becomes of a bundle's payloads on import.", {
    "COPY": "Upload every payload (files already uploaded by an earlier run of the same import are not sent again).",
    "COPY_IF_MISSING": "Reuse any ACTIVE asset of the lake with the same SHA-256 and kind; upload only the others.",
    "REFERENCE": "Leave files where they lie and register them as EXTERNAL assets (masks are copied: a mask must be "
                 "an image asset). Only a bundle directory on an S3 mount has files a lake can register; elsewhere a "
                 "bundle holding files is refused, naming the policy.",
})


@strawberry.input(description="A bundle (written by `graphlake export bundle`) that lies on one of the server's mounts.")
class BundleImportInput:
    path: str = strawberry.field(description=(
        "The bundle's directory, or its .tar, relative to the mount's root: no `..`, no leading `/`, "
        "no control characters (U+0000 to U+001F, U+007F to U+009F)."))
    mount: str | None = strawberry.field(default=None, description="The mount it lies on; null for the default mount.")
    policy: BundlePolicy = strawberry.field(default=BundlePolicy.COPY, description="What becomes of its payloads (default COPY).")  # type: ignore[valid-type]
    dataset: str | None = strawberry.field(default=None, description=(
        "The dataset to import it into; null for the bundle's own (a lake holding another version of that name "
        "there imports it under another dataset)."))


@strawberry.type(description="How many things of one kind the bundle holds that the lake lacks, and holds already.")
class BundleTally:
    new: int = strawberry.field(description="Not in the lake: made by a commit.")
    present: int = strawberry.field(description="In the lake already (matched by content): used as they are.")


@strawberry.type(description=(
    "What an import of a bundle found (prepare) or did (commit). A commit makes exactly what a prepare just before "
    "it reports new; a second commit of the same bundle reports everything present and makes nothing."))
class BundleImportReport:
    dataset: str = strawberry.field(description="The dataset the bundle's version belongs to (same name here).")
    version_name: str = strawberry.field(description="The version's name (the same here).")
    manifest_sha256: str = strawberry.field(description="The source version's portable manifest hash, which the imported one must have.")
    policy: BundlePolicy = strawberry.field(description="The policy used.")  # type: ignore[valid-type]
    assets: BundleTally = strawberry.field(description="Distinct payloads (by kind and SHA-256) and external objects.")
    new_bytes: BigInt = strawberry.field(description="Bytes of the payloads to upload or store.")
    datums: BundleTally = strawberry.field(description="Datums, matched by split, role assets and metadata.")
    schemas: BundleTally = strawberry.field(description="Annotation schemas, matched by name and rules.")
    sets: BundleTally = strawberry.field(description="Annotation sets, matched by name, purpose, schema and source.")
    records: BundleTally = strawberry.field(description="Annotation records, matched by content on their datum and asset.")
    to_verify: int = strawberry.field(description="Records the bundle has verified that the lake does not (yet).")
    version_state: str = strawberry.field(description=(
        "`new` (a commit builds it), `present` (built already, with the same manifest hash) or `conflict`."))
    conflicts: list[str] = strawberry.field(description="Why a commit would be refused; empty when it may go ahead.")
    committed: bool = strawberry.field(description="Whether this call built the version.")
    same_hash: bool | None = strawberry.field(description=(
        "Whether the version here has the source's manifest hash (null while there is none). Always true but under "
        "REFERENCE, whose EXTERNAL assets a version names by URI rather than by SHA-256."))
    version_id: strawberry.Private[str | None]

    @strawberry.field(description="The version in this lake, once it exists (built now or before); null until then.")
    async def version(self, info: Info) -> DatasetVersion | None:
        if self.version_id is None:
            return None
        found = await service.get_ready_version(decode_object_id(self.version_id, NodeType.DATASET_VERSION), "version")
        return DatasetVersion.from_document(found)

    @classmethod
    def of(cls, report: dict) -> BundleImportReport:
        """From the client importer's report (graphlake_client/bundle_import.Report.as_dict)."""
        def tally(part: dict) -> BundleTally:
            return BundleTally(new=part["new"], present=part["present"])
        return cls(dataset=report["dataset"], version_name=report["version"], manifest_sha256=report["manifest_sha256"],
                   policy=BundlePolicy(report["policy"]), assets=tally(report["assets"]),
                   new_bytes=BigInt(report["assets"]["new_bytes"]), datums=tally(report["datums"]),
                   schemas=tally(report["schemas"]), sets=tally(report["sets"]), records=tally(report["records"]),
                   to_verify=report["records"]["to_verify"], version_state=report["version_state"],
                   conflicts=report["conflicts"], committed=report["committed"], same_hash=report["same_hash"],
                   version_id=report["version_id"])
