"""Inputs of the dataset mutations and of trainingSplit."""

from __future__ import annotations

import strawberry


@strawberry.input(description="A dataset to create; its name is unique.")
class CreateDatasetInput:
    name: str = strawberry.field(description=(
        "Its name: 1 to 500 characters without control characters, unique in the lake (CONFLICT if taken)."))
    description: str | None = strawberry.field(default=None, description="Free text; null for none.")


@strawberry.input(description="A new version: the parent's datums and sets, minus and plus the given ones, "
                              "plus one new datum per item of `fromCollection` (role `asset`).")
class CreateDatasetVersionInput:
    dataset_id: strawberry.ID = strawberry.field(description="The dataset to add the version to.")
    version: str = strawberry.field(description=(
        "Unique in the dataset, e.g. `v3` or `2026-11-23`: 1 to 100 letters, digits or ._+-, starting with a letter or "
        "digit."))
    description: str | None = strawberry.field(default=None, description="Free text; null for none.")
    parent_id: strawberry.ID | None = strawberry.field(default=None, description="Start from this version of the same dataset.")
    add_datums: list[strawberry.ID] | None = strawberry.field(default=None, description=(
        "Datums to add, each as it is now (split, roles, metadata); every role asset must be ACTIVE."))
    remove_datums: list[strawberry.ID] | None = strawberry.field(default=None, description=(
        "Datums of the parent to leave out (each must be in the parent)."))
    add_annotation_sets: list[strawberry.ID] | None = strawberry.field(default=None, description=(
        "Annotation sets to add: their records on the version's datums are frozen with it (a MASK record's mask must be "
        "ACTIVE, and the version pins it). A version holds at most 100."))
    remove_annotation_sets: list[strawberry.ID] | None = strawberry.field(default=None, description=(
        "Annotation sets of the parent to leave out (each must be in the parent)."))
    from_collection: strawberry.ID | None = strawberry.field(default=None, description=(
        "A collection whose items each become a new datum (its asset in role `asset`, the item's split, its path in metadata `path`); null for none."))
    expected_manifest_sha256: str | None = strawberry.field(default=None, description=(
        "The manifest hash (64 hex digits) the content must have, e.g. a bundle's source version's: a build whose "
        "content hashes otherwise is refused with CONFLICT on this field and leaves no version. Null: any content."))


@strawberry.input(description="Relative sizes of the parts; they need not add up to 1.")
class SplitRatios:
    train: float = strawberry.field(description="The share for TRAIN: a finite number, 0 or more.")
    validation: float = strawberry.field(description="The share for VALIDATION: a finite number, 0 or more.")
    test: float = strawberry.field(description="The share for TEST: a finite number, 0 or more (not all three 0).")
