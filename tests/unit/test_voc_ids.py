"""Which VOC image ids the import takes (graphlake_client/voc.py): any file name that stays in its folder."""

from __future__ import annotations

import pytest

from graphlake_client.voc import plain_name


@pytest.mark.parametrize("voc_id", ["2008_000001", "img(2)", "foto_ñ", "a b", "x..y", ".hidden", "画像-1"])
def test_a_file_name_is_an_id(voc_id: str) -> None:
    assert plain_name(voc_id)


@pytest.mark.parametrize("voc_id", ["", ".", "..", "a/b", "../x", "a\\b", "a\x00b", "a\x1fb"])
def test_what_could_leave_the_folder_is_no_id(voc_id: str) -> None:
    assert not plain_name(voc_id)
