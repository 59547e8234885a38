"""Datasets and the version builder, version diffs and deterministic training splits.

A version is immutable: once READY, nothing changes what it shows. The build copies each datum
(split, roles, metadata) into its member record and each record of its annotation sets on those
datums into its datum's pack of copies (documents/record_pack.py), with the digests of the assets
they name (services/snapshots.py), a batch of datums at a time (services/version_build.py);
reads come from those copies, so a later updateDatum, a record added to one of its sets, or a
verification changes later versions only. Its manifest hash is computed over the copies' content
(documents/manifest.py): the same content gives the same hash in any lake.
Without transactions it is written in steps (BUILDING doc, members, pins, then READY), so a crash
leaves a BUILDING version that readers never see and that a later build of the same name replaces.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from documents.annotation import AnnotationPurpose, AnnotationSet
from documents.clock import utcnow
from documents.collection import Collection, CollectionItem
from documents.common import RetentionOwnerType, Split
from documents.dataset import Dataset, DatasetVersion, Datum, RoleRef, VersionMember, VersionStatus
from documents.json_value import StoredJson
from documents.manifest import manifest_hash
from documents.record_pack import VersionRecordPack
from graphlake_client import splits
from services import bulk_deletes, delete_marks, retention, snapshots, version_build, version_content, version_order
from services.availability import no_time_limit
from services.checks import HOLDERS_NAMED, MAX_VERSION_SETS, check_at_most, check_name, refuse_if_held, text_contains
from services.collections import get_collection
from services.datums import insert_datums, remove_datums_by_id
from services.errors import BadUserInput, Conflict, NotFound
from services.field_pages import field_pages, key_pages
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, decode_object_id, encode_id
from services.uploads.verification import check_sha256
from storage import ObjectStore

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\Z")
# A BUILDING version older than this was abandoned by a crashed build and may be replaced.
ABANDONED_AFTER = timedelta(minutes=10)
# Collection items a build from a collection makes datums of at a time (_datums_from_collection).
ITEMS_PER_BATCH = snapshots.BATCH
# A version's members read at a time for a diff or a split (only their datum and entry, or split),
# in `_id` order (the version_members index; by datum, our FerretDB build sorts the whole version
# for every page): each page is decoded on the event loop, a few ms here.
MEMBERS_PER_READ = 5000


@dataclass
class VersionPlan:
    """What a new version should hold, as asked by the client."""

    dataset_id: ObjectId
    version: str
    description: str | None = None
    parent_id: ObjectId | None = None
    add_datums: list[ObjectId] = field(default_factory=list)
    remove_datums: list[ObjectId] = field(default_factory=list)
    add_sets: list[ObjectId] = field(default_factory=list)
    remove_sets: list[ObjectId] = field(default_factory=list)
    from_collection: ObjectId | None = None
    # The manifest hash the caller knows the content by (a bundle's source version's): a build that
    # hashes otherwise is refused and leaves no version (a READY one would name a content nobody asked for).
    expected_manifest_sha256: str | None = None


def datasets_filter(name_contains: str | None) -> dict[str, Any]:
    """The `datasets` list's filter: names containing `name_contains` in any case (every dataset for
    None or ""; checks.text_contains), read along the `created_at` index newest first."""
    return text_contains("name", name_contains) if name_contains else {}


async def create_dataset(name: str, description: str | None, actor: str | None) -> Dataset:
    dataset = Dataset(name=check_name(name), description=description, created_by=actor)
    try:
        await dataset.insert()
    except DuplicateKeyError:
        raise Conflict(f"a dataset named {name!r} exists already", field="name") from None
    return dataset


async def get_ready_version(version_id: ObjectId, field: str) -> DatasetVersion:
    return ready(await DatasetVersion.get(version_id), version_id, field)


def ready(version: DatasetVersion | None, version_id: ObjectId, field: str) -> DatasetVersion:
    """`version` (read by `version_id`) if it is READY, else NOT_FOUND naming `field`: a version being
    built or deleted is none of the readers' business."""
    if version is None or version.status is not VersionStatus.READY:
        raise NotFound(f"no dataset version {encode_id(NodeType.DATASET_VERSION, version_id)}", field=field)
    return version


