"""Which files a directory upload sends (graphlake_client.directories.walk): the tree's .gitignore
files as git reads them, never .git, and no symbolic link unless asked."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graphlake_client import GraphlakeClientError
from graphlake_client.directories import walk

NOBODY = 65534


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


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can reach: pytest's own are its user's alone (mode 700)."""
    with tempfile.TemporaryDirectory() as made:
        os.chmod(made, 0o755)
        yield Path(made)


def as_nobody(call: Callable[[], Any]) -> Any:
    """`call()`'s result or exception, run in a forked child without root's rights: root lists a
    mode-000 directory all the same, so a test as root would not see the failure (the tests run as
    root here). Forked, not a new interpreter: the venv's Python may sit where nobody can run it."""
    if os.geteuid() != 0:
        return call()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                outcome: Any = call()
            except Exception as error:  # sent back whole, raised in the parent
                outcome = error
            with os.fdopen(write, "wb") as out:
                pickle.dump(outcome, out)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        outcome = pickle.load(answer)
    os.waitpid(child, 0)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def test_a_directory_that_cannot_be_listed_is_an_error_naming_it(shared_tmp: Path) -> None:
    """os.walk skipped it without a word: the upload reported success with its files missing."""
    root = tree(shared_tmp / "run", {"a.csv": "", "locked/b.csv": "", "open/c.csv": ""})
    for directory in (shared_tmp, root, root / "open"):
        directory.chmod(0o755)
    for file in root.rglob("*.csv"):
        file.chmod(0o644)
    (root / "locked").chmod(0o000)
    try:
        with pytest.raises(GraphlakeClientError, match=r"run/locked: cannot list this directory") as refused:
            as_nobody(lambda: walk(root))
        assert refused.value.code == "FORBIDDEN" and refused.value.field == str(root / "locked")
        assert as_nobody(lambda: walk(root, ["locked/"])) == ["a.csv", "open/c.csv"]  # left out on purpose: fine
        (root / "open" / ".gitignore").write_text("c.csv\n")
        (root / "open" / ".gitignore").chmod(0o000)  # its rules unknown: what it excludes would go
        with pytest.raises(GraphlakeClientError, match=r"open/\.gitignore: cannot read this \.gitignore") as unread:
            as_nobody(lambda: walk(root, ["locked/"]))
        assert unread.value.code == "FORBIDDEN" and unread.value.field == str(root / "open" / ".gitignore")
    finally:
        (root / "locked").chmod(0o755)
