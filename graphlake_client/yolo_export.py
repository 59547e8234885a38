"""YOLO export (the Ultralytics dataset format): a dataset version, as it was frozen, into

    DEST/data.yaml                          path, train / val / test, names
    DEST/images/<split>/<file_name>         the images, downloaded and checked
    DEST/labels/<split>/<file stem>.txt     one line per object, coordinates normalised to 0..1
    DEST/sources/<split>/<file stem>.txt    beside each label line, the kind of source that made it

Splits: TRAIN -> train, VALIDATION -> val, TEST -> test. UNASSIGNED datums go to `unassigned`, which
data.yaml does not list, unless `split_ratios` (and `seed`) are given: then each goes to the split
`trainingSplit` gives it with those ratios and that seed (graphlake_client/splits.py). Ultralytics
trains only on a data.yaml with `train` and `val`.

The format's rules, as Ultralytics reads them:
- a class is the 0-based index of its name in `names` (the ground-truth schemas' labels, in order,
  then those records carry in a set whose schema lists none, as the version first uses them);
- a detection line is `class cx cy w h`, a segmentation line `class x1 y1 ... xn yn` (3 points or
  more), every number in 0..1 (clipped: a box past the image's edge is cut at it), relative to the
  image as its loader turns it upright (its EXIF orientation: version_reading.pixel_size);
- a dataset is one task: Ultralytics drops every segment of a mixed detect/segment one, and a pose
  line must carry the same keypoints on every object (point i means one thing for every class). So
  the export is **pose** when every object has a keypoints record naming the same points in the
  same order (`class cx cy w h` then `x y v` per
  point, v 0/1/2 as COCO has it, a point not labelled 0 0 0; data.yaml gets `kpt_shape`, no
  `flip_idx`: which points mirror each other is not recorded), else **segment** when every object
  has a polygon, else **detect** (an object's BBOX record, or the bounds of its polygon);
- a label file sits where the image's path has `labels` for `images` and `.txt` for its
  extension; an image without objects gets an empty one (a background image).

What maps: ground-truth BBOX, POLYGON and (in a pose export) KEYPOINTS records, one object per COCO
annotation or VOC object (the records they became share `coco_id` / `voc_object`; each polygon part
of a COCO annotation is its own segmentation line). What does not: prediction sets, MASK records (a
mask would need contour tracing to become a polygon), keypoints outside a pose export, a COCO crowd
(`iscrowd`: counted as CROWD), a VOC difficult object (DIFFICULT) or layout part (PART; see
GroundTruth.objects), a record whose label is no class (LABEL), a box or polygon wholly outside its
image, and in a pose export the objects' polygons; the result counts what was left out, by record
kind, and an image Pillow cannot read (no size to normalise by) as IMAGE, named under
`unreadable`. A datum without an `image` role is counted as NO_IMAGE; a version with no image to
export is refused (BAD_USER_INPUT naming `version`) before anything is written.

Sources: a label line has no place for who made it (Ultralytics reads every number on it; a sixth
column is a segment's point, or an error), and Ultralytics finds labels only where an image's path
has `labels` for `images`, so a labels folder per source would need the images twice. So each
label file has a sidecar under `sources/` (which Ultralytics never reads) with the same lines, in
the same order: HUMAN, MODEL or DERIVED (version_reading.source_of for an object of several
records), or `null` for a version whose content file predates sources. Training code that wants
people's labels only reads both files side by side; COCO's export writes the same kinds per
annotation (`graphlake_source`), the Hugging Face one per object (`objects.source`).
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from graphlake_client import debris, splits
from graphlake_client.exit_loop import to_thread
from graphlake_client.export_fetches import ExportFetches
from graphlake_client.results import YoloExport
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

SPLITS = {"TRAIN": "train", "VALIDATION": "val", "TEST": "test", "UNASSIGNED": "unassigned"}
# What an export writes, and so what an earlier one left (sources/ too: an earlier export's sidecars
# would no longer line up with the labels).
FOLDERS = ("images", "labels", "sources")
FILES = ("data.yaml",)  # another export's (or the user's own) would be overwritten


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def box_line(cls: int, box: tuple[float, float, float, float], width: int, height: int) -> str | None:
    """`class cx cy w h`, normalised, the box cut at the image's edges (version_reading.clipped_box,
    as the Hugging Face export cuts it); None when nothing is left."""
    inside = clipped_box(box, width, height)
    if inside is None:
        return None
    x, y, w, h = inside
    return f"{cls} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"


def polygon_line(cls: int, points: list[dict[str, float]], width: int, height: int) -> str | None:
    """`class x1 y1 ... xn yn`, normalised and clipped; None when the clipped points span no area
    (a polygon wholly outside the image becomes points on its edge: a line, not an outline)."""
    clipped = [(_clip(p["x"] / width), _clip(p["y"] / height)) for p in points]
    xs, ys = [x for x, _ in clipped], [y for _, y in clipped]
    if max(xs) <= min(xs) or max(ys) <= min(ys):
        return None
    return " ".join([str(cls), *(f"{x:.6f} {y:.6f}" for x, y in clipped)])


def label_safe(path: str) -> str:
    """An image path under images/<split>/ whose folders are not named `images`: Ultralytics finds
    labels by turning the last /images/ of an image's path into /labels/, so a folder of that name
    would send it looking in the wrong place."""
    parts = PurePosixPath(path).parts
    return str(PurePosixPath(*(f"{p}_" if p == "images" else p for p in parts[:-1]), parts[-1]))


def keypoints_part(points: list[dict[str, Any]], width: int, height: int) -> str:
    """`x y v` per keypoint, normalised, v as COCO has it (0 not labelled, 1 hidden, 2 visible); a point
    not labelled is 0 0 0."""
    return " ".join("0 0 0" if p["visible"] is None else
                    f"{_clip(p['x'] / width):.6f} {_clip(p['y'] / height):.6f} {2 if p['visible'] else 1}" for p in points)


def _has(obj: list[dict[str, Any]], kind: str) -> bool:
    return any(r["geometry"]["__typename"] == kind for r in obj)


def _bounds(points: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _pose_shape(objects: list[list[dict[str, Any]]]) -> int | None:
    """The number of keypoints of every object, when each has a keypoints record naming the same
    points in the same order (YOLO's pose format: a person's nose and a cat's tail as point 0 would
    be taught as one point); else None."""
    named = {tuple(p.get("name") for p in r["geometry"]["points"])
             for obj in objects for r in obj if r["geometry"]["__typename"] == "Keypoints"}
    if objects and len(named) == 1 and all(_has(obj, "Keypoints") for obj in objects):
        return len(named.pop())
    return None


def sized(entry: list[Any], image: Path) -> None:
    """Put the pixels' size, whatever the metadata says, into `entry`'s width and height (None, None
    for a file Pillow cannot read)."""
    entry[2], entry[3] = pixel_size(image) or (None, None)


async def export_yolo(lake: Client, version: str, dest: Path, *, split_ratios: tuple[float, float, float] | None = None,
                      seed: int = 0, replace: bool = False) -> YoloExport:
    """Write the version's images, labels and data.yaml under `dest`; what was written, by count.
    `split_ratios` (train, validation, test) and `seed` place its UNASSIGNED datums as trainingSplit does."""
    ratios = splits.normalised(split_ratios) if split_ratios is not None else None
    found = await find_version(lake, version)
    # First what an export killed here left half-downloaded: no earlier export, if that is all there is.
    await to_thread(debris.sweep_export, dest, FOLDERS)
    refuse_earlier_export(dest, FOLDERS, "YOLO", files=FILES, replace=replace)
    with whole_or_none(dest, FOLDERS, FILES):
        return await _write(lake, found, dest, ratios, seed)


async def _write(lake: Client, found: dict[str, Any], dest: Path, ratios: tuple[float, float, float] | None,
                 seed: int) -> YoloExport:
    """The export itself, into a `dest` whose folders hold nothing."""
    truth = GroundTruth.of(found)
    left_out: Counter[str] = Counter()
    images: list[list[Any]] = []  # [split, path, width, height, objects]; the size once the image is in
    taken: set[tuple[str, str]] = set()  # (split, label path without suffix): two images must not share labels
    async with ExportFetches(lake) as fetches:
        async for datum, records in version_datums(lake, found["id"], from_file=True):
            asset = datum["asset"]
            if asset is None:
                left_out["NO_IMAGE"] += 1  # a datum without an image role has no place in YOLO
                continue
            split = SPLITS[splits.split_of(datum, ratios, seed)]
            path = label_safe(image_path(file_name_of(datum), asset["name"]))
            if (split, _stem(path)) in taken:  # a.png and a.jpg, or the same name twice: the second gets its id
                path = with_id(path, asset["id"], partial(_stem_taken, taken, split))
            taken.add((split, _stem(path)))
            target = dest / "images" / split / path
            target.parent.mkdir(parents=True, exist_ok=True)
            entry = [split, path, 0, 0, truth.objects(records, ("BBox", "Polygon", "Keypoints"), left_out)]
            images.append(entry)
            await fetches.add(asset, target, then=partial(sized, entry, target))
    refuse_no_image(found, len(images), left_out)
    images, unreadable = await to_thread(_readable, images, dest, left_out)
    every_object = [obj for *_, objs in images for obj in objs]
    shape = _pose_shape(every_object)
    segment = shape is None and bool(every_object) and all(_has(obj, "Polygon") for obj in every_object)
    if shape is None:  # keypoints map only when every object has the same ones
        left_out.update(r["kind"] for obj in every_object for r in obj if r["geometry"]["__typename"] == "Keypoints")
    else:  # a pose line has a box and points, no outline
        left_out.update(r["kind"] for obj in every_object for r in obj if r["geometry"]["__typename"] == "Polygon")
    lines_written = 0
    for split, path, width, height, objs in images:
        lines: list[tuple[str, str | None]] = []  # (label line, its source's kind)
        for obj in objs:
            label = truth.index[obj[0]["label"]]
            if segment:  # a line per polygon part: each is one record, with its own source
                lines += _segment_lines(label, obj, width, height, left_out)
            elif shape is not None:
                points = next(r for r in obj if r["geometry"]["__typename"] == "Keypoints")["geometry"]["points"]
                box = box_of(obj) or _bounds([p for p in points if p["visible"] is not None] or points)
                # A box of no size (one labelled point, say) is still a pose object's place.
                line = box_line(label, box, width, height) or f"{label} {_clip(box[0] / width):.6f} {_clip(box[1] / height):.6f} 0 0"
                lines.append((f"{line} {keypoints_part(points, width, height)}", source_of(obj)))
            elif (bounds := box_of(obj)) and (box_text := box_line(label, bounds, width, height)):
                lines.append((box_text, source_of(obj)))
            else:  # keypoints alone (counted above), or a box wholly outside the image
                left_out.update(r["kind"] for r in obj if r["geometry"]["__typename"] != "Keypoints")
        label_file, source_file = ((dest / folder / split / path).with_suffix(".txt") for folder in ("labels", "sources"))
        for file in (label_file, source_file):
            file.parent.mkdir(parents=True, exist_ok=True)
        label_file.write_text("".join(f"{line}\n" for line, _ in lines))  # an empty pair for a background image
        source_file.write_text("".join(f"{source or 'null'}\n" for _, source in lines))
        lines_written += len(lines)
    present = {split for split, *_ in images}
    dest.mkdir(parents=True, exist_ok=True)
    data = {"path": str(dest.resolve()),
            **{key: f"images/{key}" for key in ("train", "val", "test") if key in present},
            "names": dict(enumerate(truth.names))}
    if shape is not None:
        data["kpt_shape"] = [shape, 3]  # no flip_idx: which points mirror each other is not recorded
    (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return {"images": len(images), "objects": lines_written, "format": "pose" if shape is not None else "segment" if segment else "detect",
            "splits": dict(Counter(split for split, *_ in images)), "left_out": dict(left_out),
            "unreadable": unreadable, "version": summary(found)}


def _stem(path: str) -> str:
    """An image's path without its suffix: where its label file goes."""
    return str(PurePosixPath(path).with_suffix(""))


