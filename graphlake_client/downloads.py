"""Getting content out: `download` streams a file's bytes from the server's content route (a local
mount's file) or a store's signed URL (never through the API process in memory) and checks them;
`read_bytes` does the same into memory; `save_to` writes any asset to a path, values as JSON, texts
as they are.

Where a download lands: a file the caller names is replaced, as `cp` and `curl -o` do; a file named
by the server (the asset's name, in a directory or the cwd) never replaces what is there unless the
caller says so (`overwrite`): a name is the asset owner's choice, and `.bashrc` downloaded into a home
directory must not become the user's. Signed URLs expire (15 minutes by default): one refused is asked
for again, once, by the asset's id. What stops a download is a GraphlakeClientError, never httpx's."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, unquote

import httpx

from graphlake_client import debris
from graphlake_client.assets import Asset, Assets
from graphlake_client.direct import copy_hashing
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import to_thread
from graphlake_client.results import FileRef, Ref

CHUNK = 1024 * 1024  # bytes written at a time while downloading
HAS_BYTES = ("FILE", "EXTERNAL")  # the kinds whose content is behind a downloadUrl
# The longest file name ext4, XFS, Btrfs and APFS take, in UTF-8 bytes; the server allows names of
# 500 characters, and a longer one failed with a bare OSError (File name too long).
NAME_MAX_BYTES = 255
EXTENSION_MAX_BYTES = 32  # a longer "extension" is part of the name (`notes.<a sentence>`), trimmed with it
REFUSED = (401, 403)  # what a store (S3, MinIO, the server's /blobs route) answers an expired signed URL
# link(2) where a file system has no hard links (FAT, some SMB and FUSE mounts).
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}
T = TypeVar("T")


def safe_name(name: str) -> str:
    """The base name of a server-given file name, so a download lands under its destination only:
    directories, absolute paths and `..` are dropped (a name of only those becomes "download");
    trimmed to a length a file system takes (`fit_name`)."""
    base = name.replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return fit_name(base if base not in ("", ".", "..") else "download")


def fit_name(name: str) -> str:
    """`name` within NAME_MAX_BYTES of UTF-8: its end cut, its extension kept, never a character split."""
    if len(name.encode()) <= NAME_MAX_BYTES:
        return name
    suffix = PurePosixPath(name).suffix
    if len(suffix.encode()) > EXTENSION_MAX_BYTES:
        suffix = ""
    stem = name[:len(name) - len(suffix)].encode()[:NAME_MAX_BYTES - len(suffix.encode())]
    return stem.decode(errors="ignore") + suffix  # "ignore" drops only the character the cut split


def file_name(found: Mapping[str, Any]) -> str:
    """The file an asset is saved as under its own name: a value's JSON gets `.json` when its name has
    no extension (`plate-7` -> `plate-7.json`), as the server's content route names it for curl -OJ."""
    name = safe_name(found["name"])
    return fit_name(f"{name}.json") if found["kind"] == "VALUE" and not PurePosixPath(name).suffix else name


def _target(found: Mapping[str, Any], dest: Path | str | None) -> tuple[Path, bool]:
    """Where an asset goes, and whether the caller named that file: `dest`, or its file name inside
    `dest` when that is a directory (or the cwd). A `dest` given as text ending in a slash names a
    directory, made if missing: a Path drops the slash, and `newdir/` became a file named newdir. A
    file's missing directories are made."""
    name = file_name(found)
    if dest is None:
        return Path(name), False
    target = Path(dest)
    if isinstance(dest, str) and dest.endswith(("/", os.sep)):
        if target.exists() and not target.is_dir():
            raise GraphlakeClientError(f"{dest} names a directory, but {target} is a file", "BAD_USER_INPUT", "dest")
        target.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        return target / name, False
    # A file in a directory not made yet (`results/run-1/best.json`): made, as the target's would be.
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:  # a parent is a file: "File exists" said nothing of it
        raise GraphlakeClientError(f"{dest}: {error.filename} is a file, not a directory", "BAD_USER_INPUT", "dest") from error
    return target, True


def _taken(target: Path) -> GraphlakeClientError:
    return GraphlakeClientError(f"{target} exists, and the asset's own name would replace it: pass overwrite=True "
                                "(graphlake download --force) to replace it, or name the file to write",
                                "CONFLICT", "dest")


