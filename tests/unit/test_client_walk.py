"""Which files a directory upload sends (graphlake_client.directories.walk): the tree's .gitignore
files as git reads them, never .git, and no symbolic link unless asked."""

from __future__ import annotations

import os
from pathlib import Path

from graphlake_client.directories import walk


def tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_every_gitignore_applies_to_its_own_directory_and_below(tmp_path: Path) -> None:
    root = tree(tmp_path / "run", {
        ".gitignore": "*.tmp\n",
        "a.csv": "", "b.tmp": "",
        "raw/.gitignore": "# scratch files\n*.log\n/cache/\n!keep.log\n",
        "raw/x.log": "", "raw/keep.log": "", "raw/cache/c.bin": "", "raw/deep/y.log": "", "raw/deep/cache/d.bin": "",
        "other/z.log": "", ".git/HEAD": "",
    })
    assert walk(root) == [".gitignore", "a.csv", "other/z.log", "raw/.gitignore", "raw/deep/cache/d.bin", "raw/keep.log"]
    assert "a.csv" not in walk(root, ["*.csv"])


def test_symbolic_links_are_skipped_unless_asked(tmp_path: Path) -> None:
    outside = tree(tmp_path / "outside", {"secret.txt": "s", "dir/inner.txt": "i"})
    root = tree(tmp_path / "run", {"a.txt": "a"})
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside / "dir", root / "linked-dir")
    assert walk(root) == ["a.txt"]
    assert walk(root, follow_symlinks=True) == ["a.txt", "link.txt", "linked-dir/inner.txt"]


def test_names_are_not_patterns_and_a_git_file_is_never_sent(tmp_path: Path) -> None:
    """A directory named like a glob still scopes its .gitignore; a submodule's `.git` file stays home."""
    root = tree(tmp_path / "run", {
        "plate [A1]/.gitignore": "*.log\n", "plate [A1]/x.log": "", "plate [A1]/x.csv": "",
        "plate A/x.log": "", "sub/.git": "gitdir: ../.git/modules/sub\n", "sub/data.csv": "",
    })
    assert walk(root) == ["plate A/x.log", "plate [A1]/.gitignore", "plate [A1]/x.csv", "sub/data.csv"]
