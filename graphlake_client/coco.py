"""COCO import: a COCO annotations file and its image directory into a lake, through the GraphQL API.

Images go up through the batch upload path into a collection named after the dataset, at their
`file_name`, so a rerun uploads nothing twice (the server keeps a file already at that path with
the same SHA-256: `unchanged`). Each image gets one datum (role `image`, metadata with the COCO
image id, file_name, width and height, and the dataset's name, by which a rerun finds it again), in
`split` (a COCO file is usually one split: `instances_train2017.json`; a datum found again keeps its own).
Categories become the labels of an annotation schema named after the dataset (a version whose labels
are the same, in any order, is reused; a set an earlier import made is found on whichever version
it is, and kept while that version has every label the file's annotations use, else a CONFLICT
naming those it lacks: dataset_import.labelled_set); annotations become
records of a GROUND_TRUTH set (`<dataset> ground truth`, or `<dataset> ground truth (<split>)` for
a file given a split), a results file those of a PREDICTION set named after its model, with a MODEL
source (`<dataset> <model> predictions`, dataset_import.imported_set_name): a second model's results for
the same images are a set of their own beside the one ground truth. RLE masks are decoded by
pycocotools and stored as PNG image assets, because a MASK record points at an image asset.

The images go in stages of STAGE_IMAGES (dataset_import.in_stages): while some stages' records are
added, the next ones' datums are made and the images of those after are stored.

A rerun does not duplicate annotations: a set that already holds the records the file makes (by
key and content, image by image: dataset_import.records_held) is left as it is (the result says
`kept`); each model's predictions are a set of their own, and a set of this one's name with another
source is a CONFLICT. One an interrupted import left part-way holds whole images' records (no
batch splits an image's): a rerun adds those of the other images (`resumed`). A set holding
anything else (records of another file, or changed annotations) stops the import with CONFLICT
before it adds anything; records on an image whose bytes changed since, when that image's stage
comes. To import corrected annotations, give another set name (`set_name`).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphlake_client.coco_checks import check_annotation, check_entries, plain_file_names
from graphlake_client.coco_shapes import left_out_of, mask_of, png_of, records_of
from graphlake_client.dataset_import import (
    STAGE_IMAGES,
    ImageStages,
    Records,
    add_records,
    check_held,
    chunks,
    imported_set_name,
    in_stages,
    known_datums,
    labelled_set,
    records_held,
)
from graphlake_client.dataset_import import dataset_version as _version
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.results import DatasetVersion
from graphlake_client.splits import SPLITS

if TYPE_CHECKING:
    from graphlake_client.client import Client

@dataclass
class CocoImport:
    """What an import did: ids of what it made or found, and how much of it was new."""

    dataset: str
    datum_ids: list[str] = field(default_factory=list)
    images_uploaded: int = 0
    images_unchanged: int = 0
    datums_created: int = 0
    schema_id: str | None = None
    set_ids: dict[str, str] = field(default_factory=dict)  # purpose -> set id
    records_added: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # purposes whose set already held records
    resumed: list[str] = field(default_factory=list)  # purposes whose set an interrupted import had begun: the rest added
    # What of the files' annotations makes no record (coco_shapes.left_out_of), by reason: a box of no
    # size, a polygon part under 3 points, keypoints without names; and annotations so left out whole.
    left_out: dict[str, int] = field(default_factory=dict)
    version: DatasetVersion | None = None


async def import_coco(lake: Client, annotations: Path, images: Path, dataset: str, *, version: str | None = None,
                      predictions: Path | None = None, model: str = "coco-results", mount: str | None = None,
                      set_name: str | None = None, split: str = "UNASSIGNED",
                      say: Callable[[str], None] = lambda _: None) -> CocoImport:
    """Import a COCO file (and optionally a results file) into `dataset`; see the module's docstring."""
    if split.upper() not in (*SPLITS, "UNASSIGNED"):
        raise GraphlakeClientError(f"split is one of TRAIN, VALIDATION, TEST or UNASSIGNED, not {split!r}",
                                   "BAD_USER_INPUT", "split")
    coco = _read_json(annotations)
    results = _read_json(predictions) if predictions else None
    check_entries(coco, results, annotations.name, predictions.name if predictions else "")
    plain_file_names(coco["images"], images, annotations.name)
    images_by_id = {image["id"]: image for image in coco["images"]}
    for key in ("id", "file_name"):  # a second entry would get the image's records again, or share its asset
        # File names as the plain paths they are stored at: ./a.jpg is a.jpg's, x/../a.jpg too.
        twice = next((value for value, n in Counter(i[key] for i in coco["images"]).items() if n > 1), None)
        if twice is not None:
            raise GraphlakeClientError(f"image {key} {twice!r} appears twice in {annotations.name}", "BAD_USER_INPUT")
    missing = [i["file_name"] for i in coco["images"] if not (images / i["file_name"]).is_file()]
    if missing:  # before anything is written
        raise GraphlakeClientError(f"{len(missing)} images are not under {images}, e.g. {missing[0]}", "BAD_USER_INPUT")
    for key in ("id", "name"):  # a second id would take the first's annotations; a second name is one label
        twice = next((value for value, n in Counter(c[key] for c in coco.get("categories", [])).items() if n > 1), None)
        if twice is not None:
            raise GraphlakeClientError(f"category {key} {twice!r} appears twice in {annotations.name}", "BAD_USER_INPUT")
    categories = {c["id"]: c for c in coco.get("categories", [])}
    for items, where in ((coco.get("annotations", []), f"annotation {{}} of {annotations.name}"),
                         (results or [], f"entry {{}} of {predictions.name if predictions else ''}")):
        for n, annotation in enumerate(items):
            check_annotation(annotation, where.format(n), categories, images_by_id, annotations.name)
    for items, where in ((coco.get("annotations", []), annotations.name), (results or [], "the results file")):
        # An annotation's id names its records (their keys): two of one id would be one annotation to the set.
        twice = next((value for value, n in Counter(_ids(items)).items() if n > 1), None)
        if twice is not None:
            raise GraphlakeClientError(f"annotation id {twice!r} appears twice in {where} (an annotation without an id "
                                       "is numbered by its place, from 1)", "BAD_USER_INPUT")
    done = CocoImport(dataset)
    left_out = Counter(reason for items in (coco.get("annotations", []), results or []) for annotation in items
                       for reason in left_out_of(annotation, categories[annotation["category_id"]]))
    done.left_out = dict(left_out)
    if left_out:
        say("left out, as no record can hold them: "
            + ", ".join(f"{n} {reason}" for reason, n in left_out.items()))
    # A file of one split gets sets of its own (as VOC's do): the train and val files of one dataset
    # are two imports, and one set holding both would refuse the second (records on images it lacks).
    in_split = split.lower() if split.upper() != "UNASSIGNED" else None
    collection = await lake.collection_id(dataset)
    labels = [c["name"] for c in categories.values()]
    wanted = [("GROUND_TRUTH", coco.get("annotations", []), {"kind": "HUMAN", "name": "coco"})]
    if results is not None:
        wanted.append(("PREDICTION", results, {"kind": "MODEL", "name": model}))
    known = await known_datums(lake, "coco", dataset)
    # The set, the images whose records it holds already (with their datums), annotations to add by image.
    adding: list[tuple[dict[str, Any], dict[Any, str], dict[Any, list[dict[str, Any]]]]] = []
    for purpose, items, source in wanted:
        name = imported_set_name(set_name or dataset, purpose, in_split, model)
        # Predictions were once `<prefix> predictions`, whatever their model: a rerun of such an import
        # finds the set it made then.
        formerly = imported_set_name(set_name or dataset, purpose, in_split) if purpose == "PREDICTION" else None
        # The labels its records will carry: an annotation left out whole (a box of no size alone) carries none.
        used = {categories[a["category_id"]]["name"] for a in items
                if "annotation with nothing stored" not in left_out_of(a, categories[a["category_id"]])}
        found = await labelled_set(lake, dataset, labels, used, name, purpose, source, formerly=formerly)
        done.set_ids[purpose] = found["id"]
        done.schema_id = done.schema_id or found["schema"]["id"]
        on_image: dict[Any, list[dict[str, Any]]] = {}
        for annotation, annotation_id in zip(items, _ids(items), strict=True):
            on_image.setdefault(annotation["image_id"], []).append({**annotation, "id": annotation_id})
        # Built only when there is something to compare it with, and dropped before the stages run.
        made = _made(on_image, images_by_id, categories) if found["recordCount"] else {}
        held = await records_held(lake, found, made, known)
        del made
        if held is None:
            done.kept.append(purpose)  # imported before: adding again would duplicate every record
            continue
        if found["recordCount"]:
            done.resumed.append(purpose)
        adding.append((found, held, {image: on for image, on in on_image.items() if image not in held}))
        done.records_added[purpose] = 0
    stages = ImageStages(lake, "coco", dataset, known, done, split.upper())

    async def store(chunk: list[dict[str, Any]]) -> None:
        # At the file name as plain_file_names made it: the plain path the server's paths must be.
        await stages.store(chunk, [(images / i["file_name"], {"name": Path(i["file_name"]).name, "collectionId": collection,
                                                              "path": i["file_name"], "mount": mount})
                                   for i in chunk])

    async def add(chunk: list[dict[str, Any]]) -> None:
        for found, held, _ in adding:  # every set's, before either gets a record of this chunk
            check_held(found, held, stages.datum_of, [i["id"] for i in chunk])
        for found, _, on_image in adding:
            items = [a for i in chunk for a in on_image.get(i["id"], [])]
            added = await _add(lake, found["id"], items, categories, images_by_id, stages.asset_of, stages.datum_of,
                               collection, mount)
            done.records_added[found["purpose"]] += added  # after the await: another stage adds meanwhile

    adding_count = sum(len(on) for _, _, on_image in adding for on in on_image.values())
    say(f"storing {len(coco['images'])} images, their datums and {adding_count} annotations, {STAGE_IMAGES} images a stage")
    await in_stages(chunks(coco["images"], STAGE_IMAGES), store, stages.datums, add)
    done.datum_ids = [stages.datum_of[i["id"]] for i in coco["images"]]
    if version:
        done.version = await _version(lake, dataset, version, done.datum_ids, list(done.set_ids.values()), say)
    return done