async def find_ready_version(name: str) -> DatasetVersion:
    """A READY version by its global ID or as DATASET/VERSION."""
    dataset_name, slash, version_name = name.rpartition("/")
    if not slash:
        return await get_ready_version(decode_object_id(name, NodeType.DATASET_VERSION, field="version"), "version")
    dataset = await Dataset.find_one({"name": dataset_name})
    found = dataset and await DatasetVersion.find_one({"dataset_id": dataset.id, "version": version_name,
                                                     "status": VersionStatus.READY.value})
    if not found:
        raise NotFound(f"no version {version_name!r} of a dataset {dataset_name!r}", field="version")
    return found


@dataclass
class Diff:
    """How version `mine` differs from `theirs`, as datum ids in ascending order."""

    added: list[ObjectId]
    removed: list[ObjectId]
    changed: list[ObjectId]  # in both, with another split, roles, metadata or annotations


async def diffs(pairs: Sequence[tuple[ObjectId, ObjectId]]) -> list[Diff | NotFound]:
    """The Diff of each (mine, theirs), in order (NOT_FOUND for a pair one of whose versions was deleted
    while it was read, on `id` or `against`): membership and content, each member's entry hash
    saying whether its copy differs. Pairs against the same version (every version of a list against
    one) read that one's members once; each comparison runs in a thread: 200,000 members took 0.7 s
    of set work and sorting, which held the event loop."""
    found: dict[tuple[ObjectId, ObjectId], Diff] = {}
    for theirs in dict.fromkeys(t for _, t in pairs):
        b = await _entries(theirs)
        mines = list(dict.fromkeys(m for m, t in pairs if t == theirs))
        if theirs in mines:
            found[theirs, theirs] = await asyncio.to_thread(_compare, b, b)
        async for mine, a in _entries_of([m for m in mines if m != theirs]):
            found[mine, theirs] = await asyncio.to_thread(_compare, a, b)
        for mine in mines:  # a version without members, which the read never met
            if (mine, theirs) not in found:
                found[mine, theirs] = await asyncio.to_thread(_compare, {}, b)
    # A version whose delete began while it was read may have lost members before they were read.
    kept = await _still_ready({v for pair in pairs for v in pair})
    return [found[pair] if pair[0] in kept and pair[1] in kept
            else _deleted_meanwhile(pair[0] if pair[0] not in kept else pair[1],
                                    "id" if pair[0] not in kept else "against") for pair in pairs]


async def diff(mine: ObjectId, theirs: ObjectId) -> Diff:
    [found] = await diffs([(mine, theirs)])
    if isinstance(found, NotFound):
        raise found
    return found


async def _still_ready(version_ids: Iterable[ObjectId]) -> set[ObjectId]:
    """Which of these versions are READY now. A delete marks its version DELETING before it takes any
    of its members or copies out, so a version still READY after it was read was read whole."""
    wanted = list(version_ids)
    if not wanted:
        return set()
    return {v["_id"] for v in await DatasetVersion.get_pymongo_collection().find(
        {"_id": {"$in": wanted}, "status": VersionStatus.READY.value}, {"_id": 1}).to_list()}


def _deleted_meanwhile(version_id: ObjectId, field: str) -> NotFound:
    return NotFound(f"dataset version {encode_id(NodeType.DATASET_VERSION, version_id)} was deleted while it was read",
                    field=field)


async def _entries(version_id: ObjectId) -> dict[ObjectId, str]:
    """Each member's entry hash, by datum, a page at a time."""
    entries: dict[ObjectId, str] = {}
    async for page in key_pages(VersionMember.get_pymongo_collection(), {"version_id": version_id}, "_id",
                                MEMBERS_PER_READ, projection={"datum_id": 1, "entry": 1}):
        entries.update((m["datum_id"], m.get("entry", "")) for m in page)
    return entries


async def _entries_of(version_ids: Sequence[ObjectId]) -> AsyncIterator[tuple[ObjectId, dict[ObjectId, str]]]:
    """Each of these versions' entry hashes by datum (as _entries), one version after the other: their
    members read together, a page at a time in (version, `_id`) order, so a list of versions diffed
    against one costs a read per page of members, not one per version. One version is held at a time."""
    current: ObjectId | None = None
    entries: dict[ObjectId, str] = {}
    async for page in field_pages(VersionMember.get_pymongo_collection(), {}, "version_id", MEMBERS_PER_READ,
                                  values=version_ids, projection={"version_id": 1, "datum_id": 1, "entry": 1}):
        for member in page:
            if member["version_id"] != current:
                if current is not None:
                    yield current, entries
                current, entries = member["version_id"], {}
            entries[member["datum_id"]] = member.get("entry", "")
    if current is not None:
        yield current, entries


