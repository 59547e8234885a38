"""Reading a dataset version as it was frozen, for every exporter (COCO, YOLO, Hugging Face): the
version by id or DATASET/VERSION, its datums page by page with the split, metadata and image they
froze and the version's copies of their records, and a safe place under DEST for each image.

Kept apart from coco_export.py so an exporter that needs no pycocotools does not import it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from collections import Counter, defaultdict, deque
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops
from graphlake_client import version_file
from graphlake_client.downloads import safe_name
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.results import VersionRef

if TYPE_CHECKING:
    from graphlake_client.client import Client

DATUMS_PER_PAGE = 100
RECORDS_PER_PAGE = 500  # of one datum, in the same request
PAGES_AT_ONCE = 2  # pages of datums asked for at a time (version_datums says why)
CURSORS_PER_READ = 500  # a connection's largest page by default (GRAPHLAKE_MAX_PAGE_SIZE)


async def find_version(lake: Client, version: str) -> dict[str, Any]:
    """A version by id, or by DATASET/VERSION."""
    dataset, slash, name = version.rpartition("/")
    variables = {"dataset": dataset, "version": name} if slash else {"id": version}
    found = (await lake.execute(ops.VERSION, variables))["datasetVersion"]
    if found is None:
        raise GraphlakeClientError(f"no dataset version {version!r}", "NOT_FOUND", "version")
    return found


def summary(found: dict[str, Any]) -> VersionRef:
    """The version an export came from, as every exporter reports it."""
    return {"dataset": found["dataset"]["name"], "version": found["version"], "id": found["id"],
            "manifest_sha256": found["manifestSha256"]}


@dataclass(frozen=True)
class GroundTruth:
    """What a training format exports of a version: its GROUND_TRUTH sets, and their labels, each
    numbered by its first place across the sets' schemas (YOLO's class, a ClassLabel's index). A
    schema listing no labels allows any: its set's labels are those its records carry, numbered
    after the listed ones in the order the version first uses them (its datums' order, which a
    version never changes), so `names` and `index` grow while `objects` reads the records."""

    sets: frozenset[str]
    names: list[str]
    index: dict[str, int]
    open_sets: frozenset[str] = frozenset()  # sets whose schema lists no labels

    @classmethod
    def of(cls, found: dict[str, Any]) -> GroundTruth:
        truth = [s for s in found["annotationSets"] if s["purpose"] == "GROUND_TRUTH"]
        names = list(dict.fromkeys(label["name"] for s in truth for label in s["schema"]["labels"]))
        return cls(frozenset(s["id"] for s in truth), names, {name: n for n, name in enumerate(names)},
                   frozenset(s["id"] for s in truth if not s["schema"]["labels"]))

    def _known(self, record: dict[str, Any]) -> bool:
        """Whether the record's label is a class, making it one when its set's schema allows any."""
        label = record["label"]
        if label not in self.index and label is not None and record["set"]["id"] in self.open_sets:
            self.index[label] = len(self.names)
            self.names.append(label)
        return label in self.index

    def objects(self, records: list[dict[str, Any]], kinds: Collection[str],
                left_out: Counter[str]) -> list[list[dict[str, Any]]]:
        """The image's ground-truth objects, each the records of one object (see `group_of`; records of
        different sets never merge), keeping the geometry `kinds` with a known label; every other record is
        counted in `left_out` (predictions as PREDICTION, a crowd region's as CROWD, one of these kinds
        without a known label as LABEL, the rest by kind). A COCO crowd (`iscrowd` 1) is a region of many
        objects, not one: Ultralytics' own COCO converter, Detectron2 and MMDetection leave it out of
        training, and a box around it taught as an object would be wrong; COCO's export keeps it, as COCO
        does. A VOC object marked `difficult` is left out whole (DIFFICULT), as Ultralytics' VOC converter
        leaves it out (VOC's evaluation ignores it: taught as an ordinary object, it is a box the evaluation
        never asks for). A VOC person's layout part (head, hand, foot: `voc_part_of`) is left out (PART):
        parts are labelled on a few persons only, so a class of them would teach every unlabelled head as
        background; the COCO export keeps them."""
        objects: dict[tuple[str, str, Any], list[dict[str, Any]]] = defaultdict(list)
        for n, record in enumerate(records):
            kind = (record["geometry"] or {}).get("__typename")
            attributes = record.get("attributes") or {}
            if record["set"]["id"] not in self.sets:
                left_out["PREDICTION"] += 1
            elif attributes.get("iscrowd"):
                left_out["CROWD"] += 1
            elif attributes.get("voc_part_of") is not None:
                left_out["PART"] += 1
            elif kind not in kinds:
                left_out[record["kind"]] += 1
            elif self._known(record):
                objects[(record["set"]["id"], *group_of(record, n))].append(record)
            else:
                left_out["LABEL"] += 1
        kept = []
        for obj in objects.values():  # VOC marks `difficult` on an object's box record alone
            if any((r.get("attributes") or {}).get("difficult") for r in obj):
                left_out["DIFFICULT"] += len(obj)
            else:
                kept.append(obj)
        return kept


def refuse_earlier_export(dest: Path, folders: Iterable[str], fmt: str, *, files: Iterable[str] = (),
                          replace: bool = False) -> None:
    """CONFLICT naming `dest` when any of its `folders` holds files, or any of its `files` is there:
    a YOLO or Hugging Face dataset is what its folders hold, so an earlier export's files left there
    (another seed's split put an image in two splits) would train too, and a COCO export's
    results.json of another version would be read with this one's annotations. Removing them is the
    user's call: with `replace` (--replace), those folders and files are removed first, and nothing
    else of `dest`. `files` are names or glob patterns (`results-*.json`: a file per prediction set)."""
    held = [f"{f}/" for f in folders if _holds_files(dest / f)] + [p.name for p in _files(dest, files)]
    if held and replace:
        _refuse_linked(dest, folders)
        _remove(dest, folders, files)
    elif held:
        raise GraphlakeClientError(f"{dest} holds an earlier export ({', '.join(held)}), or one that stopped part-way: "
                                   f"a {fmt} export is what those hold, so export into an empty directory, or pass "
                                   "--replace (replace=True) to remove them first", "CONFLICT", "dest")


def refuse_no_image(found: dict[str, Any], images: int, left_out: Counter[str]) -> None:
    """BAD_USER_INPUT naming `version` when none of its datums has an image in the `image` role
    (`images` is how many had one), before a training export writes its dataset's description: it
    would describe an empty dataset (a YOLO data.yaml without train or val, a Hugging Face README
    `datasets` cannot load). Their datums are counted as NO_IMAGE."""
    if not images:
        why = f"{left_out['NO_IMAGE']} datums, none with that role" if left_out["NO_IMAGE"] else "no datums"
        raise GraphlakeClientError(f"dataset version {found['dataset']['name']}/{found['version']} has no image to "
                                   f"export: a datum's image is its `image` role, and it has {why}",
                                   "BAD_USER_INPUT", "version")


@contextmanager
def whole_or_none(dest: Path, folders: Iterable[str], files: Iterable[str] = ()) -> Iterator[None]:
    """Remove what an export wrote into `folders` and `files` of `dest` when it fails (a download, an
    image, the disk, Ctrl-C): they held nothing when it began (refuse_earlier_export), and what a
    failed run left made the rerun refuse DEST as an earlier export's."""
    try:
        yield
    except BaseException:
        _remove(dest, folders, files)
        raise


def _refuse_linked(dest: Path, folders: Iterable[str]) -> None:
    """CONFLICT naming a folder of `dest` that is a link (to another disk, say) holding files:
    `replace` removes DEST's own folders, never what a link points at, and the earlier export's files
    left there (its images in a split they have left, without labels) would train too."""
    for folder in folders:
        if (dest / folder).is_symlink() and _holds_files(dest / folder):
            raise GraphlakeClientError(f"{dest / folder} is a link to {(dest / folder).resolve()}, which holds an earlier "
                                       "export's files: --replace (replace=True) does not remove what a link points at, "
                                       "so empty that folder yourself and export again", "CONFLICT", "dest")


def _holds_files(folder: Path) -> bool:
    """Whether `folder` holds a file anywhere below it (not counting folders an export made empty)."""
    return folder.is_dir() and any(names for _, _, names in os.walk(folder))


def _files(dest: Path, patterns: Iterable[str]) -> list[Path]:
    """The files directly in `dest` that these names or glob patterns match, in order."""
    return [path for pattern in patterns for path in sorted(dest.glob(pattern)) if path.is_file()]


def _remove(dest: Path, folders: Iterable[str], files: Iterable[str]) -> None:
    for folder in folders:
        if (dest / folder).is_dir() and not (dest / folder).is_symlink():
            shutil.rmtree(dest / folder)
    for path in _files(dest, files):
        path.unlink(missing_ok=True)


# What Pillow raises for a file it cannot read: not an image (UnidentifiedImageError, an OSError),
# cut short or damaged (OSError, SyntaxError, ValueError from a decoder), or too large to be one.
UNREADABLE = (OSError, SyntaxError, ValueError)


def pixel_size(image: Path) -> tuple[int, int] | None:
    """An exported image's width and height as its loaders show it, from its header; None when
    Pillow cannot read it (a file in an image role that is no image Pillow knows: a training format
    cannot take it, and the export leaves it out rather than fail half-written). An EXIF orientation
    of 5 to 8 (a phone's photo held sideways) swaps them: `datasets` turns the image upright
    (ImageOps.exif_transpose), as OpenCV does reading a JPEG for Ultralytics, so a record's
    coordinates are in that upright frame, the one the image is shown in."""
    from PIL import Image  # the yolo and hf extras have Pillow; version_reading itself needs none

    try:
        with Image.open(image) as opened:
            width, height = opened.size
            return (height, width) if _orientation(opened) in _QUARTER_TURNS else (width, height)
    except (*UNREADABLE, Image.DecompressionBombError):
        return None


_ORIENTATION = 0x0112  # the EXIF tag
_QUARTER_TURNS = (5, 6, 7, 8)  # the orientations exif_transpose turns by 90 or 270 degrees


def _orientation(opened: Any) -> int | None:
    """The EXIF orientation of an opened image, read from what its header held: Pillow's getexif
    on a PNG decodes the whole image looking for an eXIf chunk after the pixels (every PNG without
    one, the usual PNG, would be decoded), so a PNG's is the one before them. None for a damaged
    EXIF block, which the loaders cannot turn by either."""
    from PIL import Image

    try:
        if opened.format != "PNG":
            return opened.getexif().get(_ORIENTATION)
        exif = Image.Exif()
        if "exif" in opened.info:
            exif.load(opened.info["exif"])
        return exif.get(_ORIENTATION)
    except (*UNREADABLE, KeyError, IndexError, struct.error):
        return None


def image_path(file_name: str | None, fallback: str) -> str:
    """Where an image goes under an export's image folder: its file_name when that is a plain
    relative path (subdirectories kept), else a base name, so no name can place a file outside DEST."""
    path = PurePosixPath((file_name or "").replace("\\", "/"))
    if file_name and not path.is_absolute() and ".." not in path.parts and str(path) not in ("", "."):
        return str(path)
    return safe_name(file_name or fallback)


def with_id(path: str, asset_id: str, taken: Callable[[str], bool] = lambda _: False) -> str:
    """`path` (an image's place in an export) with an asset id before its file's suffix: where two
    images of one export share a name, the second's. Where that is `taken` too (the same image in a
    third datum of the split), a count follows the id (`-2`, `-3`, ...) until the name is free, so
    no datum's image or labels overwrite another's. Only the file's own name changes: a dot in a
    folder's name (`v1.2/frame`) is not the suffix's."""
    place = PurePosixPath(path)
    renamed, count = str(place.with_name(f"{place.stem}-{asset_id}{place.suffix}")), 1
    while taken(renamed):
        count += 1
        renamed = str(place.with_name(f"{place.stem}-{asset_id}-{count}{place.suffix}"))
    return renamed


def file_name_of(datum: dict[str, Any]) -> str | None:
    """The file name an importer recorded in the datum's metadata (COCO's or VOC's), if any."""
    metadata = datum.get("metadata") or {}
    for key in ("coco", "voc"):
        if isinstance(metadata.get(key), dict) and metadata[key].get("file_name"):
            return metadata[key]["file_name"]
    return None


def group_of(record: dict[str, Any], n: int) -> tuple[str, Any]:
    """Which object of its image a record belongs to: the records one COCO annotation or one VOC
    object became share an attribute (`coco_id`, `voc_object`); any other record is an object alone."""
    attributes = record.get("attributes") or {}
    if attributes.get("coco_id") is not None:
        return "coco", attributes["coco_id"]
    if attributes.get("voc_object") is not None:
        return "voc", attributes["voc_object"]
    return "record", n


# From least to most a person's: see source_of.
_PERSONS = {None: 0, "MODEL": 1, "DERIVED": 2, "HUMAN": 3}


def source_of(records: list[dict[str, Any]]) -> str | None:
    """The kind of source of one object made of `records`, as every exporter writes it (HUMAN, MODEL,
    DERIVED): the one its records share, else the least a person's (MODEL, then DERIVED), so that
    training code keeping HUMAN objects keeps only what people made whole (a person's box around a
    model's polygon is not). None when a record's is not known: a content file written before
    Graphlake recorded sources there (version_file.datums_of)."""
    return min(((r.get("source") or {}).get("kind") for r in records), key=lambda kind: _PERSONS.get(kind, 0))


def clipped_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float] | None:
    """x, y, width, height in pixels of a box cut at the image's edges; None when nothing of it is
    left (wholly outside, or of no size), as the YOLO export's box_line does in 0..1."""
    x0, y0 = min(max(box[0], 0), width), min(max(box[1], 0), height)
    x1, y1 = min(max(box[0] + box[2], 0), width), min(max(box[1] + box[3], 0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def box_of(records: list[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    """x, y, width, height in pixels of one object: its BBOX record, else the bounds of its polygons."""
    for record in records:
        geometry = record["geometry"] or {}
        if geometry.get("__typename") == "BBox":
            return geometry["x"], geometry["y"], geometry["width"], geometry["height"]
    points = [p for r in records if (r["geometry"] or {}).get("__typename") == "Polygon" for p in r["geometry"]["points"]]
    if not points:
        return None
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


async def version_datums(lake: Client, version_id: str, datums_per_page: int = DATUMS_PER_PAGE,
                         records_per_page: int = RECORDS_PER_PAGE, *, query: str = ops.VERSION_DATUMS,
                         from_file: bool = False) -> AsyncGenerator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(datum, its records) for every datum of the version, reading on a datum's records when they
    fill more than one nested page. `query` takes VERSION_DATUMS's variables and paths, with other
    fields (the bundle exporter asks for every role and every record field).

    `from_file` (VERSION_DATUMS only): read the version's content file where it has one
    (graphlake_client/version_file.py), the same datums and records with more fields, and the pages
    where it has none.

    The pages are asked for PAGES_AT_ONCE at a time, each after the cursor its first datum follows
    (read beforehand, a light read of many at a time: `_page_starts`): a page is mostly the server's
    CPU and the database's time, and the server answers one while it waits on the database for the
    other (a COCO export of 2,000 images: 2.82 s against 3.15 s one page ahead). A version never
    changes, so its cursors hold for the whole read."""
    if from_file and query == ops.VERSION_DATUMS:
        async with version_file.checked_content(lake, version_id) as file:
            if file is not None:
                async with aclosing(version_file.datums_of(lake, file)) as from_content:
                    async for pair in from_content:
                        yield pair
                return

    def ask(after: str | None) -> asyncio.Future[dict[str, Any]]:
        return asyncio.ensure_future(lake.execute(query, {"id": version_id, "first": datums_per_page, "after": after,
                                                          "records": records_per_page}))

    pending: deque[tuple[str | None, asyncio.Future[dict[str, Any]]]] = deque()
    async with aclosing(_page_starts(lake, version_id, datums_per_page)) as starts:

        async def ask_on() -> None:
            """Ask for the next pages until PAGES_AT_ONCE are on their way (or none is left)."""
            async for after in starts:
                pending.append((after, ask(after)))
                if len(pending) >= PAGES_AT_ONCE:
                    return

        try:
            await ask_on()
            while pending:
                previous, page = pending.popleft()
                datums = _datums(await page, version_id)
                await ask_on()  # while this page is used
                for edge in datums["edges"]:
                    datum, records = edge["node"], [e["node"] for e in edge["node"]["annotations"]["edges"]]
                    more = edge["node"]["annotations"]["pageInfo"]
                    while more["hasNextPage"]:  # the same datum alone: the one after the edge before it
                        again = (await lake.execute(query, {"id": version_id, "first": 1, "after": previous,
                                                            "records": records_per_page, "recordsAfter": more["endCursor"]}))
                        annotations = _datums(again, version_id)["edges"][0]["node"]["annotations"]
                        records += [e["node"] for e in annotations["edges"]]
                        more = annotations["pageInfo"]
                    previous = edge["cursor"]
                    yield datum, records
        finally:  # the caller stopped early, or a page failed: the pages read ahead are not wanted
            for _, page in pending:
                if not page.cancel():
                    page.exception()  # it ended already: its error, if any, is this one's to drop


def _datums(answer: dict[str, Any], version_id: str) -> dict[str, Any]:
    """A page's datums; NOT_FOUND once the version is gone (an ADMIN deleted it while it was read)."""
    if answer.get("datasetVersion") is None:
        raise GraphlakeClientError(f"dataset version {version_id} was deleted while it was read", "NOT_FOUND", "version")
    return answer["datasetVersion"]["datums"]


async def _page_starts(lake: Client, version_id: str, datums_per_page: int) -> AsyncGenerator[str | None]:
    """The cursor each page of `datums_per_page` datums starts after (None: the first page's), each
    as soon as a datum after it is known. Read CURSORS_PER_READ at a time, or a page's worth where
    the server allows fewer (GRAPHLAKE_MAX_PAGE_SIZE)."""
    yield None
    after, seen, per_read = None, 0, max(CURSORS_PER_READ, datums_per_page)
    held: str | None = None  # a page's start, given once a datum is known to follow it
    while True:
        try:
            datums = _datums(await lake.execute(ops.VERSION_DATUM_CURSORS, {"id": version_id, "first": per_read,
                                                                             "after": after}), version_id)
        except GraphlakeClientError as error:
            if error.code != "BAD_USER_INPUT" or error.field != "first" or per_read == datums_per_page:
                raise
            per_read = datums_per_page  # the pages themselves are that size
            continue
        for edge in datums["edges"]:
            if held is not None:
                yield held
                held = None
            seen += 1
            if seen % datums_per_page == 0:
                held = edge["cursor"]
        if not datums["pageInfo"]["hasNextPage"]:
            return
        if held is not None:
            yield held
            held = None
        after = datums["pageInfo"]["endCursor"]
