"""Pascal VOC import: one split of a VOC 2012 tree into a lake, through the GraphQL API.

    ROOT/ImageSets/Main/<split>.txt       the image ids of the split (train, val, trainval, test); or
                                          ImageSets/Segmentation/ (`image_set`), the 2012 lists of the
                                          images that have segmentation PNGs (Layout, Action alike)
    ROOT/Annotations/<id>.xml             size, and per object: name, pose, truncated, difficult,
                                          occluded, bndbox, and a person's layout parts
    ROOT/JPEGImages/<id>.jpg              the images
    ROOT/SegmentationClass/<id>.png       palette PNG: pixel = class index (1..20), 0 background, 255 void
    ROOT/SegmentationObject/<id>.png      palette PNG: pixel = object number (its place in the XML), 255 void

Images go up through the batch upload path into a collection named after the dataset, at
`JPEGImages/<file>`; each gets a datum (role `image`, the split: train -> TRAIN, val -> VALIDATION,
test -> TEST, anything else UNASSIGNED; metadata `voc` with the id, file name, size and dataset).
The labels of the annotation schema named after the dataset are the 20 VOC classes, the layout
parts head, hand and foot, then any other object or part name the list's XML files use and the
labels of the schema's newest version (compared as a set: a version with these labels is reused).
Records, in the GROUND_TRUTH set `<dataset> ground truth (<split>)`, the one set of the split
whichever list (Main, Segmentation, ...) is imported, on whichever schema version it was made:
- a BBOX per object, in pixels from 0 (VOC's 1-based inclusive xmin..xmax becomes x = xmin - 1,
  width = xmax - xmin + 1, as Detectron2 reads it), with attributes `voc_object` (its number),
  `difficult`, `truncated`, `occluded` (when the file says), `pose` and `voc_bndbox` (as written);
- a BBOX per layout part (head, hand, foot), attribute `voc_part_of` (its person's number);
- a MASK per object in SegmentationObject (label: that object's name, `voc_object` its number,
  `voc_segmentation: object`) and per class in SegmentationClass (`voc_segmentation: class`), each
  a binary PNG stored in the collection under `masks/`, since a MASK record points at an image asset.
  The void border (255) is not stored.

The XML is read with defusedxml: a VOC tree may come from anywhere, and the standard library's
parser expands entities. The images go in stages, as the COCO import's do (dataset_import.in_stages).
A rerun uploads nothing twice, makes no datum twice and keeps a set that already holds the records
this split makes (`kept`); after an interrupted import it adds the records of the images that have
none (`resumed`); a set holding anything else stops the import with CONFLICT, before it adds
anything or, for an image whose bytes changed since, when that image's stage comes. Only the images
the list names are compared: records on the dataset's other images are another list's. A set whose
schema lacks a label the list's records use is a CONFLICT naming them.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from defusedxml import ElementTree
from PIL import Image

from graphlake_client.dataset_import import (
    STAGE_IMAGES,
    ImageStages,
    Records,
    add_records,
    check_held,
    chunks,
    dataset_version,
    imported_set_name,
    in_stages,
    known_datums,
    labelled_set,
    records_held,
)
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.results import DatasetVersion

if TYPE_CHECKING:
    from graphlake_client.client import Client

# In the order SegmentationClass numbers them (1..20).
CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
           "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
# VOC 2012's layout parts, labels of every import: lists of one split whose XMLs name other parts
# (the Segmentation list's images, Main's) share the split's set, which cannot move to another schema.
PARTS = ["head", "hand", "foot"]
SPLITS = {"train": "TRAIN", "val": "VALIDATION", "test": "TEST"}
VOID = 255
SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")  # a split's name (the list's file name)


def plain_name(voc_id: str) -> bool:
    """Whether an image id is a file name that stays in its folder (Annotations/<id>.xml and the
    others): any characters but path separators, NUL and the controls the server refuses in a path,
    and not empty, `.` or `..`. Custom trees use ids like `img(2)` or `foto_ñ`."""
    return voc_id not in ("", ".", "..") and not any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in voc_id)


@dataclass
class VocImport:
    """What an import did: ids of what it made or found, and how much of it was new."""

    dataset: str
    split: str
    datum_ids: list[str] = field(default_factory=list)
    images_uploaded: int = 0
    images_unchanged: int = 0
    datums_created: int = 0
    schema_id: str | None = None
    set_id: str | None = None
    records_added: int = 0
    kept: bool = False  # the set already held the records of this list's images
    resumed: bool = False  # an interrupted import had begun the set: the other images' records were added
    # Ids of the split without an Annotations/<id>.xml: imported as images without objects, which
    # training reads as background (a test split's may have none; a lost file should be put back).
    without_xml: list[str] = field(default_factory=list)
    version: DatasetVersion | None = None


@dataclass
class _Image:
    id: str
    file: Path
    width: int
    height: int
    objects: list[dict[str, Any]]
    # The PNGs and the values found in them; the masks are cut out again while uploading, so a
    # whole split's masks are never in memory at once.
    object_png: Path | None = None
    object_numbers: list[int] = field(default_factory=list)
    class_png: Path | None = None
    class_indices: list[int] = field(default_factory=list)
    has_xml: bool = True


FLAGS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}


def _flag(element: Any, name: str, where: str) -> bool | None:
    """A VOC flag (difficult, truncated, occluded): 0 or 1 as the devkit writes it, or true/false,
    yes/no as other tools do (a ValueError's traceback said nothing of which file)."""
    text = (element.findtext(name) or "").strip()
    if not text:
        return None
    try:
        return FLAGS[text.lower()] if text.lower() in FLAGS else bool(int(float(text)))
    except (ValueError, OverflowError):
        raise GraphlakeClientError(f"{where}: {name} is 0 or 1 (or true / false), not {text!r}",
                                   "BAD_USER_INPUT") from None


def _box(element: Any, where: str) -> tuple[list[float], dict[str, float]]:
    """VOC's bndbox (1-based, inclusive), and the same as a 0-based box in pixels."""
    box = element.find("bndbox")
    if box is None:
        raise GraphlakeClientError(f"{where} has no bndbox", "BAD_USER_INPUT")
    try:
        xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (TypeError, ValueError):
        raise GraphlakeClientError(f"{where}: bndbox needs numbers xmin, ymin, xmax, ymax", "BAD_USER_INPUT") from None
    if xmax < xmin or ymax < ymin:
        raise GraphlakeClientError(f"{where}: bndbox ends before it starts", "BAD_USER_INPUT")
    return [xmin, ymin, xmax, ymax], {"x": xmin - 1, "y": ymin - 1, "width": xmax - xmin + 1, "height": ymax - ymin + 1}


def _objects(xml: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """The XML's file name and its objects: name, flags, pose, box and parts."""
    try:
        root = ElementTree.parse(xml).getroot()
    except Exception as error:  # defusedxml's refusals and ParseError alike: a bad file, said with its name
        raise GraphlakeClientError(f"{xml.name}: not a VOC annotation ({error})", "BAD_USER_INPUT") from None
    objects = []
    for n, element in enumerate(root.findall("object"), start=1):
        where = f"{xml.name} object {n}"
        name = (element.findtext("name") or "").strip()
        if not name:
            raise GraphlakeClientError(f"{where} has no name", "BAD_USER_INPUT")
        raw, box = _box(element, where)
        attributes: dict[str, Any] = {"voc_object": n, "difficult": bool(_flag(element, "difficult", where)),
                                      "truncated": bool(_flag(element, "truncated", where)), "voc_bndbox": raw}
        if (occluded := _flag(element, "occluded", where)) is not None:
            attributes["occluded"] = occluded
        if (pose := (element.findtext("pose") or "").strip()) and pose != "Unspecified":
            attributes["pose"] = pose
        parts = []
        for p, part in enumerate(element.findall("part"), start=1):
            part_name = (part.findtext("name") or "").strip()
            if not part_name:  # as an unnamed object is: its box would be lost without a word
                raise GraphlakeClientError(f"{where} part {p} has no name", "BAD_USER_INPUT")
            parts.append({"name": part_name, "box": _box(part, f"{where} part {part_name}")[1]})
        objects.append({"name": name, "box": box, "attributes": attributes, "parts": parts})
    return (root.findtext("filename") or "").strip() or None, objects


# What Pillow raises for a file it cannot read: not an image (UnidentifiedImageError, an OSError), cut
# short or damaged (OSError, SyntaxError, ValueError from a decoder), or too large to be one.
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _unreadable(path: Path, voc_id: str, error: Exception) -> GraphlakeClientError:
    """BAD_USER_INPUT naming the file and its image: Pillow's own error named neither, as a traceback."""
    return GraphlakeClientError(f"image {voc_id}: {path.parent.name}/{path.name} is not an image Pillow can read "
                                f"({error})", "BAD_USER_INPUT")


def _palette_indices(png: Path, size: tuple[int, int], voc_id: str) -> np.ndarray:
    """A VOC segmentation PNG's pixel values (palette indices), checked against the image's size."""
    try:
        with Image.open(png) as image:
            if image.mode not in ("P", "L"):
                raise GraphlakeClientError(f"{png.name}: a VOC segmentation is a palette PNG, this one is {image.mode}",
                                           "BAD_USER_INPUT")
            if image.size != size:
                raise GraphlakeClientError(f"{png.name} is {image.size[0]}x{image.size[1]}, its image "
                                           f"{size[0]}x{size[1]}", "BAD_USER_INPUT")
            return np.asarray(image)  # decodes the pixels: a PNG damaged past its header fails here
    except UNREADABLE as error:
        raise _unreadable(png, voc_id, error) from None


def _read(root: Path, voc_id: str) -> _Image:
    """One image of the split, everything checked before anything is written."""
    xml = root / "Annotations" / f"{voc_id}.xml"
    file_name, objects = _objects(xml) if xml.is_file() else (None, [])
    file = _jpeg(root, voc_id, file_name)
    try:
        with Image.open(file) as image:  # the header: the size, and that it is an image at all
            size = image.size
    except UNREADABLE as error:
        raise _unreadable(file, voc_id, error) from None
    found = _Image(voc_id, file, size[0], size[1], objects, has_xml=xml.is_file())
    if (png := root / "SegmentationObject" / f"{voc_id}.png").is_file():
        found.object_png, found.object_numbers = png, _values(png, size, voc_id)
        if found.object_numbers and found.object_numbers[-1] > len(objects):
            raise GraphlakeClientError(f"{png.name} has object {found.object_numbers[-1]}, {voc_id}.xml only "
                                       f"{len(objects)}", "BAD_USER_INPUT")
    if (png := root / "SegmentationClass" / f"{voc_id}.png").is_file():
        found.class_png, found.class_indices = png, _values(png, size, voc_id)
        if found.class_indices and found.class_indices[-1] > len(CLASSES):
            raise GraphlakeClientError(f"{png.name} has class {found.class_indices[-1]}: VOC has 20", "BAD_USER_INPUT")
    return found


def _jpeg(root: Path, voc_id: str, file_name: str | None) -> Path:
    """The image of `voc_id`: the XML's <filename> under JPEGImages if that file is there, else
    JPEGImages/<id>.jpg, which the devkit, torchvision and Detectron2 read (LabelImg and renamed
    trees write a <filename> without its extension, or from before the renaming)."""
    by_id = root / "JPEGImages" / f"{voc_id}.jpg"
    # The XML's filename is only a base name under JPEGImages (a file may name anything).
    named = root / "JPEGImages" / Path(file_name).name if file_name and Path(file_name).name else None
    if named is not None and named.is_file():
        return named
    if by_id.is_file():
        return by_id
    if named in (None, by_id):
        raise GraphlakeClientError(f"image {voc_id}: {by_id.relative_to(root)} is missing", "BAD_USER_INPUT")
    raise GraphlakeClientError(f"image {voc_id}: neither {named.relative_to(root)} (its XML's filename) nor "
                               f"{by_id.relative_to(root)} is there", "BAD_USER_INPUT")


def _values(png: Path, size: tuple[int, int], voc_id: str) -> list[int]:
    """The object numbers or class indices a segmentation PNG holds, ascending (background and void aside)."""
    return [int(v) for v in np.unique(_palette_indices(png, size, voc_id)) if v not in (0, VOID)]


def _png(mask: np.ndarray) -> bytes:
    """A binary mask as an 8-bit greyscale PNG (0 or 255), as the COCO import stores them."""
    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out, format="PNG")
    return out.getvalue()


# VOC 2012's lists of image ids (ImageSets/<folder>/<split>.txt), by the name `image_set` takes, any case.
IMAGE_SETS = {folder.lower(): folder for folder in ("Main", "Segmentation", "Layout", "Action")}


async def import_voc(lake: Client, root: Path, split: str, dataset: str, *, version: str | None = None,
                     mount: str | None = None, set_name: str | None = None, image_set: str = "Main",
                     say: Callable[[str], None] = lambda _: None) -> VocImport:
    """Import the images of ImageSets/<image_set>/<split>.txt under `root` into `dataset`; see the
    module's docstring. An image is one datum and its objects one ground truth whichever list named
    it: the Segmentation list's train images imported after Main's train are found there already
    (`kept`), and Main's train imported after the Segmentation list adds the records of its other
    images; records on images the list does not name are left alone."""
    folder = IMAGE_SETS.get(image_set.lower())
    if folder is None:
        raise GraphlakeClientError(f"image_set must be one of {', '.join(IMAGE_SETS.values())}, not {image_set!r}",
                                   "BAD_USER_INPUT", "image_set")
    listing = root / "ImageSets" / folder / f"{split}.txt"
    if not SAFE_ID.fullmatch(split) or not listing.is_file():
        raise GraphlakeClientError(f"no image set {split!r}: {listing} is missing", "BAD_USER_INPUT")
    ids = list(dict.fromkeys(line.split()[0] for line in listing.read_text().splitlines() if line.strip()))
    unsafe = [i for i in ids if not plain_name(i)]
    if unsafe:  # an id is a file name under Annotations/ and the segmentation folders: no paths
        raise GraphlakeClientError(f"{len(unsafe)} ids in {listing.name} are not plain names, e.g. {unsafe[0]!r}",
                                   "BAD_USER_INPUT")
    say(f"reading {len(ids)} images of {split}")
    images = [_read(root, i) for i in ids]
    shared: dict[str, str] = {}
    for image in images:  # two ids naming one JPEG would share its asset, and so its datum
        if (other := shared.setdefault(image.file.name, image.id)) != image.id:
            raise GraphlakeClientError(f"images {other} and {image.id} are both {image.file.name}", "BAD_USER_INPUT")
    names = {n for image in images for o in image.objects for n in (o["name"], *(p["name"] for p in o["parts"]))}
    labels = CLASSES + PARTS + sorted(names - set(CLASSES) - set(PARTS))
    used = names | {CLASSES[index - 1] for image in images for index in image.class_indices}
    done = VocImport(dataset, split, without_xml=[image.id for image in images if not image.has_xml])
    if done.without_xml:
        say(f"{len(done.without_xml)} images have no Annotations/<id>.xml, e.g. {done.without_xml[0]}: "
            "imported without objects")
    collection = await lake.collection_id(dataset)
    name = imported_set_name(set_name or dataset, "GROUND_TRUTH", split)
    # Lists of one split share its set (Main's and Segmentation's), whatever parts their XMLs name:
    # each schema version keeps the labels of the one before.
    found = await labelled_set(lake, dataset, labels, used, name, "GROUND_TRUTH", {"kind": "HUMAN", "name": "voc"},
                               keep_earlier=True)
    done.schema_id, done.set_id = found["schema"]["id"], found["id"]
    known = await known_datums(lake, "voc", dataset)
    # What this import makes on each image ("mask": its PNGs are uploaded only when its records go in),
    # when the set holds records to compare it with.
    made = {image.id: making for image in images
            if found["recordCount"] and (making := Records.of(image.file.name, _records_of(image, _unsent)))}
    # Records on the dataset's images this list does not name are another list's (Main's train holds
    # the Segmentation list's train images and more): only this list's images are compared.
    held = await records_held(lake, found, made, known, "list", named=set(ids))
    del made
    done.kept = held is None  # imported before: adding again would duplicate every record
    done.resumed = bool(held is not None and found["recordCount"])
    stages = ImageStages(lake, "voc", dataset, known, done, SPLITS.get(split, "UNASSIGNED"))
    described = {image.id: {"id": image.id, "file_name": image.file.name, "width": image.width, "height": image.height}
                 for image in images}

    async def store(chunk: list[_Image]) -> None:
        await stages.store([described[image.id] for image in chunk],
                           [(image.file, {"name": image.file.name, "collectionId": collection,
                                          "path": f"JPEGImages/{image.file.name}", "mount": mount}) for image in chunk])

    async def make_datums(chunk: list[_Image]) -> None:
        await stages.datums([described[image.id] for image in chunk])

    async def add(chunk: list[_Image]) -> None:
        if held is not None:
            check_held(found, held, stages.datum_of, [image.id for image in chunk], "list")
            added = await _add(lake, found["id"], [image for image in chunk if image.id not in held],
                               stages.asset_of, stages.datum_of, collection, mount)
            done.records_added += added  # after the await: another stage adds meanwhile

    adding = 0 if held is None else sum(1 for image in images
                                        if image.id not in held and (image.objects or image.class_indices))
    say(f"storing {len(images)} images, their datums and the records of {adding} of them, {STAGE_IMAGES} images a stage")
    await in_stages(chunks(images, STAGE_IMAGES), store, make_datums, add)
    done.datum_ids = [stages.datum_of[image.id] for image in images]
    if version:
        done.version = await dataset_version(lake, dataset, version, done.datum_ids, [found["id"]], say)
    return done


async def _add(lake: Client, set_id: str, images: list[_Image], asset_of: dict[str, str], datum_of: dict[str, str],
               collection: str, mount: str | None) -> int:
    """The records of every image, after its masks are uploaded as PNGs (at masks/<set>/<id>/..., so
    a rerun finds them unchanged)."""
    masks: dict[tuple[str, str, int], str] = {}  # (image id, "object" | "class", number) -> asset id
    wanted = [(image, kind, png, number) for image in images
              for kind, png, numbers in (("object", image.object_png, image.object_numbers),
                                         ("class", image.class_png, image.class_indices))
              if png is not None for number in numbers]
    if wanted:
        with tempfile.TemporaryDirectory(prefix="graphlake-voc-") as scratch:
            files = []
            for n, (image, kind, source, number) in enumerate(wanted):
                png = Path(scratch) / f"{n}.png"
                png.write_bytes(_png(_palette_indices(source, (image.width, image.height), image.id) == number))
                files.append((png, {"name": f"{image.id}-{kind}-{number}.png", "mediaType": "image/png",
                                    "collectionId": collection, "mount": mount,
                                    "path": f"masks/{set_id}/{image.id}/{kind}-{number}.png"}))
            uploaded = await lake.upload_batch(files)
        masks = {(image.id, kind, number): a["id"] for (image, kind, _, number), a in zip(wanted, uploaded, strict=True)}
    records = []
    for image in images:
        on = {"assetId": asset_of[image.id], "datumId": datum_of[image.id]}
        records += [{**on, **record} for record in _records_of(image, partial(_uploaded, masks, image.id))]
    return await add_records(lake, set_id, records)


def _uploaded(masks: dict[tuple[str, str, int], str], image_id: str, kind: str, number: int) -> str:
    """The asset of an image's mask, once uploaded."""
    return masks[(image_id, kind, number)]


def _unsent(kind: str, number: int) -> str:
    """A mask's asset before it is uploaded, as records_held compares records (without it)."""
    return "mask"


def _records_of(image: _Image, mask: Callable[[str, int], str]) -> list[dict[str, Any]]:
    """The records of one image (without its asset and datum), `mask(kind, number)` giving the
    asset of its "object" or "class" mask of that number."""
    key = f"voc:{image.id}"  # each record's name in the dataset (services/record_keys.py): a rerun adds none twice
    records = []
    for n, obj in enumerate(image.objects, start=1):
        records.append({"kind": "BBOX", "label": obj["name"], "geometry": {"bbox": obj["box"]},
                        "attributes": obj["attributes"], "key": f"{key}:object:{n}"})
        records += [{"kind": "BBOX", "label": part["name"], "geometry": {"bbox": part["box"]},
                     "attributes": {"voc_part_of": n}, "key": f"{key}:object:{n}:part:{p}"}
                    for p, part in enumerate(obj["parts"], start=1)]
    for number in image.object_numbers:
        records.append({"kind": "MASK", "label": image.objects[number - 1]["name"],
                        "geometry": {"mask": {"assetId": mask("object", number)}},
                        "attributes": {"voc_object": number, "voc_segmentation": "object"},
                        "key": f"{key}:object:{number}:mask"})
    for index in image.class_indices:
        records.append({"kind": "MASK", "label": CLASSES[index - 1],
                        "geometry": {"mask": {"assetId": mask("class", index)}},
                        "attributes": {"voc_segmentation": "class"}, "key": f"{key}:class:{index}:mask"})
    return records
