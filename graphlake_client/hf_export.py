"""Hugging Face export: a dataset version, as it was frozen, into a folder `datasets.load_dataset`
loads (the imagefolder builder):

    DEST/README.md                        the splits (a `configs` block), so any split name loads
    DEST/<split>/<file_name>              the images, downloaded and checked
    DEST/<split>/metadata.parquet         one row per image: file_name, width, height, datum_id,
                                          objects {bbox [x, y, w, h] in pixels, category, source}

    load_dataset("DEST")  ->  DatasetDict(train / validation / test / unassigned)

`category` is a ClassLabel over the ground-truth schemas' labels, `bbox` COCO-style (the layout of
the Hub's object-detection sets), `source` the kind of source that made the object (HUMAN, MODEL,
DERIVED; null for a version whose content file predates sources: version_reading.source_of), so
training code can keep people's labels apart from a model's that were accepted into ground truth. The metadata is Parquet, not JSON lines, because the builder
infers a JSON file's types from its rows: a split whose images have no objects gives empty lists,
typed null, and the builder refuses splits whose types differ. Parquet carries the types (with
the `datasets` features) in the file.

What maps: ground-truth BBOX and POLYGON records, one object per COCO annotation or VOC object
(the records they became share `coco_id` / `voc_object`), its box the BBOX record's or else the
polygon's bounds, cut at the image's edges (width and height as the builder turns the image
upright: version_reading.pixel_size), as the YOLO export cuts it. Prediction sets, COCO crowds
(CROWD), VOC difficult objects (DIFFICULT) and layout parts (PART), records whose label is no class
(LABEL), MASK and KEYPOINTS records, and an object wholly outside its image (its records' kinds) do
not; the result counts them, a datum without an `image` role as NO_IMAGE, and an image Pillow cannot
read (the builder decodes every image) as IMAGE, named under `unreadable`. A version with no image
to export is refused (BAD_USER_INPUT naming `version`) before anything is written.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from graphlake_client import debris, splits
from graphlake_client.exit_loop import to_thread
from graphlake_client.export_fetches import ExportFetches
from graphlake_client.results import HfExport
from graphlake_client.version_reading import (
    GroundTruth,
    box_of,
    clipped_box,
    file_name_of,
    find_version,
    image_path,
    pixel_size,
    refuse_earlier_export,
    refuse_no_image,
    source_of,
    summary,
    version_datums,
    whole_or_none,
    with_id,
)

if TYPE_CHECKING:
    from graphlake_client.client import Client

SPLITS = {"TRAIN": "train", "VALIDATION": "validation", "TEST": "test", "UNASSIGNED": "unassigned"}
FILES = ("README.md",)  # the dataset card: an earlier export's, or the user's own


def features(names: list[str]) -> datasets.Features:
    """The metadata's columns, as `datasets` types them (file_name becomes the `image` column)."""
    return datasets.Features({
        "file_name": datasets.Value("string"),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        "datum_id": datasets.Value("string"),
        "objects": {"bbox": datasets.List(datasets.List(datasets.Value("float32"), length=4)),
                    "category": datasets.List(datasets.ClassLabel(names=names)),
                    "source": datasets.List(datasets.Value("string"))},
    })


def sized(row: dict[str, Any], image: Path) -> None:
    """Put the pixels' size into `row` (None, None for a file Pillow cannot read)."""
    row["width"], row["height"] = pixel_size(image) or (None, None)


async def export_hf(lake: Client, version: str, dest: Path, *, split_ratios: tuple[float, float, float] | None = None,
                    seed: int = 0, replace: bool = False) -> HfExport:
    """Write the version's images, per-split metadata and README under `dest`; what was written, by count.
    `split_ratios` (train, validation, test) and `seed` place its UNASSIGNED datums as trainingSplit
    does (graphlake_client/splits.py); without them they go to `unassigned`."""
    ratios = splits.normalised(split_ratios) if split_ratios is not None else None
    found = await find_version(lake, version)
    # First what an export killed here left half-downloaded: no earlier export, if that is all there is.
    await to_thread(debris.sweep_export, dest, SPLITS.values())
    # Its README globs each split's folder.
    refuse_earlier_export(dest, SPLITS.values(), "Hugging Face", files=FILES, replace=replace)
    with whole_or_none(dest, SPLITS.values(), FILES):
        return await _write(lake, found, dest, ratios, seed)


