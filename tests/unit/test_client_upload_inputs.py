"""What upload_paths refuses before it sends anything: each with a code and the argument it is about."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphlake_client import Client, GraphlakeClientError

NOWHERE = "http://127.0.0.1:9"  # never reached: these are refused first


async def test_a_path_that_is_not_there_is_named_by_its_place(tmp_path: Path) -> None:
    (tmp_path / "here.csv").write_text("")
    async with Client(NOWHERE, None) as lake:
        with pytest.raises(GraphlakeClientError, match=r"gone\.csv: no such file or directory") as refused:
            await lake.upload_paths([tmp_path / "here.csv", tmp_path / "gone.csv"])
    assert (refused.value.code, refused.value.field) == ("BAD_USER_INPUT", "paths[1]")


async def test_a_manifest_naming_a_file_not_sent_is_refused_on_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "a.csv").write_text("")
    async with Client(NOWHERE, None) as lake:
        with pytest.raises(GraphlakeClientError, match=r"the manifest names files this upload does not send: b\.csv") as refused:
            await lake.upload_paths([tmp_path / "run"], manifest={"b.csv": {"labels": ["x"]}})
    assert (refused.value.code, refused.value.field) == ("BAD_USER_INPUT", "manifest")
