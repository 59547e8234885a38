"""COCO annotations <-> Graphlake annotation records, without I/O: one COCO annotation becomes several
records (a BBOX, a POLYGON per polygon part, a MASK, a KEYPOINTS), which share its COCO id in their
attributes (`coco_id`) so an export joins them back into one annotation.

RLE goes through pycocotools (decode, encode, area), never hand-written run-length code: the
format's column-major order and its compressed string are easy to get subtly wrong. The one
exception reads a compressed string's runs only to add them up (`_compressed_runs`), since
pycocotools decodes runs that stop short of the mask's size into whatever its buffer held.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as rle

# COCO keypoint visibility (0 not labelled, 1 labelled but hidden, 2 visible) against the API's
# `visible: Boolean`: null keeps "not labelled" apart from "hidden".
VISIBLE = {0: None, 1: False, 2: True}
VISIBILITY = {None: 0, False: 1, True: 2}
# What an annotation's own keys become; any other (CVAT's `attributes`, a tool's track id) is kept as
# it is under the records' `coco_extra` attribute, and the export gives it back.
READ = frozenset({"id", "image_id", "category_id", "bbox", "segmentation", "area", "iscrowd", "keypoints",
                  "num_keypoints", "score"})


def mask_of(segmentation: dict[str, Any], height: int | None, width: int | None) -> np.ndarray:
    """The binary mask (height x width, uint8) of a compressed or uncompressed RLE segmentation: its
    own `size`, else its image's height and width. ValueError if neither says how large it is, or if
    its runs do not cover exactly height x width pixels: pycocotools refuses runs past the end, but
    fills the pixels after runs that stop short with whatever its buffer held."""
    if isinstance(segmentation["counts"], list):  # uncompressed: pycocotools compresses it first
        size = segmentation.get("size") or (height, width)
        if None in size:
            raise ValueError("an uncompressed RLE without `size` needs its image's height and width")
        runs = segmentation["counts"]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in runs):
            raise ValueError("an uncompressed RLE's counts are runs of pixels: whole numbers, not negative")
        _check_total(sum(runs), size)
        encoded = rle.frPyObjects({"counts": runs, "size": list(size)}, *size)
    else:
        counts = segmentation["counts"]
        _check_total(sum(_compressed_runs(counts if isinstance(counts, str) else counts.decode())),
                     segmentation["size"])
        encoded = {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return rle.decode(encoded)


def _check_total(pixels: int, size: Any) -> None:
    height, width = (int(v) for v in size)
    if pixels != height * width:
        raise ValueError(f"its runs cover {pixels} pixels, its size [{height}, {width}] is {height * width}")


def _compressed_runs(counts: str) -> list[int]:
    """The runs of a compressed RLE string, read as pycocotools' rleFrString reads them (5 bits a
    character from '0', a continuation bit, a sign bit, each run after the second a difference from
    the one two before), only to check they cover the mask: pycocotools itself does the decoding."""
    runs: list[int] = []
    place = 0
    while place < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if place == len(counts):
                raise ValueError("its counts end in the middle of a run")
            char = ord(counts[place]) - 48
            if not 0 <= char < 64:
                raise ValueError(f"{counts[place]!r} is no character of a compressed RLE")
            value |= (char & 0x1F) << shift
            more, place, shift = bool(char & 0x20), place + 1, shift + 5
            if not more and char & 0x10:
                value |= -1 << shift
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    if any(run < 0 for run in runs):
        raise ValueError("its counts hold a negative run")
    return runs


def png_of(mask: np.ndarray) -> bytes:
    """A mask as an 8-bit greyscale PNG (0 or 255): MASK records point at image assets."""
    out = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * 255, mode="L").save(out, format="PNG")
    return out.getvalue()


def rle_of_png(data: bytes) -> dict[str, Any]:
    """The compressed RLE of a mask PNG (any non-zero pixel is in the mask), JSON-ready."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 0
    encoded = rle.encode(np.asfortranarray(pixels.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode()}


def rle_area(segmentation: dict[str, Any]) -> float:
    return float(rle.area({"size": segmentation["size"], "counts": segmentation["counts"].encode()}))


def rle_bbox(segmentation: dict[str, Any]) -> list[float]:
    """The [x, y, width, height] of an RLE mask's pixels (pycocotools' toBbox)."""
    box = rle.toBbox({"size": segmentation["size"], "counts": segmentation["counts"].encode()})
    return [float(v) for v in box]


def _bounds(xs: list[float], ys: list[float]) -> list[float]:
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def records_of(annotation: dict[str, Any], category: dict[str, Any], mask_asset: str | None) -> list[dict[str, Any]]:
    """AnnotationRecordInput dicts (without assetId/datumId) for one COCO annotation. `mask_asset` is
    the uploaded PNG of its RLE segmentation, if it has one."""
    attributes: dict[str, Any] = {"coco_id": annotation["id"], "iscrowd": int(annotation.get("iscrowd", 0))}
    if "area" in annotation:
        attributes["area"] = annotation["area"]
    if category.get("supercategory") is not None:
        attributes["supercategory"] = category["supercategory"]
    # graphlake_source: what an export of a lake said, which the records' own source says here.
    if extra := {k: v for k, v in annotation.items() if k not in READ and not k.startswith("graphlake_")}:
        attributes["coco_extra"] = extra
    common = {"label": category["name"], "attributes": attributes}
    key = f"coco:{annotation['id']}"  # each record's name in the set (services/record_keys.py): a rerun adds none twice
    if annotation.get("score") is not None:
        common["score"] = float(annotation["score"])
    records = []
    box = annotation.get("bbox")
    if box and box[2] > 0 and box[3] > 0:
        records.append({**common, "kind": "BBOX", "key": f"{key}:bbox",
                        "geometry": {"bbox": {"x": box[0], "y": box[1], "width": box[2], "height": box[3]}}})
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        for part, flat in enumerate(segmentation):
            points = [{"x": x, "y": y} for x, y in zip(flat[0::2], flat[1::2], strict=False)]
            if len(points) >= 3:  # COCO has degenerate polygons; the API wants 3 points or more
                records.append({**common, "kind": "POLYGON", "geometry": {"polygon": {"points": points}},
                                "attributes": {**attributes, "part": part}, "key": f"{key}:polygon:{part}"})
    elif isinstance(segmentation, dict) and mask_asset:
        records.append({**common, "kind": "MASK", "geometry": {"mask": {"assetId": mask_asset}}, "key": f"{key}:mask"})
    flat = annotation.get("keypoints")
    if flat and category.get("keypoints"):
        names = category["keypoints"]
        third = flat[2::3]
        # Ground truth gives COCO's visibility flags (0, 1, 2). A results entry (one with a score)
        # gives what its model wrote there, a confidence most often (mmpose, detectron2), which
        # pycocotools reads as it is: kept as it came, to be written back, a point above 0 visible.
        scored = annotation.get("score") is not None
        kept = scored or any(v not in (0, 1, 2) for v in third)  # and a ground-truth file's values other than flags
        points = [{"name": names[i] if i < len(names) else None, "x": flat[3 * i], "y": flat[3 * i + 1],
                   "visible": (True if v > 0 else None) if scored else VISIBLE.get(int(v))} for i, v in enumerate(third)]
        # The annotation schema has no place for a skeleton (labels are name, displayName, colour): the
        # keypoints record keeps it, so an export can give the category its skeleton back.
        records.append({**common, "kind": "KEYPOINTS", "key": f"{key}:keypoints", "geometry": {"keypoints": {"points": points}},
                        "attributes": {**attributes, "num_keypoints": annotation.get("num_keypoints"),
                                       "skeleton": category.get("skeleton"),
                                       **({"keypoint_scores": list(third)} if kept else {})}})
    return records


def shape_box(annotation: dict[str, Any], *, results: bool = False) -> list[float] | None:
    """The [x, y, width, height] of a COCO annotation's shape: its mask, its polygons, or its
    keypoints (of a ground-truth annotation the labelled ones; of a results entry all of them, as
    pycocotools' loadRes measures them); None for none of those."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        return rle_bbox(segmentation)
    if segmentation:
        return _bounds([c for p in segmentation for c in p[0::2]], [c for p in segmentation for c in p[1::2]])
    points = [(x, y) for x, y, v in zip(*(iter(annotation.get("keypoints") or []),) * 3, strict=True) if v or results]
    return _bounds([x for x, _ in points], [y for _, y in points]) if points else None


def as_results(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """A results file's entries (annotation_of's, ground_truth=False) as pycocotools' loadRes reads
    them together, and how many were left out. loadRes takes the route of the file's first entry
    for every entry: a box (each needs one, its area the box's), else an RLE mask (the area and a
    missing box from the mask), else keypoints (box and area from the points, whatever else the
    entry holds). Entries that all came with a box go as they are. Entries that are all RLE masks,
    or all keypoints with one of neither box nor segmentation, go without the boxes they did not
    come with, such an entry first, so that the masks or the points decide as they did for the file
    imported (a box given to a mask result made it a box result, and moved the area-range scores).
    Any other mix (polygons, which loadRes measures as boxes only) gets a box from its shape where
    it has none. An entry of no shape at all (a prediction record COCO has no place for: a rotated
    box, a polyline, a classification) is left out: one made the whole file unreadable."""
    shaped = [e for e in entries if "bbox" in e or e.get("segmentation") or e.get("keypoints")]
    left_out = len(entries) - len(shaped)
    if all("bbox" in e for e in shaped):
        return shaped, left_out
    if all(isinstance(e.get("segmentation"), dict) for e in shaped):
        return sorted(shaped, key=lambda e: "bbox" in e), left_out  # stable: the order kept otherwise
    if all(e.get("keypoints") for e in shaped) and any("bbox" not in e and "segmentation" not in e for e in shaped):
        return sorted(shaped, key=lambda e: "bbox" in e or "segmentation" in e), left_out
    for entry in shaped:
        if "bbox" not in entry:
            entry["bbox"] = shape_box(entry, results=True)  # not None: the entry has a shape
    return shaped, left_out


def left_out_of(annotation: dict[str, Any], category: dict[str, Any]) -> list[str]:
    """What of one COCO annotation `records_of` makes no record of, by reason: the API takes no box of
    no width or height, no polygon under 3 points, and no keypoints without the category's names for
    them; an annotation with nothing else is left out whole."""
    reasons = []
    box = annotation.get("bbox")
    if box and not (box[2] > 0 and box[3] > 0):
        reasons.append("bbox of no size")
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        reasons += ["polygon under 3 points" for flat in segmentation if len(flat) < 6]
    if annotation.get("keypoints") and not category.get("keypoints"):
        reasons.append("keypoints without names")
    if reasons and not records_of(annotation, category, "mask"):
        reasons.append("annotation with nothing stored")
    return reasons


# A VOC object's flags, as the VOC import keeps them on its box record: written into its COCO annotation
# as keys of their own (0 or 1, as VOC's XML has them; `pose` a word), which COCO's readers ignore and
# a VOC-minded trainer or evaluation reads. Not as `ignore`: Detectron2's COCO loader refuses an
# annotation with it, and pycocotools' COCOeval overwrites it with `iscrowd`.
VOC_FLAGS = ("difficult", "truncated", "occluded")


def _voc_keys(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The VOC flags and pose of the object `records` are, and `voc_part_of` for a person's layout
    part (head, hand, foot: the VOC object number of its person); none for anything else."""
    out: dict[str, Any] = {}
    for record in records:
        attributes = record.get("attributes") or {}
        out |= {flag: int(bool(attributes[flag])) for flag in VOC_FLAGS if flag in attributes}
        out |= {key: attributes[key] for key in ("pose", "voc_part_of") if key in attributes}
    return out


