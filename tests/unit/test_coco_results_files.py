"""graphlake_client/coco_export.results_files: which results file each prediction set of a COCO
export goes to. One set: results.json, as COCO's tools name it; several: one file each, named after
its model, so two models' detections are never one results list."""

from __future__ import annotations

from typing import Any

from graphlake_client.coco_export import results_files


def prediction_set(set_id: str, name: str, model: str | None, version: str | None = None) -> dict[str, Any]:
    return {"id": set_id, "name": name, "purpose": "PREDICTION",
            "source": None if model is None else {"kind": "MODEL", "name": model, "version": version}}


def test_the_only_set_is_results_json() -> None:
    assert results_files([prediction_set("A", "parts detr predictions", "detr")]) == {"A": "results.json"}


def test_several_are_named_after_their_models() -> None:
    assert results_files([prediction_set("A", "parts detr predictions", "detr"),
                          prediction_set("B", "parts yolo predictions", "yolov8", "8.1")]) == \
        {"A": "results-detr.json", "B": "results-yolov8-8.1.json"}


def test_sets_of_one_model_are_named_after_the_sets() -> None:
    """A model's train and val sets (one import per split file), beside another model's."""
    assert results_files([prediction_set("A", "coco detr predictions (train)", "detr"),
                          prediction_set("B", "coco detr predictions (validation)", "detr"),
                          prediction_set("C", "coco yolo predictions", "yolo")]) == \
        {"A": "results-coco-detr-predictions-train.json", "B": "results-coco-detr-predictions-validation.json",
         "C": "results-yolo.json"}


def test_names_are_safe_on_any_file_system_and_never_one_file() -> None:
    """Slashes and dots lead nowhere, letters are ASCII and lower case (DETR and detr are one file on
    macOS and Windows), a name of nothing usable is `set`, and what would still be one file is numbered."""
    files = results_files([prediction_set("A", "x", "../etc/passwd"), prediction_set("B", "y", "Détr v2"),
                           prediction_set("C", "DETR", None), prediction_set("D", "détr", None),
                           prediction_set("E", "???", None), prediction_set("F", "x" * 300, None)])
    assert files == {"A": "results-etc-passwd.json", "B": "results-detr-v2.json", "C": "results-detr.json",
                     "D": "results-detr-2.json", "E": "results-set.json", "F": f"results-{'x' * 80}.json"}
    assert len(set(files.values())) == len(files)


def _loaded(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries as pycocotools' loadRes reads them, against ground truth of one 40 x 30 image."""
    import copy

    from pycocotools.coco import COCO

    truth = COCO()
    truth.dataset = {"images": [{"id": 1, "width": 40, "height": 30}], "annotations": [],
                     "categories": [{"id": 1, "name": "a", "keypoints": ["p", "q"]}]}
    truth.createIndex()
    loaded = truth.loadRes(copy.deepcopy(entries))
    return loaded.loadAnns(loaded.getAnnIds())


def _rle(box: tuple[int, int, int, int]) -> dict[str, Any]:
    import numpy as np
    from pycocotools import mask

    pixels = np.zeros((30, 40), dtype=np.uint8)
    x, y, w, h = box
    pixels[y:y + h, x:x + w] = 1
    pixels[y, x] = 0  # not its box
    encoded = mask.encode(np.asfortranarray(pixels))
    return {"size": [30, 40], "counts": encoded["counts"].decode()}


def test_results_entries_are_written_so_that_loadres_reads_them_all() -> None:
    """pycocotools' loadRes takes the first entry's route (box, mask, keypoints) for every entry of a
    results file: a box given to mask results made them box results (their areas the boxes'), a
    polygon result without a box cannot be measured, and an entry without a box after one with it
    could not be read at all."""
    from graphlake_client.coco_shapes import as_results

    base = {"image_id": 1, "category_id": 1, "iscrowd": 0}
    boxes = [{**base, "bbox": [1, 2, 3, 4], "score": 0.5}, {**base, "bbox": [2, 2, 5, 5], "score": 0.4}]
    assert as_results([dict(e) for e in boxes]) == boxes  # all came with a box: as they are

    masks = [{**base, "segmentation": _rle((2, 3, 10, 8)), "bbox": [2, 3, 10, 8], "score": 0.9},
             {**base, "segmentation": _rle((20, 5, 6, 6)), "score": 0.3}]
    written = as_results([dict(e) for e in masks])
    assert [e["score"] for e in written] == [0.3, 0.9] and "bbox" not in written[0]  # one without a box first
    areas = {a["score"]: a["area"] for a in _loaded(written)}
    assert areas == {0.9: 10 * 8 - 1, 0.3: 6 * 6 - 1}  # the masks' areas, not their boxes'

    polygons = [{**base, "segmentation": [[1, 1, 9, 1, 9, 7]], "score": 0.8},
                {**base, "segmentation": [[3, 3, 13, 3, 13, 13, 3, 13]], "bbox": [3, 3, 10, 10], "score": 0.6}]
    written = as_results([dict(e) for e in polygons])
    assert written[0]["bbox"] == [1, 1, 8, 6] and written[1]["bbox"] == [3, 3, 10, 10]
    assert len(_loaded(written)) == 2

    points = [{**base, "keypoints": [1, 1, 0.9, 5, 6, 0.2], "bbox": [0, 0, 9, 9], "score": 0.7},
              {**base, "keypoints": [2, 3, 0.5, 8, 9, 0.1], "score": 0.2}]
    written = as_results([dict(e) for e in points])
    assert "bbox" not in written[0] and {a["score"]: a["bbox"] for a in _loaded(written)} == \
        {0.7: [1, 1, 4, 5], 0.2: [2, 3, 6, 6]}  # loadRes's boxes from the points, as for the file imported

    mixed = [masks[0], polygons[0]]  # a mask and a polygon: both get a box, and load
    assert len(_loaded(as_results([dict(e) for e in mixed]))) == 2
