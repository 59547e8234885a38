"""Inputs of the dataset mutations and of trainingSplit."""

from __future__ import annotations

import strawberry


@strawberry.input(description="A dataset to create; its name is unique.")
class CreateDatasetInput:
    name: str
    description: str | None = None


@strawberry.input(description="A new version: the parent's datums and sets, minus and plus the given ones, "
                              "plus one new datum per item of `fromCollection` (role `asset`).")
class CreateDatasetVersionInput:
    dataset_id: strawberry.ID
    version: str = strawberry.field(description="Unique in the dataset, e.g. `v3` or `2026-11-23`.")
    description: str | None = None
    parent_id: strawberry.ID | None = strawberry.field(default=None, description="Start from this version of the same dataset.")
    add_datums: list[strawberry.ID] | None = None
    remove_datums: list[strawberry.ID] | None = None
    add_annotation_sets: list[strawberry.ID] | None = None
    remove_annotation_sets: list[strawberry.ID] | None = None
    from_collection: strawberry.ID | None = None


@strawberry.input(description="Relative sizes of the parts; they need not add up to 1.")
class SplitRatios:
    train: float
    validation: float
    test: float
