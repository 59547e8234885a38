"""Taking back documents that use assets (services/use_fields.py) outside their own deletes: a batch
whose writer died (services/batches.remove_abandoned), a batch its writer rolls back, the records an
addAnnotations takes back when their set, asset or datum went meanwhile.

Such documents are visible once written, and the garbage collector counts them as uses: a round that
finds a flagged asset used keeps its flag, from that round (services/assets._flag_again). Perhaps
they held the asset's last use; taken back with a plain delete, the flag stayed as that round set it,
and the asset could go a grace period after the round rather than after its last use went. So they
move their assets' flags on to now first (retention.flag_anew), as a datum's or record's delete does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from services import retention, use_fields

FLAGGED_AT_ONCE = 1000  # assets whose flags one retention.flag_anew reads and moves
DELETED_AT_ONCE = 1000  # ids one delete names (SQLite takes at most 32,766 variables a statement)


async def remove_uses(collections: Sequence[AsyncCollection], query: Mapping[str, Any], *,
                      written: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> None:
    """Delete the documents `query` matches in each of `collections`, last first, once the flags of
    the assets they use are moved on to now. The flags first: a removal cut short after its deletes
    finds no use left to read when it runs again. `written`: by collection name, the documents that
    may be there as their writer sent them, read in place of the collections and deleted by their
    ids, `query` a condition beside them. A writer taking its own back knows them; a query on `batch`
    alone, which no index holds, reads a whole collection: rolling back ten records in a lake of a
    million read the million, holding the embedded database meanwhile. Without `written` (a reaper,
    whose writer is gone) the documents are read by `query` once, and deleted by the ids read."""
    if written is None:  # read once (a reaper: its writer is gone), then deleted by id as a writer's are
        written = {}
        for collection in collections:
            fields = use_fields.fields_of(collection.name)
            written[collection.name] = await collection.find(dict(query), {"_id": 1, **dict.fromkeys(fields, 1)}).to_list()
    used: dict[ObjectId, None] = {}  # each once, in the order met
    for name, documents in written.items():
        used.update(dict.fromkeys(use_fields.assets_named(name, documents)))
    assets = list(used)
    for start in range(0, len(assets), FLAGGED_AT_ONCE):
        await retention.flag_anew(assets[start:start + FLAGGED_AT_ONCE])
    for collection in reversed(collections):
        ids = [document["_id"] for document in written.get(collection.name, ())]
        for start in range(0, len(ids), DELETED_AT_ONCE):
            await collection.delete_many({"_id": {"$in": ids[start:start + DELETED_AT_ONCE]}, **query})