def _stem_taken(taken: set[tuple[str, str]], split: str, path: str) -> bool:
    """Whether an image of `split` has `path`'s label file already."""
    return (split, _stem(path)) in taken


def _segment_lines(label: int, obj: list[dict[str, Any]], width: int, height: int,
                   left_out: Counter[str]) -> list[tuple[str, str | None]]:
    """An object's segmentation lines, one per polygon part, with their sources; a part wholly
    outside the image is counted in `left_out`, and so is the rest of an object none of whose parts is left."""
    parts = sorted((r for r in obj if r["geometry"]["__typename"] == "Polygon"),
                   key=lambda r: (r.get("attributes") or {}).get("part", 0))
    written = [(r, polygon_line(label, r["geometry"]["points"], width, height)) for r in parts]
    lines = [(line, source_of([r])) for r, line in written if line is not None]
    if lines:
        left_out.update(r["kind"] for r, line in written if line is None)
    else:  # its box too: the object is not in the image
        left_out.update(r["kind"] for r in obj if r["geometry"]["__typename"] != "Keypoints")
    return lines


# The suffixes Ultralytics takes for images (its IMG_FORMATS): it lists only such files under
# images/ (a GIF is a video to it), so any other was written, labelled and counted, then never trained on.
IMAGE_SUFFIXES = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
_SUFFIX_OF_FORMAT = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp", "MPO": "mpo"}


