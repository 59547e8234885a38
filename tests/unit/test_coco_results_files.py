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
    assert as_results([dict(e) for e in boxes]) == (boxes, 0)  # all came with a box: as they are

    masks = [{**base, "segmentation": _rle((2, 3, 10, 8)), "bbox": [2, 3, 10, 8], "score": 0.9},
             {**base, "segmentation": _rle((20, 5, 6, 6)), "score": 0.3}]
    written, _ = as_results([dict(e) for e in masks])
    assert [e["score"] for e in written] == [0.3, 0.9] and "bbox" not in written[0]  # one without a box first
    areas = {a["score"]: a["area"] for a in _loaded(written)}
    assert areas == {0.9: 10 * 8 - 1, 0.3: 6 * 6 - 1}  # the masks' areas, not their boxes'

    polygons = [{**base, "segmentation": [[1, 1, 9, 1, 9, 7]], "score": 0.8},
                {**base, "segmentation": [[3, 3, 13, 3, 13, 13, 3, 13]], "bbox": [3, 3, 10, 10], "score": 0.6}]
    written, _ = as_results([dict(e) for e in polygons])
    assert written[0]["bbox"] == [1, 1, 8, 6] and written[1]["bbox"] == [3, 3, 10, 10]
    assert len(_loaded(written)) == 2

    points = [{**base, "keypoints": [1, 1, 0.9, 5, 6, 0.2], "bbox": [0, 0, 9, 9], "score": 0.7},
              {**base, "keypoints": [2, 3, 0.5, 8, 9, 0.1], "score": 0.2}]
    written, _ = as_results([dict(e) for e in points])
    assert "bbox" not in written[0] and {a["score"]: a["bbox"] for a in _loaded(written)} == \
        {0.7: [1, 1, 4, 5], 0.2: [2, 3, 6, 6]}  # loadRes's boxes from the points, as for the file imported

    mixed = [masks[0], polygons[0]]  # a mask and a polygon: both get a box, and load
    assert len(_loaded(as_results([dict(e) for e in mixed])[0])) == 2

    # Keypoints decide for every entry when one has neither box nor segmentation, whatever the others hold.
    posed = [{**base, "keypoints": [1, 1, 0.9, 5, 6, 0.2], "score": 0.7},
             {**base, "keypoints": [2, 2, 0.5, 9, 9, 0.4], "segmentation": [[1, 1, 20, 1, 20, 20, 1, 20]], "score": 0.6}]
    written, _ = as_results([dict(e) for e in posed])
    assert not any("bbox" in e for e in written)
    assert {a["score"]: a["bbox"] for a in _loaded(written)} == {a["score"]: a["bbox"] for a in _loaded(posed)}
    # A results entry's box from all its points (its confidences may all be 0), as loadRes measures them.
    zeros = [{**base, "keypoints": [3, 4, 0, 7, 9, 0], "score": 0.5}, polygons[0]]
    written, _ = as_results([dict(e) for e in zeros])
    assert written[0]["bbox"] == [3, 4, 4, 5] and len(_loaded(written)) == 2


def test_a_result_of_no_shape_is_left_out_not_left_to_break_the_file() -> None:
    """A prediction record COCO has no place for (a rotated box, a polyline, a classification) became an
    entry of a score alone, which loadRes could not read: the whole file failed."""
    from graphlake_client.coco_shapes import as_results

    entries = [{"image_id": 1, "category_id": 1, "iscrowd": 0, "score": 0.4},
               {"image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [1, 2, 3, 4], "score": 0.5}]
    written, left_out = as_results(entries)
    assert left_out == 1 and [e["score"] for e in written] == [0.5] and len(_loaded(written)) == 1
    assert as_results([]) == ([], 0)


def test_keypoint_values_kept_on_a_record_are_written_back_only_when_they_are_its_own() -> None:
    """`keypoint_scores` (a results entry's third values, or a ground-truth file's other than 0, 1 and 2)
    come back as they went in; one not of the record's points (made by hand: another length, not numbers)
    leaves the flags."""
    from graphlake_client.coco_shapes import annotation_of, records_of

    category = {"name": "person", "keypoints": ["p", "q"]}
    truth = {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2, 3, 4, 0.5], "num_keypoints": 0}
    result = {"id": 2, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 1.0, 3, 4, 0.25], "score": 0.9}
    for annotation, ground_truth in ((truth, True), (result, False)):
        [record] = records_of(annotation, category, None)
        geometry = {"__typename": "Keypoints", "points": record["geometry"]["keypoints"]["points"]}
        made = {**record, "geometry": geometry}
        back = annotation_of([made], {}, ground_truth=ground_truth)
        assert back["keypoints"] == annotation["keypoints"]
        assert back["num_keypoints"] == (0 if ground_truth else 2)
        for wrong in ([1, 2, 3], ["a", "b"], [True, False], "1 2", None):
            other = annotation_of([{**made, "attributes": {**record["attributes"], "keypoint_scores": wrong}}], {},
                                  ground_truth=ground_truth)
            assert other["keypoints"][2::3] == [{None: 0, False: 1, True: 2}[p["visible"]] for p in geometry["points"]]
