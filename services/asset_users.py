"""What uses an asset without pinning it: datums (as a role) and annotation records (as the asset they
annotate, or as a mask). A delete or the garbage collector must not leave these pointing at nothing.

They are found by query rather than pinned: a pin per role and per record would double the writes of
createDatums and addAnnotations, the lake's hottest batch writes, to speed up deletes, which are rare.
Annotation records are found through indexes on both servers; datums through the multikey index on
`roles.asset_id` on MongoDB, and by a scan of the datums on the embedded FerretDB (which indexes no
arrays), once per delete or per collector batch of 500 assets.
"""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId

from documents.annotation import AnnotationRecord
from documents.dataset import Datum
from services.node_ids import NodeType, encode_id

NAMED = 5  # a refusal names this many users of each kind, and counts them all

_QUERIES = (  # (collection, filter field, node type)
    (Datum, "roles.asset_id", NodeType.DATUM),
    (AnnotationRecord, "asset_id", NodeType.ANNOTATION_RECORD),
    (AnnotationRecord, "geometry.asset_id", NodeType.ANNOTATION_RECORD),
)


async def used(asset_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Those of these assets that a datum or an annotation record uses: one query per kind of use."""
    wanted = set(asset_ids)
    found: set[ObjectId] = set()
    for model, field, _ in _QUERIES:
        if wanted - found:
            values = await model.get_pymongo_collection().distinct(field, {field: {"$in": list(wanted - found)}})
            found |= wanted & set(values)
    return found


async def users_of(asset_id: ObjectId) -> dict[NodeType, tuple[int, list[str]]]:
    """For each kind that uses the asset (DATUM, ANNOTATION_RECORD): how many, and the global ids of
    the first NAMED."""
    users = {}
    for model, query, node_type in (
        (Datum, {"roles.asset_id": asset_id}, NodeType.DATUM),
        (AnnotationRecord, {"$or": [{"asset_id": asset_id}, {"geometry.asset_id": asset_id}]}, NodeType.ANNOTATION_RECORD),
    ):
        collection = model.get_pymongo_collection()
        if count := await collection.count_documents(query):
            first = await collection.find(query, {"_id": 1}, sort=[("_id", 1)], limit=NAMED).to_list()
            users[node_type] = (count, [encode_id(node_type, doc["_id"]) for doc in first])
    return users
