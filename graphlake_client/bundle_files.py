"""Bundles on disk: a directory, or the same tree in a .tar, read and written.

Writing puts the manifest in last (a directory's by rename, a tar's as its last member, and a tar
is written under a temporary name and renamed when whole), so a bundle with a manifest is
complete. Checking a payload against the size and SHA-256 the manifest gives streams it (a dry
run's check; a commit's looks at its size only, the lake hashing it as it stores it): nothing is
held whole in memory but values and texts, which a lake keeps small.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from graphlake_client import debris
from graphlake_client.bundle_format import FORMAT, MANIFEST, PAYLOADS, named_payloads, parse_manifest
from graphlake_client.direct import stream_digest
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import to_thread

CHUNK = 1024 * 1024
PAYLOAD_NAME = re.compile(r"[0-9a-f]{64}")  # a payload's file is named by its SHA-256
T = TypeVar("T")


def is_tar(path: Path) -> bool:
    """Whether DEST names a tar (by its suffix) rather than a directory."""
    return path.name.endswith((".tar", ".tar.gz", ".tgz"))


def open_reader(src: Path | str, *, confined: bool = False) -> Any:
    """The reader for a bundle at SRC: a directory or a .tar here (a Path or a str), or an
    `s3://bucket/prefix` (bundle_s3.py; boto3's credentials). `confined`: see BundleReader."""
    if isinstance(src, str) and src.startswith("s3://"):
        from graphlake_client.bundle_s3 import S3BundleReader

        return S3BundleReader(src)
    return BundleReader(Path(src), confined=confined)


def open_writer(dest: Path | str, version: dict[str, Any] | None = None, *, replace: bool = False) -> Any:
    """The writer for a bundle at DEST: a directory or a .tar here, or an `s3://bucket/prefix`.
    DEST is checked before anything is downloaded (see BundleWriter): `version` is the version
    exported (its `id` and `manifestSha256`), whose own earlier bundle there is finished, not refused."""
    if isinstance(dest, str) and dest.startswith("s3://"):
        from graphlake_client.bundle_s3 import S3BundleWriter

        return S3BundleWriter(dest, version=version, replace=replace)
    return BundleWriter(Path(dest), version=version, replace=replace)


def other_bundle(data: bytes, version: dict[str, Any] | None) -> str | None:
    """What the manifest.json `data` found at DEST is when it is not `version`'s own bundle (None: it
    is, so a rerun finishes or redoes it). Read leniently: it is only looked at, never imported."""
    try:
        found = json.loads(data)
    except ValueError:
        return "not a bundle's manifest"
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        return "not a bundle's manifest"
    source, of = found.get("source") or {}, found.get("version") or {}
    if version is not None and (source.get("version_id"), of.get("manifest_sha256")) == (version["id"], version["manifestSha256"]):
        return None
    return f"the bundle of another version ({(found.get('dataset') or {}).get('name')}/{of.get('name')})"


def held_refused(dest: object, held: list[str]) -> GraphlakeClientError:
    """CONFLICT naming `dest`, which holds what this export would overwrite or mix with its own."""
    return GraphlakeClientError(f"{dest} holds what is not this version's bundle ({', '.join(held[:5])}): export into a "
                                "new or empty directory, or pass --replace (replace=True) to write over it",
                                "CONFLICT", "dest")


def _open_tar(src: Path) -> tuple[tarfile.TarFile, BinaryIO]:
    """The tar at `src`, and its file (a tar given its file leaves it open), refused (BAD_USER_INPUT)
    unless it is a regular file. Opened without blocking: a FIFO named `x.tar` on a mount held each
    import's open (and its request slot) until a writer came, so a few of them stopped the server
    answering anyone."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise GraphlakeClientError(f"{src}: not a readable tar ({error.strerror})", "BAD_USER_INPUT") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise GraphlakeClientError(f"{src}: not a readable tar (not a regular file)", "BAD_USER_INPUT")
    os.set_blocking(fd, True)
    stream = os.fdopen(fd, "rb")
    try:
        return tarfile.open(fileobj=stream, mode="r:*"), stream
    except (tarfile.TarError, OSError) as error:
        stream.close()
        raise GraphlakeClientError(f"{src}: not a readable tar ({error})", "BAD_USER_INPUT") from None


class BundleReader:
    """A bundle to import. Use as a context manager (a tar stays open while it is read).

    `confined`: the server reads it on a caller's behalf (a bundle on one of its mounts), so a
    directory bundle's files must be its own: a symbolic link (the file's or a directory's on its
    way) or a hard link is refused. Followed, a link in a mount that others may write to copied
    any file the server could read, its signing key among them, into the lake for its caller."""

    def __init__(self, src: Path, *, confined: bool = False) -> None:
        self.src = src
        self.confined = confined
        # Where its own files must lie, resolved once: resolved again at each read, a folder of the
        # path swapped for a link meanwhile would move "inside" to wherever the link leads.
        self._inside = src.resolve() if confined else src
        self._tar: tarfile.TarFile | None = None
        self._tar_file: BinaryIO | None = None
        if is_tar(src) or src.is_file():
            self._tar, self._tar_file = _open_tar(src)
        elif not (src / MANIFEST).is_file():
            raise GraphlakeClientError(f"{src}: no {MANIFEST} (not a bundle, or an export that did not finish)",
                                       "BAD_USER_INPUT")

    @property
    def side_by_side(self) -> bool:
        """Whether payloads may be read in several threads at once (a tar is one stream)."""
        return self._tar is None

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *_: object) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._tar_file is not None:
            self._tar_file.close()

    @contextmanager
    def _open(self, path: str) -> Iterator[BinaryIO | None]:
        """The member at `path` (a plain file), or None if the bundle has none."""
        if self._tar is None:
            file = self.src / path
            if not file.is_file():
                yield None
                return
            with self._own(path) if self.confined else file.open("rb") as stream:
                yield stream
            return
        # A tar cut short (a copy that did not finish) fails where its end is read: finding a member
        # (the manifest is the last one) or reading one. Said as what it is, not as tarfile's traceback.
        try:
            member = self._tar.getmember(path)
        except KeyError:
            yield None
            return
        except tarfile.TarError as error:
            raise self._damaged(error) from None
        # A tar member reads as a BufferedReader, a BinaryIO (typeshed types extractfile's answer IO[bytes]).
        member_stream = cast("BinaryIO | None", self._tar.extractfile(member) if member.isfile() else None)
        try:
            yield member_stream
        except tarfile.TarError as error:
            raise self._damaged(error) from None
        finally:
            if member_stream is not None:
                member_stream.close()

    def _damaged(self, error: tarfile.TarError) -> GraphlakeClientError:
        return GraphlakeClientError(f"{self.src}: the tar is cut short or damaged ({error}): copy the bundle again",
                                    "BAD_USER_INPUT")

    def _own(self, path: str) -> BinaryIO:
        """The bundle's own file at `path`, opened, or BAD_USER_INPUT if it is a link (see `confined`).
        Checked on the open file: it cannot be swapped for a link between the check and the read."""
        try:
            # ELOOP: the file itself is a link. O_NONBLOCK: a FIFO put there opens at once (and is then
            # refused) rather than holding the server's event loop until a writer comes.
            fd = os.open(self.src / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            raise GraphlakeClientError(f"{path}: not a file of the bundle's own ({error.strerror})", "BAD_USER_INPUT") from None
        stream = os.fdopen(fd, "rb")
        found = os.fstat(fd)
        where = Path(os.readlink(f"/proc/self/fd/{fd}")) if Path("/proc/self/fd").is_dir() else (self.src / path).resolve()
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1 or not where.is_relative_to(self._inside):
            stream.close()
            raise GraphlakeClientError(f"{path}: a link, not a file of the bundle's own (a bundle on a mount holds its "
                                       "payloads themselves)", "BAD_USER_INPUT")
        return stream

    def locator(self, mount: str) -> None:
        """The files of a bundle here lie on no mount of a lake: nothing to register in place."""
        return None

    def manifest(self) -> dict[str, Any]:
        """The manifest, checked (bundle_format.check_manifest)."""
        with self._open(MANIFEST) as stream:
            if stream is None:
                raise GraphlakeClientError(f"{self.src}: no {MANIFEST} (not a bundle, or an export that did not finish)",
                                           "BAD_USER_INPUT")
            return parse_manifest(stream.read(), f"{self.src}/{MANIFEST}")

    def payload_digest(self, path: str) -> tuple[int, str] | None:
        """The size and SHA-256 of the payload at `path`, read whole (None: the bundle has none)."""
        with self._open(path) as stream:
            return None if stream is None else stream_digest(stream)

    def payload_size(self, path: str) -> int | None:
        """The size of the payload at `path`, nothing read (None: the bundle has none). A bundle on a
        mount opens it as it would to read it: a link is refused here already."""
        if self._tar is not None:
            try:
                member = self._tar.getmember(path)
            except KeyError:
                return None
            except tarfile.TarError as error:
                raise self._damaged(error) from None
            return member.size if member.isfile() else None
        with self._open(path) as stream:
            return None if stream is None else os.fstat(stream.fileno()).st_size

    def read_bytes(self, path: str) -> bytes:
        """A small payload (a value or a text), whole."""
        with self._open(path) as stream:
            if stream is None:
                raise GraphlakeClientError(f"{path}: missing from the bundle", "BAD_USER_INPUT")
            return stream.read()

    @contextmanager
    def files(self, paths: list[str]) -> Iterator[dict[str, Path]]:
        """A file on disk for each payload path, to upload: a directory's own files, or a tar's
        members extracted into a temporary directory that goes afterwards."""
        if self._tar is None:
            if self.confined and Path("/proc/self/fd").is_dir():
                # Read through the descriptors checked (their /proc/self/fd names open the very files),
                # so a payload swapped for a link after its check is never what the upload reads.
                with ExitStack() as held:
                    streams = {path: held.enter_context(self._own(path)) for path in paths}
                    yield {path: Path(f"/proc/self/fd/{stream.fileno()}") for path, stream in streams.items()}
                return
            if self.confined:  # no /proc: checked, then read by name
                for path in paths:
                    self._own(path).close()
            yield {path: self.src / path for path in paths}
            return
        with tempfile.TemporaryDirectory(prefix="graphlake-bundle-") as scratch:
            out = {}
            for path in paths:
                target = Path(scratch) / path.rsplit("/", 1)[-1]
                with self._open(path) as stream, target.open("wb") as copy:
                    if stream is None:
                        raise GraphlakeClientError(f"{path}: missing from the bundle", "BAD_USER_INPUT")
                    shutil.copyfileobj(stream, copy, CHUNK)
                out[path] = target
            yield out


def payload_problem(reader: Any, payload: dict[str, Any], *, hashing: bool = True) -> str | None:
    """What is wrong with a payload of `reader` (a bundle reader) against its manifest entry (None:
    it is there and whole). Without `hashing`, only that it is there with the size the manifest says:
    nothing of it is read."""
    if not hashing:
        size = reader.payload_size(payload["path"])
        if size is None:
            return f"{payload['path']}: missing from the bundle"
        return None if size == payload["size"] else f"{payload['path']}: {size} bytes; the manifest says {payload['size']}"
    found = reader.payload_digest(payload["path"])
    return f"{payload['path']}: missing from the bundle" if found is None else digest_problem(payload, *found)


async def payload_problems(reader: Any, payloads: list[dict[str, Any]], concurrency: int, *,
                           hashing: bool = True) -> list[str]:
    """payload_problem of each of `payloads` (manifest entries), `concurrency` at a time, or one at a
    time from a tar (one stream: its members read side by side would read each other's bytes)."""
    return await problems_in_threads(partial(payload_problem, reader, hashing=hashing), payloads,
                                     concurrency if reader.side_by_side else 1)


async def problems_in_threads(check: Callable[[T], str | None], items: list[T], width: int) -> list[str]:
    """What `check` finds wrong with each of `items`, run in threads (hashlib lets go of the GIL),
    `width` at a time."""
    gate = asyncio.Semaphore(width)

    async def problem(item: T) -> str | None:
        async with gate:
            return await to_thread(check, item)

    return [p for p in await asyncio.gather(*(problem(item) for item in items)) if p]


def digest_problem(payload: dict[str, Any], size: int, sha256: str) -> str | None:
    """What differs between a payload's manifest entry and the size and SHA-256 its bytes have (None: nothing)."""
    if (size, sha256) == (payload["size"], payload["sha256"]):
        return None
    return (f"{payload['path']}: {size} bytes with SHA-256 {sha256}; the manifest says "
            f"{payload['size']} bytes with {payload['sha256']}")


def payloads_refused(problems: list[str]) -> GraphlakeClientError:
    """The error for payloads that are not what the manifest says (`problems`: payload_problem's), naming the first."""
    return GraphlakeClientError(f"{len(problems)} payloads of the bundle are not what its manifest says: "
                                + "; ".join(problems[:5]), "BAD_USER_INPUT", problems[0].split(":", 1)[0])


def dump_manifest(manifest: dict[str, Any], out: BinaryIO) -> None:
    """The manifest as JSON into `out`, a chunk at a time: json.dumps of a version of 100,000 records
    (an 80 MB manifest) held its text and its bytes besides the manifest itself, 520 MB more than
    streaming it does."""
    text = io.TextIOWrapper(out, encoding="utf-8", write_through=False)
    json.dump(manifest, text, indent=1, ensure_ascii=False)
    text.flush()
    text.detach()  # `out` stays open: its owner closes it


class BundleWriter:
    """A bundle being written: into a directory, or into a .tar (under a temporary name until whole).

    DEST is checked before anything is downloaded: a directory DEST that is a file, or a .tar DEST
    that is a directory, is refused (BAD_USER_INPUT); a DEST that holds anything but `version`'s
    own bundle, whole or cut short (its manifest.json, payloads/, an export's temporaries), is refused
    with CONFLICT unless `replace`, as is an existing .tar. Under `replace` a directory keeps only
    the payloads its new manifest names (finish)."""

    def __init__(self, dest: Path, *, version: dict[str, Any] | None = None, replace: bool = False) -> None:
        self.dest = dest
        self.replace = replace
        self._tar: tarfile.TarFile | None = None
        self.one_at_a_time = is_tar(dest)  # a tar takes one member at a time
        if is_tar(dest):
            if dest.is_dir():  # found only at the final rename, once everything was downloaded
                raise GraphlakeClientError(f"{dest}: a directory, but a DEST ending in .tar names a tar file",
                                           "BAD_USER_INPUT", "dest")
            if dest.exists() and not replace:
                raise held_refused(dest, ["a file of that name"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            debris.sweep(dest.parent, recursive=False)  # what an export killed here left (debris.py)
            debris.sweep_scratch(dest.parent)
            self._partial = debris.partial_temp(dest)
            self._file = self._partial.open("xb")  # a folder it cannot write in fails here, before any download
            try:
                debris.hold(self._file)  # until renamed to `dest` (finish)
            except BaseException:
                self._file.close()
                self._partial.unlink(missing_ok=True)
                raise
            self._tar = tarfile.open(fileobj=self._file, mode="w:gz" if dest.name.endswith(("gz", "tgz")) else "w")
            # Beside the tar, not in $TMPDIR: a killed export's files there are swept by the next one.
            self.scratch, self._scratch_lock = debris.scratch(dest.parent)
        else:
            if dest.exists() and not dest.is_dir():
                raise GraphlakeClientError(f"{dest}: not a directory (a bundle is a directory, or a path ending in .tar)",
                                           "BAD_USER_INPUT", "dest")
            if (dest / PAYLOADS).is_symlink():  # even with replace: its sweep would remove the files the link leads to
                raise GraphlakeClientError(f"{dest / PAYLOADS} is a link to {(dest / PAYLOADS).resolve()}: an export writes "
                                           "its payloads into a folder of its own (--replace removes the payloads the "
                                           "manifest does not name, which would be the linked folder's)", "CONFLICT", "dest")
            held = self._held(version)
            if held and not replace:
                raise held_refused(dest, held)
            (dest / PAYLOADS).mkdir(parents=True, exist_ok=True)
            debris.sweep_export(dest, [PAYLOADS])  # what an export killed here left half-written (debris.py); whole payloads stay
            self.scratch = dest / PAYLOADS
            for folder in (dest, self.scratch):  # a read-only mount, no permission: said before any download
                probe = debris.download_temp(folder / "probe")
                with debris.writing(probe):
                    probe.unlink()

    def _held(self, version: dict[str, Any] | None) -> list[str]:
        """What the directory DEST holds that is not `version`'s bundle, whole or cut short."""
        if not self.dest.is_dir():
            return []
        held = []
        for entry in sorted(os.scandir(self.dest), key=lambda e: e.name):
            if entry.name == PAYLOADS and entry.is_dir(follow_symlinks=False):
                strangers = [n for n in sorted(os.listdir(entry.path)) if not (PAYLOAD_NAME.fullmatch(n) or debris.OWN.fullmatch(n))]
                held += [f"{PAYLOADS}/{n}" for n in strangers[:3]]
            elif entry.name == MANIFEST and entry.is_file(follow_symlinks=False):
                why = other_bundle(Path(entry.path).read_bytes(), version)
                if why:
                    held.append(f"{MANIFEST}: {why}")
            elif not (debris.OWN.fullmatch(entry.name) or debris.SCRATCH.fullmatch(entry.name)):
                held.append(entry.name)
        return held

    def download_target(self, path: str) -> Path:
        """Where a payload is downloaded to before `add_downloaded`."""
        return self.scratch / path.rsplit("/", 1)[-1] if self._tar is not None else self.dest / path

    def has(self, path: str, size: int) -> bool:
        """Whether an earlier export into this directory left this payload whole already: its name
        is its SHA-256, which its bytes must have (a file changed since is downloaded again)."""
        file = self.dest / path
        if self._tar is not None or not file.is_file() or file.stat().st_size != size:
            return False
        with file.open("rb") as stream:
            return stream_digest(stream) == (size, path.rsplit("/", 1)[-1])

    def add_downloaded(self, path: str) -> None:
        """Put a payload downloaded to `download_target(path)` into the bundle."""
        if self._tar is not None:
            source = self.download_target(path)
            self._tar.add(source, arcname=path, recursive=False)
            source.unlink()

    def add_bytes(self, path: str, data: bytes) -> None:
        """Put a small payload (a value, a text) into the bundle."""
        target = self.download_target(path)
        debris.write_held(debris.partial_temp(target), data, target)
        self.add_downloaded(path)

    def finish(self, manifest: dict[str, Any]) -> None:
        """Write the manifest last: only then is the bundle whole."""
        if self._tar is None:
            with debris.writing(debris.partial_temp(self.dest / MANIFEST)) as out:
                dump_manifest(manifest, out)
                out.flush()
                os.replace(out.name, self.dest / MANIFEST)
            if self.replace:  # an earlier bundle's payloads would make this one hold files it does not name
                self._remove_unnamed(named_payloads(manifest))
            return
        manifest_file = self.scratch / MANIFEST
        with manifest_file.open("xb") as out:
            dump_manifest(manifest, out)
        self._tar.add(manifest_file, arcname=MANIFEST, recursive=False)
        self._tar.close()  # a tar given its file leaves it open: still held while renamed (debris.py)
        self._file.flush()
        os.replace(self._partial, self.dest)
        self._file.close()
        debris.drop_scratch(self.scratch, self._scratch_lock)

    def _remove_unnamed(self, named: set[str]) -> None:
        """Remove the files of payloads/ the manifest does not name (an export's temporaries are left to its sweep)."""
        for entry in os.scandir(self.dest / PAYLOADS):
            if (f"{PAYLOADS}/{entry.name}" not in named and not debris.OWN.fullmatch(entry.name)
                    and entry.is_file(follow_symlinks=False)):
                os.unlink(entry.path)

    def abort(self) -> None:
        """Leave no half-written tar behind (a directory keeps its payloads: a rerun skips them)."""
        if self._tar is not None:
            self._tar.close()
            self._file.close()
            self._partial.unlink(missing_ok=True)
            debris.drop_scratch(self.scratch, self._scratch_lock)
