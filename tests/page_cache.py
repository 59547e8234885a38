"""How much of a file the kernel holds in its page cache: what a write past the cache (a store's
objects, graphlake_client/direct._direct_copy) must leave out of it."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache now: mincore over a private mapping of it,
    the kernel's own account (mapping a page does not read it in; touching it would)."""
    size = path.stat().st_size
    vector = (ctypes.c_ubyte * file_pages(size))()
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, flags=mmap.MAP_PRIVATE) as mapped:
        start = ctypes.c_char.from_buffer(mapped)  # the mapping's address; its export ends with it
        try:
            if _LIBC.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del start
    return sum(byte & 1 for byte in vector)


def file_pages(size: int) -> int:
    """How many pages a file of `size` bytes spans."""
    return (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE


def direct_writes_skip_cache(directory: Path) -> bool:
    """Whether a write with O_DIRECT in `directory` leaves its pages out of the page cache: on a
    disk's file system, yes; tmpfs takes such writes as plain ones (Linux 6.6 on) or refuses them."""
    probe = directory / ".direct-probe"
    block = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
    try:
        block.write(os.urandom(1 << 20))
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
        try:
            os.write(fd, block)
        finally:
            os.close(fd)
        return cached_pages(probe) == 0
    except OSError:
        return False
    finally:
        block.close()
        probe.unlink(missing_ok=True)
