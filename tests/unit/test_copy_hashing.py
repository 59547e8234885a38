"""graphlake_client.direct.copy_hashing: the one loop every copy of stored bytes runs (ingest, exports'
direct copies, backups, bundle checks). It reuses one buffer per thread, so each call must hand on
only the bytes it read, whatever an earlier, longer file left in the buffer. Between two plain files
the kernel copies and the copy is read back to hash; anything else goes through the loop."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from graphlake_client import direct
from graphlake_client.direct import COPY_CHUNK, DIRECT_MIN_BYTES, copy_hashing, file_sha256, stream_digest
from tests.page_cache import cached_pages, direct_writes_skip_cache, file_pages


def test_a_copy_is_the_source_byte_for_byte_with_its_digest(tmp_path: Path) -> None:
    # Longer than one chunk and not a multiple of it, then shorter than one, then empty: in this
    # order the shorter copies run on a buffer the longer one filled.
    sizes = [2 * COPY_CHUNK + 12345, 1000, 0]
    for n, size in enumerate(sizes):
        data = os.urandom(size)
        source, target = tmp_path / f"source-{n}", tmp_path / f"target-{n}"
        source.write_bytes(data)
        with source.open("rb") as reader, target.open("xb") as writer:
            copied = copy_hashing(reader, writer)
        assert copied == (size, hashlib.sha256(data).hexdigest())
        assert target.read_bytes() == data
        assert file_sha256(source) == hashlib.sha256(data).hexdigest()


def test_hashing_alone_reads_what_is_left_of_any_binary_stream(tmp_path: Path) -> None:
    data = os.urandom(COPY_CHUNK + 7)
    stream = io.BytesIO(data)
    stream.seek(5)
    assert stream_digest(stream) == (len(data) - 5, hashlib.sha256(data[5:]).hexdigest())
    # A tar member, as a bundle's payload is read from a .tar.
    member = tmp_path / "payload"
    member.write_bytes(data)
    with tarfile.open(tmp_path / "bundle.tar", "w") as tar:
        tar.add(member, arcname="payloads/x")
    with tarfile.open(tmp_path / "bundle.tar") as tar:
        extracted = tar.extractfile("payloads/x")
        assert extracted is not None
        assert stream_digest(extracted) == (len(data), hashlib.sha256(data).hexdigest())


def test_threads_copying_at_once_do_not_share_a_buffer(tmp_path: Path) -> None:
    payloads = [os.urandom(COPY_CHUNK // 2 + n * 4099) for n in range(16)]
    for n, data in enumerate(payloads):
        (tmp_path / f"in-{n}").write_bytes(data)

    def copy(n: int) -> tuple[int, str]:
        with (tmp_path / f"in-{n}").open("rb") as reader, (tmp_path / f"out-{n}").open("xb") as writer:
            return copy_hashing(reader, writer)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(copy, range(len(payloads))))
    for n, data in enumerate(payloads):
        assert results[n] == (len(data), hashlib.sha256(data).hexdigest())
        assert (tmp_path / f"out-{n}").read_bytes() == data


def test_a_copy_inside_a_copy_gets_a_buffer_of_its_own(tmp_path: Path) -> None:
    """A writer that hashes something else on the same thread (as a caller's wrapper could) must not
    overwrite the bytes the outer copy is writing."""
    outer, inner = os.urandom(COPY_CHUNK + 99), os.urandom(5000)

    class Hashing(io.BytesIO):
        def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
            assert stream_digest(io.BytesIO(inner)) == (len(inner), hashlib.sha256(inner).hexdigest())
            return super().write(data)

    out = Hashing()
    assert copy_hashing(io.BytesIO(outer), out) == (len(outer), hashlib.sha256(outer).hexdigest())
    assert out.getvalue() == outer


def test_buffers_kept_are_few_however_many_threads_copied() -> None:
    from graphlake_client import direct

    data = os.urandom(1000)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: stream_digest(io.BytesIO(data)), range(64)))
    assert len(direct._BUFFERS._free) <= direct._Buffers.KEPT


def test_a_reader_with_nothing_ready_or_a_writer_taking_part_is_an_error_not_a_short_copy() -> None:
    class NothingReady(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> None:  # type: ignore[no-untyped-def,override]
            return None

    class TakesHalf(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
            return max(1, len(data) // 2)

    with pytest.raises(BlockingIOError):
        stream_digest(NothingReady())
    with pytest.raises(OSError, match="part of"):
        copy_hashing(io.BytesIO(b"x" * 100), TakesHalf())


@pytest.fixture
def kernel_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes each copy_file_range call copied (the real call, counted)."""
    copied: list[int] = []
    real = os.copy_file_range

    def counted(*args: int) -> int:
        count = real(*args)
        copied.append(count)
        return count

    monkeypatch.setattr(direct.os, "copy_file_range", counted)
    return copied


def test_between_two_files_the_kernel_copies_from_where_each_stands(tmp_path: Path, kernel_copies: list[int]) -> None:
    data = os.urandom(COPY_CHUNK + 4321)
    source, target = tmp_path / "source", tmp_path / "target"
    source.write_bytes(data)
    with source.open("rb") as reader, target.open("w+b") as writer:
        assert reader.read(10) == data[:10]  # read ahead past 10 by the buffered reader: copied from 10 on
        writer.write(b"head")  # still in the writer's buffer: flushed first, the copy goes after it
        assert copy_hashing(reader, writer) == (len(data) - 10, hashlib.sha256(data[10:]).hexdigest())
        assert reader.read() == b"" and writer.tell() == 4 + len(data) - 10  # both left after what was copied
        writer.write(b"tail")
    assert target.read_bytes() == b"head" + data[10:] + b"tail"
    assert sum(kernel_copies) == len(data) - 10


def test_a_writer_that_cannot_read_or_a_tar_member_goes_through_the_loop(tmp_path: Path, kernel_copies: list[int]) -> None:
    data = os.urandom(COPY_CHUNK // 3)
    source = tmp_path / "source"
    source.write_bytes(data)
    with source.open("rb") as reader, (tmp_path / "write-only").open("xb") as writer:
        assert copy_hashing(reader, writer) == (len(data), hashlib.sha256(data).hexdigest())
    # A tar member is a buffered reader whose descriptor is the whole tar's: a kernel copy from it
    # would store the tar's headers and neighbours.
    with tarfile.open(tmp_path / "bundle.tar", "w") as tar:
        tar.add(tmp_path / "write-only", arcname="before")
        tar.add(source, arcname="payloads/x")
    with tarfile.open(tmp_path / "bundle.tar") as tar, (tmp_path / "from-tar").open("x+b") as writer:
        member = tar.extractfile("payloads/x")
        assert member is not None
        assert copy_hashing(member, writer) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "write-only").read_bytes() == (tmp_path / "from-tar").read_bytes() == data
    assert kernel_copies == []


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm here")
def test_a_copy_the_kernel_refuses_goes_through_the_loop(tmp_path: Path, kernel_copies: list[int]) -> None:
    """Across filesystems (tmpfs to the test's disk) the kernel may refuse (EXDEV): nothing was
    written, and the bytes are copied here instead."""
    data = os.urandom(COPY_CHUNK + 1)
    with tempfile.NamedTemporaryFile(dir="/dev/shm") as shm:
        shm.write(data)
        shm.flush()
        with open(shm.name, "rb") as reader, (tmp_path / "target").open("x+b") as writer:
            assert copy_hashing(reader, writer) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "target").read_bytes() == data
    assert sum(kernel_copies) in (0, len(data))  # refused (nothing copied), or this kernel copies across


