"""A server-given file name never takes a download outside its destination (graphlake_client.downloads.safe_name)."""

from __future__ import annotations

import pytest

from graphlake_client.downloads import safe_name


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
