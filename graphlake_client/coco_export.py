"""COCO export: a dataset version, as it was frozen, into DEST/images/ and DEST/annotations.json
(ground-truth sets), plus a COCO results list per prediction set: DEST/results.json when the
version holds one, DEST/results-<model>.json each when it holds several (results_files).

Everything is read through GraphQL from the version itself: its datums with the split, roles and
metadata it froze and its copies of their records, a page at a time. Images and mask PNGs come
down through the client's download path, which checks each file's size and SHA-256.

Each annotation (and result) carries `graphlake_source`, the kind of source that made it (HUMAN,
MODEL, DERIVED, or null for a version whose content file predates sources; version_reading.source_of
for one of several records), beside the images' `graphlake_split`: COCO's readers ignore keys they
do not know, and training code tells people's labels from a model's by it, as it does by the YOLO
export's sources/ files and the Hugging Face export's `objects.source`.
"""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from graphlake_client import debris
from graphlake_client.coco_shapes import annotation_of, as_results, rle_of_png
from graphlake_client.exit_loop import to_thread
from graphlake_client.export_fetches import ExportFetches
from graphlake_client.results import CocoExport, ResultsFile
from graphlake_client.version_reading import (
    find_version,
    group_of,
    image_path,
    refuse_earlier_export,
    source_of,
    summary,
    version_datums,
    whole_or_none,
    with_id,
)

if TYPE_CHECKING:
    from graphlake_client.client import Client

DATUMS_PER_PAGE = 100  # the tests make these small to read on across pages
RECORDS_PER_PAGE = 500


# What an export writes beside images/ (names or glob patterns): refused in DEST, or removed by --replace.
FILES = ("annotations.json", "results.json", "results-*.json")
STEM_CHARACTERS = 80  # of a results file's name from its model's or set's (file systems take 255 bytes)


async def export_coco(lake: Client, version: str, dest: Path, *, replace: bool = False) -> CocoExport:
    """Write the version's images and COCO files under `dest`; what was written, by count. A `dest`
    holding an earlier export's images/, annotations.json or results files is refused (CONFLICT)
    unless `replace`, which removes them first: a results.json of another version, left beside this
    one's annotations.json when this one has no predictions, would be evaluated against it."""
    found = await find_version(lake, version)
    # First what an export killed here left half-downloaded: no earlier export, if that is all there is.
    await to_thread(debris.sweep_export, dest, ["images"])
    refuse_earlier_export(dest, ["images"], "COCO", files=FILES, replace=replace)
    with whole_or_none(dest, ["images"], FILES):
        return await _write(lake, found, dest)


