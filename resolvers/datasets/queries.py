"""Reading datasets, versions and training splits."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents.dataset import Dataset as DatasetDocument
from documents.dataset import DatasetVersion as VersionDocument
from documents.dataset import VersionStatus
from documents.lean import lean
from resolvers.context import Info
from resolvers.datasets.inputs import SplitRatios
from resolvers.datasets.types import Dataset, DatasetVersion, TrainingSplit
from resolvers.pagination import DESCENDING, paginate
from resolvers.permissions import CanRead
from resolvers.relay import After, Before, Connection, First, Last
from services import datasets as service
from services.errors import BadUserInput
from services.node_ids import NodeType, decode_object_id


@strawberry.type
class DatasetQueries:
    @strawberry.field(permission_classes=[CanRead], description="A dataset by `id` or by `name`.")
    async def dataset(
        self, info: Info,
        id: Annotated[strawberry.ID | None, strawberry.argument(description="The dataset's ID (or give `name`).")] = None,
        name: Annotated[str | None, strawberry.argument(description="The dataset's name (or give `id`).")] = None,
    ) -> Dataset | None:
        if (id is None) == (name is None):
            raise BadUserInput("give exactly one of id and name", field="id")
        loaders = info.context.loaders
        doc = (await loaders.by_id(DatasetDocument).load(decode_object_id(id, NodeType.DATASET)) if id
               else await loaders.unique(DatasetDocument, ("name",)).load((name,)))
        return Dataset.from_document(doc) if doc else None

    @strawberry.field(permission_classes=[CanRead], description="Datasets, newest first; `nameContains` is case-insensitive.")
    async def datasets(
        self, info: Info,
        name_contains: Annotated[str | None, strawberry.argument(description=(
            "Only datasets whose name contains this (case-insensitive); null or empty for all."))] = None,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[Dataset]:
        return await paginate(
            DatasetDocument.get_pymongo_collection(), query=service.datasets_filter(name_contains),
            sort=[("created_at", DESCENDING)],
            page=info.context.page(first, after, last, before),
            to_node=lambda raw: Dataset.from_document(lean(DatasetDocument).model_validate(raw)),
        )

    @strawberry.field(permission_classes=[CanRead], description="A version by `id`, or by `dataset` name and `version`.")
    async def dataset_version(
        self, info: Info,
        id: Annotated[strawberry.ID | None, strawberry.argument(description=(
            "The version's ID (or give `dataset` and `version`)."))] = None,
        dataset: Annotated[str | None, strawberry.argument(description="The dataset's name, with `version`.")] = None,
        version: Annotated[str | None, strawberry.argument(description="The version's name, with `dataset`.")] = None,
    ) -> DatasetVersion | None:
        if id is not None and (dataset is not None or version is not None):  # which would win is a guess
            raise BadUserInput("give id, or dataset and version, not both", field="id")
        if id is not None:
            doc = await info.context.loaders.by_id(VersionDocument).load(decode_object_id(id, NodeType.DATASET_VERSION))
        elif dataset is not None and version is not None:
            # Through loaders: aliases asking for several versions by name cost one read of each kind.
            loaders = info.context.loaders
            owner = await loaders.unique(DatasetDocument, ("name",)).load((dataset,))
            doc = await loaders.unique(VersionDocument, ("dataset_id", "version")).load((owner.id, version)) if owner else None
        else:
            missing = "version" if dataset is not None else "dataset" if version is not None else "id"
            raise BadUserInput("give id, or dataset and version", field=missing)
        return DatasetVersion.from_document(doc) if doc and doc.status is VersionStatus.READY else None

    @strawberry.field(permission_classes=[CanRead], description="A deterministic train/validation/test partition of a version's datums: assigned splits are kept, UNASSIGNED datums are spread by `seed` and `ratios`; `verifiedOnly` keeps only datums with at least one ground-truth annotation (as the version holds them), every one verified: a datum with none is left out.")
    async def training_split(
        self, info: Info,
        dataset_version: Annotated[strawberry.ID, strawberry.argument(description="The version to partition.")],
        ratios: Annotated[SplitRatios, strawberry.argument(description=(
            "Relative sizes of the parts for the datums the version holds as UNASSIGNED (the others keep their split)."))],
        # Nullable, as the contract has them: a client sending null (Python's None) gets the default.
        seed: Annotated[int | None, strawberry.argument(description=(
            "Chooses the partition: the same seed, version and ratios give the same parts on any machine. "
            "Default (and null) 0."))] = 0,
        verified_only: Annotated[bool | None, strawberry.argument(description=(
            "Keep only datums with at least one ground-truth annotation, every one verified (a datum with none is "
            "left out, whatever its split). Default (and null) false."))] = False,
    ) -> TrainingSplit:
        normalised = service.normalise_ratios(ratios.train, ratios.validation, ratios.test)
        version_id = decode_object_id(dataset_version, NodeType.DATASET_VERSION, field="datasetVersion")
        parts = await info.context.loaders.training_splits().load((version_id, normalised, seed or 0, bool(verified_only)))
        return TrainingSplit(version_id=version_id, parts=parts)