def _compare(a: dict[ObjectId, str], b: dict[ObjectId, str]) -> Diff:
    return Diff(added=sorted(a.keys() - b.keys()), removed=sorted(b.keys() - a.keys()),
                changed=sorted(d for d in a.keys() & b.keys() if a[d] != b[d]))


async def members(version_id: ObjectId) -> dict[ObjectId, Split]:
    """Every datum of a version with its frozen split, a page at a time."""
    found: dict[ObjectId, Split] = {}
    async for page in key_pages(VersionMember.get_pymongo_collection(), {"version_id": version_id}, "_id",
                                MEMBERS_PER_READ, projection={"datum_id": 1, "split": 1}):
        found.update((m["datum_id"], Split(m["split"])) for m in page)
    return found


async def _datums_from_collection(collection_id: ObjectId, actor: str | None, made: list[ObjectId]) -> dict[ObjectId, Split]:
    """One new datum per item of the collection, role `asset`, keeping the item's split and path, in
    the items' order; each named in `made` before it is written (the build removes them if it fails).

    A batch of ITEMS_PER_BATCH items at a time: read raw by `_id` (a query each), made datums in a
    thread and inserted before the next batch is read. Read whole, made and inserted at once, 100,000
    items held the event loop for 1.8 s (the items' models), 4.1 s (the datums') and 3.4 s (their
    documents) in turn. An item added while the build runs may or may not be taken. NOT_FOUND if a
    delete of the collection (services/collections.delete_collection) has started by the end: its
    rounds may have taken items before they were read, and a version never holds part of a collection."""
    if (await get_collection(collection_id, field="fromCollection")).deleting_at is not None:
        raise _collection_deleted(collection_id)
    now = utcnow()
    chosen: dict[ObjectId, Split] = {}
    async for items in key_pages(CollectionItem.get_pymongo_collection(), {"collection_id": collection_id}, "_id",
                                 ITEMS_PER_BATCH, projection={"asset_id": 1, "path": 1, "split": 1}):
        datums = await asyncio.to_thread(_datums_of_items, items, now, actor)
        made.extend(d.id for d in datums)
        await insert_datums(datums)
        chosen.update((d.id, d.split) for d in datums)
    # Unmarked now, every page above was read before the delete's rounds began.
    if await Collection.get_pymongo_collection().count_documents({"_id": collection_id, "deleting_at": None}) == 0:
        raise _collection_deleted(collection_id)
    return chosen


def _collection_deleted(collection_id: ObjectId) -> NotFound:
    return NotFound(f"collection {encode_id(NodeType.COLLECTION, collection_id)} was deleted, or is being deleted, "
                    "while this version was made", field="fromCollection")


def _datums_of_items(items: list[dict], now: datetime, actor: str | None) -> list[Datum]:
    """A datum of each collection item (raw), with ids made in the items' order."""
    return [Datum(id=ObjectId(), split=Split(item.get("split") or Split.UNASSIGNED.value),
                  roles=[RoleRef(role="asset", asset_id=item["asset_id"])],
                  metadata=StoredJson.encode({"path": item["path"]} if item.get("path") else {}),
                  created_at=now, created_by=actor)
            for item in items]


async def _claim_name(plan: VersionPlan, actor: str | None, set_ids: list[ObjectId],
                      stores: Mapping[str, ObjectStore] | None) -> DatasetVersion:
    """Insert the BUILDING record; the unique (dataset, version) index settles races."""
    existing = await DatasetVersion.find_one({"dataset_id": plan.dataset_id, "version": plan.version})
    if existing is not None:
        building = existing.status is VersionStatus.BUILDING and utcnow() - existing.created_at < ABANDONED_AFTER
        if existing.status is VersionStatus.READY:
            raise Conflict(f"version {plan.version!r} exists already in this dataset", field="version")
        if building:  # not listed yet: say why the name is taken, and until when a dead build holds it
            free_at = (existing.created_at + ABANDONED_AFTER).isoformat(timespec="seconds")
            raise Conflict(f"version {plan.version!r} of this dataset is being built (it is listed once READY); "
                           f"if that build died, the name is free again from {free_at}", field="version")
        # An abandoned build, or a delete that did not finish: through delete_version, which checks
        # what a delete marked and did not commit (child versions may hold it: CONFLICT then).
        try:
            await delete_version(existing.id, stores, leftover=True)
        except Conflict as held:
            details = {k: v for k, v in held.extensions.items() if k not in ("code", "field")}
            raise Conflict(f"version {plan.version!r} of this dataset is not free yet: {held.args[0]}",
                           field="version", **details) from None
    version = DatasetVersion(dataset_id=plan.dataset_id, version=plan.version, description=plan.description,
                             parent_id=plan.parent_id, annotation_set_ids=set_ids, created_by=actor)
    try:
        await version.insert()
    except DuplicateKeyError:
        raise Conflict(f"version {plan.version!r} exists already in this dataset", field="version") from None
    return version


