"""The data dir and what lies in it are made owner-only, and what an earlier version left open is
tightened with a log line (graphlake/data_dir.py)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from graphlake.data_dir import owner_only_dir, tighten_tree


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_data_dir_is_made_owner_only_and_an_open_one_tightened(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    made = owner_only_dir(tmp_path / "new" / "lake")
    assert mode(made) == 0o700 and not caplog.records
    old = tmp_path / "old"
    old.mkdir()
    old.chmod(0o775)
    link = tmp_path / "link"
    link.symlink_to(old)
    with caplog.at_level(logging.WARNING, logger="graphlake"):
        assert owner_only_dir(link) == old  # the directory others would enter, not the link
    assert mode(old) == 0o700
    assert [r.getMessage() for r in caplog.records] == [f"{old} was open to other users (mode 775); made it owner-only (700)"]


def test_a_tree_is_tightened_with_one_line_and_links_are_not_followed(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "ferretdb"
    (root / "sqlite").mkdir(parents=True)
    (root / "sqlite" / "lake.sqlite").write_text("")
    (root / "state.json").write_text("")
    outside = tmp_path / "outside.txt"
    outside.write_text("")
    (root / "elsewhere").symlink_to(outside)
    for path, bits in ((root, 0o755), (root / "sqlite", 0o750), (root / "sqlite" / "lake.sqlite", 0o644),
                       (root / "state.json", 0o600), (outside, 0o644)):
        path.chmod(bits)
    with caplog.at_level(logging.WARNING, logger="graphlake"):
        assert tighten_tree(root) == 3
        assert tighten_tree(root) == 0  # nothing left to do, nothing said
    assert (mode(root), mode(root / "sqlite"), mode(root / "sqlite" / "lake.sqlite")) == (0o700, 0o700, 0o600)
    assert mode(root / "state.json") == 0o600 and mode(outside) == 0o644  # a link's target is not the tree's
    assert [r.getMessage() for r in caplog.records] == [f"made 3 entries under {root} owner-only: they were open to other users"]


def test_a_file_where_the_data_dir_goes_is_refused_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It was made owner-only (chmod 600), then the command failed on "File exists" without naming the setting.
    from pydantic import ValidationError

    from graphlake.settings import Settings, describe_errors

    taken = tmp_path / "lake"
    taken.write_text("notes")
    taken.chmod(0o644)
    with pytest.raises(NotADirectoryError):
        owner_only_dir(taken)
    monkeypatch.setenv("GRAPHLAKE_DATA_DIR", str(taken))
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert describe_errors(error.value) == [
        f"GRAPHLAKE_DATA_DIR: {str(taken)!r} exists and is not a directory: the data dir must be one (or not exist yet)"]
    assert mode(taken) == 0o644 and taken.read_text() == "notes"