def _kernel_copy_faulting(monkeypatch: pytest.MonkeyPatch, fault) -> None:  # type: ignore[no-untyped-def]
    """copy_file_range as the kernel's, but `fault(real, calls, *args)` decides each call."""
    real, calls = os.copy_file_range, []

    def faulting(*args: int) -> int:
        calls.append(args)
        return fault(real, len(calls), *args)

    monkeypatch.setattr(direct.os, "copy_file_range", faulting)


def _copy_files(folder: Path, data: bytes) -> tuple[tuple[int, str], bytes]:
    """`data` copied from one new file of `folder` (made) into another: the result, and the copy's bytes."""
    folder.mkdir()
    source, target = folder / "source", folder / "target"
    source.write_bytes(data)
    with source.open("rb") as reader, target.open("x+b") as writer:
        result = copy_hashing(reader, writer)
    return result, target.read_bytes()


def test_a_kernel_copy_that_fails_part_way_or_for_want_of_space_is_an_error(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a kernel that copied nothing and cannot copy between the two files hands the copy to
    the loop: a failure after some bytes, or a full disk, is the caller's error (it removes the
    target), never a copy that silently starts again or comes out short."""
    def part_then_refuse(real, calls, source, target, count, *offsets):  # type: ignore[no-untyped-def]
        if calls == 1:
            return real(source, target, 4096, *offsets)
        raise OSError(errno.EXDEV, "refused after a part")

    _kernel_copy_faulting(monkeypatch, part_then_refuse)
    with pytest.raises(OSError, match="refused after a part"):
        _copy_files(tmp_path / "a", os.urandom(10_000))

    def no_space(real, calls, *args):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "no space left")

    _kernel_copy_faulting(monkeypatch, no_space)
    with pytest.raises(OSError, match="no space left"):
        _copy_files(tmp_path / "b", os.urandom(10_000))


def test_what_is_hashed_is_what_was_stored_and_a_kernel_copy_that_finds_nothing_is_redone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(3 * 4096)

    def stores_other_bytes(real, calls, source, target, count, at, start):  # type: ignore[no-untyped-def]
        copied = real(source, target, count, at, start)
        if copied:
            os.pwrite(target, b"\0" * 4096, start)  # the copy is not the source (a fault on the way)
        return copied

    _kernel_copy_faulting(monkeypatch, stores_other_bytes)
    (size, digest), stored = _copy_files(tmp_path / "a", data)
    assert stored != data and (size, digest) == (len(data), hashlib.sha256(stored).hexdigest())

    # A file system whose files look empty to the kernel copy (procfs, some FUSE mounts): the
    # first call copies nothing though the source has bytes; they are copied here instead.
    _kernel_copy_faulting(monkeypatch, lambda real, calls, *args: 0)
    assert _copy_files(tmp_path / "b", data) == ((len(data), hashlib.sha256(data).hexdigest()), data)


# --- bypass_cache: a store's objects, written past the page cache


@pytest.fixture
def on_disk(tmp_path: Path) -> None:
    """The tests below write past the page cache into tmp_path: it must be on a disk's file system."""
    if not direct_writes_skip_cache(tmp_path):
        pytest.skip(f"{tmp_path} is not on a file system whose O_DIRECT writes skip the page cache (tmpfs?)")