async def delete_version(version_id: ObjectId, stores: Mapping[str, ObjectStore] | None = None, *,
                         leftover: bool = False) -> None:
    """Delete a version no other version names as its parent: hidden from readers first (DELETING),
    then its copies, pins and content file (from `stores`) go, then its record, so a retry (or a later
    build of the same name) finishes a crash. Assets it alone pinned are flagged for the garbage collector.

    `leftover`: remove it only as what is not READY (a rebuild of its name, its dataset's delete): a
    build taken over as abandoned may still turn READY, and is then CONFLICT, never removed here."""
    versions = DatasetVersion.get_pymongo_collection()
    version = await versions.find_one({"_id": version_id}, {"status": 1, "created_at": 1, delete_marks.TOKEN: 1,
                                                            delete_marks.COMMITTED: 1})
    if version is None:  # gone already: deleting it again is done
        return
    status = VersionStatus(version["status"])
    built = Conflict("this version was built meanwhile (READY): delete it first", field="id")
    if status is VersionStatus.READY and leftover:
        raise built
    if status is VersionStatus.BUILDING and utcnow() - version["created_at"] < ABANDONED_AFTER:
        raise Conflict("this version is being built; delete it once it is READY", field="id")
    if status is VersionStatus.BUILDING or (status is VersionStatus.DELETING and (
            delete_marks.TOKEN not in version or version.get(delete_marks.COMMITTED))):
        # An abandoned build, a delete past its checks cut short, or one of the release before this
        # one (which looked for children before it marked): nothing is left to check.
        if not await _discard(version_id, stores) and leftover:
            raise built  # the build it took for abandoned turned READY first
        return
    # Marked DELETING before its children are looked for; a build naming it as parent looks for the
    # mark once it has claimed its own name (create_version): whichever comes second sees the other.
    # Readers that find it READY after reading it (diffs, training_split) read it whole. Refused, it
    # is READY again (services/delete_marks.py: unless another delete has gone past its checks): a
    # version marked and not committed has lost nothing.
    token = await delete_marks.mark(versions, version_id, {"status": VersionStatus.DELETING.value},
                                    {"status": {"$ne": VersionStatus.READY.value}} if leftover else None)
    if token is None:
        if leftover and await versions.count_documents({"_id": version_id}):
            raise built
        return
    try:
        children = versions.find({"parent_id": version_id}, {"_id": 1}).limit(HOLDERS_NAMED + 1)
        refuse_if_held("this version", {
            "child versions": [encode_id(NodeType.DATASET_VERSION, c["_id"]) async for c in children]},
            "delete those first")
        await delete_marks.commit(versions, version_id, token, "this version")
    except BaseException:
        await delete_marks.take_back(versions, version_id, token, {"$set": {"status": VersionStatus.READY.value}})
        await version_order.place_again(version_id)  # hidden meanwhile: a client may have paged past its place
        raise
    await _discard(version_id, stores)


async def delete_dataset(dataset_id: ObjectId, stores: Mapping[str, ObjectStore] | None = None) -> None:
    """Delete a dataset that has no versions left (abandoned builds and half-deleted versions go with
    it); one gone already is done. Marked first (services/delete_marks.py), as a set's delete is: a
    build that claimed its version before the mark is found here (CONFLICT), one after finds the mark."""
    datasets = Dataset.get_pymongo_collection()
    token = await delete_marks.mark(datasets, dataset_id, {"deleting_at": utcnow()})
    if token is None:
        return
    try:
        versions = DatasetVersion.get_pymongo_collection().find(
            {"dataset_id": dataset_id, "status": VersionStatus.READY.value}, {"_id": 1}).limit(HOLDERS_NAMED + 1)
        refuse_if_held("this dataset", {"versions": [encode_id(NodeType.DATASET_VERSION, v["_id"]) async for v in versions]},
                       "delete them first (deleteDatasetVersion, ADMIN)")
        # A build under way, looked for before any leftover is removed (which takes a while): a build
        # that claimed its name before the mark waits for this refusal (services/delete_marks.waited_out).
        building = await DatasetVersion.get_pymongo_collection().find_one({
            "dataset_id": dataset_id, "status": VersionStatus.BUILDING.value,
            "created_at": {"$gt": utcnow() - ABANDONED_AFTER}}, {"version": 1})
        if building is not None:
            raise _being_built(building)
        async for leftover in DatasetVersion.get_pymongo_collection().find({"dataset_id": dataset_id}):
            if leftover["status"] == VersionStatus.BUILDING.value and utcnow() - leftover["created_at"] < ABANDONED_AFTER:
                raise _being_built(leftover)  # claimed since the look above
            # As in _claim_name; one built since the look above is CONFLICT there.
            await delete_version(leftover["_id"], stores, leftover=True)
        if await DatasetVersion.get_pymongo_collection().count_documents({"dataset_id": dataset_id}):
            raise Conflict("a version of this dataset was built meanwhile; delete it first", field="id")
        await delete_marks.commit(datasets, dataset_id, token, "this dataset")
    except BaseException:
        await delete_marks.take_back(datasets, dataset_id, token, {"$unset": {"deleting_at": ""}})
        raise
    await datasets.delete_one({"_id": dataset_id})


