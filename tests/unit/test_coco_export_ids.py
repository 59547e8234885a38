"""graphlake_client/coco_export._number: exported annotations keep the ids they were imported with."""

from __future__ import annotations

from graphlake_client.coco_export import _number


def test_annotations_keep_their_ids_and_the_rest_are_numbered_after_the_largest() -> None:
    # Two ground-truth sets both held id 5; one annotation had no whole-number id ("record-3").
    truth = [(5, {}), (9, {}), (5, {}), ("record-3", {}), (True, {})]
    _number(truth)
    assert [a["id"] for _, a in truth] == [5, 9, 10, 11, 12]