@pytest.fixture
def writes(on_disk: None, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """(bytes, whether the descriptor wrote past the page cache) of each pwrite copy_hashing made
    (the real call, observed)."""
    seen: list[tuple[int, bool]] = []
    real = os.pwrite

    def observed(fd: int, data, offset: int) -> int:  # type: ignore[no-untyped-def]
        direct_now = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        count = real(fd, data, offset)
        seen.append((count, direct_now))
        return count

    monkeypatch.setattr(direct.os, "pwrite", observed)
    return seen


def _bypassing(folder: Path, data: bytes, *, head: bytes = b"", cached_at_most: int | None = None,
               ) -> tuple[tuple[int, str], bytes]:
    """`data` copied with bypass_cache from a new file of `folder` into another (after `head`, written
    first); the result, and the copy's bytes (read last: reading it fills the page cache), after
    checking that at most `cached_at_most` of its pages are cached, if given."""
    folder.mkdir()
    source, target = folder / "source", folder / "target"
    source.write_bytes(data)
    with source.open("rb") as reader, target.open("x+b") as writer:
        writer.write(head)
        result = copy_hashing(reader, writer, bypass_cache=True)
        assert reader.read() == b"" and writer.tell() == len(head) + len(data)  # both left after the copy
    if cached_at_most is not None:
        assert cached_pages(target) <= cached_at_most
    return result, target.read_bytes()


def test_a_large_object_is_written_past_the_page_cache_and_hashed_on_the_way(tmp_path: Path, kernel_copies: list[int],
                                                                            writes: list[tuple[int, bool]]) -> None:
    data = os.urandom(2 * COPY_CHUNK + 3 * 4096 + 123)  # whole chunks, then the last read: blocks and a part of one
    source, target, plain = tmp_path / "source", tmp_path / "target", tmp_path / "plain"
    source.write_bytes(data)
    with source.open("rb") as reader, target.open("x+b") as writer:
        assert copy_hashing(reader, writer, bypass_cache=True) == (len(data), hashlib.sha256(data).hexdigest())
        assert not fcntl.fcntl(writer.fileno(), fcntl.F_GETFL) & os.O_DIRECT  # the writer as it was given
    assert kernel_copies == []  # no kernel copy: read, hashed and written here
    assert writes == [(COPY_CHUNK, True), (COPY_CHUNK, True), (3 * 4096, True), (123, False)]  # the end: cached
    # The kernel's own account: of the copy, only the end's page is in the page cache; of a plain copy, all.
    assert cached_pages(target) <= 1
    with source.open("rb") as reader, plain.open("x+b") as writer:
        copy_hashing(reader, writer)
    assert cached_pages(plain) >= file_pages(len(data)) * 9 // 10  # (the kernel may drop a few meanwhile)
    assert target.read_bytes() == data
    # A file of a few MiB, not a whole number of blocks, is as much past the cache.
    odd = os.urandom(3 * DIRECT_MIN_BYTES + 17)
    assert _bypassing(tmp_path / "odd", odd, cached_at_most=1) == ((len(odd), hashlib.sha256(odd).hexdigest()), odd)


def test_a_failed_direct_write_leaves_the_writer_as_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                writes: list[tuple[int, bool]]) -> None:
    data = os.urandom(2 * COPY_CHUNK)
    observed = direct.os.pwrite

    def fails_second(fd: int, piece, offset: int) -> int:  # type: ignore[no-untyped-def]
        if writes:
            raise OSError(errno.EIO, "a disk error")
        return observed(fd, piece, offset)

    monkeypatch.setattr(direct.os, "pwrite", fails_second)
    (tmp_path / "source").write_bytes(data)
    with (tmp_path / "source").open("rb") as reader, (tmp_path / "target").open("x+b") as writer:
        with pytest.raises(OSError, match="a disk error"):
            copy_hashing(reader, writer, bypass_cache=True)
        assert writes == [(COPY_CHUNK, True)]
        assert not fcntl.fcntl(writer.fileno(), fcntl.F_GETFL) & os.O_DIRECT