def _being_built(version: dict) -> Conflict:
    return Conflict(f"version {version['version']!r} is being built; delete the dataset once it is done", field="id")


async def _discard(version_id: ObjectId, stores: Mapping[str, ObjectStore] | None = None) -> bool:
    """Remove what a version wrote, its record last (never called on a READY version). Its copies and
    pins go a round at a time (services/bulk_deletes.py): no command holds the database for long, and
    a delete cut short keeps the rounds it finished for its retry. Without a time limit all the same:
    a failed build's cleanup is not to stop at a slow moment of the database, leaving its debris to a
    later build of the name."""
    with no_time_limit():
        # Committed first, and DELETING, while it is still not READY: a delete refused meanwhile must not
        # show it again once it loses anything, a build taken over as abandoned must not flip it READY
        # (its flip needs BUILDING), and one shown again loses nothing (services/delete_marks.py). One
        # gone already may still have what a taken-over build wrote after: that goes.
        versions = DatasetVersion.get_pymongo_collection()
        if await delete_marks.committed(versions, version_id, {"status": {"$in": [
                VersionStatus.BUILDING.value, VersionStatus.DELETING.value]}}, {"status": VersionStatus.DELETING.value}) \
                or await versions.find_one({"_id": version_id}, {"_id": 1}) is None:
            await _remove_copies(version_id, stores)
            return True
        return False  # READY: shown again, or a build taken over that finished first


async def _remove_copies(version_id: ObjectId, stores: Mapping[str, ObjectStore] | None) -> None:
    named = await DatasetVersion.get_pymongo_collection().find_one({"_id": version_id},
                                                                   {"content": 1, "dataset_id": 1, "ready_seq": 1})
    await version_content.remove((named or {}).get("content"), stores)
    await bulk_deletes.delete_all(VersionMember.get_pymongo_collection(), {"version_id": version_id})
    await bulk_deletes.delete_all(VersionRecordPack.get_pymongo_collection(), {"version_id": version_id},
                                  order=("datum_id", "_id"))
    await retention.release(RetentionOwnerType.DATASET_VERSION, version_id)
    if named is not None:
        await version_order.forget(named)
    await DatasetVersion.get_pymongo_collection().delete_one(
        {"_id": version_id, "status": {"$in": [VersionStatus.BUILDING.value, VersionStatus.DELETING.value]}})


