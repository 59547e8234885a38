"""The order of a dataset's versions list: the order they became READY, so that a client following
the list forward (with `after`) sees each version once it is READY.

Versions were listed in the order they were made (`_id`), READY ones only. A version whose build was
still running when a client paged past its place became READY there later, behind the client's
cursor: a client following the list never saw it. Now each version takes a place (`ready_seq`) as it
becomes READY, after every version any client may have seen listed.

Taking a place is a read of the highest one and a write, with nothing holding other writers off in
between (no transactions), so a version checks after its write that no other holds a later place
(nor has held it: a deleted version's place is kept on its dataset, `deleted_ready_seq`), and takes
the next one again if one does. Whichever of two versions wrote last then comes after the other: a
client that listed one of them at a place later taken again may list it twice, and never misses one.
A version a refused delete shows again (it was hidden meanwhile) takes a new place too.
"""

from __future__ import annotations

from bson import ObjectId

from documents.dataset import Dataset, DatasetVersion, VersionStatus


async def next_place(dataset_id: ObjectId) -> int:
    """A place after every version of the dataset (READY, or hidden while a delete runs) and every
    one deleted from it."""
    last = await DatasetVersion.get_pymongo_collection().find_one(
        {"dataset_id": dataset_id, "ready_seq": {"$ne": None}}, {"ready_seq": 1}, sort=[("ready_seq", -1)])
    dataset = await Dataset.get_pymongo_collection().find_one({"_id": dataset_id}, {"deleted_ready_seq": 1})
    return max((last or {}).get("ready_seq") or 0, (dataset or {}).get("deleted_ready_seq") or 0) + 1


async def settle(version_id: ObjectId, dataset_id: ObjectId, place: int) -> None:
    """After the version (READY) was written at `place`: take the next place again while another
    version holds a later one, or the dataset had one at `place` or later deleted."""
    versions = DatasetVersion.get_pymongo_collection()
    while True:
        later = await versions.find_one({"dataset_id": dataset_id, "$or": [
            {"ready_seq": {"$gt": place}}, {"ready_seq": place, "_id": {"$gt": version_id}}]}, {"_id": 1})
        dataset = await Dataset.get_pymongo_collection().find_one({"_id": dataset_id}, {"deleted_ready_seq": 1})
        if later is None and ((dataset or {}).get("deleted_ready_seq") or 0) < place:
            return
        place = await next_place(dataset_id)
        moved = await versions.update_one({"_id": version_id, "status": VersionStatus.READY.value},
                                          {"$set": {"ready_seq": place}})
        if moved.matched_count == 0:  # no longer READY (a delete began): it takes a place if shown again
            return


async def place_again(version_id: ObjectId) -> None:
    """A version shown again (READY) after it was hidden, which a client may have paged past meanwhile:
    at the end of the list."""
    versions = DatasetVersion.get_pymongo_collection()
    version = await versions.find_one({"_id": version_id, "status": VersionStatus.READY.value}, {"dataset_id": 1})
    if version is None:
        return
    place = await next_place(version["dataset_id"])
    if (await versions.update_one({"_id": version_id, "status": VersionStatus.READY.value},
                                  {"$set": {"ready_seq": place}})).matched_count:
        await settle(version_id, version["dataset_id"], place)


async def forget(version: dict) -> None:
    """Before a version's record is removed (`version`: its `dataset_id` and `ready_seq`): its place
    is kept on its dataset, so that no later version takes it (a client may have listed it)."""
    if version.get("ready_seq") is not None:
        await Dataset.get_pymongo_collection().update_one({"_id": version["dataset_id"]},
                                                          {"$max": {"deleted_ready_seq": version["ready_seq"]}})
