"""Exporters download a version's images several at a time (graphlake_client/export_fetches.py), and
a failed download fails the export with its own error, leaving nothing running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from documents.roles import Role
from graphlake_client import Client, ResumeState, version_reading
from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.version_reading import version_datums
from resolvers.context import AppState
from services.uploads.sessions import asset_key
from tests.conftest import MakeToken, Served
from tests.operations import object_id
from tests.test_exchange_coco import coco_files, write_images
from tests.waiting import wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


async def imported(served: Served, token: str, tmp_path: Path) -> str:
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        done = await lake.import_coco(annotations, tmp_path / "images", "fetched", version="v1")
    return done.version["id"]


@pytest.mark.parametrize("export", ["export_coco", "export_yolo", "export_hf"])
async def test_images_are_downloaded_side_by_side(served: Served, make_token: MakeToken, tmp_path: Path,
                                                  export: str) -> None:
    version = await imported(served, await make_token(Role.CONTRIBUTOR), tmp_path)
    async with Client(served.base_url, await make_token(Role.VIEWER), concurrency=2) as reader:
        fetch, running, most = reader._fetch, 0, 0
        both = asyncio.Event()

        async def watched(*args: Any) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            if running == 2:
                both.set()
            try:
                # The first waits until a second one runs: one at a time, this times out.
                await asyncio.wait_for(both.wait(), timeout=30)
                await fetch(*args)
            finally:
                running -= 1

        reader._fetch = watched  # type: ignore[method-assign]
        written = await getattr(reader, export)(version, tmp_path / export)
    assert most >= 2 and written["images"] == 3  # (COCO's masks come one at a time besides: they are read at once)
    images = [p for p in (tmp_path / export).rglob("*.png") if p.stat().st_size]
    assert len(images) == 3


async def test_a_failed_download_fails_the_export_and_stops_the_rest(served: Served, make_token: MakeToken,
                                                                     tmp_path: Path) -> None:
    version = await imported(served, await make_token(Role.CONTRIBUTOR), tmp_path)
    async with Client(served.base_url, await make_token(Role.VIEWER), concurrency=2) as reader:
        calls = 0

        async def failing(*_: Any) -> None:
            nonlocal calls
            calls += 1
            raise OSError("the disk is full")

        reader._fetch = failing  # type: ignore[method-assign]
        with pytest.raises(OSError, match="the disk is full"):
            await reader.export_coco(version, tmp_path / "out")
        assert not [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "ExportFetches._one"]
    assert calls >= 1


async def test_the_next_pages_are_asked_for_while_one_is_used_and_dropped_when_the_reader_stops(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    version = await imported(served, await make_token(Role.CONTRIBUTOR), tmp_path)
    async with Client(served.base_url, await make_token(Role.VIEWER)) as reader:
        execute, asked = reader.execute, []

        async def counted(query: str, variables: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            asked.append((query == ops.VERSION_DATUM_CURSORS, variables.get("after")))
            return await execute(query, variables, *args, **kwargs)

        reader.execute = counted  # type: ignore[method-assign]
        pages = version_datums(reader, version, datums_per_page=1)
        first = await anext(pages)
        await asyncio.sleep(0)  # the read ahead starts
        assert first[0]["asset"] is not None and version_reading.PAGES_AT_ONCE == 2
        # The cursors (one read), then the first two pages at once, and the third as soon as the first came.
        assert [cursors for cursors, _ in asked] == [True, False, False, False]
        assert asked[1][1] is None and len({after for _, after in asked[1:]}) == 3
        await pages.aclose()  # the reader stops: the pages read ahead are dropped, nothing left running
        await wait_for(lambda: not [t for t in asyncio.all_tasks() if not t.done() and "counted" in repr(t.get_coro())],
                       what="the page read ahead to be dropped")
        assert len([pair async for pair in version_datums(reader, version, datums_per_page=1)]) == 3


async def test_a_client_that_shares_the_local_mount_reads_the_images_from_it(served: Served, make_token: MakeToken,
                                                                             tmp_path: Path) -> None:
    """As uploads write there: each file copied from the mount's directory and checked, none sent
    through the server. A reader not allowed to see the directory (a viewer) downloads them."""
    contributor = await make_token(Role.CONTRIBUTOR)
    version = await imported(served, contributor, tmp_path)

    async def export(token: str, out: Path) -> tuple[int, Path | None]:
        async with Client(served.base_url, token) as lake:
            receive, received = lake._receive, 0

            async def counted(*args: Any) -> None:
                nonlocal received
                received += 1
                await receive(*args)

            lake._receive = counted  # type: ignore[method-assign]
            await lake.export_coco(version, out)
            return received, await lake._shared_root(None)

    direct, root = await export(contributor, tmp_path / "direct")
    over_http, _ = await export(await make_token(Role.VIEWER), tmp_path / "http")
    assert root is not None and direct == 0 and over_http == 5  # 3 images, 2 masks
    for image in (tmp_path / "http").rglob("*.png"):
        assert (tmp_path / "direct" / image.relative_to(tmp_path / "http")).read_bytes() == image.read_bytes()

    # The bytes on disk are checked as a download's are: changed ones fail the export.
    async with Client(served.base_url, contributor) as lake:
        image = (await anext(version_datums(lake, version)))[0]["asset"]
    stored = root / image["storage"]["key"]
    stored.write_bytes(b"not the image" + stored.read_bytes())
    with pytest.raises(GraphlakeClientError, match="is not the stored file") as refused:
        await export(contributor, tmp_path / "tampered")
    assert refused.value.code == "INTEGRITY" and not list((tmp_path / "tampered").rglob(".download-*"))


@pytest.mark.parametrize("export", ["export_coco", "export_bundle"])
async def test_an_image_the_store_lost_fails_the_export_with_a_coded_error(served: Served, make_token: MakeToken,
                                                                           state: AppState, tmp_path: Path,
                                                                           export: str) -> None:
    """A store that answers 404 for an image (its file lost from the mount) ends the export as any
    download does (Client._retried): a GraphlakeClientError naming downloadUrl, not httpx's own error."""
    version = await imported(served, await make_token(Role.CONTRIBUTOR), tmp_path)
    async with Client(served.base_url, await make_token(Role.VIEWER), direct_writes=False) as reader:
        datums = [datum async for datum, _ in version_datums(reader, version, 10, 10)]
        (state.stores["local"].root / asset_key(object_id(datums[0]["asset"]["id"]))).unlink()
        with pytest.raises(GraphlakeClientError) as lost:
            await getattr(reader, export)(version, tmp_path / "out")
    assert lost.value.code == "NOT_FOUND" and lost.value.field == "downloadUrl", (lost.value.code, lost.value.field)