async def create_version(plan: VersionPlan, actor: str | None, content_store: ObjectStore | None = None,
                         stores: Mapping[str, ObjectStore] | None = None) -> DatasetVersion:
    """Build a version. With `content_store`, its content file is written there too
    (services/version_content.py); `stores`: the lake's mounts, where an abandoned build's file may lie."""
    if not _VERSION.match(plan.version):
        raise BadUserInput("must be 1-100 letters, digits or ._+- and start with a letter or digit", field="version")
    if plan.expected_manifest_sha256 is not None:
        plan = replace(plan, expected_manifest_sha256=check_sha256(plan.expected_manifest_sha256, "expectedManifestSha256"))
    dataset = await Dataset.get(plan.dataset_id)
    if dataset is None or dataset.deleting_at is not None:
        raise delete_marks.gone("dataset", NodeType.DATASET, plan.dataset_id, "datasetId")

    # --- everything the client named must exist and fit, before anything is written
    chosen: dict[ObjectId, Split] = {}
    set_ids: list[ObjectId] = []
    if plan.parent_id:
        parent = await get_ready_version(plan.parent_id, "parentId")
        if parent.dataset_id != plan.dataset_id:
            raise BadUserInput("the parent belongs to another dataset", field="parentId")
        chosen = await members(parent.id)
        set_ids = list(parent.annotation_set_ids)
    if (plan.remove_datums or plan.remove_sets) and not plan.parent_id:
        raise BadUserInput("removes from a parent version: give parentId",
                           field="removeDatums" if plan.remove_datums else "removeAnnotationSets")
    both = set(plan.add_datums) & set(plan.remove_datums)
    if both:
        raise BadUserInput(f"both added and removed: {', '.join(encode_id(NodeType.DATUM, d) for d in both)}",
                           field="removeDatums")
    named: set[ObjectId] = set()
    for i, datum_id in enumerate(plan.remove_datums):
        if datum_id in named:
            raise BadUserInput(f"{encode_id(NodeType.DATUM, datum_id)} is named twice", field=f"removeDatums[{i}]")
        named.add(datum_id)
        if datum_id not in chosen:
            raise BadUserInput(f"{encode_id(NodeType.DATUM, datum_id)} is not in the parent version",
                               field=f"removeDatums[{i}]")
    # Their ids and splits only: _build reads each batch in full as it copies it.
    added = {d: Split(doc.get("split", Split.UNASSIGNED.value))
             for d, doc in (await fields_by_ids(Datum, plan.add_datums, ["split"])).items()}
    _refuse_missing(NodeType.DATUM, plan.add_datums, added, "addDatums")
    sets_found = {s.id for s in await AnnotationSet.find({"_id": {"$in": plan.add_sets}}).to_list()}
    _refuse_missing(NodeType.ANNOTATION_SET, plan.add_sets, sets_found, "addAnnotationSets")
    if both_sets := set(plan.add_sets) & set(plan.remove_sets):  # as for datums: which one was meant?
        raise BadUserInput(f"both added and removed: {', '.join(encode_id(NodeType.ANNOTATION_SET, s) for s in both_sets)}",
                           field="removeAnnotationSets")
    for i, set_id in enumerate(plan.remove_sets):
        if set_id not in set_ids:
            raise BadUserInput(f"{encode_id(NodeType.ANNOTATION_SET, set_id)} is not in the parent version",
                               field=f"removeAnnotationSets[{i}]")
    if plan.from_collection:
        await get_collection(plan.from_collection, field="fromCollection")

    for datum_id in plan.remove_datums:
        chosen.pop(datum_id)
    for datum_id, split in added.items():  # each as it is now: one the parent holds takes its split of today
        chosen[datum_id] = split
    set_ids = [s for s in dict.fromkeys(set_ids + plan.add_sets) if s not in set(plan.remove_sets)]
    check_at_most(set_ids, MAX_VERSION_SETS, "annotation sets in a version", "addAnnotationSets")

    # --- write: claim the name, then members and pins, then flip to READY
    version = await _claim_name(plan, actor, set_ids, stores)
    made: list[ObjectId] = []  # datums this build creates (from a collection): they go if it fails
    content = version_content.ContentWriter(version.id, content_store) if content_store is not None else None
    try:
        try:
            # What the version holds, looked at once it holds them: a delete of any of it marks it before
            # it looks for versions (delete_set, delete_dataset, delete_version), so it finds this one
            # building and is refused, taking its mark back (waited out here), or this finds its mark.
            holds = await delete_marks.waited_out(lambda: _what_it_holds(set_ids, plan), _Holds.pending,
                                                  delete_marks.WAIT_SECONDS)
            _refuse_what_is_gone(holds, plan)
            await _build(version, plan, chosen, set_ids, made, actor, content)
        except BaseException:
            state = await DatasetVersion.get_pymongo_collection().find_one({"_id": version.id}, {"status": 1})
            if state is None or state["status"] != VersionStatus.READY.value:  # never strip a version that made it
                await _discard(version.id)
                await remove_datums_by_id(made, ITEMS_PER_BATCH)
            raise
        # READY: from here on nothing undoes the build (a delete meanwhile is the deleter's to finish).
        if content is not None:
            await content.attach()  # best effort: never raises but a cancellation
        return await get_ready_version(version.id, "id")
    finally:
        if content is not None:
            content.close()


