"""Steps every dataset importer (COCO, Pascal VOC) takes through the GraphQL API: read a connection
page by page, find or make the image datums, the annotation schema, the annotation set and the
dataset version, so a rerun finds what an earlier run made instead of making it twice, and adds
only the records an interrupted run did not (records_held).

Kept apart from coco.py so an importer that needs no pycocotools does not import it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import posixpath
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.results import DatasetVersion

if TYPE_CHECKING:
    from graphlake_client.client import Client

BATCH = 1000  # records or datums per mutation, well under the server's batch limit
# addAnnotations batches under way at once: the server checks and builds one while the database writes
# the other. More would only queue up on a server of a few cores.
RECORD_BATCHES_IN_FLIGHT = 2
KINDS = ["BBOX", "POLYGON", "MASK", "KEYPOINTS"]
STAGE_IMAGES = 200  # images a stage of an import takes at once (in_stages)
# Chunks in each step at once. At 1,000 images, 3 interleaved pairs, the steps took 2.7-3.7 s (median
# 3.1 s) with two, 3.0-3.9 s (3.6 s) with one: one chunk's request left the server or the database
# waiting on the other more often.
CHUNKS_PER_STEP = 2

Chunk = TypeVar("Chunk")


async def pages(lake: Client, query: str, root: str, variables: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every node of a connection, page by page."""
    nodes, after = [], None
    while True:
        page = (await lake.execute(query, {**(variables or {}), "after": after}))[root]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def chunks(items: list[Any], size: int = BATCH) -> list[list[Any]]:
    """`items` in lists of `size`."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def by_image(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` with each image's together, images in the order they first appear, each image's
    records in their own order. The server reads the asset and datum of every image a batch names:
    a COCO file lists its annotations by category, so a batch of 1,000 named hundreds of images
    (every image, in bench/exchange.py's set of 500) where grouped it names a few dozen."""
    first: dict[str, int] = {}
    for record in records:
        first.setdefault(record["assetId"], len(first))
    return sorted(records, key=lambda record: first[record["assetId"]])  # stable: order within an image kept


