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