async def _write(lake: Client, found: dict[str, Any], dest: Path) -> CocoExport:
    """The export itself, into a `dest` that holds none of its files."""
    sets = {s["id"]: s for s in found["annotationSets"]}
    labels = list(dict.fromkeys(label["name"] for s in sets.values() for label in s["schema"]["labels"]))
    category_id = {name: n + 1 for n, name in enumerate(labels)}
    (dest / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    grouped: dict[tuple[str, str, str, Any], list[dict[str, Any]]] = defaultdict(list)  # (purpose, set, image, coco id)
    image_of: dict[str, dict[str, Any]] = {}  # datum id -> its image entry (its id may be given at the end)
    used: set[int] = set()
    taken: set[str] = set()  # file names under images/: two datums may carry the same one
    masks: dict[str, dict[str, Any]] = {}
    left_out: Counter[str] = Counter()  # records without a category, by kind
    with tempfile.TemporaryDirectory(prefix="graphlake-coco-") as scratch:
        async with ExportFetches(lake) as fetches:
            async for datum, records in version_datums(lake, found["id"], DATUMS_PER_PAGE, RECORDS_PER_PAGE,
                                                               from_file=True):
                asset = datum["asset"]
                if asset is None:
                    continue  # a datum without an image role has no place in COCO
                metadata = datum["metadata"] or {}
                meta = metadata.get("coco") or {}
                size = meta or metadata.get("voc") or {}  # a VOC import keeps the image's size under `voc`
                # Ids aside, the COCO id is kept when there is one (and it is not taken); the others get
                # theirs once every image's own is known (_fallback_ids), so none takes a later image's.
                image_id = meta["id"] if isinstance(meta.get("id"), int) and meta["id"] not in used else None
                if image_id is not None:
                    used.add(image_id)
                file_name = image_path(meta.get("file_name"), asset["name"])
                if file_name in taken:  # the second of two same names gets its asset id: never overwrite
                    file_name = with_id(file_name, asset["id"], taken.__contains__)
                taken.add(file_name)
                target = dest / "images" / file_name
                target.parent.mkdir(parents=True, exist_ok=True)
                await fetches.add(asset, target)
                images.append({"id": image_id, "file_name": file_name, "width": size.get("width"),
                               "height": size.get("height"), "graphlake_split": datum["split"]})
                image_of[datum["id"]] = images[-1]
                for n, record in enumerate(records):
                    attributes = record.get("attributes") or {}
                    # A REGRESSION value, or a VOC class mask (every object of a class at once, not an
                    # instance): COCO has no place for them.
                    if record["label"] not in category_id or attributes.get("voc_segmentation") == "class":
                        left_out[record["kind"]] += 1
                        continue
                    geometry = record["geometry"] or {}
                    if geometry.get("__typename") == "Mask" and geometry["asset"]["id"] not in masks:
                        png = Path(scratch) / "mask.png"
                        await lake._retried(lake._fetch, geometry["asset"], png)
                        masks[geometry["asset"]["id"]] = rle_of_png(png.read_bytes())
                    # The records of one COCO annotation or one VOC object are one annotation (version_reading).
                    origin, number = group_of(record, n)
                    group = number if origin == "coco" else f"{origin}-{number}"
                    set_id = record["set"]["id"]  # two sets' COCO ids may overlap: never merge across sets
                    grouped[(sets[set_id]["purpose"], set_id, datum["id"], group)].append(record)
    _fallback_ids(images, used)
    # COCO's readers (detectron2, mmdetection) need each image's size: one not imported from COCO or
    # VOC has it in no metadata, so it is read from its pixels (the header only), as YOLO's export does.
    await to_thread(_measure, [(image, dest / "images" / image["file_name"]) for image in images
                                       if image["width"] is None or image["height"] is None])
    categories = _categories(labels, category_id, grouped)
    truth: list[tuple[Any, dict[str, Any]]] = []  # (its records' coco_id, the annotation)
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)  # by set
    for (purpose, set_id, datum_id, group), records in grouped.items():
        annotation = {"image_id": image_of[datum_id]["id"], "category_id": category_id[records[0]["label"]],
                      **annotation_of(records, masks, ground_truth=purpose == "GROUND_TRUTH"),
                      "graphlake_source": source_of(records)}
        if purpose == "GROUND_TRUTH":
            truth.append((group, annotation))
        else:
            results[set_id].append(annotation)
    _number(truth)
    version_info = summary(found)
    await to_thread(_write_json, dest / "annotations.json", {
        "info": {"description": f"{version_info['dataset']}/{version_info['version']}", "graphlake": version_info},
        "images": images, "categories": categories, "annotations": [a for _, a in truth]})
    files = results_files([s for s in found["annotationSets"] if s["id"] in results])  # in the version's order
    written: dict[str, ResultsFile] = {}
    for set_id, name in files.items():
        entries, shapeless = as_results(results[set_id])
        if shapeless:
            left_out["result of no box, mask, polygon or keypoints"] += shapeless
        await to_thread(_write_json, dest / name, entries)
        written[name] = {"set": sets[set_id]["name"], "set_id": set_id, "source": _source_name(sets[set_id]),
                         "results": len(entries)}
    return {"images": len(images), "annotations": len(truth), "results": sum(f["results"] for f in written.values()),
            "results_files": written, "left_out": dict(left_out), "version": version_info}


