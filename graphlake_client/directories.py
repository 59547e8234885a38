"""Directory walking for uploads: which files a directory upload sends (gitignore rules), and the
zip a directory becomes when it is uploaded as one archive."""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pathspec

from graphlake_client.errors import GraphlakeClientError

_GLOB_CHARS = re.compile(r"([\[\]*?!#\\])")


def _rooted(directory: str, line: str) -> str | None:
    """A pattern of the .gitignore in `directory` (relative to the walk's root), as a pattern of the
    root's: git reads a pattern with a slash before its end relative to its own directory, and one
    without at any depth below it. Blank lines and comments give None."""
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"):
        return None
    negated, body = (True, line[1:]) if line.startswith("!") else (False, line)
    if directory:
        directory = _GLOB_CHARS.sub(r"\\\1", directory)  # "plate [A1]" is a name, not a pattern
        anchored = "/" in body.rstrip("/")
        body = f"{directory}/{body.lstrip('/')}" if anchored else f"{directory}/**/{body}"
    return ("!" if negated else "") + body


def walk(root: Path, ignore: Iterable[str] = (), *, follow_symlinks: bool = False) -> list[str]:
    """Files under `root` as relative POSIX paths, minus `ignore` patterns and what the .gitignore
    files of the tree exclude (each for its own directory and below, as git reads them), and never
    `.git`. A symbolic link is followed only with `follow_symlinks`: else a link to a file or a
    directory, inside the tree or out of it, is skipped, so an upload never reads outside its tree
    by accident. A directory that cannot be listed is an error (GraphlakeClientError naming it),
    never skipped."""
    patterns = list(ignore)
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    files = []
    for directory, subdirs, names in os.walk(root, onerror=_unreadable, followlinks=follow_symlinks):
        here = Path(directory).relative_to(root).as_posix()
        here = "" if here == "." else here
        if ".gitignore" in names:  # compiled again only when a .gitignore adds patterns
            try:
                lines = (Path(directory) / ".gitignore").read_text().splitlines()
            except OSError as error:  # its rules unknown, what it excludes would be sent
                _unreadable(error)
            patterns += [p for p in (_rooted(here, line) for line in lines) if p is not None]
            spec = pathspec.GitIgnoreSpec.from_lines(patterns)
        # Pruned in place: os.walk does not descend into what is ignored, .git, or (unless asked) a link.
        subdirs[:] = sorted(d for d in subdirs if d != ".git" and not spec.match_file(f"{here}/{d}/".lstrip("/"))
                            and (follow_symlinks or not os.path.islink(os.path.join(directory, d))))
        for name in sorted(names):
            relative = f"{here}/{name}".lstrip("/")
            full = os.path.join(directory, name)
            if name != ".git" and (follow_symlinks or not os.path.islink(full)) and os.path.isfile(full) \
                    and not spec.match_file(relative):  # a submodule's or worktree's .git is a file
                files.append(relative)
    return sorted(files)


def _unreadable(error: OSError) -> NoReturn:
    """os.walk's onerror: a directory it cannot list (or a .gitignore it cannot read). os.walk skips
    such a directory by default, and an upload then reported success with its files missing; the
    whole upload is refused instead, before anything is made, naming it (as a path under what was given)."""
    where = str(error.filename)
    what = "read this .gitignore" if where.endswith(".gitignore") else "list this directory"
    raise GraphlakeClientError(f"{where}: cannot {what} ({error.strerror or error}); nothing was "
                               "uploaded: make it readable, or leave it out with an ignore pattern",
                               refusal_code(error), where) from error


def refusal_code(error: OSError) -> str:
    """The code of a file or directory an upload cannot read: FORBIDDEN when permission is refused,
    NOT_FOUND when it is gone (removed since the walk listed it), BAD_USER_INPUT otherwise (not a
    file), for a directory the walk cannot list and a file that cannot be read alike."""
    if isinstance(error, PermissionError):
        return "FORBIDDEN"
    return "NOT_FOUND" if isinstance(error, FileNotFoundError) else "BAD_USER_INPUT"


def file_error(path: Path, error: OSError) -> GraphlakeClientError:
    """What the file system refused while an upload read `path` (or, for a direct write, wrote into
    the mount), coded (refusal_code) and named by the file at fault: `path` as the caller gave it, or
    the other file the error names. A file no one may read was a bare PermissionError from its
    hashing, and one removed after the walk a bare FileNotFoundError from its stat; each fails alone
    (an entry of UploadsFailed), since unlike a directory that cannot be listed it is known which
    file is missing."""
    why, code = error.strerror or str(error), refusal_code(error)
    if error.filename is None or str(error.filename) == str(path):
        return GraphlakeClientError(f"{path}: cannot read this file ({why})", code, str(path))
    return GraphlakeClientError(f"{error.filename}: {why} (uploading {path})", code, str(error.filename))


def make_archive(root: Path, files: list[str]) -> Path:
    """A temporary zip of `files` (relative to `root`), named after the directory; the caller removes
    it. A file that cannot be read refuses the archive (file_error), its temporary removed."""
    fd, temp = tempfile.mkstemp(prefix=f"{root.resolve().name}-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in files:
                source = root / relative
                try:
                    archive.write(source, relative)
                except OSError as error:
                    if str(error.filename) != str(source):  # the zip's own trouble (a full disk)
                        raise
                    raise file_error(source, error) from error
    except BaseException:
        os.unlink(temp)
        raise
    return Path(temp)
