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

from services import retention
from services.use_fields import USE_FIELDS

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
    million read the million, holding the embedded database meanwhile."""
    fields: dict[str, list[str]] = {}
    for model, field in USE_FIELDS:
        fields.setdefault(model.Settings.name, []).append(field)
    used: dict[ObjectId, None] = {}  # each once, in the order met
    if written is None:
        for collection in collections:
            if collection.name in fields:
                async for document in collection.find(dict(query), dict.fromkeys(fields[collection.name], 1)):
                    _add_named(document, fields[collection.name], used)
    else:
        for name, documents in written.items():
            for document in documents:
                _add_named(document, fields.get(name, []), used)
    assets = list(used)
    for start in range(0, len(assets), FLAGGED_AT_ONCE):
        await retention.flag_anew(assets[start:start + FLAGGED_AT_ONCE])
    for collection in reversed(collections):
        if written is None:
            await collection.delete_many(dict(query))
            continue
        ids = [document["_id"] for document in written.get(collection.name, ())]
        for start in range(0, len(ids), DELETED_AT_ONCE):
            await collection.delete_many({"_id": {"$in": ids[start:start + DELETED_AT_ONCE]}, **query})


def _add_named(document: Mapping[str, Any], fields: list[str], found: dict[ObjectId, None]) -> None:
    """Add to `found` the assets that `document` names in `fields` (dotted paths)."""
    for field in fields:
        value: Any = document
        for part in field.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, ObjectId):
            found[value] = None