def _suffixed(entry: list[Any], dest: Path, stems: set[tuple[str, str]]) -> bool:
    """Give an image whose suffix Ultralytics does not take (`frame_0001`, `scan.dat`) the suffix of
    the format Pillow finds in it, renaming its file and `entry`'s path to a name whose label file
    no other image of its split has (`stems`, updated: `scan.dat` becoming `scan.dat.png` would
    share `scan.dat.jpg`'s labels; a count follows then, `scan.dat-2.png`); False for a format
    Ultralytics does not read as an image (a GIF), whose file is left to the caller."""
    split, path = entry[0], entry[1]
    if PurePosixPath(path).suffix[1:].lower() in IMAGE_SUFFIXES:
        return True
    from PIL import Image  # the yolo extra has Pillow

    folder = dest / "images" / split
    with Image.open(folder / path) as opened:
        suffix = _SUFFIX_OF_FORMAT.get(opened.format or "")
    if suffix is None:
        return False
    stems.discard((split, _stem(path)))  # its own, as named until now
    renamed, count = f"{path}.{suffix}", 1
    while (split, _stem(renamed)) in stems or (folder / renamed).exists():
        count += 1
        renamed = f"{path}-{count}.{suffix}"
    (folder / path).rename(folder / renamed)
    stems.add((split, _stem(renamed)))
    entry[1] = renamed
    return True


def _readable(images: list[list[Any]], dest: Path, left_out: Counter[str]) -> tuple[list[list[Any]], list[str]]:
    """The images Pillow read (their size known) and Ultralytics will (_suffixed), and the paths of
    the others, which are removed and counted under `left_out` as IMAGE: a label line is relative
    to an image's size, and an image Ultralytics does not list is never trained on."""
    stems = {(split, _stem(path)) for split, path, *_ in images}  # the label files' names
    unreadable = [entry for entry in images if entry[2] is None or not _suffixed(entry, dest, stems)]
    for split, path, *_ in unreadable:
        (dest / "images" / split / path).unlink(missing_ok=True)
    if unreadable:
        left_out["IMAGE"] += len(unreadable)
    dropped = {id(entry) for entry in unreadable}
    return [entry for entry in images if id(entry) not in dropped], [f"{split}/{path}" for split, path, *_ in unreadable]