async def _swept_target(found: Mapping[str, Any], dest: Path | str | None, swept: set[Path],
                        overwrite: bool) -> tuple[Path, bool]:
    """_target, and whether the file may replace one there (the caller named it, or `overwrite`);
    CONFLICT, before any byte is fetched, when a server-named file would replace one. The
    temporaries an earlier download killed there left are removed first (debris.py): one look at the
    target's directory (not its tree), the first time this client writes there (`swept`)."""
    target, named = _target(found, dest)
    replace = named or overwrite
    if target.is_dir():  # nothing replaces a folder, --force or not
        raise GraphlakeClientError(f"{target} is a folder: name the file to write", "CONFLICT", "dest")
    if not replace and os.path.lexists(target):
        raise _taken(target)
    if target.parent not in swept:
        swept.add(target.parent)
        await to_thread(debris.sweep, target.parent, recursive=False)
    return target, replace


def _place(temp: Path, target: Path, replace: bool) -> None:
    """Rename the finished temporary file to `target`; without `replace`, only while no file has that
    name, checked and placed in one step (a hard link, then the temporary's name removed), so a file
    made there meanwhile is not clobbered either: CONFLICT then."""
    if replace:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)
    except FileExistsError:
        raise _taken(target) from None
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        # No hard links here: the name is claimed (created only if free), then the file renamed over the claim.
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise _taken(target) from None
        os.replace(temp, target)
        return
    temp.unlink()


def _no_file(found: Mapping[str, Any]) -> GraphlakeClientError:
    return GraphlakeClientError(f"asset {found['name']!r} has no file to download (a value or text? save_to or load "
                                "writes those)", "BAD_USER_INPUT", "asset")


def _described(headers: httpx.Headers) -> dict[str, Any] | None:
    """What the content route's headers say of the asset (as the asset query names it); None without them."""
    if "x-graphlake-kind" not in headers or "x-graphlake-name" not in headers:
        return None
    size = headers.get("x-graphlake-size")
    return {"id": headers.get("x-graphlake-id"), "kind": headers["x-graphlake-kind"],
            "name": unquote(headers["x-graphlake-name"]), "sizeBytes": int(size) if size and size.isdigit() else None,
            "sha256": headers.get("x-graphlake-sha256")}


REDIRECTS = (302, 303, 307)


async def _not_to_retry(response: httpx.Response) -> GraphlakeClientError | None:
    """The content route's UNAVAILABLE saying no retry will help (`extensions.retry: false`), read
    from its 5xx answer; None for any other (the store down for a moment, a proxy's JSON)."""
    try:
        refused = GraphlakeClientError.answered(json.loads(await response.aread())["errors"][0])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):  # cut short, or not the route's
        return None
    return refused if refused.code == "UNAVAILABLE" and not refused.retry else None


async def _described_or_refused(response: httpx.Response) -> dict[str, Any] | None:
    """What a content-route answer says of its asset; GraphlakeClientError for the route's refusal
    (no such asset, no token, ...); HTTPStatusError for a 5xx (retried), unless the route says no
    retry will help (UNAVAILABLE with `extensions.retry: false`); None from a server without it."""
    json_body = response.headers.get("content-type", "").startswith("application/json")
    if response.status_code >= 500:
        if json_body and (refused := await _not_to_retry(response)) is not None:
            raise refused
        response.raise_for_status()  # another attempt may work (store_failures)
    described = _described(response.headers)
    if described is None and json_body:
        errors = json.loads(await response.aread()).get("errors") or []
        if errors:
            raise GraphlakeClientError.answered(errors[0])
    if described is not None and response.status_code not in REDIRECTS:
        response.raise_for_status()
    return described


def _write_new(target: Path, data: bytes, replace: bool) -> None:
    """Write beside the target under a temporary name, then rename (`_place`): a reader never sees
    half a file. The file is created new, with the user's umask, held until renamed (debris.py)."""
    debris.write_held(debris.download_temp(target), data, target,
                      place=lambda temp, at: _place(temp, at, replace))