def annotation_of(records: list[dict[str, Any]], masks: dict[str, dict[str, Any]], *,
                  ground_truth: bool = True) -> dict[str, Any]:
    """One COCO annotation (without id, image_id, category_id) from the records that share a COCO id.
    `masks` maps a mask asset id to its RLE. A ground-truth annotation needs a `bbox` and an `area`
    (derived from its shape when none was kept). A results entry gets neither unless it came with
    one: a results file's entries are made loadable together (as_results)."""
    first = records[0]
    attributes = first.get("attributes") or {}
    out: dict[str, Any] = {"iscrowd": int(attributes.get("iscrowd", 0))}
    polygons = []
    for record in sorted(records, key=lambda r: (r.get("attributes") or {}).get("part", 0)):
        geometry = record["geometry"] or {}
        kind = geometry.get("__typename")
        if kind == "BBox":
            out["bbox"] = [geometry["x"], geometry["y"], geometry["width"], geometry["height"]]
        elif kind == "Polygon":
            polygons.append([c for p in geometry["points"] for c in (p["x"], p["y"])])
        elif kind == "Mask":
            out["segmentation"] = masks[geometry["asset"]["id"]]
        elif kind == "Keypoints":
            own = record.get("attributes") or {}  # this record's (`attributes` is the first record's)
            third = own.get("keypoint_scores")  # a results entry's third values, kept as they came (records_of)
            if not (isinstance(third, list) and len(third) == len(geometry["points"])
                    and all(isinstance(v, int | float) and not isinstance(v, bool) for v in third)):
                third = [VISIBILITY[p["visible"]] for p in geometry["points"]]  # none (ground truth), or not a record's own
            out["keypoints"] = [c for p, v in zip(geometry["points"], third, strict=True) for c in (p["x"], p["y"], v)]
            count = own.get("num_keypoints")
            out["num_keypoints"] = count if count is not None else sum(1 for p in geometry["points"] if p["visible"] is not None)
        if record.get("score") is not None:
            out["score"] = record["score"]
    if polygons and "segmentation" not in out:
        out["segmentation"] = polygons
    if "bbox" not in out and ground_truth and (box := shape_box(out)) is not None:  # COCOeval reads every one's
        out["bbox"] = box
    for key, value in (attributes.get("coco_extra") or {}).items():
        out.setdefault(key, value)
    for key, value in _voc_keys(records).items():
        out.setdefault(key, value)
    if "area" in attributes:
        out["area"] = attributes["area"]
    elif not ground_truth:
        pass
    elif isinstance(out.get("segmentation"), dict):
        out["area"] = rle_area(out["segmentation"])
    elif "bbox" in out:
        out["area"] = out["bbox"][2] * out["bbox"][3]
    return out