def results_files(sets: list[dict[str, Any]]) -> dict[str, str]:
    """The file each set's results go to, by set id: `results.json` for the only one; for several,
    `results-<its source>.json` (`results-detr.json`), or `results-<its set's name>.json` for sets
    of one source (a model's train and val sets). pycocotools' loadRes, and every evaluator after
    it, takes one results list as one model's detections: two models' in one file were scored as
    one model's, and could not be told apart. A name is made file-system safe (`_stem`), lower case
    since two names of one spelling in other cases are one file on macOS and Windows, and numbered
    (`-2`) where two would still be one."""
    if len(sets) == 1:
        return {sets[0]["id"]: "results.json"}
    sources = Counter(_stem(source) for s in sets if (source := _source_name(s)))
    names: dict[str, str] = {}
    for found in sets:
        source = _source_name(found)
        stem = _stem(source) if source and sources[_stem(source)] == 1 else _stem(found["name"])
        name, n = f"results-{stem}.json", 1
        while name in names.values():
            n += 1
            name = f"results-{stem}-{n}.json"
        names[found["id"]] = name
    return names


def _source_name(found: dict[str, Any]) -> str | None:
    """The set's source as a name: the model's, with its version when it has one (`detr-v2`)."""
    source = found.get("source") or {}
    return "-".join(filter(None, (source.get("name"), source.get("version")))) or None


def _stem(text: str) -> str:
    """`text` as a part of a file name on any file system: ASCII letters (lower case), digits, `.`,
    `_` and `-` (anything else a `-`), at most STEM_CHARACTERS."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9._]+", "-", plain).strip("-.")[:STEM_CHARACTERS].strip("-.") or "set"


def _write_json(target: Path, content: Any) -> None:
    """`content` as JSON at `target`, through a temporary file renamed when whole: a reader (or a
    killed run) never finds half a file under the name (debris.py removes a killed run's temporary)."""
    debris.write_held(debris.partial_temp(target), json.dumps(content).encode(), target)


def _fallback_ids(images: list[dict[str, Any]], used: set[int]) -> None:
    """Give each image without a COCO id of its own (none, not a number, or one an earlier image took)
    one from 1,000,000 on that no image of the export has."""
    candidate = 1_000_000
    for image in images:
        if image["id"] is None:
            while candidate in used:
                candidate += 1
            image["id"] = candidate
            used.add(candidate)


def _measure(unsized: list[tuple[dict[str, Any], Path]]) -> None:
    """Each image entry's width and height from its file; left null for a file Pillow cannot read
    (not an image: COCO has no size for it either)."""
    for entry, path in unsized:
        try:
            with Image.open(path) as opened:
                entry["width"], entry["height"] = opened.size
        except (OSError, Image.DecompressionBombError):  # UnidentifiedImageError is an OSError
            continue


def _number(truth: list[tuple[Any, dict[str, Any]]]) -> None:
    """Give each annotation an id: the one it was imported with (its records' `coco_id`) when that is
    a whole number no annotation before it took, as images keep theirs; the others are numbered after
    the largest kept."""
    kept: set[int] = set()
    for coco_id, annotation in truth:
        if isinstance(coco_id, int) and not isinstance(coco_id, bool) and coco_id not in kept:
            annotation["id"] = coco_id
            kept.add(coco_id)
    last = max(kept, default=0)
    for _, annotation in truth:
        if "id" not in annotation:
            last += 1
            annotation["id"] = last


def _categories(labels: list[str], category_id: dict[str, int],
                grouped: dict[tuple[str, str, str, Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The schema labels as COCO categories; supercategory, keypoint names and skeleton come from the
    records that kept them (the schema has no place for them)."""
    categories = {name: {"id": category_id[name], "name": name} for name in labels}
    for records in grouped.values():
        for record in records:
            category, attributes = categories[record["label"]], record.get("attributes") or {}
            if "supercategory" in attributes:
                category.setdefault("supercategory", attributes["supercategory"])
            if (record["geometry"] or {}).get("__typename") == "Keypoints" and "keypoints" not in category:
                category["keypoints"] = [p["name"] for p in record["geometry"]["points"]]
                category["skeleton"] = attributes.get("skeleton") or []
    return list(categories.values())
