"""Thumbnails of image assets (services/thumbnails.py, graphlake/thumbnail_routes.py): made once per
(SHA-256, size) on the local mount and on MinIO, served through signed URLs that cannot be bent to
another object, size or lifetime, and handed out with no database read per asset."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import struct
import tempfile
import threading
import warnings
import zlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from documents.clock import utcnow
from documents.upload import UploadSession
from resolvers.context import AppState
from services import thumbnails
from services.assets import collect_unpinned
from services.thumbnails import SIGN_METHOD, ImageRefused, make_thumbnail, thumbnail_key
from services.uploads.reconciler import sweep_closed
from storage import LocalStore, StoreUnavailable
from tests import factories
from tests.conftest import S3Service, Served
from tests.operations import Api, object_id
from tests.test_uploads import MOUNTS, complete, linked_away, put
from tests.waiting import wait_for


def png(width: int, height: int, color: tuple[int, ...] = (200, 30, 30, 128)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, "PNG")
    return out.getvalue()


def rotated_jpeg(width: int, height: int) -> bytes:
    """A JPEG stored `width` x `height` whose EXIF says: turn it a quarter (orientation 6)."""
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (width, height), (10, 120, 240)).save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


async def uploaded(api: Api, token: str, data: bytes, mount: str, media_type: str, name: str = "photo") -> dict:
    variables = {"input": {"name": name, "sizeBytes": len(data), "mediaType": media_type, "mount": mount,
                           "sha256": hashlib.sha256(data).hexdigest()}}
    session = (await api.data("CreateUpload", variables, token=token))["createUpload"]
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    return await complete(api, token, session["id"])


def counted(state: AppState, mount: str, outcome: str = "made") -> float:
    """What /metrics says this process made (or refused)."""
    assert state.metrics is not None
    labels = {"mount": mount, "outcome": outcome}
    return state.metrics.registry.get_sample_value("graphlake_thumbnails_made_total", labels) or 0


async def settled(state: AppState) -> None:
    """Wait for the thumbnails started as uploads completed (made in the background) to be made."""
    await wait_for(lambda: not state.thumbnailer.busy, what="the eager thumbnails to be made")


async def thumbnail_url(api: Api, token: str, asset_id: str, size: int | None = None) -> str | None:
    variables = {"id": asset_id, **({"size": size} if size else {})}
    return (await api.data("ThumbnailUrl", variables, token=token))["asset"]["thumbnailUrl"]


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60, follow_redirects=True) as http:
        return await http.get(url)


async def stored_stamp(state: AppState, s3: S3Service, mount: str, key: str) -> object:
    """When the thumbnail object was written: its file's mtime, or MinIO's Last-Modified and ETag."""
    store = state.stores[mount]
    if isinstance(store, LocalStore):
        return store.path(key).stat().st_mtime_ns
    head = s3.client().head_object(Bucket=s3.bucket, Key=store.object_key(key))  # type: ignore[attr-defined]
    return head["LastModified"], head["ETag"]


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_thumbnail_is_made_once_and_fits_its_size(api: Api, contributor: str, state: AppState,
                                                         s3: S3Service, mount: str) -> None:
    asset = await uploaded(api, contributor, png(800, 600), mount, "image/png")
    await settled(state)
    # The web app's size (256) was made as the upload completed, before anyone asked.
    assert await state.stores[mount].stat(thumbnail_key(asset["sha256"], 256)) is not None
    url = await thumbnail_url(api, contributor, asset["id"], 128)
    assert url is not None
    made, counted_before = state.thumbnailer.made, counted(state, mount)

    first = await fetch(url)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(first.content)) as image:
        assert image.format == "WEBP" and image.size == (128, 96) and image.mode == "RGBA"
    assert state.thumbnailer.made == made + 1
    key = thumbnail_key(asset["sha256"], 128)
    stamp = await stored_stamp(state, s3, mount, key)

    again = await fetch(url)
    assert again.status_code == 200 and again.content == first.content
    assert state.thumbnailer.made == made + 1  # served, not made again
    assert counted(state, mount) == counted_before + 1
    assert await stored_stamp(state, s3, mount, key) == stamp
    if mount == "local":  # an immutable thumbnail, cached by the browser for good
        assert "immutable" in again.headers["cache-control"]

    # The default size, 256, was made already: served, not made again.
    default = await fetch(await thumbnail_url(api, contributor, asset["id"]) or "")
    assert default.status_code == 200 and state.thumbnailer.made == made + 1
    with Image.open(io.BytesIO(default.content)) as image:
        assert image.size == (256, 192)


async def test_a_local_thumbnail_has_a_strong_etag_and_a_revalidation_gets_304(api: Api, contributor: str) -> None:
    """Served from a local mount, a thumbnail carried no ETag: a browser or cache revalidating it
    (If-None-Match) got the whole image again. Its strong ETag names what decides its bytes (the
    image's SHA-256, the size, how thumbnails are rendered), as a content download's does."""
    asset = await uploaded(api, contributor, png(800, 600), "local", "image/png")
    url = await thumbnail_url(api, contributor, asset["id"], 128)
    assert url is not None
    first = await fetch(url)
    assert first.status_code == 200 and first.content
    etag = first.headers.get("etag")
    assert etag is not None and re.fullmatch(r'"[^"]+"', etag)  # strong: no W/
    async with httpx.AsyncClient(timeout=60) as http:
        again = await http.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and "immutable" in again.headers["cache-control"]
        assert (await http.get(url, headers={"If-None-Match": f'"other", W/{etag}'})).status_code == 304  # weak comparison
        other = await http.get(url, headers={"If-None-Match": '"other"'})
        assert other.status_code == 200 and other.content == first.content and other.headers["etag"] == etag
    bigger = await fetch(await thumbnail_url(api, contributor, asset["id"], 256) or "")
    assert bigger.status_code == 200 and bigger.headers["etag"] not in (None, etag)


async def test_on_a_local_mount_a_thumbnail_is_written_in_place_not_in_the_temporary_directory(
        api: Api, contributor: str, state: AppState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside its place, then renamed there: no copy, and the server's temporary directory unused."""
    asset = await uploaded(api, contributor, png(320, 200), "local", "image/png")  # bytes no other test stores
    await settled(state)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))  # every temporary file fails now
    with pytest.raises(FileNotFoundError):
        tempfile.mkstemp()
    answer = await fetch(await thumbnail_url(api, contributor, asset["id"], 128) or "")
    assert answer.status_code == 200, answer.text
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.format == "WEBP" and image.size == (128, 80)
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    folder = store.path(thumbnail_key(asset["sha256"], 128)).parent
    assert sorted(p.name for p in folder.iterdir()) == ["128.webp", "256.webp"]  # nothing half-made beside them


