"""How much of a file the kernel holds in its page cache: what a write past the cache (a store's
objects, graphlake_client/direct._direct_copy) must leave out of it."""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache now: mincore over a private mapping of it,
    the kernel's own account (mapping a page does not read it in; touching it would)."""
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, flags=mmap.MAP_PRIVATE) as mapped:
        start = ctypes.c_char.from_buffer(mapped)  # the mapping's address; its export ends with it
        try:
            if _LIBC.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del start
    return sum(byte & 1 for byte in vector)


def file_pages(size: int) -> int:
    return (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