def test_a_writer_appending_by_its_descriptor_is_appended_to_not_written_at_its_position(
        tmp_path: Path, writes: list[tuple[int, bool]]) -> None:
    """Opened with O_APPEND through os.open, a writer's mode says "wb": a positioned write would
    append all the same and leave the writer's position wrong, so the bytes go through the loop."""
    data = os.urandom(2 * DIRECT_MIN_BYTES)
    (tmp_path / "source").write_bytes(data)
    (tmp_path / "target").write_bytes(b"x" * 4096)
    fd = os.open(tmp_path / "target", os.O_WRONLY | os.O_APPEND)
    with (tmp_path / "source").open("rb") as reader, open(fd, "wb") as writer:
        assert copy_hashing(reader, writer, bypass_cache=True) == (len(data), hashlib.sha256(data).hexdigest())
    assert writes == [] and (tmp_path / "target").read_bytes() == b"x" * 4096 + data


def test_a_small_file_or_one_not_at_a_blocks_start_is_copied_by_the_kernel(tmp_path: Path, kernel_copies: list[int],
                                                                          writes: list[tuple[int, bool]]) -> None:
    small = os.urandom(DIRECT_MIN_BYTES - 1)
    assert _bypassing(tmp_path / "a", small) == ((len(small), hashlib.sha256(small).hexdigest()), small)
    large = os.urandom(DIRECT_MIN_BYTES * 2)
    assert _bypassing(tmp_path / "b", large, head=b"head") == ((len(large), hashlib.sha256(large).hexdigest()),
                                                               b"head" + large)
    assert sum(kernel_copies) == len(small) + len(large) and writes == []


def test_a_file_system_refusing_direct_writes_gets_a_kernel_copy_or_a_cached_rewrite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copies: list[int], writes: list[tuple[int, bool]]) -> None:
    """Refused when asked (the flag cannot be set): nothing was written, the kernel copies. Refused
    at the first write (EINVAL: a disk of larger blocks): that write and the rest go through the cache."""
    data = os.urandom(COPY_CHUNK + 4096)
    real = fcntl.fcntl

    def refusing_the_flag(fd: int, command: int, *args: int) -> int:
        if command == fcntl.F_SETFL and args and args[0] & os.O_DIRECT:
            raise OSError(errno.EINVAL, "no direct I/O here")
        return real(fd, command, *args)

    monkeypatch.setattr(direct.fcntl, "fcntl", refusing_the_flag)
    assert _bypassing(tmp_path / "a", data) == ((len(data), hashlib.sha256(data).hexdigest()), data)
    assert sum(kernel_copies) == len(data) and writes == []
    monkeypatch.setattr(direct.fcntl, "fcntl", real)

    real_pwrite = direct.os.pwrite  # `writes` observing the real call

    def misaligned_for_this_disk(fd: int, piece, offset: int) -> int:  # type: ignore[no-untyped-def]
        if real(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "misaligned for this disk")
        return real_pwrite(fd, piece, offset)

    monkeypatch.setattr(direct.os, "pwrite", misaligned_for_this_disk)
    assert _bypassing(tmp_path / "b", data) == ((len(data), hashlib.sha256(data).hexdigest()), data)
    assert sum(count for count, _ in writes) == len(data) and not any(direct_now for _, direct_now in writes)