@dataclass(frozen=True)
class _Holds:
    """What a build found of what its version holds, once it had claimed its name (delete_marks.Found)."""

    sets: dict[ObjectId, delete_marks.Found]
    dataset: delete_marks.Found
    parent: delete_marks.Found | None  # None: no parent

    def pending(self) -> bool:
        return delete_marks.Found.PENDING in (*self.sets.values(), self.dataset, self.parent)


async def _what_it_holds(set_ids: list[ObjectId], plan: VersionPlan) -> _Holds:
    """The version's sets, dataset and parent as deletes' marks leave them (three reads at once)."""
    marks = delete_marks.MARK_FIELDS

    async def sets() -> dict[ObjectId, delete_marks.Found]:
        read = {s["_id"]: s for s in await AnnotationSet.get_pymongo_collection().find(
            {"_id": {"$in": set_ids}}, {"deleting_at": 1, **marks}).to_list()} if set_ids else {}
        return {s: delete_marks.found(read.get(s), (read.get(s) or {}).get("deleting_at") is not None) for s in set_ids}

    async def dataset() -> delete_marks.Found:
        read = await Dataset.get_pymongo_collection().find_one({"_id": plan.dataset_id}, {"deleting_at": 1, **marks})
        return delete_marks.found(read, (read or {}).get("deleting_at") is not None)

    async def parent() -> delete_marks.Found | None:
        if plan.parent_id is None:
            return None
        read = await DatasetVersion.get_pymongo_collection().find_one({"_id": plan.parent_id}, {"status": 1, **marks})
        if read is not None and read["status"] not in (VersionStatus.READY.value, VersionStatus.DELETING.value):
            return delete_marks.Found.GONE
        return delete_marks.found(read, (read or {}).get("status") == VersionStatus.DELETING.value)

    found_sets, found_dataset, found_parent = await asyncio.gather(sets(), dataset(), parent())
    return _Holds(found_sets, found_dataset, found_parent)


def _refuse_what_is_gone(holds: _Holds, plan: VersionPlan) -> None:
    """NOT_FOUND unless every set of the version, its dataset and its parent are CLEAR (a mark still
    PENDING once waited out counts as gone)."""
    for set_id, found in holds.sets.items():
        if found is not delete_marks.Found.CLEAR:
            where = plan.add_sets.index(set_id) if set_id in plan.add_sets else None
            raise NotFound(f"annotation set {encode_id(NodeType.ANNOTATION_SET, set_id)} was deleted, or is being "
                           "deleted, while this version was made", field="parentId" if where is None
                           else f"addAnnotationSets[{where}]")
    if holds.dataset is not delete_marks.Found.CLEAR:
        raise delete_marks.gone("dataset", NodeType.DATASET, plan.dataset_id, "datasetId")
    if plan.parent_id and holds.parent is not delete_marks.Found.CLEAR:  # delete_version says why here
        raise _deleted_meanwhile(plan.parent_id, "parentId")


def _refuse_missing(node: NodeType, given: list[ObjectId], found: Container[ObjectId], field: str) -> None:
    """NOT_FOUND naming the first of `given` (an input list) that is not `found`, and every such one."""
    missing = [(i, x) for i, x in enumerate(given) if x not in found]
    if missing:
        named = list(dict.fromkeys(encode_id(node, x) for _, x in missing))
        raise NotFound(f"no such {node.value}(s): {', '.join(named)}", field=f"{field}[{missing[0][0]}]", missing=named)


async def _build(version: DatasetVersion, plan: VersionPlan, chosen: dict[ObjectId, Split], set_ids: list[ObjectId],
                 made: list[ObjectId], actor: str | None, content: version_content.ContentWriter | None) -> None:
    """Write the version's members, copies and pins (and its content file's lines into `content`), then
    flip it READY (if it is still this build's)."""
    if plan.from_collection:
        chosen.update(await _datums_from_collection(plan.from_collection, actor, made))
    sets = await snapshots.sets_of(set_ids)
    entries, records = await version_build.copy_in(version.id, chosen, sets, actor, content)
    counts = {s.value: 0 for s in Split}
    for split in chosen.values():
        counts[split.value] += 1
    digest = manifest_hash(entries, sets.values())
    if plan.expected_manifest_sha256 is not None and digest != plan.expected_manifest_sha256:  # discarded by the caller
        raise Conflict(f"the version's content hashes to {digest}, not to the one expected: it differs from the "
                       "content it was expected to be, and was not kept", field="expectedManifestSha256")
    place = await version_order.next_place(version.dataset_id)
    flipped = await DatasetVersion.get_pymongo_collection().update_one(
        {"_id": version.id, "status": VersionStatus.BUILDING.value}, {"$set": {
            "status": VersionStatus.READY.value, "datum_count": len(chosen), "split_counts": counts, "record_counts": records,
            "manifest_sha256": digest, "ready_seq": place,
            # Its content file is being written now: the maintenance leaves it to this build (snapshots.write_missing_contents).
            "content_tried_at": utcnow()}})
    if flipped.matched_count == 0:  # taken for abandoned (a build that outlived ABANDONED_AFTER) or deleted meanwhile
        raise Conflict("the build was discarded while it ran (its dataset or name was deleted or taken over); "
                       "build it again", field="version")
    await version_order.settle(version.id, version.dataset_id, place)


