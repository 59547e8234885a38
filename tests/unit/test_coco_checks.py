"""The COCO import's checks of its files, before anything is written (graphlake_client/coco_checks.py)."""

from __future__ import annotations

import pytest

from graphlake_client.coco_checks import check_entries
from graphlake_client.errors import GraphlakeClientError


@pytest.mark.parametrize("names", [["nose", "eye", "nose"], ["nose", ""], ["nose", " "]])
def test_a_category_names_its_keypoints_once_each_and_none_blank(names: list[str]) -> None:
    """The server refuses a keypoints record naming two points alike (or one ""): found by the import
    only as it wrote that category's records, the images, datums and sets were stored by then."""
    coco = {"images": [], "categories": [{"id": 1, "name": "person", "keypoints": names}], "annotations": []}
    with pytest.raises(GraphlakeClientError) as refused:
        check_entries(coco, None, "c.json", "r.json")
    assert refused.value.code == "BAD_USER_INPUT" and "category 0 of c.json" in str(refused.value)
    check_entries({**coco, "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "eye"]}]},
                  None, "c.json", "r.json")


def test_whole_float_ids_become_ints_and_fractions_are_refused() -> None:
    """pandas writes ids as 7.0, which pycocotools reads as 7; 7.5 is no id."""
    coco = {"images": [{"id": 7.0, "file_name": "a.png"}], "categories": [{"id": 1.0, "name": "cat"}],
            "annotations": [{"id": 3.0, "image_id": 7.0, "category_id": 1.0}]}
    results = [{"image_id": 7.0, "category_id": 1.0, "score": 0.5}]
    check_entries(coco, results, "c.json", "r.json")
    ids = [coco["images"][0]["id"], coco["categories"][0]["id"], *coco["annotations"][0].values(), *results[0].values()]
    assert ids == [7, 1, 3, 7, 1, 7, 1, 0.5] and all(type(i) is int for i in ids[:-1])
    with pytest.raises(GraphlakeClientError, match=r"image 0 of c.json: id is a whole number or a string, not 7.5"):
        check_entries({"images": [{"id": 7.5, "file_name": "a.png"}]}, None, "c.json", "r.json")
