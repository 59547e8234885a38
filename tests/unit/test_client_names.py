"""A server-given file name never takes a download outside its destination (graphlake_client.downloads.safe_name),
fits a file system (255 bytes of UTF-8, its extension kept, no character split), and a file put under
such a name never replaces one that appeared after the download began."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphlake_client import GraphlakeClientError
from graphlake_client.downloads import NAME_MAX_BYTES, _place, file_name, safe_name


@pytest.mark.parametrize(("given", "saved"), [
    ("scan.tif", "scan.tif"),
    ("../../etc/passwd", "passwd"),
    ("/etc/cron.d/job", "job"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("run-42/plate 7.csv", "plate 7.csv"),
    ("..", "download"),
    ("dir/", "download"),
    ("  ", "download"),
    ("a\x00b.txt", "ab.txt"),
])
def test_a_download_name_is_a_base_name(given: str, saved: str) -> None:
    assert safe_name(given) == saved


@pytest.mark.parametrize("name", ["é" * 50 + "a" * 160 + ".bin", "a" * 254 + "é.tif", "日本" * 100, "x" * 600,
                                  "notes." + "y" * 300])
def test_a_long_name_is_trimmed_whole_characters_first_keeping_its_extension(name: str) -> None:
    trimmed = safe_name(f"../dir/{name}")
    assert len(trimmed.encode()) <= NAME_MAX_BYTES and name.startswith(trimmed.rsplit(".", 1)[0][:10])
    assert trimmed.encode().decode() == trimmed  # whole characters
    if name.endswith((".bin", ".tif")):
        assert trimmed.endswith(name[-4:])


def test_a_short_name_is_kept_and_a_values_json_fits_too() -> None:
    assert safe_name("résumé 7.pdf") == "résumé 7.pdf"
    value = file_name({"name": "v" * 255, "kind": "VALUE"})
    assert value.endswith(".json") and len(value.encode()) == NAME_MAX_BYTES


def test_a_file_that_appeared_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    temp, target = tmp_path / ".download-0123456789abcdef", tmp_path / "notes.txt"
    temp.write_text("downloaded")
    target.write_text("made after the download checked the name")
    with pytest.raises(GraphlakeClientError) as taken:
        _place(temp, target, replace=False)
    assert taken.value.code == "CONFLICT" and target.read_text() == "made after the download checked the name"
    _place(temp, target.with_name("free.txt"), replace=False)
    assert (tmp_path / "free.txt").read_text() == "downloaded" and not temp.exists()