def assign_split(seed: int, datum_id: ObjectId, ratios: tuple[float, float, float]) -> Split:
    """Deterministic: the same seed, datum and ratios always give the same split, on any machine
    (graphlake_client/splits.py, which the exporters use too)."""
    return Split(splits.assign_split(seed, str(datum_id), ratios))


def normalise_ratios(train: float, validation: float, test: float) -> tuple[float, float, float]:
    """The ratios as fractions of their sum; each must be a finite, non-negative number (a GraphQL
    Float as large as 1e309 arrives as infinity), and their sum positive."""
    for name, ratio in (("train", train), ("validation", validation), ("test", test)):
        if not math.isfinite(ratio):
            raise BadUserInput("must be a finite number", field=f"ratios.{name}")
        if ratio < 0:
            raise BadUserInput("must not be negative", field=f"ratios.{name}")
    total = train + validation + test
    if total <= 0:
        raise BadUserInput("must not all be zero", field="ratios")
    return train / total, validation / total, test / total


async def record_counts(version: DatasetVersion) -> dict[str, int]:
    """The version's records per set (its id as text): as its build counted them, or, for a version
    built before builds counted, from its copies (one aggregation, remembered on the version)."""
    if version.record_counts is not None:
        return version.record_counts
    found: Counter[str] = Counter()
    async for copies in snapshots.version_copies(version.id):
        found.update(str(copy["set_id"]) for copy in copies)
    counted = {str(set_id): found.get(str(set_id), 0) for set_id in version.annotation_set_ids}
    await DatasetVersion.get_pymongo_collection().update_one(
        {"_id": version.id, "status": VersionStatus.READY.value}, {"$set": {"record_counts": counted}})
    return counted


async def verified_datums(version: DatasetVersion, datum_ids: Sequence[ObjectId]) -> set[ObjectId]:
    """Datums with at least one ground-truth annotation in the version, every one of them verified
    (as the version holds them). Predictions and reviews it also holds do not count: they are not labels."""
    labelled: set[ObjectId] = set()
    unverified: set[ObjectId] = set()
    for start in range(0, len(datum_ids), snapshots.BATCH):
        for copy in await snapshots.copies_of(version.id, datum_ids[start:start + snapshots.BATCH]):
            if copy.get("purpose") == AnnotationPurpose.GROUND_TRUTH.value:
                labelled.add(copy["datum_id"])
                if copy.get("verified") is not True:
                    unverified.add(copy["datum_id"])
    return labelled - unverified


async def training_split(version_id: ObjectId, ratios: tuple[float, float, float], seed: int,
                         verified_only: bool) -> dict[Split, list[ObjectId]]:
    """The version's datums in train, validation and test, each part in id order: a datum whose split
    was assigned (frozen in the version) keeps it; only UNASSIGNED ones are spread by `ratios` and
    `seed`. Sorted and spread in a thread: for 200,000 datums (a SHA-256 each) that took 1 s, which
    held the event loop."""
    version = await get_ready_version(version_id, "datasetVersion")
    frozen = await members(version.id)
    datum_ids = await asyncio.to_thread(sorted, frozen)
    keep = await verified_datums(version, datum_ids) if verified_only else None
    if not await _still_ready([version.id]):
        raise _deleted_meanwhile(version.id, "datasetVersion")

    def spread() -> dict[Split, list[ObjectId]]:
        parts: dict[Split, list[ObjectId]] = {Split.TRAIN: [], Split.VALIDATION: [], Split.TEST: []}
        for datum_id in datum_ids:
            if keep is None or datum_id in keep:
                split = frozen[datum_id]
                parts[split if split is not Split.UNASSIGNED else assign_split(seed, datum_id, ratios)].append(datum_id)
        return parts

    return await asyncio.to_thread(spread)
