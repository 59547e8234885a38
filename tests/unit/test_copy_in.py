"""LocalStore.copy_in, the copy an ingest makes: it hashes what it writes, records the digest with
the file, and refuses a source that is not the file checked before (swapped for another through a
link after the check, or of another size by the time it is read)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from graphlake_client import direct
from graphlake_client.direct import DIRECT_MIN_BYTES, on_local_disk
from storage import local as local_storage
from storage.local import SHA256_ATTR, LocalStore, SourceChanged
from storage.signing import UrlSigner
from tests.page_cache import cached_pages, direct_writes_skip_cache, file_pages


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore("local", tmp_path / "root", UrlSigner(b"k", "http://x"))


def test_the_copy_is_hashed_and_its_digest_recorded(store: LocalStore, tmp_path: Path) -> None:
    source = tmp_path / "frame.raw"
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one read
    source.write_bytes(data)
    digest = store.copy_in("assets/one", source, source.stat())
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.path("assets/one").read_bytes() == data
    assert os.getxattr(store.path("assets/one"), SHA256_ATTR).decode() == digest
    with pytest.raises(FileExistsError):  # a key is written once: never over another's bytes
        store.copy_in("assets/one", source, source.stat())


def test_another_file_or_size_than_the_one_checked_is_refused(store: LocalStore, tmp_path: Path) -> None:
    checked, other = tmp_path / "checked", tmp_path / "other"
    checked.write_bytes(b"inside the root")
    other.write_bytes(b"outside the root")
    seen = checked.stat()
    checked.unlink()
    checked.symlink_to(other)  # swapped for a link after the checks
    with pytest.raises(SourceChanged, match="no longer the file"):
        store.copy_in("assets/two", checked, seen)

    grown = tmp_path / "grown"
    grown.write_bytes(b"short")
    seen = grown.stat()
    with grown.open("ab") as file:
        file.write(b" and longer")  # written to while it is ingested
    with pytest.raises(SourceChanged, match="had 5 bytes when checked, 16 when copied"):
        store.copy_in("assets/three", grown, seen)


def test_an_object_of_a_mib_or_more_is_left_out_of_the_page_cache(store: LocalStore, tmp_path: Path) -> None:
    """An ingest's copy is written past the page cache (graphlake_client/direct._direct_copy says
    why), but for the page of its end; a small one is not, and both are whole and hashed."""
    if not direct_writes_skip_cache(tmp_path):
        pytest.skip(f"{tmp_path} is not on a file system whose O_DIRECT writes skip the page cache (tmpfs?)")
    assert store.bypass_cache == on_local_disk(store.root)  # (its own test: tests/unit/test_copy_hashing.py)
    store.bypass_cache = True  # whatever this machine's disk, so that a wrong answer there cannot skip this
    large, small = tmp_path / "large", tmp_path / "small"
    large_data, small_data = os.urandom(DIRECT_MIN_BYTES * 4 + 1), os.urandom(DIRECT_MIN_BYTES // 4)
    large.write_bytes(large_data)
    small.write_bytes(small_data)
    assert store.copy_in("assets/large", large, large.stat()) == hashlib.sha256(large_data).hexdigest()
    assert store.copy_in("assets/small", small, small.stat()) == hashlib.sha256(small_data).hexdigest()
    assert cached_pages(store.path("assets/large")) <= 1
    assert cached_pages(store.path("assets/small")) >= file_pages(len(small_data)) // 2  # (the kernel may drop some)
    assert store.path("assets/large").read_bytes() == large_data and store.path("assets/small").read_bytes() == small_data


def test_a_store_off_a_local_disk_copies_through_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On NFS, SMB, FUSE or tmpfs (as on_local_disk tells, here told so): no direct writes, the kernel's copy."""
    monkeypatch.setattr(local_storage, "on_local_disk", lambda path: False)
    store = LocalStore("nas", tmp_path / "root", UrlSigner(b"k", "http://x"))
    assert not store.bypass_cache
    direct_sets: list[int] = []
    real = direct.fcntl.fcntl

    def observed(fd: int, command: int, *args: int) -> int:
        if command == direct.fcntl.F_SETFL and args and args[0] & os.O_DIRECT:
            direct_sets.append(fd)
        return real(fd, command, *args)

    monkeypatch.setattr(direct.fcntl, "fcntl", observed)
    source = tmp_path / "large"
    data = os.urandom(DIRECT_MIN_BYTES * 2)
    source.write_bytes(data)
    assert store.copy_in("assets/large", source, source.stat()) == hashlib.sha256(data).hexdigest()
    assert store.path("assets/large").read_bytes() == data and direct_sets == []
