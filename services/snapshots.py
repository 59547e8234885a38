"""What a dataset version holds: copies of its datums and of their annotation records, with the
digests of the assets they name, taken when the version is built; and checking a version against
the content hash over them (documents/manifest.py says what the hash covers)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from beanie import Document
from bson import ObjectId

from documents.annotation import AnnotationRecord, AnnotationSet
from documents.asset import Asset
from documents.clock import utcnow
from documents.common import Split
from documents.dataset import DatasetVersion, VersionContentFile, VersionMember, VersionStatus
from documents.json_value import StoredJson
from documents.lean import lean
from documents.manifest import PENDING, asset_digest, datum_entry, manifest_hash
from documents.record_pack import VersionRecordPack, pack, unpack_all
from documents.sparse import sparse
from services import batches, external_s3
from services.availability import no_time_limit
from services.field_pages import field_pages, key_pages, merged_pages, pair_pages, read_ahead
from services.id_reads import fields_by_ids
from services.node_ids import NodeType, encode_id
from services.version_content import ContentWriter
from storage import ObjectStore

BATCH = 1000  # datums copied (or checked) at a time, with their records
# A batch's records are read, and its copies written, this many at a time: each is one database
# operation, and a datum may have hundreds of records. One read of 10,000 records took 2-4 s on
# FerretDB, past the request's time limit on a busy machine (a COCO version of 2,000 images and
# 20,000 boxes failed UNAVAILABLE), and held the database that long.
RECORDS_PER_READ = 2000
DOCUMENTS_PER_WRITE = 1000
SETS_READ_APART = 8  # a version of more sets reads its datums' records by datum (_records_of says why)
PROBLEMS_KEPT = 100
CONTENT_RETRY_AFTER = timedelta(days=1)  # a version whose content file could not be written (write_missing_contents)


async def asset_digests(asset_ids: Iterable[ObjectId], into: dict[ObjectId, str] | None = None) -> dict[ObjectId, str]:
    """The digest of each asset (documents/manifest.asset_digest), one query for those not in `into` yet."""
    known = into if into is not None else {}
    missing = list({a for a in asset_ids if a not in known})
    if missing:
        found = await fields_by_ids(Asset, missing, ["sha256", "storage"])
        known.update({a: asset_digest(found.get(a)) for a in missing})
    return known


async def sets_of(version_set_ids: list[ObjectId]) -> dict[ObjectId, dict]:
    return {s["_id"]: s async for s in AnnotationSet.get_pymongo_collection().find(
        {"_id": {"$in": version_set_ids}}, {"name": 1, "purpose": 1})}


DATUM_FIELDS = ["roles", "metadata", "created_at"]  # what a build reads of a datum (DatumRead)
_EMPTY_METADATA = StoredJson.encode({}).json


@dataclass(frozen=True)
class DatumRead:
    """A datum as a build reads it (DATUM_FIELDS, raw): what its member holds. Built as the Datum
    model, each took some 80 us (its metadata's query views made again): 40 ms of the event loop a
    batch of 500."""

    id: ObjectId
    roles: list[dict]  # {"role", "asset_id"}, in the datum's order
    metadata: str  # its JSON text
    created_at: datetime | None  # as stored (the member keeps it as `datum_created_at`)

    @classmethod
    def of(cls, raw: dict) -> DatumRead:
        roles = [{"role": r["role"], "asset_id": r["asset_id"]} for r in raw.get("roles") or ()]
        return cls(raw["_id"], roles, (raw.get("metadata") or {}).get("json") or _EMPTY_METADATA, raw.get("created_at"))


@dataclass
class CopiedBatch:
    """A batch of datums as the version holds them, ready to be written (write_batch): its members,
    with the manifest entry of each, its records' copies by datum and packed (documents/record_pack.py)."""

    members: list[dict]
    entries: list[bytes]
    by_datum: dict[ObjectId, list[dict]]
    packs: list[dict]


async def copy_batch(version_id: ObjectId, datums: list[DatumRead], splits: Mapping[ObjectId, Split],
                     sets: Mapping[ObjectId, dict], digests: dict[ObjectId, str],
                     counts: dict[str, int] | None = None, unsettled: set[Any] | None = None) -> CopiedBatch:
    """The version's copies of these datums and of their records (those in `sets`), read but not
    written (write_batch writes them), so a build reads the next batch while this one is written.
    With `counts`, the records copied are added to it per set (its id as text). `unsettled`: the
    write batches the build has left out so far (_settled), kept across its calls.

    The records are read a page at a time, the next while this one's copies are made; their copies
    are packed a datum's to a document (documents/record_pack.py says why), beside the members,
    which hold the hash of their datum's records: a datum's may lie on two pages."""
    await asset_digests([r["asset_id"] for d in datums for r in d.roles], digests)
    copies: list[dict] = []
    if sets and datums:
        async with aclosing(_records_of(datums, sets)) as records:  # its reads end with it (it closes them)
            async for page in records:
                copies += await _copies(version_id, await _settled(page, set() if unsettled is None else unsettled), digests)

    # In a thread, as each page's copies: some 20 ms of a batch's Python work (its members, their
    # hashes, encoding and compressing its packs) that held the event loop.
    def finished() -> CopiedBatch:
        if counts is not None:
            for copy in copies:
                counts[str(copy["set_id"])] = counts.get(str(copy["set_id"]), 0) + 1
        by_datum = _by_datum_of(copies)
        members = [{
            "version_id": version_id, "datum_id": d.id, "split": splits[d.id].value,
            "roles": [dict(r) for r in d.roles], "digests": {r["role"]: digests[r["asset_id"]] for r in d.roles},
            "metadata": {"json": d.metadata}, "datum_created_at": d.created_at} for d in datums]
        entries = [datum_entry(m, by_datum[m["datum_id"]], sets) for m in members]
        for member, entry in zip(members, entries, strict=True):
            member["entry"] = entry.hex()  # what a diff compares
        packs = [document for datum_id, held in by_datum.items() if held for document in pack(version_id, datum_id, held)]
        return CopiedBatch(members, entries, by_datum, packs)

    return await asyncio.to_thread(finished)


async def write_batch(batch: CopiedBatch, content: ContentWriter | None = None) -> None:
    """Write a batch's packs and members (and, into `content`, its lines of the version's content
    file: the batches in the order the version lists them, one at a time). Without a time limit, as
    every write a failed build undoes (datasets._discard): an insert this side gave up on could
    still commit on the server after the discard ran. Whatever fails, it returns only once none of
    its writes is under way."""
    with no_time_limit():  # the task takes the block's context with it
        writing = asyncio.create_task(_write((VersionRecordPack, batch.packs), (VersionMember, batch.members)))
    try:
        if content is not None:  # in a thread while the members are written (the insert adds their `_id`s only)
            await asyncio.to_thread(content.add, batch.members, batch.by_datum)
    finally:
        await asyncio.wait([writing])
        if not writing.cancelled():
            writing.exception()  # retrieved: raised just below, unless this block is raising already
    writing.result()


async def _records_of(datums: list[DatumRead], sets: Mapping[ObjectId, dict]) -> AsyncIterator[list[dict]]:
    """The current records of these datums in these sets, in (datum, `_id`) order: the order of the
    copies is the order a version lists a datum's records in, oldest first.

    Read by datum alone, a build read every record other sets hold on its datums too (a lab's
    prediction sets on the same images: 100 datums carrying 100 other sets took 2.0 s instead of
    0.12 s). So where other sets hold at least half the datums' records, each of the version's sets
    is read on its own (the records' (set, datum, `_id`) index, each datum searched in turn) and the
    reads are merged; otherwise, or for more than SETS_READ_APART sets, by datum, keeping its sets'
    records. A merge has the first page of every read before it gives a record, so its reads and the
    copies' writes overlap less: a version of 2 sets that hold all the records took 12% longer
    merged (8 sets: 14%). Choosing costs two counts a batch, which our FerretDB build answers from
    the indexes alone: so they count superseded records too (a condition on `superseded_by` would
    make it read every record), which only sways the choice. A version of one set always reads it
    apart, without counting. In `_id` order each batch walked every record of the set
    (services/field_pages.py)."""
    collection = AnnotationRecord.get_pymongo_collection()
    datum_ids = [d.id for d in datums]
    apart = len(sets) == 1
    if 1 < len(sets) <= SETS_READ_APART:
        held = {"datum_id": {"$in": datum_ids}}
        every, ours = await asyncio.gather(collection.count_documents(held),
                                           collection.count_documents({"set_id": {"$in": list(sets)}, **held}))
        apart = ours * 2 <= every
    if not apart:
        async with aclosing(read_ahead(field_pages(collection, {"superseded_by": None}, "datum_id", RECORDS_PER_READ,
                                                   values=datum_ids))) as pages:
            async for page in pages:
                kept = [r for r in page if r["set_id"] in sets]
                if kept:
                    yield kept
        return
    reads = [field_pages(collection, {"set_id": set_id, "superseded_by": None}, "datum_id", RECORDS_PER_READ,
                         values=datum_ids) for set_id in sets]
    async with aclosing(merged_pages(reads, _by_datum, RECORDS_PER_READ)) as pages:
        async for page in pages:
            yield page


async def _settled(records: list[dict], unsettled: set[Any]) -> list[dict]:
    """These records less those of write batches not settled (services/batches.py), and less those
    rolled back since they were read. A batch still being written has not been answered and may yet
    be rolled back: a keyed one that meets a key the set holds is, then written again, and a version
    built meanwhile froze both the held record and its rolled-back twin. A batch left out once is
    left out of the whole build (`unsettled`), so the version holds none of it rather than the part
    read after it settled.

    A batch's entry is dropped after its documents are written, or after a rollback removed them:
    one record of each batch, looked for again, tells which. Counted, not read: the build reads
    each record once (tests/test_version_build_limits.py); only if one is missing (a rollback, or
    a record deleted since) are the page's records read again to find which."""
    batch_ids = {r.get("batch") for r in records} - {None}
    if not batch_ids:
        return records
    collection = AnnotationRecord.get_pymongo_collection()
    unsettled |= await batches.still_written(collection.database, batch_ids - unsettled)
    kept = [r for r in records if r.get("batch") not in unsettled]
    one_each = list({r["batch"]: r["_id"] for r in kept if r.get("batch") is not None}.values())
    if not one_each or await collection.count_documents({"_id": {"$in": one_each}}) == len(one_each):
        return kept
    there = {d["_id"] async for d in collection.find({"_id": {"$in": [r["_id"] for r in kept]}}, {"_id": 1})}
    return [r for r in kept if r["_id"] in there]


def _by_datum(record: dict) -> bytes:
    # Bytes compare in C, where ObjectIds compare through Python: a merge compares each record a few times.
    return record["datum_id"].binary + record["_id"].binary


async def _copies(version_id: ObjectId, records: list[dict], digests: dict[ObjectId, str]) -> list[dict]:
    """The version's copies of these records, with the digests of the assets (and masks) they name."""
    masks = [r["geometry"]["asset_id"] for r in records if (r.get("geometry") or {}).get("type") == "MASK"]
    await asset_digests([r["asset_id"] for r in records] + masks, digests)
    # In a thread: some 10 ms a page of 2,000 records on the event loop.
    return await asyncio.to_thread(_copied, version_id, records, digests)


def _copied(version_id: ObjectId, records: list[dict], digests: Mapping[ObjectId, str]) -> list[dict]:
    copies = []
    for record in records:
        # Sparse (documents/sparse.py): records stored before they were are copied without their nulls;
        # `batch` is the original's write journal (services/batches.py), nothing a copy needs.
        copy = sparse({**record, "_id": ObjectId(), "record_id": record["_id"], "version_id": version_id,
                       "asset_digest": digests[record["asset_id"]], "batch": None})
        if record.get("attributes"):  # as text alone, whatever form the record has (documents/annotation.py)
            copy["attributes"] = {"json": record["attributes"]["json"]}
        if (record.get("geometry") or {}).get("type") == "MASK":
            copy["mask_digest"] = digests[record["geometry"]["asset_id"]]
        copies.append(copy)
    return copies


async def _write(*writes: tuple[type[Document], list[dict]]) -> None:
    """Insert the documents of each model (DOCUMENTS_PER_WRITE at a time), one model after the other."""
    for model, documents in writes:
        for start in range(0, len(documents), DOCUMENTS_PER_WRITE):
            await model.get_pymongo_collection().insert_many(documents[start:start + DOCUMENTS_PER_WRITE])


@dataclass
class Verification:
    """A version checked against its content hash and the assets it names."""

    stored: str
    computed: str = ""
    datums: int = 0
    records: int = 0
    files_read: int = 0
    external_checked: int = 0  # objects registered in place (S3) asked whether they changed
    problems: list[str] = field(default_factory=list)
    splits: Counter[str] = field(default_factory=Counter)  # datums per split, as the members hold them
    set_records: Counter[str] = field(default_factory=Counter)  # records per set (its id as text), as copied

    @property
    def ok(self) -> bool:
        return self.computed == self.stored and not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(text)


async def verify(version: DatasetVersion, stores: Mapping[str, ObjectStore] | None = None) -> Verification:
    """Recompute the version's hash from its copies, and check each asset it names still has the
    digest it had when the version was built; with `stores`, also read each stored file again and
    hash its bytes, and ask S3 whether each object registered in place is still the one registered."""
    return (await verify_many([version], stores))[0]


async def verify_many(versions: Sequence[DatasetVersion],
                      stores: Mapping[str, ObjectStore] | None = None) -> list[Verification]:
    """verify of each of these versions, their reads shared: a batch of members (whichever of the
    versions hold them), their copies and their assets at a time, so a list of versions each asking
    for its `verification` costs the reads of one version of them all (not those of each)."""
    results = {version.id: Verification(stored=version.manifest_sha256) for version in versions}
    every_set = await sets_of(list(dict.fromkeys(s for version in versions for s in version.annotation_set_ids)))
    sets = {version.id: {s: every_set[s] for s in version.annotation_set_ids if s in every_set} for version in versions}
    entries: dict[ObjectId, list[bytes]] = defaultdict(list)
    # In (version, `_id`) order, which an index holds (the hash takes entries in any order): in datum
    # order each page sorted every member of the version again on the embedded default.
    async for batch in field_pages(VersionMember.get_pymongo_collection(), {}, "version_id", BATCH, values=list(results)):
        for version_id, part in (await _verify_batch(batch, sets, results, stores)).items():
            entries[version_id] += part
    for version in versions:
        result = results[version.id]
        _conclude(version, result, entries[version.id], sets[version.id].values())
        if stores is not None and version.content is not None:
            await _check_content(version.content, result, stores)
    return [results[version.id] for version in versions]


def _conclude(version: DatasetVersion, result: Verification, entries: list[bytes], sets: Iterable[dict]) -> None:
    """The hash of what the version holds, and its counts, checked against what it recorded."""
    result.computed = manifest_hash(entries, sets)
    if result.computed != result.stored:
        result.problem("the hash of what the version holds is not the one recorded when it was built")
    if result.datums != version.datum_count:
        result.problem(f"it holds {result.datums} datums; {version.datum_count} were recorded")
    # What splitCounts and annotationCounts answer is kept on the version, apart from what it holds.
    held_splits = {s.value: result.splits[s.value] for s in Split}
    if held_splits != {s.value: version.split_counts.get(s.value, 0) for s in Split}:
        result.problem(f"its datums are in splits {_counted(held_splits)}; {_counted(version.split_counts)} were recorded")
    if version.record_counts is not None:  # counted by builds since they count (older ones are counted when asked)
        held_records = {str(s): result.set_records[str(s)] for s in version.annotation_set_ids}
        if held_records != {s: version.record_counts.get(s, 0) for s in held_records}:
            result.problem(f"it holds {_counted(held_records, NodeType.ANNOTATION_SET)} records; "
                           f"{_counted(version.record_counts, NodeType.ANNOTATION_SET)} were recorded")


async def _check_content(content: VersionContentFile, result: Verification, stores: Mapping[str, ObjectStore]) -> None:
    """The version's content file (services/version_content.py) still has the SHA-256 it was stored with."""
    if content.mount not in stores:
        result.problem(f"its content file is on mount {content.mount!r}, which this lake does not have")
        return
    try:
        actual = await stores[content.mount].sha256(content.key)
    except Exception as error:  # a missing object, an unreachable store: a finding, as for an asset's bytes
        result.problem(f"its content file {content.key} cannot be read ({type(error).__name__}: {error})")
        return
    result.files_read += 1
    if actual != content.sha256:
        result.problem(f"its content file {content.key} hashes to {actual}; {content.sha256} was recorded "
                       "(exporters read its pages instead)")


async def copies_of(version_id: ObjectId, datum_ids: Iterable[ObjectId]) -> list[dict]:
    """The version's copies of the records on these datums, in (datum, `_id`) order: each datum's in
    the order the version lists them."""
    copies: list[dict] = []
    async for page in field_pages(VersionRecordPack.get_pymongo_collection(), {"version_id": version_id}, "datum_id",
                                  BATCH, values=datum_ids):
        copies += await _unpacked(page)
    return copies


async def members_held(pairs: Sequence[tuple[ObjectId, ObjectId]]) -> list[VersionMember | None]:
    """The datum of each (version, datum) pair as that version holds it, in the order asked (None
    where it holds no such datum): the pages of several versions (a list of versions' datums, their
    diffs) in one query. It asks for every asked version and asked datum together (the index on
    (datum, version) searches each pair of them), keeping the pairs asked for: a version may hold a
    datum that only another version was asked for."""
    if not pairs:
        return []
    wanted = set(pairs)
    raw = await VersionMember.get_pymongo_collection().find(
        {"version_id": {"$in": sorted({v for v, _ in wanted})}, "datum_id": {"$in": sorted({d for _, d in wanted})}}).to_list()
    member = lean(VersionMember)
    found = {(m["version_id"], m["datum_id"]): member.model_validate(m) for m in raw
             if (m["version_id"], m["datum_id"]) in wanted}
    return [found.get(pair) for pair in pairs]


async def copies_held(pairs: Iterable[tuple[ObjectId, ObjectId]]) -> list[dict]:
    """The copies of the records each (version, datum) pair holds, in (version, datum, `_id`) order:
    several versions' in one read of their packs (services/field_pages.pair_pages says which it reads
    and leaves out)."""
    pairs = list(pairs)
    if len({version_id for version_id, _ in pairs}) <= 1:  # one version: its own read, as it always was
        return await copies_of(pairs[0][0], [datum_id for _, datum_id in pairs]) if pairs else []
    copies: list[dict] = []
    async for page in pair_pages(VersionRecordPack.get_pymongo_collection(), ("version_id", "datum_id"), pairs, BATCH):
        copies += await _unpacked(page)
    return copies


async def version_copies(version_id: ObjectId) -> AsyncIterator[list[dict]]:
    """All of a version's copies, a batch of datums' at a time, in (datum, `_id`) order."""
    async for page in field_pages(VersionRecordPack.get_pymongo_collection(), {"version_id": version_id},
                                  "datum_id", BATCH):
        yield await _unpacked(page)


async def _unpacked(packs: list[dict]) -> list[dict]:
    """The copies these packs hold. In a thread: a page of 100 datums of 500 records each took 0.6 s
    to decompress and decode, which would hold the event loop."""
    return await asyncio.to_thread(unpack_all, packs)


async def _copies_of(version_id: ObjectId, members: list[dict]) -> list[dict]:
    return await copies_of(version_id, [m["datum_id"] for m in members])


def _by_datum_of(copies: list[dict]) -> dict[ObjectId, list[dict]]:
    by_datum: dict[ObjectId, list[dict]] = defaultdict(list)
    for copy in copies:
        by_datum[copy["datum_id"]].append(copy)
    return by_datum


async def write_content(version: DatasetVersion, store: ObjectStore, *, replace: bool = False) -> bool:
    """Write the content file of a READY version that has none (built before Graphlake wrote them,
    or its write failed), or with `replace` one that has (a file `verify --deep` found damaged or
    gone), from the copies it holds, a batch of datums at a time in the order the version lists
    them: the bytes its build wrote. Whether it now has one. `graphlake datasets write-content`
    calls it. A replaced file on another mount is left unnamed, for the stray sweep."""
    if version.status is not VersionStatus.READY:
        return False
    if version.content is not None and not replace:
        return True
    writer = ContentWriter(version.id, store)
    try:
        async for members in key_pages(VersionMember.get_pymongo_collection(), {"version_id": version.id}, "_id", BATCH):
            await asyncio.to_thread(writer.add, members, _by_datum_of(await _copies_of(version.id, members)))
        return await writer.attach()
    finally:
        writer.close()


async def write_missing_contents(store: ObjectStore, *, most: int, seconds: float) -> int:
    """The maintenance's round of write_content: the files READY versions lack (built before
    Graphlake wrote them, or their write failed: the store away, no room to stage one), oldest
    version first; at most `most` of them, and none begun after `seconds`, since each reads its whole
    version (a batch at a time) and the round's other steps wait for it. A version is marked as it is
    begun, as its build marks it, so one whose file cannot be written is tried again a day later,
    not every round, and a version a build is still writing the file of is left to it. Returns how
    many files it wrote."""
    if most < 1:  # (a limit of 0 is none at all to the database)
        return 0
    started = time.monotonic()
    due = {"status": VersionStatus.READY.value, "content": None,
           "$or": [{"content_tried_at": None}, {"content_tried_at": {"$lte": utcnow() - CONTENT_RETRY_AFTER}}]}
    written = 0
    for version in await DatasetVersion.find(due).sort("_id").limit(most).to_list():
        if time.monotonic() - started > seconds:
            break
        await DatasetVersion.get_pymongo_collection().update_one({"_id": version.id},
                                                                 {"$set": {"content_tried_at": utcnow()}})
        written += await write_content(version, store)
    return written


async def _verify_batch(members: list[dict], sets: Mapping[ObjectId, Mapping[ObjectId, dict]],
                        results: Mapping[ObjectId, Verification],
                        stores: Mapping[str, ObjectStore] | None) -> dict[ObjectId, list[bytes]]:
    """Check a batch of members (of one version or several) and their copies; the entry of each, by version."""
    copies = await copies_held([(m["version_id"], m["datum_id"]) for m in members])
    by_version: dict[ObjectId, list[dict]] = defaultdict(list)
    copies_by_version: dict[ObjectId, list[dict]] = defaultdict(list)
    for member in members:
        by_version[member["version_id"]].append(member)
    for copy in copies:
        copies_by_version[copy["version_id"]].append(copy)
    held: dict[ObjectId, dict[ObjectId, str]] = {}  # by version: asset -> the digest the version holds for it
    for version_id, own in by_version.items():
        result, own_copies = results[version_id], copies_by_version[version_id]
        result.datums += len(own)
        result.records += len(own_copies)
        held[version_id] = _held_digests(own, own_copies)
        result.splits.update(m["split"] for m in own)
        result.set_records.update(str(c["set_id"]) for c in own_copies)
    await _check_assets(held, results, stores)
    entries: dict[ObjectId, list[bytes]] = {}
    for version_id, own in by_version.items():
        by_datum = _by_datum_of(copies_by_version[version_id])
        entries[version_id] = [datum_entry(m, by_datum[m["datum_id"]], sets[version_id]) for m in own]
        for member, entry in zip(own, entries[version_id], strict=True):
            if member.get("entry") and member["entry"] != entry.hex():  # what a diff compares (none on very old versions)
                results[version_id].problem(f"datum {encode_id(NodeType.DATUM, member['datum_id'])}: the entry a diff "
                                            "compares is not that of what the version holds")
    return entries


def _held_digests(members: list[dict], copies: list[dict]) -> dict[ObjectId, str]:
    """The digest a version holds for each asset its members and copies name."""
    held: dict[ObjectId, str] = {}
    for member in members:
        for role in member.get("roles", []):
            held[role["asset_id"]] = (member.get("digests") or {}).get(role["role"], PENDING)
    for copy in copies:
        held[copy["asset_id"]] = copy.get("asset_digest", PENDING)
        if (copy.get("geometry") or {}).get("type") == "MASK":
            held[copy["geometry"]["asset_id"]] = copy.get("mask_digest", PENDING)
    return held


def _counted(counts: Mapping[str, int], node: NodeType | None = None) -> str:
    """Counts as a problem names them: `TRAIN 2, TEST 1`, or by the API's IDs of `node`."""
    return ", ".join(f"{encode_id(node, ObjectId(k)) if node else k} {n}" for k, n in counts.items() if n) or "none"


async def _check_assets(held: Mapping[ObjectId, Mapping[ObjectId, str]], results: Mapping[ObjectId, Verification],
                        stores: Mapping[str, ObjectStore] | None) -> None:
    """Each version's assets (`held`: by version, the digest it holds for each) against what they are
    now, all read at once."""
    wanted = list(dict.fromkeys(asset_id for digests in held.values() for asset_id in digests))
    found = {a["_id"]: a async for a in Asset.get_pymongo_collection().find(
        {"_id": {"$in": wanted}}, {"sha256": 1, "storage": 1, "status": 1, "size_bytes": 1})}
    for version_id, digests in held.items():
        await _check_held(digests, found, results[version_id], stores)


async def _check_held(held: Mapping[ObjectId, str], found: Mapping[ObjectId, Mapping[str, Any]], result: Verification,
                      stores: Mapping[str, ObjectStore] | None) -> None:
    external: list[Mapping[str, Any]] = []
    for asset_id, digest in held.items():
        asset = found.get(asset_id)
        now = asset_digest(asset)
        # Not ACTIVE: DELETED since, or (a mask a build before schema 13 froze still uploading) FAILED or PENDING.
        if asset is None or asset.get("status") in ("DELETED", "FAILED", "PENDING"):
            result.problem(f"asset {encode_id(NodeType.ASSET, asset_id)} is {'gone' if asset is None else asset['status']}")
        elif digest != PENDING and now != digest:
            result.problem(f"asset {encode_id(NodeType.ASSET, asset_id)} now has {now}; the version holds {digest}")
        elif stores is not None and digest.startswith("sha256:") and _stored(asset, stores):
            result.files_read += 1
            await _check_bytes(asset, digest, result, stores)
        elif stores is not None and external_s3.registered_on(asset, stores):
            external.append(asset)
    if external:
        assert stores is not None
        for problem in await external_s3.changes(external, stores):
            result.problem(problem)
        result.external_checked += len(external)


def _stored(asset: Mapping[str, Any], stores: Mapping[str, ObjectStore]) -> bool:
    storage = asset.get("storage") or {}
    return bool(storage) and not storage.get("external") and storage.get("mount") in stores


async def _check_bytes(asset: Mapping[str, Any], digest: str, result: Verification,
                       stores: Mapping[str, ObjectStore]) -> None:
    storage = asset["storage"]
    try:
        actual = await stores[storage["mount"]].sha256(storage["key"])
    except Exception as error:  # a missing object, an unreachable store: each is a finding, not a crash
        result.problem(f"asset {encode_id(NodeType.ASSET, asset['_id'])}: its bytes cannot be read "
                       f"({type(error).__name__}: {error})")
        return
    if f"sha256:{actual}" != digest:
        result.problem(f"asset {encode_id(NodeType.ASSET, asset['_id'])}: its stored bytes hash to sha256:{actual}; "
                       f"the version holds {digest}")
