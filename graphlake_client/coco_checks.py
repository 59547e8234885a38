"""What the COCO import checks of its files before it writes anything: each entry's keys and their
types, and each annotation's shapes, as COCO's format says them. A wrong one is BAD_USER_INPUT
naming the entry by its place in its file and what is wrong with it: found later, it failed deep in
the import (a KeyError or TypeError's traceback), after images, datums and sets were stored.

Kept apart from coco.py so these rules read in one place.
"""

from __future__ import annotations

import math
import posixpath
from pathlib import Path
from typing import Any

from graphlake_client.coco_shapes import mask_of
from graphlake_client.errors import GraphlakeClientError


def _bad(where: str, what: str) -> GraphlakeClientError:
    return GraphlakeClientError(f"{where}: {what}", "BAD_USER_INPUT")


def _finite(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _is_id(value: Any) -> bool:
    """An id COCO's tools take: a whole number or a string (a list is no key of a dict, a bool is no
    id; a whole float was made an int by _whole_id)."""
    return isinstance(value, int | str) and not isinstance(value, bool)


def _whole_id(value: Any) -> Any:
    """A whole float (7.0, as pandas and numpy write ids) as the int it is: pycocotools reads it as
    7, and a record's key names it as 7, not 7.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_ID = "a whole number or a string"


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


# What the import reads of each entry: the key, whether an entry must have it, and what it must be.
_IMAGE = (("id", True, _is_id, _ID),
          ("file_name", True, lambda v: isinstance(v, str) and v != "", "a path relative to --images (a string)"),
          ("width", False, _is_size, "a positive whole number"),
          ("height", False, _is_size, "a positive whole number"))
_CATEGORY = (("id", True, _is_id, _ID),
             ("name", True, lambda v: isinstance(v, str) and v != "", "a string"),
             # Names the server takes (services/annotations.py): each once, none blank.
             ("keypoints", False, lambda v: isinstance(v, list) and all(isinstance(n, str) and n.strip() for n in v)
              and len(set(v)) == len(v), "a list of the points' names, each once, none blank"),
             ("skeleton", False, lambda v: isinstance(v, list) and all(_finite(p) and len(p) == 2 for p in v),
              "a list of [point, point] pairs"))
_ANNOTATION = (("image_id", True, _is_id, _ID),
               ("category_id", True, _is_id, _ID),
               ("id", False, _is_id, _ID),
               ("iscrowd", False, lambda v: v in (0, 1), "0 or 1"),
               ("area", False, lambda v: _finite([v]), "a number"),
               ("num_keypoints", False, lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"))


def check_entries(coco: Any, results: Any, name: str, results_name: str) -> None:
    """BAD_USER_INPUT naming the first entry of the files (`coco` from `name`, `results` from
    `results_name`) that lacks what the import reads of it, or holds it as another type. Ids that
    are whole floats become ints (_whole_id)."""
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise GraphlakeClientError(f"{name} is not a COCO file: it has no list of images", "BAD_USER_INPUT")
    for key in ("categories", "annotations"):  # either may be left out; null or an object is no list
        if key in coco and not isinstance(coco[key], list):
            raise _bad(name, f"{key} is a list, not {_shown(coco[key])}")
    if results is not None and not isinstance(results, list):
        raise GraphlakeClientError(f"{results_name}: a COCO results file is a list of annotations", "BAD_USER_INPUT")
    wanted = [(f"image {{}} of {name}", coco["images"], _IMAGE),
              (f"category {{}} of {name}", coco.get("categories", []), _CATEGORY),
              (f"annotation {{}} of {name}", coco.get("annotations", []), _ANNOTATION),
              (f"entry {{}} of {results_name}", results or [], _ANNOTATION)]
    for where, entries, keys in wanted:
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise _bad(where.format(n), f"an entry is a JSON object, not {_shown(entry)}")
            for key, needed, valid, what in keys:
                if valid is _is_id and key in entry:
                    entry[key] = _whole_id(entry[key])
                value = entry.get(key)
                if value is None and needed:
                    raise GraphlakeClientError(f"{where.format(n)} has no {key}", "BAD_USER_INPUT")
                if value is not None and not valid(value):
                    raise _bad(where.format(n), f"{key} is {what}, not {_shown(value)}")


def check_annotation(annotation: dict[str, Any], where: str, categories: dict[Any, Any], images: dict[Any, Any],
                     name: str) -> None:
    """BAD_USER_INPUT naming the entry (by its place in its file) and what is wrong with it, before
    anything is written: an unknown category or image, or a bbox, polygon, RLE, keypoints or score
    that is not what COCO's format says (they failed deep in the import, after sets were made)."""
    if annotation["category_id"] not in categories:
        raise _bad(where, f"category_id {annotation['category_id']!r} is not a category of {name}")
    if annotation["image_id"] not in images:
        raise _bad(where, f"image_id {annotation['image_id']!r} is not an image of {name}")
    box = annotation.get("bbox")
    if box is not None and not (_finite(box) and len(box) == 4):
        raise _bad(where, f"bbox is [x, y, width, height], four numbers, not {_shown(box)}")
    if box is not None and (box[2] < 0 or box[3] < 0):
        raise _bad(where, f"bbox is [x, y, width, height], the width and height not negative, not {box!r}")
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        for part, flat in enumerate(segmentation):
            if not (_finite(flat) and len(flat) % 2 == 0):
                raise _bad(where, f"segmentation[{part}] is a polygon, an even count of numbers (x, y, x, y, ...)")
    elif segmentation is not None and not (isinstance(segmentation, dict) and "counts" in segmentation):
        raise _bad(where, "segmentation is a list of polygons or an RLE ({counts, size})")
    elif isinstance(segmentation, dict):
        _check_rle(segmentation, images[annotation["image_id"]], where)
    keypoints = annotation.get("keypoints")
    if keypoints is not None and not (_finite(keypoints) and len(keypoints) % 3 == 0):
        raise _bad(where, "keypoints are x, y, visibility for each point: a count of numbers divisible by 3")
    score = annotation.get("score")
    if score is not None and not (_finite([score]) and 0 <= score <= 1):
        raise _bad(where, f"score must be between 0 and 1, not {score!r}")


def _check_rle(segmentation: dict[str, Any], image: dict[str, Any], where: str) -> None:
    """An RLE's size, and its runs decoded by pycocotools as the import will (coco_shapes.mask_of):
    runs that do not cover the mask exactly were refused only once the images were stored (too
    many), or stored as a mask of whatever memory held (too few)."""
    size = segmentation.get("size")
    if size is not None and not (_finite(size) and len(size) == 2 and all(v == int(v) > 0 for v in size)):
        raise _bad(where, f"segmentation.size is [height, width], two positive whole numbers, not {_shown(size)}")
    counts = segmentation["counts"]
    if not isinstance(counts, str | list):
        raise _bad(where, f"segmentation.counts is a compressed RLE (a string) or a list of runs, not {_shown(counts)}")
    if size is None and not isinstance(counts, list):
        raise _bad(where, "segmentation is a compressed RLE without its size ([height, width])")
    if size is None and not (image.get("height") and image.get("width")):
        raise _bad(where, "segmentation is an uncompressed RLE without its size, and its image has no height and width")
    try:
        mask_of(segmentation, image.get("height"), image.get("width"))
    except ValueError as error:  # pycocotools' own refusals are ValueErrors too
        raise _bad(where, f"segmentation is not a valid RLE: {error}") from None


def plain_file_names(images: list[dict[str, Any]], root: Path, name: str) -> None:
    """Put each image's file_name as the plain relative path it names under `root` (--images):
    `./a.jpg`, `sub//b.jpg` and `sub/../sub/c.jpg`, as some tools write them, are a.jpg, sub/b.jpg
    and sub/c.jpg, the path the image is stored at and the name its datum keeps (the server refuses
    the others as paths, which it said only once stages before were stored), so two ways of naming
    one file are one name. BAD_USER_INPUT for a name that leads outside `root` (absolute, or up
    through `..`): judged on the name alone, so an images folder of links into a cache (DVC,
    git-annex) is read through them as an upload reads any file the user gives it."""
    outside = []
    for image in images:
        plain = posixpath.normpath(image["file_name"])
        if plain.startswith("/") or plain in (".", "..") or plain.startswith("../"):
            outside.append(image["file_name"])
        image["file_name"] = plain
    if outside:  # a file_name like ../../.ssh/id_rsa must not upload what lies outside --images
        raise GraphlakeClientError(f"{len(outside)} image file names of {name} lead outside {root}, e.g. "
                                   f"{outside[0]!r}", "BAD_USER_INPUT")