def _made(on_image: dict[Any, list[dict[str, Any]]], images_by_id: dict[Any, dict[str, Any]],
          categories: dict[Any, dict[str, Any]]) -> dict[Any, Records]:
    """What this import makes on each image, as records_held compares it (images it makes none on
    left out): signed an image at a time, so no more than one image's records are built at once
    ("mask": a PNG is uploaded only when its records go in)."""
    made = {}
    for image, on in on_image.items():
        records = Records.of(images_by_id[image]["file_name"],
                             (r for a in on for r in records_of(a, categories[a["category_id"]], "mask")))
        if records:
            made[image] = records
    return made


def _ids(annotations: list[dict[str, Any]]) -> list[Any]:
    """Each annotation's id. A results file's entries need not have one: they are numbered by their
    place (from 1), so their records still group and are keyed alike on every run."""
    return [annotation.get("id", n + 1) for n, annotation in enumerate(annotations)]


def _read_json(path: Path) -> Any:
    """The JSON in `path`; BAD_USER_INPUT naming the file and the place when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise GraphlakeClientError(f"{path.name} is not JSON ({error})", "BAD_USER_INPUT") from None


async def _add(lake: Client, set_id: str, items: list[dict[str, Any]], categories: dict[Any, dict[str, Any]],
               images: dict[Any, dict[str, Any]], asset_of: dict[Any, str], datum_of: dict[Any, str],
               collection: str, mount: str | None) -> int:
    """Records for `items`, after their RLE masks are uploaded as PNGs (into the dataset's collection
    at masks/<set>/<annotation id>.png, so a rerun finds them unchanged)."""
    rles = [a for a in items if isinstance(a.get("segmentation"), dict)]
    mask_asset: dict[int, str] = {}
    if rles:
        with tempfile.TemporaryDirectory(prefix="graphlake-coco-") as scratch:
            files = []
            for n, annotation in enumerate(rles):
                image = images[annotation["image_id"]]
                png = Path(scratch) / f"{n}.png"
                try:
                    mask = mask_of(annotation["segmentation"], image.get("height"), image.get("width"))
                except ValueError as error:
                    raise GraphlakeClientError(f"annotation {annotation.get('id')}: {error}", "BAD_USER_INPUT") from None
                png.write_bytes(png_of(mask))
                files.append((png, {"name": f"mask-{annotation['id']}.png", "mediaType": "image/png",
                                    "collectionId": collection, "mount": mount,
                                    "path": f"masks/{set_id}/{annotation['id']}.png"}))
            uploaded = await lake.upload_batch(files)
        mask_asset = {id(a): m["id"] for a, m in zip(rles, uploaded, strict=True)}
    records = []
    for annotation in items:
        for record in records_of(annotation, categories[annotation["category_id"]], mask_asset.get(id(annotation))):
            records.append({**record, "assetId": asset_of[annotation["image_id"]],
                            "datumId": datum_of[annotation["image_id"]]})
    return await add_records(lake, set_id, records)