async def _write(lake: Client, found: dict[str, Any], dest: Path, ratios: tuple[float, float, float] | None,
                 seed: int) -> HfExport:
    """The export itself, into a `dest` whose split folders hold nothing."""
    truth = GroundTruth.of(found)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unboxed: list[tuple[dict[str, Any], list[list[dict[str, Any]]]]] = []  # (row, its objects): boxed once sized
    taken: set[tuple[str, str]] = set()
    left_out: Counter[str] = Counter()
    async with ExportFetches(lake) as fetches:
        async for datum, records in version_datums(lake, found["id"], from_file=True):
            asset = datum["asset"]
            if asset is None:
                left_out["NO_IMAGE"] += 1  # a datum without an image role has no image to load
                continue
            split = SPLITS[splits.split_of(datum, ratios, seed)]
            path = image_path(file_name_of(datum), asset["name"])
            if (split, path) in taken:  # the same name twice: the second gets its asset id, never overwrites
                path = with_id(path, asset["id"], partial(_taken_in, taken, split))
            taken.add((split, path))
            target = dest / split / path
            target.parent.mkdir(parents=True, exist_ok=True)
            row = {"file_name": path, "width": 0, "height": 0, "datum_id": datum["id"]}  # the size once the image is in
            unboxed.append((row, truth.objects(records, ("BBox", "Polygon"), left_out)))
            rows[split].append(row)
            await fetches.add(asset, target, then=partial(sized, row, target))
    refuse_no_image(found, len(taken), left_out)
    unreadable = _leave_out_unreadable(rows, dest, left_out)
    for row, objects in unboxed:
        if row["width"] is not None:  # an unreadable image's row is gone, and its objects with it
            row["objects"] = _objects(objects, row["width"], row["height"], truth, left_out)
    schema = features(truth.names).arrow_schema
    for split, split_rows in rows.items():
        pq.write_table(pa.Table.from_pylist(split_rows, schema=schema), dest / split / "metadata.parquet")
    dest.mkdir(parents=True, exist_ok=True)
    name = f"{found['dataset']['name']}/{found['version']}"
    config = "".join(f"  - split: {split}\n    path: {split}/**\n" for split in rows)
    (dest / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{config}---\n\n"
        f"# {name}\n\nExported from Graphlake: dataset version {found['id']}, manifest SHA-256 "
        f"{found['manifestSha256']}. Load it with `datasets.load_dataset(\"<this folder>\")`.\n")
    return {"images": sum(len(r) for r in rows.values()),
            "objects": sum(len(row["objects"]["bbox"]) for r in rows.values() for row in r),
            "splits": {split: len(r) for split, r in rows.items()}, "left_out": dict(left_out),
            "unreadable": unreadable, "version": summary(found)}


def _taken_in(taken: set[tuple[str, str]], split: str, path: str) -> bool:
    """Whether an image of `split` is at `path` already."""
    return (split, path) in taken


def _objects(objects: list[list[dict[str, Any]]], width: int, height: int, truth: GroundTruth,
             left_out: Counter[str]) -> dict[str, list[Any]]:
    """An image's `objects` column: each object's box cut at the image's edges, as the YOLO export
    cuts it; an object with nothing left inside (wholly outside, or of no size) is counted in
    `left_out` by its records' kinds."""
    boxes = []
    for obj in objects:
        if (box := box_of(obj)) and (inside := clipped_box(box, width, height)):
            boxes.append((inside, truth.index[obj[0]["label"]], source_of(obj)))
        else:
            left_out.update(r["kind"] for r in obj)
    return {"bbox": [[float(v) for v in box] for box, _, _ in boxes],
            "category": [category for _, category, _ in boxes],
            "source": [source for _, _, source in boxes]}


def _leave_out_unreadable(rows: dict[str, list[dict[str, Any]]], dest: Path, left_out: Counter[str]) -> list[str]:
    """Take the images Pillow could not read out of `rows` (their files removed, counted under
    `left_out` as IMAGE: the imagefolder builder decodes every image); their paths."""
    unreadable = []
    for split, split_rows in list(rows.items()):
        for row in [row for row in split_rows if row["width"] is None]:
            (dest / split / row["file_name"]).unlink(missing_ok=True)
            unreadable.append(f"{split}/{row['file_name']}")
            split_rows.remove(row)
        if not split_rows:  # a split of unreadable images alone: no folder for the README to name
            del rows[split]
    if unreadable:
        left_out["IMAGE"] += len(unreadable)
    return unreadable
