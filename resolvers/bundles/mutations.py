"""prepareBundleImport and commitBundleImport (CONTRIBUTOR): a bundle on a mount into this lake."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.bundles.runner import run_import
from resolvers.bundles.types import BundleImportInput, BundleImportReport
from resolvers.context import Info
from resolvers.permissions import CanWrite

_INPUT = strawberry.argument(description="Where the bundle lies, and the policy.")


@strawberry.type
class BundleMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description=(
        "Check a bundle on a mount (its manifest, and for the copy policies the size and SHA-256 of every payload a commit "
        "would read: those of the assets the lake lacks) and "
        "report what the lake lacks, holds already or conflicts with. Writes nothing."))
    async def prepare_bundle_import(self, info: Info, input: Annotated[BundleImportInput, _INPUT]) -> BundleImportReport:
        return BundleImportReport.of(await run_import(info.context, input.mount, input.path, input.policy.value,
                                                      dry_run=True, dataset=input.dataset))

    @strawberry.mutation(permission_classes=[CanWrite], description=(
        "Import a bundle on a mount: prepare, then (CONFLICT if it reports conflicts) upload what is missing, make "
        "the datums, schemas, sets and records, then the version with the bundle's name, splits and manifest hash. "
        "Each payload is read once: prepare checks that each is there, of its size, and the lake checks each file's "
        "SHA-256 as it stores it; a payload unlike the manifest is refused (BAD_USER_INPUT, naming it) before any "
        "datum is made, the files stored before it kept. A rerun after a failure finishes the job; importing twice "
        "makes nothing new."))
    async def commit_bundle_import(self, info: Info, input: Annotated[BundleImportInput, _INPUT]) -> BundleImportReport:
        return BundleImportReport.of(await run_import(info.context, input.mount, input.path, input.policy.value,
                                                      dry_run=False, dataset=input.dataset))
