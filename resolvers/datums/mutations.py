"""Writing datums (CONTRIBUTOR)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from documents.dataset import Datum as DatumDocument
from resolvers.common import encode_metadata
from resolvers.context import Info
from resolvers.datums.inputs import CreateDatumInput, UpdateDatumInput
from resolvers.datums.types import Datum
from resolvers.payloads import DeletePayload
from resolvers.permissions import CanWrite
from services import datums as service
from services.node_ids import NodeType, decode_object_id


@strawberry.type
class DatumMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Create datums in one batch: all are checked, then all are stored, or none.")
    async def create_datums(
        self, info: Info,
        inputs: Annotated[list[CreateDatumInput], strawberry.argument(description=(
            "The datums: 1 to GRAPHLAKE_MAX_BATCH_ITEMS (10,000 by default). Answered in the same order."))],
    ) -> list[Datum]:
        actor = info.context.actor
        docs = [
            DatumDocument(
                split=item.split,
                roles=service.role_refs([
                    (r.role, decode_object_id(r.asset_id, NodeType.ASSET, field=f"inputs[{i}].roles[{j}].assetId"))
                    for j, r in enumerate(item.roles)
                ]),
                metadata=encode_metadata(item.metadata, info.context.settings, field=f"inputs[{i}].metadata"),
                created_by=actor,
            )
            for i, item in enumerate(inputs)
        ]
        stored = await service.create_datums(docs, info.context.settings.max_batch_items)
        return [Datum.from_document(d) for d in stored]

    @strawberry.mutation(permission_classes=[CanWrite], description="Change a datum's split or metadata.")
    async def update_datum(
        self, info: Info, input: Annotated[UpdateDatumInput, strawberry.argument(description="Which datum, and what to change.")],
    ) -> Datum:
        changes = {k: getattr(input, k) for k in ("split", "metadata") if getattr(input, k) is not strawberry.UNSET}
        if "metadata" in changes:
            changes["metadata"] = encode_metadata(changes["metadata"], info.context.settings, field="metadata")
        return Datum.from_document(await service.update_datum(decode_object_id(input.id, NodeType.DATUM), changes,
                                                              expected_updated_at=input.expected_updated_at))

    @strawberry.mutation(permission_classes=[CanWrite], description="Delete a datum no dataset version and no "
                         "annotation record holds (CONFLICT names them). Its assets stay.")
    async def delete_datum(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The datum to delete.")],
    ) -> DeletePayload:
        await service.delete_datum(decode_object_id(id, NodeType.DATUM))
        return DeletePayload(id=id, deleted=True)
