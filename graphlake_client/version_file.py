"""Reading a dataset version from its content file: one JSON line per datum, written by the server
when it built the version (`DatasetVersion.content`), with the version's copies of its records.

An exporter reads the whole version; through pages the server completed every field of every
record each time (a COCO version of 2,000 images and 20,000 boxes: about 2 s of its CPU per
export), where the file is read like any stored file: in place when this machine shares the
mount's directory, else downloaded through its signed URL into a temporary file. Its size and
SHA-256 are checked against what the server recorded before a line is read; a file that is
missing or unreadable, or not that one, is not read, and the version's pages are (with a warning).
Lines are read a step at a time, so a version of millions of records is never held whole.

The file names assets by id alone (their names and URLs may change): the image and mask assets a
step of datums uses are asked for by id, a step ahead, and put where the page query has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from graphlake_client import operations as ops
from graphlake_client.direct import stream_digest
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import to_thread

if TYPE_CHECKING:
    from graphlake_client.client import Client

log = logging.getLogger("graphlake_client.versions")

FORMAT = "graphlake-version-content-1"
DATUMS_PER_STEP = 100  # datums parsed, and their assets asked for, at a time
ASSETS_PER_READ = 100  # ids in one `nodes` query (the server allows GRAPHLAKE_MAX_PAGE_SIZE, 500 by default)
CHUNK = 1 << 20


@asynccontextmanager
async def checked_content(lake: Client, version_id: str) -> AsyncIterator[BinaryIO | None]:
    """The version's content file, checked, open at its start for the block's length; None when it
    has none (or the server writes none), or the file cannot be read or is not the one recorded.
    Its lines are read from the same open file that was checked: a file replaced or removed on the
    mount meanwhile is not read."""
    try:
        found = (await lake.execute(ops.VERSION_CONTENT, {"id": version_id}))["datasetVersion"]
    except GraphlakeClientError as error:
        if "Cannot query field 'content'" not in str(error):  # else a server from before content files
            log.warning("the content file of version %s is not available (%s); reading its pages instead",
                        version_id, error)
        found = None  # the pages say what is wrong, if anything is
    content = (found or {}).get("content")
    if not content or content["format"] != FORMAT:
        yield None
        return
    with tempfile.TemporaryFile(prefix="graphlake-version-") as scratch, contextlib.ExitStack() as opened:
        try:
            file = await _shared(lake, content, opened) or await _download(lake, content, scratch)
            if file is not None:
                size, digest = await to_thread(_digest, file)
        except OSError as error:  # a file that cannot be read, no room for a copy of it
            log.warning("the content file of version %s could not be read (%s); reading its pages instead",
                        version_id, error)
            file = None
        if file is not None and (size != int(content["sizeBytes"]) or digest != content["sha256"]):
            log.warning("the content file of version %s is not the one the server recorded (%d bytes, SHA-256 %s);"
                        " reading its pages instead", version_id, size, digest)
            file = None
        yield file


async def _shared(lake: Client, content: dict[str, Any], opened: contextlib.ExitStack) -> BinaryIO | None:
    """The file in the mount's directory, opened, when this machine shares it and the file is there."""
    key = Path(content["key"])
    root = await lake._shared_root(content["mount"])
    if root is None or ".." in key.parts or key.is_absolute():
        return None
    try:
        return opened.enter_context(await to_thread((root / key).open, "rb"))
    except FileNotFoundError:  # not there (a restored lake's, say): the server may still serve it
        return None


async def _download(lake: Client, content: dict[str, Any], into: BinaryIO) -> BinaryIO | None:
    """The file through its signed URL, streamed into `into`."""
    if not content.get("downloadUrl"):
        return None
    try:
        async with lake.storage_http.stream("GET", content["downloadUrl"]) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes(CHUNK):
                into.write(chunk)
    except httpx.HTTPError as error:
        log.warning("the content file %s could not be read (%s); reading the version's pages instead",
                    content["key"], error)
        return None
    return into


def _digest(file: BinaryIO) -> tuple[int, str]:
    """Size and SHA-256 of the whole file, left at its start."""
    file.seek(0)
    checked = stream_digest(file)
    file.seek(0)
    return checked


async def datums_of(lake: Client, file: BinaryIO) -> AsyncGenerator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(datum, its records) from a checked content file, as `version_reading.version_datums` gives
    them from VERSION_DATUMS pages: the datum's `asset` is its image's, and a mask's asset is the
    asset itself (FILE_FIELDS)."""
    def ask() -> asyncio.Future[tuple[list[dict[str, Any]], dict[str, Any]]]:
        # The lines are read here (some KB from the page cache), so no step outlives the file.
        return asyncio.ensure_future(_step(lake, list(itertools.islice(file, DATUMS_PER_STEP))))

    following = ask()
    try:
        while True:
            datums, assets = await following
            if not datums:
                return
            following = ask()  # parsed, and its assets asked for, while this step is used
            for datum in datums:
                records = datum.pop("annotations")
                image = next((r["asset"]["id"] for r in datum["roles"] if r["role"] == "image"), None)
                datum["asset"] = assets.get(image) if image else None
                for record in records:
                    record.setdefault("source", None)  # the file of a version built before it was written there
                    geometry = record.get("geometry")
                    if geometry and geometry["__typename"] == "Mask":
                        geometry["asset"] = assets.get(geometry["asset"]["id"])
                yield datum, records
    finally:  # the caller stopped early (or a step failed): the step read ahead is not wanted
        if not following.cancel() and not following.cancelled():
            following.exception()  # it ended already: its error, if any, is this one's to drop


async def _step(lake: Client, lines: list[bytes]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """These lines' datums, and the assets they name (by id) as FILE_FIELDS."""
    datums = await to_thread(lambda: [json.loads(line) for line in lines])
    ids = list(dict.fromkeys(
        [r["asset"]["id"] for d in datums for r in d["roles"] if r["role"] == "image"]
        + [a["geometry"]["asset"]["id"] for d in datums for a in d["annotations"]
           if a.get("geometry") and a["geometry"]["__typename"] == "Mask"]))
    reads = await asyncio.gather(*(lake.execute(ops.FILES_BY_ID, {"ids": ids[start:start + ASSETS_PER_READ]})
                                   for start in range(0, len(ids), ASSETS_PER_READ)))
    return datums, {a["id"]: a for read in reads for a in read["nodes"] if a}
