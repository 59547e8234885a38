"""A local mount's keys stay inside its root wherever links placed in it lead (storage/local.py).

Direct writers share the mount's filesystem, so any entry below the root may be a link; the store
lstat-s the parts of a key and resolves only when it meets a link."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

import pytest

from storage.local import LocalStore, UnsafeKey
from storage.signing import UrlSigner


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("not the lake's")
    return LocalStore("local", tmp_path / "root", UrlSigner(b"k", "http://x"), direct_writes=True)


def test_plain_keys_and_missing_directories_are_inside(store: LocalStore) -> None:
    store.root.mkdir()
    assert store.path("assets/abc") == store.root / "assets" / "abc"
    assert store.direct_path("assets/new") == store.root / "assets" / "new"  # its directory is made
    assert store.path("deep/er/than/that") == store.root / "deep/er/than/that"
    (store.root / "afile").write_text("x")
    assert store.path("afile/below") == store.root / "afile" / "below"  # below a file: as written, nothing to follow


def test_a_directory_linked_out_of_the_root_is_refused(store: LocalStore) -> None:
    store.root.mkdir()
    (store.root / "assets").symlink_to(store.root.parent / "outside")
    with pytest.raises(UnsafeKey):
        store.path("assets/secret")
    with pytest.raises(UnsafeKey):
        store.direct_path("assets/new")  # the entry's directory is checked too
    assert not (store.root.parent / "outside" / "new").exists()


def test_an_entry_linked_out_is_refused_to_follow_but_is_there_to_judge(store: LocalStore) -> None:
    store.root.mkdir()
    (store.root / "assets").mkdir()
    (store.root / "assets" / "escape").symlink_to(store.root.parent / "outside" / "secret")
    with pytest.raises(UnsafeKey):
        store.path("assets/escape")
    assert store.direct_path("assets/escape") == store.root / "assets" / "escape"  # the entry itself, not followed


def test_links_that_stay_inside_are_followed_and_chains_are_resolved_whole(store: LocalStore) -> None:
    store.root.mkdir()
    (store.root / "real").mkdir()
    (store.root / "real" / "file").write_text("ok")
    (store.root / "alias").symlink_to(store.root / "real")
    (store.root / "self").symlink_to(store.root)
    assert store.path("alias/file") == store.root / "alias" / "file"
    (store.root / "real" / "out").symlink_to(store.root.parent / "outside")  # a link inside a linked directory
    with pytest.raises(UnsafeKey):
        store.path("alias/out/secret")
    with pytest.raises(UnsafeKey):
        store.path("self")  # the root itself is no object
    (store.root / "real" / "up").symlink_to("../../outside/secret")  # relative, through ..
    with pytest.raises(UnsafeKey):
        store.path("real/up")


def test_stat_delete_and_listing_never_act_through_a_folder_swapped_for_a_link(store: LocalStore) -> None:
    """A direct writer swaps a key's folder for a link out of the root, again and again, while the
    server stats, deletes and lists: nothing outside is ever judged, listed or removed. The store acts
    through the descriptors of folders opened through no link; checking the path first and acting by
    it after let a swap land in between."""
    store.root.mkdir()
    outside = store.root.parent / "outside"
    real, link = store.root / "real", store.root / "link"
    real.mkdir()
    link.symlink_to(outside)
    (outside / "old").write_text("outside, long untouched")
    os.utime(outside / "old", (0, 0))
    stop = threading.Event()

    def swap() -> None:  # `assets` is now the real folder, now the link
        while not stop.is_set():
            for current in (real, link):
                with contextlib.suppress(OSError):
                    os.rename(current, store.root / "assets")
                    os.rename(store.root / "assets", current)

    swapper = threading.Thread(target=swap)
    swapper.start()
    seen: list = []

    async def meanwhile() -> None:
        for _ in range(2000):
            with contextlib.suppress(OSError, UnsafeKey):
                seen.append(await store.stat("assets/secret"))
            with contextlib.suppress(OSError, UnsafeKey):
                await store.delete("assets/secret")
            for page in store.files_older_than("assets", 60):
                seen.extend(page)

    try:
        asyncio.run(meanwhile())
    finally:
        stop.set()
        swapper.join()
    assert (outside / "secret").read_text() == "not the lake's"
    assert not any(s is not None for s in seen if not isinstance(s, str)) and "assets/old" not in seen