def image_batches(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`records` (each image's together: by_image) in batches of at most BATCH that never split an
    image's records, unless it alone has more than BATCH. A batch is stored whole or not at all, so
    an interrupted import leaves each image with all of its records or none, and a rerun adds the
    rest (records_held)."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for _, image in itertools.groupby(records, key=lambda record: record["assetId"]):
        group = list(image)
        if current and len(current) + len(group) > BATCH:
            batches.append(current)
            current = []
        current += group
        while len(current) > BATCH:  # one image with more records than a batch takes
            batches.append(current[:BATCH])
            current = current[BATCH:]
    return [*batches, current] if current else batches


async def add_records(lake: Client, set_id: str, records: list[dict[str, Any]]) -> int:
    """Add `records` to the set grouped by image (`by_image`, `image_batches`), RECORD_BATCHES_IN_FLIGHT
    mutations at once; every batch runs to its end before a failure is reported. Returns how many
    were added: records the set held already under their keys (sent by an import that was stopped
    while its batches were in flight) are found, not added again."""
    records = by_image(records)
    gate = asyncio.Semaphore(RECORD_BATCHES_IN_FLIGHT)

    async def add(batch: list[dict[str, Any]]) -> int:
        async with gate:
            return (await lake.execute(ops.ADD_ANNOTATIONS, {"setId": set_id, "records": batch}))["addAnnotations"]["count"]

    done = await asyncio.gather(*(add(batch) for batch in image_batches(records)), return_exceptions=True)
    if failed := next((d for d in done if isinstance(d, BaseException)), None):
        raise failed
    return sum(done)  # type: ignore[arg-type]  # ints, once no exception is among them


@dataclass(frozen=True)
class Known:
    """The image datums earlier imports of a dataset made: each by its image asset, and the image
    each is for, as its metadata names it (its id in the imported file, and its file name)."""

    datum_of_asset: dict[str, str]
    image_of_datum: dict[str, tuple[Any, Any]]


async def known_datums(lake: Client, key: str, dataset: str) -> Known:
    """The image datums earlier imports of `dataset` made (found by the dataset named in their
    metadata under `key`)."""
    existing = await pages(lake, ops.DATUMS_BY_METADATA, "datums",
                           {"metadata": [{"path": f"{key}.dataset", "op": "EQ", "value": dataset}]})
    named = {d["id"]: d["metadata"].get(key) or {} for d in existing}
    return Known({r["asset"]["id"]: d["id"] for d in existing for r in d["roles"] if r["role"] == "image"},
                 {datum: (meta.get("id"), _plain(meta.get("file_name"))) for datum, meta in named.items()})


def _plain(file_name: Any) -> Any:
    """A file name as an import now records it (coco_checks.plain_file_names): an earlier import
    kept `./a.jpg` as written, and its datum is still a.jpg's."""
    return posixpath.normpath(file_name) if isinstance(file_name, str) and file_name else file_name


@dataclass
class Records:
    """Records on one image, as an import compares them (records_held): each by what tells an
    import's own from anything else (`signature`), counted; `file_name` the image's, for those an
    import makes. Only the signatures are kept, not the records: an import builds these only when
    the set holds records to compare with, and 200,000 polygons' record dicts took 1.5 GB."""

    file_name: str | None = None
    keyed: Counter[str] = field(default_factory=Counter)
    keyless: Counter[str] = field(default_factory=Counter)  # the same without their keys
    unkeyed: int = 0  # how many have no key (an import before records had keys made them)

    @classmethod
    def of(cls, file_name: str | None, records: Iterable[dict[str, Any]]) -> Records:
        made = cls(file_name)
        for record in records:
            made.add(record)
        return made

    def add(self, record: dict[str, Any]) -> None:
        self.keyed[signature(record)] += 1
        self.keyless[signature(record, keyed=False)] += 1
        self.unkeyed += record.get("key") is None

    def __len__(self) -> int:
        return self.keyed.total()

    def same_as(self, made: Records) -> bool:
        """Whether these held records are those `made`: by key and content, or by content alone
        where some have no key."""
        return self.keyless == made.keyless if self.unkeyed else self.keyed == made.keyed


def signature(record: dict[str, Any], *, keyed: bool = True) -> str:
    """A digest of what tells a record an import makes from another: its key, label, score,
    attributes and shape (a mask's asset aside: it is uploaded only when the records are added), the
    same for an AnnotationRecordInput this import would send and a record the set holds
    (SET_RECORD_CONTENT). Numbers count as floats, as the server gives them back."""
    geometry = record.get("geometry") or {}
    if "__typename" in geometry:  # a record the set holds
        shape = {k: v for k, v in geometry.items() if k != "__typename"}
        kind = geometry["__typename"]
    elif geometry:  # an input: {"bbox": {...}}, {"polygon": {"points": ...}}, {"keypoints": ...}, {"mask": ...}
        name, shape = next(iter(geometry.items()))
        kind = {"bbox": "BBox", "polygon": "Polygon", "keypoints": "Keypoints", "mask": "Mask"}.get(name, name)
        shape = {} if kind == "Mask" else shape
    else:
        kind, shape = None, {}
    content = [record.get("key") if keyed else None, record.get("label"), record.get("score"),
               record.get("attributes") or {}, kind, shape]
    return hashlib.blake2b(json.dumps(_floats(content), sort_keys=True).encode(), digest_size=16).hexdigest()


def _floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


async def held_records(lake: Client, set_id: str) -> dict[str | None, Records]:
    """The records the set holds on each datum (None: on no datum), superseded ones too (as
    recordCount counts them)."""
    held: dict[str | None, Records] = {}
    after = None
    while True:
        page = (await lake.execute(ops.SET_RECORD_CONTENT, {"id": set_id, "after": after}))["node"]["records"]
        for edge in page["edges"]:
            held.setdefault((edge["node"]["datum"] or {}).get("id"), Records()).add(edge["node"])
        if not page["pageInfo"]["hasNextPage"]:
            return held
        after = page["pageInfo"]["endCursor"]


def _conflict(found: dict[str, Any], detail: str, cause: str) -> GraphlakeClientError:
    return GraphlakeClientError(
        f"annotation set {found['name']!r} holds {found['recordCount']} records, {detail} ({cause}): delete the set "
        "(deleteAnnotationSet) and run again, or import under another set name", "CONFLICT")


async def records_held(lake: Client, found: dict[str, Any], made: dict[Any, Records], known: Known,
                       what: str = "file", named: Collection[Any] | None = None) -> dict[Any, str] | None:
    """Which images of this import the set `found` (id, name, recordCount) holds the records of
    already, each with the datum they are on; None if it holds this import's records already (it is
    kept as it is). `made`: image id -> the records this import makes on it, with its file name
    (images it makes none on left out); it is read only when the set holds records, so an import
    builds it only then.

    The set's records are compared with those this import makes, image by image, by key and
    content: as many records of other content (another model's predictions, a corrected file) were
    taken for this import's and kept. A set an interrupted import of the same file left part-way
    holds whole images' records (image_batches): a rerun adds those of the other images. Any other
    content, records on an image the `what` does not have (by id and file name) or other records
    than it makes there, stops the import with CONFLICT before anything is added; an image whose
    datum turns out to be another one in this import (its file changed) stops it when its stage
    comes (check_held).

    `named`: the ids of the images this import's list names, when it is one of several lists of one
    dataset sharing a set (VOC's Main and Segmentation lists of a split): records on the dataset's
    other images are another list's, not compared."""
    if not found["recordCount"]:
        return {}
    held = await held_records(lake, found["id"])
    if named is not None:
        others = {datum for datum, (image, _) in known.image_of_datum.items() if image not in named}
        held = {datum: records for datum, records in held.items() if datum not in others}
    cause = (f"changed annotations or images since this {what} was imported" if named is not None
             else f"another {what}, or changed annotations or images")
    image_of = {datum: image for datum, (image, name) in known.image_of_datum.items()
                if image in made and made[image].file_name == name}
    other = sum(len(records) for datum, records in held.items()
                if datum not in image_of or not records.same_as(made[image_of[datum]]))
    if other:
        raise _conflict(found, f"{other} of them not as this {what} makes them", cause)
    datum_of = {image_of[datum]: datum for datum in held if datum is not None}  # (one without raised above)
    if len(datum_of) < len(held):
        raise _conflict(found, f"on {len(held) - len(datum_of)} more datums than images of this {what}", cause)
    return None if len(datum_of) == len(made) else datum_of


def check_held(found: dict[str, Any], held: dict[Any, str], datum_of: dict[Any, str], images: list[Any],
               what: str = "file") -> None:
    """CONFLICT if an image whose records the set holds (records_held) has another datum in this
    import: its file changed since, and those records are on the old one's datum."""
    moved = [image for image in images if image in held and datum_of[image] != held[image]]
    if moved:
        raise _conflict(found, f"on the datums of earlier files for {len(moved)} images of this {what}, "
                        f"e.g. image {moved[0]!r}", "their files changed since")


async def in_stages(chunks: list[Chunk], *steps: Callable[[Chunk], Awaitable[None]], width: int | None = None) -> None:
    """Every step for every chunk, each chunk through the steps in order, at most `width` chunks
    (CHUNKS_PER_STEP by default) at a time in each step: while some chunks' records are added, the
    next ones' datums are made and the images of those after go in. Run one after the other, each
    step left the server's event loop or the database idle (its copies, its checks, its inserts)
    while the other worked. After a failure no chunk starts another step; the steps under way end
    (each a request the server finishes anyway), then the first failure is raised, the others noted
    on it. Cancelled, or stopped by anything but an Exception, every chunk is cancelled."""
    gates = [asyncio.Semaphore(width or CHUNKS_PER_STEP) for _ in steps]
    failed: list[Exception] = []

    async def run(chunk: Chunk) -> None:
        for gate, step in zip(gates, steps, strict=True):
            async with gate:
                if failed:
                    return
                try:
                    await step(chunk)
                except Exception as error:
                    failed.append(error)
                    return
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise  # the import is cancelled: every chunk goes
                    # The step raised CancelledError itself (the import is not cancelled): the task group
                    # would take the chunk for done, and the import would go on without it.
                    failed.append(RuntimeError(f"a step of the import was cancelled ({step.__name__})"))
                    return

    async with asyncio.TaskGroup() as group:
        for chunk in chunks:
            group.create_task(run(chunk))
    if failed:
        for other in failed[1:]:
            failed[0].add_note(f"also failed meanwhile: {type(other).__name__}: {other}")
        raise failed[0]


class ImageStages:
    """An import's images as they go in, a chunk at a time (in_stages): each image's asset, then its
    datum (role `image`, metadata {key: {dataset, id, file_name, width, height}}): the one an
    earlier import made (`known`, by its image asset), or a new one in `split`. Counts what it did
    on `done` (images_uploaded, images_unchanged, datums_created). Images are dicts with id,
    file_name, width and height."""

    def __init__(self, lake: Client, key: str, dataset: str, known: Known, done: Any,
                 split: str = "UNASSIGNED") -> None:
        self.lake, self.key, self.dataset, self.known, self.done, self.split = lake, key, dataset, known, done, split
        self.asset_of: dict[Any, str] = {}  # image id -> asset id
        self.datum_of: dict[Any, str] = {}  # image id -> datum id

    async def store(self, chunk: list[dict[str, Any]], files: list[tuple[Path, dict[str, Any]]]) -> None:
        """Upload (or ingest) the chunk's `files`, one per image in the chunk's order."""
        assets = await self.lake.upload_batch(files)
        unchanged = sum(1 for a in assets if a.get("unchanged"))
        self.done.images_unchanged += unchanged
        self.done.images_uploaded += len(assets) - unchanged
        self.asset_of.update({i["id"]: a["id"] for i, a in zip(chunk, assets, strict=True)})

    async def datums(self, chunk: list[dict[str, Any]]) -> None:
        """The chunk's datums, after its images are stored."""
        known = self.known.datum_of_asset
        found = {i["id"]: known[self.asset_of[i["id"]]] for i in chunk if self.asset_of[i["id"]] in known}
        new = [i for i in chunk if i["id"] not in found]
        for part in chunks(new):
            inputs = [{"roles": [{"role": "image", "assetId": self.asset_of[i["id"]]}], "split": self.split,
                       "metadata": {self.key: {"dataset": self.dataset, "id": i["id"], "file_name": i["file_name"],
                                               "width": i.get("width"), "height": i.get("height")}}} for i in part]
            created = (await self.lake.execute(ops.CREATE_DATUMS, {"inputs": inputs}))["createDatums"]
            found.update({i["id"]: d["id"] for i, d in zip(part, created, strict=True)})
        self.datum_of.update(found)
        self.done.datums_created += len(new)


async def labelled_schema(lake: Client, name: str, labels: list[str], *, keep_earlier: bool = False,
                          versions: list[dict[str, Any]] | None = None) -> str:
    """The version of the schema named `name` whose labels are `labels`, in any order (a re-export
    lists its categories in another); a new version when none is. `keep_earlier`: the labels are
    these and the newest version's, so that lists of one dataset naming different labels (VOC's
    layout parts) share a version. `versions`: the schema's versions (schema_versions), if read."""
    same_name = await schema_versions(lake, name) if versions is None else versions
    if keep_earlier and same_name:
        labels = [*labels, *(label for label in _labels(same_name[-1]) if label not in labels)]
    for schema in same_name:
        if set(_labels(schema)) == set(labels):
            return schema["id"]
    created = (await lake.execute(ops.CREATE_SCHEMA, {"input": {
        "name": name, "kinds": KINDS, "labels": [{"name": label} for label in labels], "allowScores": True,
        "version": max((s["version"] for s in same_name), default=0) + 1}}))["createAnnotationSchema"]
    return created["id"]


async def schema_versions(lake: Client, name: str) -> list[dict[str, Any]]:
    """Every version of the schema named `name` (id, version, labels), oldest first."""
    return sorted((s for s in await pages(lake, ops.SCHEMAS, "annotationSchemas") if s["name"] == name),
                  key=lambda schema: schema["version"])


def _labels(schema: dict[str, Any]) -> list[str]:
    return [label["name"] for label in schema["labels"]]


async def labelled_set(lake: Client, schema_name: str, labels: list[str], used: set[str], name: str, purpose: str,
                       source: dict[str, Any], *, formerly: str | None = None,
                       keep_earlier: bool = False) -> dict[str, Any]:
    """The set `name` of this purpose on any version of the schema `schema_name` (annotation_set),
    with its schema's id under `schema`; a new one, on the version whose labels are `labels`
    (labelled_schema), when there is none. A set an earlier import made is this import's whatever
    its schema's labels, as long as they hold every label this import's records use (`used`): a
    second set of the same name got every record again. CONFLICT, naming the schema and the labels
    it lacks, when they do not: a set cannot move to another schema."""
    versions = await schema_versions(lake, schema_name)
    found = await annotation_set(lake, name, purpose, [s["id"] for s in versions], source, formerly=formerly)
    if found is None:
        schema = await labelled_schema(lake, schema_name, labels, keep_earlier=keep_earlier, versions=versions)
        created = (await lake.execute(ops.CREATE_SET, {"input": {"name": name, "purpose": purpose, "schemaId": schema,
                                                                 "source": source}}))["createAnnotationSet"]
        return {**created, "schema": {"id": schema}}
    held_by = next(s for s in versions if s["id"] == found["schema"]["id"])
    if missing := sorted(used - set(_labels(held_by))):
        raise GraphlakeClientError(
            f"annotation set {found['name']!r} is on schema {schema_name!r} version {held_by['version']}, whose labels "
            f"lack {', '.join(map(repr, missing))}, which this import's records use: a set cannot move to another "
            "schema; delete the set (deleteAnnotationSet) and run again, or import under another set name", "CONFLICT")
    return found


def imported_set_name(prefix: str, purpose: str, split: str | None = None, model: str | None = None) -> str:
    """The name an import gives a set: `<prefix> ground truth`, or `<prefix> <model> predictions`,
    with ` (<split>)` after it for a file of one split. Each model's predictions are a set of their
    own beside the one ground truth, so a second model's results for images already imported go in
    without their ground truth made again (as a name of both, `--set-name`, made it)."""
    made_by = f" {model}" if purpose == "PREDICTION" and model else ""
    what = "ground truth" if purpose == "GROUND_TRUTH" else "predictions"
    return f"{prefix}{made_by} {what}" + (f" ({split})" if split else "")


def _source_of(found: dict[str, Any]) -> dict[str, Any]:
    return {k: (found.get("source") or {}).get(k) for k in ("kind", "name")}


async def annotation_set(lake: Client, name: str, purpose: str, schemas: list[str], source: dict[str, Any], *,
                         formerly: str | None = None) -> dict[str, Any] | None:
    """The set of that name and purpose on one of `schemas` (a schema's versions, newest last: the
    set on the newest if there are several), with its recordCount; None when there is none.
    CONFLICT when it has another source: another model's predictions (or another importer's
    records) are not this import's to keep or finish, and a set of them taken for this import's was
    reported `kept`. `formerly`: the name earlier imports gave this set (before each model's
    predictions were named after it). With no set named `name`, one of that name and this very
    source is the set an earlier run of this import made, found so that the rerun adds nothing; one
    of another source is another model's, and this import makes its own."""
    wanted = {"kind": source["kind"], "name": source["name"]}
    newest = {schema: n for n, schema in enumerate(schemas)}
    sets = sorted((found for found in await pages(lake, ops.SETS, "annotationSets")
                   if found["purpose"] == purpose and found["schema"]["id"] in newest),
                  key=lambda found: -newest[found["schema"]["id"]])
    named = next((found for found in sets if found["name"] == name), None)
    if named is not None and _source_of(named) != wanted:
        held = _source_of(named)
        raise GraphlakeClientError(
            f"annotation set {name!r} is {held['kind']} {held['name']!r}'s, not {source['kind']} "
            f"{source['name']!r}'s: import under another set name (--set-name), or delete that set "
            "(deleteAnnotationSet) and run again", "CONFLICT")
    if named is None and formerly is not None:
        named = next((found for found in sets if found["name"] == formerly and _source_of(found) == wanted), None)
    if named is None:
        return None
    counted = (await lake.execute(ops.SET_RECORD_COUNT, {"id": named["id"]}))["node"]
    return {**named, "recordCount": counted["recordCount"]}


async def dataset_version(lake: Client, dataset: str, version: str, datum_ids: list[str], set_ids: list[str],
                          say: Callable[[str], None] = lambda _: None) -> DatasetVersion:
    """Version `version` of the dataset with these datums and sets; the existing one on a rerun
    (versions are immutable: it is never rebuilt), said so, since it holds what it was built with."""
    found: DatasetVersion | None = (await lake.execute(ops.VERSION, {"dataset": dataset, "version": version}))["datasetVersion"]
    if found:
        say(f"version {dataset}/{version} exists already ({found['datumCount']} datums): returned as it is, since "
            "versions never change; name another --version to freeze what this import made")
        return found
    say(f"building version {dataset}/{version}")
    return await lake.create_dataset_version(dataset, version, add_datums=datum_ids, add_annotation_sets=set_ids)
