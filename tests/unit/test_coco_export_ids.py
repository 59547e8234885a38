"""graphlake_client/coco_export._number: exported annotations keep the ids they were imported with."""

from __future__ import annotations

from graphlake_client.coco_export import _number


def test_annotations_keep_their_ids_and_the_rest_are_numbered_after_the_largest() -> None:
    # Two ground-truth sets both held id 5; one annotation had no whole-number id ("record-3").
    truth = [(5, {}), (9, {}), (5, {}), ("record-3", {}), (True, {})]
    _number(truth)
    assert [a["id"] for _, a in truth] == [5, 9, 10, 11, 12]


def test_a_second_image_of_one_name_gets_its_asset_id_before_its_own_suffix() -> None:
    """The COCO and Hugging Face exports' rename: a dot in a folder's name is not the file's suffix
    (`v1.2/frame` became `v1-<id>.2/frame`)."""
    from graphlake_client.version_reading import with_id

    assert with_id("v1.2/frame", "QX") == "v1.2/frame-QX"
    assert with_id("v1.2/frame.png", "QX") == "v1.2/frame-QX.png"
    assert with_id("a.tar.gz", "QX") == "a.tar-QX.gz"
    assert with_id("plain", "QX") == "plain-QX"
