"""The data dir is its owner's alone: it holds the embedded database (whoever can open its files or
its socket can read the lake, or write themselves an ADMIN token), its socket, the signing secret
and the local mount's objects.

Made owner-only (0700, files 0600), and made so again at every start when an older version, a
copy or a hand-made directory left it readable or writable by others, with a log line saying so.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("graphlake")

OWNER_ONLY = 0o077  # the permission bits group and others must not have


def owner_only_dir(path: Path) -> Path:
    """`path` as a directory only its owner may enter (0700): made so if new, tightened if looser
    (logged). Returns it resolved. Its parents, when made here, get the usual permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)  # the mode is masked by the umask, never widened: 0700 or tighter
    except FileExistsError:
        if not path.is_dir():  # a file (or a link to one): never ours to chmod, nor a directory to use
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path)) from None
    path = path.resolve()  # a link's target is what others would enter
    tighten(path)
    return path


def tighten(path: Path) -> bool:
    """Take group and other permissions away from `path`; True if it had any, and then say so in the log."""
    old = _tighten(path)
    if old is not None:
        log.warning("%s was open to other users (mode %o); made it owner-only (%o)", path, old, old & ~OWNER_ONLY)
    return old is not None


def tighten_tree(root: Path) -> int:
    """Tighten `root` and everything below it (not following links), with one log line for all;
    returns how many entries changed. For small trees only (the embedded database's files, never a
    mount's objects)."""
    changed = int(_tighten(root) is not None)
    for folder, dirs, files in os.walk(root):
        changed += sum(_tighten(Path(folder, name)) is not None for name in dirs + files)
    if changed:
        log.warning("made %d entries under %s owner-only: they were open to other users", changed, root)
    return changed


def _tighten(path: Path) -> int | None:
    """The mode `path` had if it gave group or others any permission (now taken away), else None.
    A link is left alone (its own mode means nothing), and so is an entry gone meanwhile (a running
    database removes its journal files as it goes)."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(found.st_mode)
    if stat.S_ISLNK(found.st_mode) or not mode & OWNER_ONLY:
        return None
    try:
        os.chmod(path, mode & ~OWNER_ONLY)
    except FileNotFoundError:
        return None
    except PermissionError:  # another user's (a volume mounted as is, say): say so, and serve all the same
        log.warning("%s is open to other users (mode %o) and not ours to change: make it owner-only", path, mode)
        return None
    return mode
