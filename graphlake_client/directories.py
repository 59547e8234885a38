"""Directory walking for uploads: which files a directory upload sends (gitignore rules), and the
zip a directory becomes when it is uploaded as one archive."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pathspec


def walk(root: Path, ignore: Iterable[str] = ()) -> list[str]:
    """Files under `root` as relative POSIX paths, minus `ignore` patterns and root's .gitignore."""
    patterns = list(ignore)
    gitignore = root / ".gitignore"
    if gitignore.is_file():
        patterns += gitignore.read_text().splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not spec.match_file(relative) and ".git" not in Path(relative).parts:
            files.append(relative)
    return files


def make_archive(root: Path, files: list[str]) -> Path:
    """A temporary zip of `files` (relative to `root`), named after the directory; the caller removes it."""
    fd, temp = tempfile.mkstemp(prefix=f"{root.resolve().name}-", suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(root / relative, relative)
    return Path(temp)
