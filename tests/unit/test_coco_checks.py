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