async def test_on_a_local_mount_thumbnails_are_read_and_written_through_no_link(
        api: Api, contributor: str, state: AppState) -> None:
    """Pillow opened the image's path after the thumbnailer had checked it, the thumbnail was written
    by path, and a stored one read by path: a writer sharing the mount who put a link in place of an
    image, of its thumbnails' folder or of a thumbnail had another file rendered, another image's
    folder written to, or another file served (a link staying inside the mount passed the check, and
    one swapped in after it needed none). Now each is opened through no link: 400, nothing written."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    mine = await uploaded(api, contributor, png(300, 150, (1, 2, 3, 255)), "local", "image/png", "mine")
    theirs = await uploaded(api, contributor, png(150, 300, (4, 5, 6, 255)), "local", "image/png", "theirs")
    await settled(state)
    theirs_file = store.root / theirs["storage"]["key"]
    assert (await fetch(await thumbnail_url(api, contributor, theirs["id"], 128) or "")).status_code == 200
    theirs_folder = store.root / thumbnail_key(theirs["sha256"], 128).rpartition("/")[0]
    made = {p.name: p.read_bytes() for p in theirs_folder.iterdir()}

    with linked_away(store.root / mine["storage"]["key"], theirs_file):  # the image: another one
        answer = await fetch(await thumbnail_url(api, contributor, mine["id"], 128) or "")
        assert answer.status_code == 400 and "symbolic link" in answer.text, answer.text
    assert await store.stat(thumbnail_key(mine["sha256"], 128)) is None
    with linked_away(store.root / thumbnail_key(mine["sha256"], 512).rpartition("/")[0], theirs_folder):  # its folder
        answer = await fetch(await thumbnail_url(api, contributor, mine["id"], 512) or "")
        assert answer.status_code == 400 and "symbolic link" in answer.text, answer.text
    assert {p.name: p.read_bytes() for p in theirs_folder.iterdir()} == made
    with linked_away(store.root / thumbnail_key(mine["sha256"], 256), theirs_file):  # a stored thumbnail
        answer = await fetch(await thumbnail_url(api, contributor, mine["id"], 256) or "")
        assert answer.status_code == 400 and theirs_file.read_bytes() not in answer.content, answer.status_code
    answer = await fetch(await thumbnail_url(api, contributor, mine["id"], 128) or "")  # all put back: made
    with Image.open(io.BytesIO(answer.content)) as image:
        assert answer.status_code == 200 and image.size == (128, 64)


async def test_an_oversized_file_at_a_thumbnails_key_is_not_read_whole(api: Api, contributor: str,
                                                                      state: AppState) -> None:
    """A stored thumbnail was read into memory whole: a direct writer of the mount who put a file of
    gigabytes at `thumbnails/<sha256>/<size>.webp` had each request hold all of it. A thumbnail takes
    at most its pixels uncompressed and its headers (max_thumbnail_bytes): past that, the file is
    deleted and the thumbnail made again, and no more than that bound is ever read of it."""
    store = state.stores["local"]
    assert isinstance(store, LocalStore)
    asset = await uploaded(api, contributor, png(400, 100, (7, 8, 9, 255)), "local", "image/png", "bloated")
    await settled(state)
    path = store.root / thumbnail_key(asset["sha256"], 128)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:  # sparse: takes no disk (a gigabyte would do as well)
        file.truncate(16 << 20)
    read_sizes: list[int] = []
    open_object = store.open_object

    def watched(key: str):  # type: ignore[no-untyped-def]
        file = open_object(key)
        if key == thumbnail_key(asset["sha256"], 128):
            read = file.read
            file.read = lambda n=-1: read_sizes.append(n) or read(n)  # type: ignore[method-assign]
        return file

    store.open_object = watched  # type: ignore[method-assign]
    try:
        answer = await fetch(await thumbnail_url(api, contributor, asset["id"], 128) or "")
    finally:
        del store.open_object
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.format == "WEBP" and image.size == (128, 32)
    assert path.stat().st_size == len(answer.content) <= thumbnails.max_thumbnail_bytes(128)
    assert read_sizes and all(0 <= n <= thumbnails.max_thumbnail_bytes(128) + 1 for n in read_sizes), read_sizes


async def test_a_backlog_of_eager_thumbnails_never_delays_a_requested_one(api: Api, contributor: str,
                                                                          state: AppState) -> None:
    """The thumbnails made as uploads complete go one at a time in a slot of their own: a browser's
    request during an import of thousands of images does not queue behind them, even for the very
    thumbnail an eager one is queued to make."""
    eager = state.thumbnailer._eager_slot  # held here, as a long backlog would hold it
    await eager.acquire()
    try:
        asset = await uploaded(api, contributor, png(300, 200), "local", "image/png")
        assert state.thumbnailer.busy  # its eager 256-px thumbnail waits for the slot
        # The size the grid asks for is the one queued: the request makes it rather than wait.
        made = state.thumbnailer.made
        url = await thumbnail_url(api, contributor, asset["id"], 256) or ""
        first, second = await asyncio.gather(fetch(url), fetch(url))
        assert first.status_code == second.status_code == 200, first.text
        with Image.open(io.BytesIO(first.content)) as image:
            assert image.size == (256, 171)
        assert state.thumbnailer.made == made + 1  # once, for both requests
        assert state.thumbnailer.busy  # the eager one still waits
    finally:
        eager.release()
    await settled(state)
    assert state.thumbnailer.made == made + 1  # the eager one found it made


async def test_eager_thumbnails_wait_while_a_request_runs(api: Api, contributor: str, app: Starlette,
                                                          state: AppState) -> None:
    """An eager thumbnail is made only when no GraphQL request is running (an import's requests
    run back to back): while one runs, the upload's own is not made, but a browser's request for it
    is answered at once; the eager one starts as the last request ends, and finds it made."""
    made = state.thumbnailer.made
    async with app.state.admission.slot():  # a request running all along, as an import's next one would be
        asset = await uploaded(api, contributor, png(300, 200, (1, 2, 3, 255)), "local", "image/png")  # bytes of its own
        for _ in range(50):  # far longer than a 300 x 200 thumbnail takes, had it started
            await asyncio.sleep(0.01)
            assert state.thumbnailer.busy and state.thumbnailer.made == made
        url = await thumbnail_url(api, contributor, asset["id"], 256) or ""
        response = await fetch(url)
        assert response.status_code == 200, response.text
        assert state.thumbnailer.made == made + 1 and state.thumbnailer.busy  # the request's; the eager one waits
    await settled(state)
    assert state.thumbnailer.made == made + 1  # the eager one found it made


async def test_exif_orientation_is_applied(api: Api, contributor: str) -> None:
    asset = await uploaded(api, contributor, rotated_jpeg(1600, 800), "local", "image/jpeg")
    response = await fetch(await thumbnail_url(api, contributor, asset["id"], 256) or "")
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (128, 256)  # stored wide, shown upright: tall


def test_a_corrupt_exif_block_is_read_past_without_a_warning(tmp_path: Path) -> None:
    """A JPEG whose EXIF directory is cut short (cameras and editors write such files) gets its
    thumbnail, unturned, and Pillow's warning about it stays off the server's stderr."""
    source, target = tmp_path / "cut.jpg", tmp_path / "cut.webp"
    Image.new("RGB", (64, 32), (1, 2, 3)).save(source, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # what the filter in make_thumbnail must override
        with Image.open(source):
            pass
        assert any("Corrupt EXIF" in str(w.message) for w in caught)  # Pillow does warn about this file
        caught.clear()
        make_thumbnail(source, target, 256, 10_000_000)
    assert [str(w.message) for w in caught] == []
    with Image.open(target) as made:
        assert made.size == (64, 32)


def test_a_first_thumbnail_does_not_import_every_pillow_plugin(tmp_path: Path) -> None:
    """In a fresh process: a PNG, a TIFF and a WebP made into thumbnails load only the plugins of
    the formats taken, not the forty-odd others Pillow imports when asked for one it lacks."""
    import subprocess
    import sys

    for name, fmt in (("a.png", "PNG"), ("a.tif", "TIFF"), ("a.webp", "WEBP")):
        Image.new("RGB", (40, 20), (9, 8, 7)).save(tmp_path / name, fmt)
    script = (f"import sys; from pathlib import Path; from services.thumbnails import make_thumbnail\n"
              f"for name in ('a.png', 'a.tif', 'a.webp'):\n"
              f"    make_thumbnail(Path({str(tmp_path)!r}) / name, Path({str(tmp_path)!r}) / (name + '.out'), 16, 10**6)\n"
              f"print(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('ImagePlugin')))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    assert "WebPImagePlugin" in loaded and "PngImagePlugin" in loaded  # the check sees plugins at all
    assert "PsdImagePlugin" not in loaded and "FitsImagePlugin" not in loaded, loaded
    for name in ("a.png", "a.tif", "a.webp"):
        with Image.open(tmp_path / (name + ".out")) as made:
            assert made.format == "WEBP" and made.size == (16, 8)


async def test_one_image_asked_at_once_is_made_once(api: Api, contributor: str, state: AppState) -> None:
    import asyncio

    asset = await uploaded(api, contributor, png(1000, 1000), "local", "image/png")
    await settled(state)
    url = await thumbnail_url(api, contributor, asset["id"], 512) or ""
    made = state.thumbnailer.made
    answers = await asyncio.gather(*(fetch(url) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert state.thumbnailer.made == made + 1


async def test_tampered_expired_and_replayed_urls_are_refused(api: Api, contributor: str, state: AppState,
                                                             served: Served) -> None:
    asset = await uploaded(api, contributor, png(300, 200), "local", "image/png")
    url = await thumbnail_url(api, contributor, asset["id"], 128) or ""
    other = await uploaded(api, contributor, png(310, 200), "local", "image/png", name="other")
    for bad in [url.replace("sig=", "sig=x"), url.replace("size=128", "size=512"),
                url.replace(asset["storage"]["key"], other["storage"]["key"]),
                url.replace("sha=", "sha=0"), url.replace("exp=", "exp=1"), re.sub(r"sig=[^&]*", "sig=%C3%A9", url)]:
        assert (await fetch(bad)).status_code == 403, bad
    key = asset["storage"]["key"]
    expired = state.thumbnail_signer.sign(SIGN_METHOD, "local", key, -5, size="128", sha=asset["sha256"])
    assert (await fetch(expired)).status_code == 403
    # The signature of a thumbnail URL does not open the original bytes at /blobs.
    query = parse_qs(urlparse(url).query)
    blob = httpx.URL(f"{served.base_url}/blobs/local/{key}", params={k: v[0] for k, v in query.items()})
    assert (await fetch(str(blob))).status_code == 403
    for hostile in ["../outside", "a/../../outside", ".multipart/x"]:  # refused by the route, or never routed to it
        signed = state.thumbnail_signer.sign(SIGN_METHOD, "local", hostile, 60, size="128", sha="0" * 64)
        assert not (await fetch(signed)).is_success, hostile
    assert (await fetch(url)).status_code == 200  # the genuine one still works


async def test_no_thumbnail_for_what_is_not_a_stored_image(api: Api, contributor: str) -> None:
    scan = await uploaded(api, contributor, b"\x00" * 64, "local", "application/x-scan")
    value = await factories.value_asset(api, contributor)
    text = await factories.image_asset(api, contributor)  # a TEXT asset that claims image/png
    for asset in (scan, value, text):
        assert await thumbnail_url(api, contributor, asset["id"]) is None


async def test_a_size_outside_the_set_is_bad_user_input(api: Api, contributor: str) -> None:
    value = await factories.value_asset(api, contributor)
    for size in (0, 100, 4096):
        error = await api.error("ThumbnailUrl", {"id": value["id"], "size": size}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == "size", error
        assert "128, 256, 512" in error["message"]


async def test_bytes_that_are_no_image_or_too_big_get_422(api: Api, contributor: str, state: AppState) -> None:
    broken = await uploaded(api, contributor, b"not a png at all", "local", "image/png")
    await settled(state)  # tried as the upload completed, refused, and so not stored
    refused = counted(state, "local", "refused")
    response = await fetch(await thumbnail_url(api, contributor, broken["id"]) or "")
    assert response.status_code == 422 and "no thumbnail" in response.json()["error"]
    assert counted(state, "local", "refused") == refused + 1

    bomb = await uploaded(api, contributor, png(400, 400), "local", "image/png")
    await settled(state)
    limit, state.thumbnailer.max_pixels = state.thumbnailer.max_pixels, 100_000
    try:
        response = await fetch(await thumbnail_url(api, contributor, bomb["id"], 512) or "")
    finally:
        state.thumbnailer.max_pixels = limit
    assert response.status_code == 422 and "400x400 pixels" in response.json()["error"]


async def test_thumbnail_urls_cost_no_database_read_per_asset(api: Api, served: Served, contributor: str) -> None:
    async def commands(count: int) -> int:
        for i in range(count):
            await uploaded(api, contributor, png(20 + i, 20), "local", "image/png", name=f"p{count}-{i}")
        await api.data("Me", token=contributor)  # the token's lookup is not the query's
        served.commands.clear()
        edges = (await api.data("ThumbnailUrls", {"first": 50}, token=contributor))["assets"]["edges"]
        assert sum(1 for e in edges if e["node"]["thumbnailUrl"]) >= count
        return len(served.commands.commands)

    assert await commands(2) == await commands(8)


@pytest.mark.parametrize("mount", MOUNTS)
async def test_deleting_an_image_deletes_its_thumbnails(api: Api, contributor: str, state: AppState,
                                                        s3: S3Service, mount: str) -> None:
    asset = await uploaded(api, contributor, png(400, 300, (1, 2, 3, 255)), mount, "image/png")
    url = await thumbnail_url(api, contributor, asset["id"], 128) or ""
    assert (await fetch(url)).status_code == 200
    await settled(state)
    store = state.stores[mount]
    keys = [thumbnail_key(asset["sha256"], size) for size in (128, 256)]  # asked for; made as it completed
    assert all([await store.stat(key) is not None for key in keys])
    await api.data("DeleteAsset", {"id": asset["id"]}, token=contributor)
    assert all([await store.stat(key) is None for key in keys])  # no picture of a deleted image is left behind
    assert await thumbnail_url(api, contributor, asset["id"], 128) is None


@pytest.mark.parametrize("mount", MOUNTS)
async def test_a_delete_whose_store_failed_once_leaves_no_thumbnail_behind(api: Api, contributor: str, state: AppState,
                                                                          monkeypatch: pytest.MonkeyPatch, mount: str) -> None:
    """The store fails once on an image's bytes, after the asset turned DELETED (deleteAsset, the
    collector). A retry returned at once (the asset was DELETED already) and the sweep deleted the
    upload's key alone: the thumbnails stayed for good. Now a repeat removes them, and without one
    the sweep does. (deleteAsset itself answers done: it took effect, and is audited.)"""
    store = state.stores[mount]
    images = [await uploaded(api, contributor, png(300, 200, (n, 2, 3, 255)), mount, "image/png", name=f"p{n}")
              for n in range(3)]
    for image in images:
        assert (await fetch(await thumbnail_url(api, contributor, image["id"], 128) or "")).status_code == 200
    await settled(state)  # and the 256 px one made as it completed
    keys = {image["id"]: [image["storage"]["key"], *(thumbnail_key(image["sha256"], size) for size in (128, 256))]
            for image in images}
    assert all([await store.stat(key) is not None for image_keys in keys.values() for key in image_keys])
    delete, failed = store.delete, []

    async def fails_once(key: str) -> None:
        if key.startswith("assets/") and not failed:
            failed.append(key)
            raise StoreUnavailable("the store went away")
        await delete(key)

    monkeypatch.setattr(store, "delete", fails_once)

    async def left(image: dict) -> list[str]:
        return [key for key in keys[image["id"]] if await store.stat(key) is not None]

    # deleteAsset, then a repeat.
    assert (await api.data("DeleteAsset", {"id": images[0]["id"]}, token=contributor))["deleteAsset"]["deleted"]
    assert failed and await left(images[0])
    await api.data("DeleteAsset", {"id": images[0]["id"]}, token=contributor)
    assert await left(images[0]) == []
    # deleteAsset, not repeated; and the collector: the sweep removes what each left.
    failed.clear()
    assert (await api.data("DeleteAsset", {"id": images[1]["id"]}, token=contributor))["deleteAsset"]["deleted"]
    failed.clear()
    await state.db.assets.update_one({"_id": object_id(images[2]["id"])}, {"$set": {"unpinned_at": utcnow() - timedelta(days=10)}})
    with pytest.raises(StoreUnavailable):
        await collect_unpinned(timedelta(days=7), state.stores)
    assert await left(images[1]) and await left(images[2])
    long_ago = utcnow() - timedelta(hours=1)  # every URL of theirs dead: the sweep may run
    await UploadSession.get_pymongo_collection().update_many({}, {"$set": {"expires_at": long_ago, "finished_at": long_ago}})
    await sweep_closed(state.stores)
    assert await left(images[1]) == [] and await left(images[2]) == []


async def test_on_s3_a_missing_original_is_404_and_an_oversized_one_is_not_downloaded(
        api: Api, contributor: str, state: AppState, s3: S3Service, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.thumbnails

    store = state.stores["lab"]
    gone = await uploaded(api, contributor, png(300, 200, (9, 9, 9, 255)), "lab", "image/png")
    await settled(state)
    s3.client().delete_object(Bucket=s3.bucket, Key=store.object_key(gone["storage"]["key"]))  # behind the lake's back
    response = await fetch(await thumbnail_url(api, contributor, gone["id"], 512) or "")
    assert response.status_code == 404 and "does not exist" in response.json()["error"]

    big = await uploaded(api, contributor, png(400, 400), "lab", "image/png")
    await settled(state)
    monkeypatch.setattr(services.thumbnails, "IMAGE_OVERHEAD_BYTES", 0)
    monkeypatch.setattr(state.thumbnailer, "max_pixels", 10)  # no image of 10 pixels takes these bytes
    response = await fetch(await thumbnail_url(api, contributor, big["id"], 512) or "")
    assert response.status_code == 422
    assert "bytes, more than an image of at most 10 pixels" in response.json()["error"]  # refused by its size


@pytest.mark.parametrize("mount", MOUNTS)
async def test_an_image_deleted_while_its_thumbnail_is_made_leaves_none_behind(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch, mount: str) -> None:
    """The delete removes the image's bytes, then its thumbnails, and drops their sweep marks. A
    thumbnail being made from bytes read before the delete was written after it, and stayed for good:
    a picture of a deleted (or erased) image, served to anyone holding its URL for the next hours."""
    asset = await uploaded(api, contributor, png(600, 400, (9, 8, 7, 255)), mount, "image/png")
    await settled(state)  # the 256 px one, made as the upload completed
    url = await thumbnail_url(api, contributor, asset["id"], 512) or ""
    rendering, go_on = threading.Event(), threading.Event()
    render = thumbnails.make_thumbnail

    def held(*args: object) -> None:  # the bytes are read: the delete runs now
        rendering.set()
        assert go_on.wait(30)
        render(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(thumbnails, "make_thumbnail", held)
    fetching = asyncio.create_task(fetch(url))
    assert await asyncio.to_thread(rendering.wait, 30)
    assert (await api.data("DeleteAsset", {"id": asset["id"]}, token=contributor))["deleteAsset"]["deleted"]
    go_on.set()
    assert (await fetching).status_code == 404  # the image is gone: so is what was made of it
    store = state.stores[mount]
    assert [size for size in (128, 256, 512) if await store.stat(thumbnail_key(asset["sha256"], size)) is not None] == []
    assert (await fetch(url)).status_code == 404


def png_header(width: int, height: int) -> bytes:
    """A PNG that says it is `width` x `height` and holds almost no pixel data: what the size checks,
    which read the header alone, see of a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def test_the_max_pixels_setting_is_the_one_limit_not_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's own limit (89.5 million pixels warned of, twice that refused) capped a larger
    GRAPHLAKE_THUMBNAIL_MAX_PIXELS at 179 million without a word, and warned on stderr of images the
    default (100 million) allows."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # put back after the test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageRefused) as refused:  # allowed, then found truncated: these are no real image
            make_thumbnail(io.BytesIO(png_header(10_000, 9_500)), io.BytesIO(), 256, 100_000_000)
        assert "truncated" in str(refused.value)
        with pytest.raises(ImageRefused) as refused:
            make_thumbnail(io.BytesIO(png_header(20_000, 10_000)), io.BytesIO(), 256, 300_000_000)
        assert "truncated" in str(refused.value), refused.value  # not Pillow's "exceeds limit of 178956970 pixels"
    assert [str(w.message) for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []
    with pytest.raises(ImageRefused, match="more than the 100000000 allowed"):  # the setting still refuses
        make_thumbnail(io.BytesIO(png_header(20_000, 10_000)), io.BytesIO(), 256, 100_000_000)