class Downloads(Assets):
    """Downloads and saving assets to paths, on top of the asset verbs."""

    async def download(self, asset: str, dest: Path | str | None = None, *, overwrite: bool = False) -> Path:
        """Save an asset (by ID or alias) to `dest` (a file, or a directory to keep its name: one that
        exists, or text ending in a slash, made if missing): a file's bytes, a value's JSON or a text
        as stored, checked against the asset's size and SHA-256. A file `dest` names is replaced; one
        named by the asset (`dest` a directory, or None: the cwd) is not, unless `overwrite`:
        CONFLICT naming it, before any byte is fetched.

        One request to the server's content route (GET /assets/{id or alias}/content), which streams a
        local mount's file or redirects to a store's signed GET; from a server without that route,
        `asset(id)` for the signed URL, then the URL."""
        fetched = await self._retried(self._fetch_content, asset, dest, overwrite)
        if fetched is not None:
            return fetched
        found = await self.get_asset(asset)
        if not found.get("downloadUrl"):
            raise _no_file(found)
        target, replace = await _swept_target(found, dest, self.swept_folders, overwrite)
        await self._retried(self._fetch, found, target, None, replace=replace)
        return target

    async def save_to(self, asset: str | Asset | FileRef | Ref, path: Path | str, *, overwrite: bool = False) -> Path:
        """Write an asset (ID, alias or asset) to `path`: a value as JSON, a text as UTF-8, a file's bytes
        streamed. `path` and `overwrite` as for download: a file named by the asset replaces none unless `overwrite`."""
        found = await self.get_asset(asset if isinstance(asset, str) else asset["id"])
        if found["kind"] in HAS_BYTES:
            return await self.download(found["id"], path, overwrite=overwrite)  # as given: text ending in a slash names a directory
        if found["status"] != "ACTIVE":  # a deleted value or text is NOT_FOUND here too, as to load and download
            raise GraphlakeClientError(f"asset {found['id']} is {found['status']}: it has nothing to save",
                                       "NOT_FOUND", "asset")
        target, replace = await _swept_target(found, path, self.swept_folders, overwrite)
        if found["kind"] == "VALUE":
            data = json.dumps(found["value"], ensure_ascii=False, indent=2).encode()
        else:
            data = (found["text"] or "").encode()
        await to_thread(_write_new, target, data, replace)
        return target

    async def read_bytes(self, asset: str | Asset | FileRef | Ref) -> bytes:
        """A FILE or EXTERNAL asset's bytes, in memory, checked: by ID or alias in one request (the
        content route), or from an asset's signed URL (`get_asset`'s, or `read_version`'s
        `datum["asset"]`). A URL that has expired since is asked for again by the asset's id."""
        if isinstance(asset, str) and (got := await self._read_content(asset)) is not None:
            described, data = got
            if described["kind"] not in HAS_BYTES:
                raise _no_file(described)
            return data
        found: Mapping[str, Any] = asset if not isinstance(asset, str) and asset.get("downloadUrl") else \
            await self.get_asset(asset if isinstance(asset, str) else asset["id"])
        if not found.get("downloadUrl"):
            raise _no_file(found)

        async def attempt() -> bytes:
            out = io.BytesIO()
            await self._receive(found, out)
            return out.getvalue()

        return await self._retried(attempt)

    async def _retried(self, attempt: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`attempt` (a download's GETs) retried while the network or a store fails, then what still
        stops it coded, as an upload's PUT is (Transport._store_call): ServerUnreachable when no
        answer came, else GraphlakeClientError with a code; `field` "downloadUrl" when a signed URL failed."""
        return await self._store_call("downloadUrl", "the download", attempt, *args, **kwargs)

    async def _fetch_content(self, ref: str, dest: Path | str | None, overwrite: bool) -> Path | None:
        """One attempt through the content route; None when the server has no such route (an older
        one answers without the X-Graphlake-* headers, or with its web app's page)."""
        async with self.http.stream("GET", self._content_url(ref)) as response:
            described = await _described_or_refused(response)
            if described is None:
                return None
            # A value's JSON or a text as stored, checked as a file is.
            target, replace = await _swept_target(described, dest, self.swept_folders, overwrite)
            if response.status_code in REDIRECTS:  # a store's signed GET: fetched without our token
                await self._fetch({**described, "downloadUrl": response.headers["location"]}, target, replace=replace)
            else:
                await self._fetch(described, target, response, replace=replace)
            return target

    async def _read_content(self, ref: str) -> tuple[dict[str, Any], bytes] | None:
        """Any asset's content in memory through the content route, checked, retried as downloads are;
        None from a server without the route."""

        async def attempt() -> tuple[dict[str, Any], bytes] | None:
            async with self.http.stream("GET", self._content_url(ref)) as response:
                described = await _described_or_refused(response)
                if described is None:
                    return None
                out = io.BytesIO()
                if response.status_code in REDIRECTS:
                    await self._receive({**described, "downloadUrl": response.headers["location"]}, out)
                else:
                    await self._copy(response, described, out)
                return described, out.getvalue()

        return await self._retried(attempt)

    def _content_url(self, ref: str) -> str:
        return f"{self.url}/assets/{quote(ref, safe='')}/content"

    async def _fetch(self, found: Mapping[str, Any], target: Path, response: httpx.Response | None = None, *,
                     replace: bool = True) -> None:
        """One attempt: stream the bytes (from `response`, or from the signed URL) beside the target under
        a temporary name, checked (`_copy`), then rename (`_place`: over a file there only if `replace`).
        An interrupted or wrong download never leaves a file under the asset's name. The file gets the
        user's usual permissions (umask)."""
        temp = debris.download_temp(target)
        # Created new, binary, with the user's umask; readable, so copy_hashing can check a copy; held
        # until renamed (debris.py), removed on any failure.
        with debris.writing(temp, "x+b") as out:
            if response is not None:
                await self._copy(response, found, out)
            elif not await self._read_directly(found, out):
                await self._receive(found, out)
            out.flush()
            _place(temp, target, replace)

    async def _receive(self, found: Mapping[str, Any], out: BinaryIO, *, renewed: bool = False) -> None:
        """Stream the bytes from the signed URL into `out`, checked (`_copy`). A URL the store refuses
        has most often expired (training code keeps `read_version`'s datums or `get_asset`'s answers
        for longer than a URL's 15 minutes): a new one is asked for by the asset's id, once."""
        async with self.storage_http.stream("GET", found["downloadUrl"]) as response:
            if response.status_code not in REFUSED or renewed or not found.get("id"):
                response.raise_for_status()
                await self._copy(response, found, out)
                return
        fresh = await self.get_asset(found["id"])
        if not fresh.get("downloadUrl"):
            raise _no_file(fresh)
        await self._receive({**found, "downloadUrl": fresh["downloadUrl"]}, out, renewed=True)

    async def _read_directly(self, found: Mapping[str, Any], out: BinaryIO) -> bool:
        """Copy a local mount's file into `out` straight from the mount's directory, when this machine
        shares it (as uploads write there: `Uploader._shared_root`), checked as a download is. False,
        with `out` left empty, when it cannot: another mount, an external object, a file not there
        (the server then answers, or says why not). As fast as the disk: an export of a version's
        images no longer sends each one through the server."""
        storage = found.get("storage") or {}
        key = storage.get("key")
        # Only what the server would hand out (it gives a URL for an ACTIVE file alone), and never
        # a key that could name a path out of the mount.
        if (not found.get("downloadUrl") or not key or storage.get("external")
                or ".." in Path(key).parts or Path(key).is_absolute()):
            return False
        root = await self._shared_root(storage.get("mount"))
        if root is None:
            return False
        try:
            size, digest = await to_thread(_copy_file, root / key, out)
        except OSError:
            out.seek(0)
            out.truncate()
            return False
        _check(found, size, digest)
        return True

    async def _copy(self, response: httpx.Response, found: Mapping[str, Any], out: BinaryIO) -> None:
        """Write the response's bytes into `out`, then check them against the asset's size and
        SHA-256: INTEGRITY when they differ."""
        digest = hashlib.sha256()
        size = 0
        async for chunk in response.aiter_bytes(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        _check(found, size, digest.hexdigest())


def _copy_file(source: Path, out: BinaryIO) -> tuple[int, str]:
    """Copy a file into `out`; its size and SHA-256. Blocking: run it in a thread."""
    with source.open("rb") as read:
        return copy_hashing(read, out)


def _check(found: Mapping[str, Any], size: int, sha256: str) -> None:
    """INTEGRITY when the bytes copied are not the asset's (its size, its SHA-256)."""
    problems = []
    if found.get("sizeBytes") is not None and size != found["sizeBytes"]:
        problems.append(f"{size} bytes arrived, the asset has {found['sizeBytes']}")
    if found.get("sha256") and sha256 != found["sha256"]:
        problems.append(f"their SHA-256 is {sha256}, the asset's {found['sha256']}")
    if problems:
        raise GraphlakeClientError(f"the download of {found['name']!r} is not the stored file: "
                                   + "; ".join(problems), "INTEGRITY")
