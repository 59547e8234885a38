"""Writing datasets, building versions (CONTRIBUTOR) and deleting them (a version: ADMIN)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.context import Info
from resolvers.datasets.inputs import CreateDatasetInput, CreateDatasetVersionInput
from resolvers.datasets.types import Dataset, DatasetVersion
from resolvers.payloads import DeletePayload
from resolvers.permissions import CanWrite, IsAdmin
from services import datasets as service
from services.node_ids import NodeType, decode_object_id, decode_object_ids


@strawberry.type
class DatasetMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Create a dataset (its name is unique).")
    async def create_dataset(
        self, info: Info, input: Annotated[CreateDatasetInput, strawberry.argument(description="Its name and description.")],
    ) -> Dataset:
        return Dataset.from_document(await service.create_dataset(input.name, input.description, info.context.actor))

    @strawberry.mutation(permission_classes=[CanWrite], description="Build a new immutable version: from a parent plus and minus datums and annotation sets, and/or from a collection.")
    async def create_dataset_version(
        self, info: Info,
        input: Annotated[CreateDatasetVersionInput, strawberry.argument(description="Its dataset, name, parent and changes.")],
    ) -> DatasetVersion:
        plan = service.VersionPlan(
            dataset_id=decode_object_id(input.dataset_id, NodeType.DATASET, field="datasetId"),
            version=input.version, description=input.description,
            parent_id=decode_object_id(input.parent_id, NodeType.DATASET_VERSION, field="parentId") if input.parent_id else None,
            add_datums=decode_object_ids(input.add_datums or [], NodeType.DATUM, field="addDatums"),
            remove_datums=decode_object_ids(input.remove_datums or [], NodeType.DATUM, field="removeDatums"),
            add_sets=decode_object_ids(input.add_annotation_sets or [], NodeType.ANNOTATION_SET, field="addAnnotationSets"),
            remove_sets=decode_object_ids(input.remove_annotation_sets or [], NodeType.ANNOTATION_SET, field="removeAnnotationSets"),
            from_collection=decode_object_id(input.from_collection, NodeType.COLLECTION, field="fromCollection")
            if input.from_collection else None,
            expected_manifest_sha256=input.expected_manifest_sha256,
        )
        stores = info.context.stores  # its content file goes to the default mount (services/version_content.py)
        return DatasetVersion.from_document(await service.create_version(
            plan, info.context.actor, stores.get(info.context.settings.default_mount), stores))

    @strawberry.mutation(permission_classes=[CanWrite], description="Delete a dataset that has no versions left "
                         "(CONFLICT names them).")
    async def delete_dataset(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The dataset to delete.")],
    ) -> DeletePayload:
        await service.delete_dataset(decode_object_id(id, NodeType.DATASET), info.context.stores)
        return DeletePayload(id=id, deleted=True)

    @strawberry.mutation(permission_classes=[IsAdmin], description="Delete a dataset version no other version has "
                         "as its parent (CONFLICT names them), releasing its pins. ADMIN.")
    async def delete_dataset_version(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The version to delete.")],
    ) -> DeletePayload:
        await service.delete_version(decode_object_id(id, NodeType.DATASET_VERSION), info.context.stores)
        return DeletePayload(id=id, deleted=True)
