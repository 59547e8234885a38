"""Deletes that died between marking what they delete and finishing, run again by the maintenance.

A delete marks a dataset version, an annotation set or schema, a dataset, a collection or a datum
first (services/delete_marks.py). One that died (a crash, a lost connection) before it committed
leaves a version hidden (DELETING), a set or dataset closed to new versions and records, a datum
closed to new records, or a schema to new sets; one that died after leaves what it had not removed
yet. Nothing showed either: the version was lost from sight until someone who knew its id deleted
it again. So marks older than STALE_AFTER are run again: the delete
finishes (what its caller asked for), or, refused by a holder found since, takes its mark back and
the version is READY again. A delete still running after STALE_AFTER (a collection of a million
items) runs beside its own repeat, which removes the same rounds: harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from beanie import Document
from bson import ObjectId

from documents.annotation import AnnotationSchema, AnnotationSet
from documents.clock import utcnow
from documents.collection import Collection
from documents.dataset import Dataset, DatasetVersion, Datum, VersionStatus
from services import annotations, collections, datasets, datums, delete_marks
from services.errors import GraphlakeError
from storage import ObjectStore

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=30)  # a delete's checks take milliseconds; its rounds, minutes at most
MOST = 100  # run again per kind in one round: the rest in the next


async def finish(stores: Mapping[str, ObjectStore]) -> int:
    """Run again the deletes whose marks are older than STALE_AFTER; how many finished or were refused."""
    cutoff = utcnow() - STALE_AFTER
    kinds: list[tuple[type[Document], dict, Callable[[ObjectId], Awaitable[object]]]] = [
        # A version's mark is its token, an ObjectId made when it was marked; a version marked by the
        # release before this one carries none.
        (DatasetVersion, {"status": VersionStatus.DELETING.value, "$or": [
            {delete_marks.TOKEN: {"$lt": ObjectId.from_datetime(cutoff)}}, {delete_marks.TOKEN: {"$exists": False}}]},
         # Only as a leftover: a version a refused delete showed again since it was found stays.
         lambda i: datasets.delete_version(i, stores, leftover=True)),
        (AnnotationSet, {"deleting_at": {"$lt": cutoff}}, annotations.delete_set),
        (Dataset, {"deleting_at": {"$lt": cutoff}}, lambda i: datasets.delete_dataset(i, stores)),
        (Collection, {"deleting_at": {"$lt": cutoff}}, collections.delete_collection),
        (Datum, {"deleting_at": {"$lt": cutoff}}, datums.delete_datum),  # through its index: datums are many
        (AnnotationSchema, {"deleting_at": {"$lt": cutoff}}, annotations.delete_schema),
    ]
    done = 0
    for model, stale, delete in kinds:
        found = await model.get_pymongo_collection().find(stale, {"_id": 1}).limit(MOST).to_list()
        for document in found:
            try:
                await delete(document["_id"])
            except GraphlakeError as refused:  # a holder found since: its mark is taken back
                log.info("an unfinished delete of %s %s was refused: %s", model.__name__, document["_id"], refused)
            done += 1
    return done