def test_where_the_file_system_shares_blocks_the_copy_is_a_clone_read_back(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           writes: list[tuple[int, bool]]) -> None:
    """This project's disks (ext4) refuse FICLONE, so the copies above are real ones (`writes`
    checks that tmp_path takes direct writes; XFS and btrfs would clone instead). There the digest
    is of the clone as read back, as a kernel copy's is. Here a stand-in for the ioctl copies the
    file and spoils a block of it (a fault on the way); then one that fails part way."""
    data = os.urandom(DIRECT_MIN_BYTES * 3)
    with (tmp_path / "s").open("wb") as source:
        source.write(data)
    clones: list[int] = []

    def clone_spoiled(target: int, request: int, source: int) -> int:
        assert request == direct.FICLONE
        clones.append(os.copy_file_range(source, target, len(data), 0, 0))
        os.pwritev(target, [b"\0" * 4096], 0)  # not pwrite, which `writes` counts
        return 0

    monkeypatch.setattr(direct.fcntl, "ioctl", clone_spoiled)
    (size, digest), stored = _bypassing(tmp_path / "a", data)
    assert clones == [len(data)] and writes == []
    assert stored != data and (size, digest) == (len(data), hashlib.sha256(stored).hexdigest())

    def clone_out_of_space(target: int, request: int, source: int) -> int:
        os.copy_file_range(source, target, 4096, 0, 0)  # a part, as btrfs can leave
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(direct.fcntl, "ioctl", clone_out_of_space)
    with pytest.raises(OSError, match="no space left"):  # not a copy written after the part it left
        _bypassing(tmp_path / "b", data)


def test_a_write_only_writer_is_never_given_shared_blocks_but_is_written_past_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copies: list[int], writes: list[tuple[int, bool]]) -> None:
    """How a backup copies (services/backups/writer.copy_synced): no clone, no kernel copy; a large
    file written directly, a small one through the loop."""
    def no_clone(*args: int) -> int:
        raise AssertionError("a write-only writer asked for a clone")

    monkeypatch.setattr(direct.fcntl, "ioctl", no_clone)
    large, small = os.urandom(DIRECT_MIN_BYTES * 2), os.urandom(1000)
    for name, data in (("large", large), ("small", small)):
        (tmp_path / name).write_bytes(data)
        with (tmp_path / name).open("rb") as reader, (tmp_path / f"{name}.copy").open("wb") as writer:
            assert copy_hashing(reader, writer, bypass_cache=True) == (len(data), hashlib.sha256(data).hexdigest())
    assert kernel_copies == [] and writes == [(len(large), True)]
    assert cached_pages(tmp_path / "large.copy") == 0  # (the small copy's pages are, `writes` aside: it is a loop's)
    assert (tmp_path / "large.copy").read_bytes() == large and (tmp_path / "small.copy").read_bytes() == small


def test_the_file_system_of_a_path_is_the_kernels_answer_for_its_nearest_existing_parent(tmp_path: Path) -> None:
    """statfs(2)'s type, checked against coreutils' `stat -f` (another reader of the same call) on
    this machine's paths; a path not made yet is judged by the directory it would be made in."""
    paths = [tmp_path, Path("/proc/self"), *([Path("/dev/shm")] if Path("/dev/shm").is_dir() else [])]
    for path in paths:
        told = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True, check=True)
        assert direct.file_system_magic(path) == int(told.stdout, 16)
    assert direct.file_system_magic(tmp_path / "not" / "made" / "yet") == direct.file_system_magic(tmp_path)
    assert not direct.on_local_disk("/proc/self")  # procfs: 0x9fa0
    assert set(direct.LOCAL_DISK_FILE_SYSTEMS.values()).isdisjoint({0x6969, 0xFF534D42, 0x65735546, 0x794C7630,
                                                                   0x01021994})  # NFS, SMB, FUSE, overlay, tmpfs
