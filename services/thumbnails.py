"""Image thumbnails: made once per (SHA-256, size) with Pillow, kept in the image's own mount, and
handed out through signed URLs (the route is graphlake/thumbnail_routes.py).

Keyed by the bytes' SHA-256, not by the asset: assets holding the same image share one thumbnail,
and a thumbnail is never stale, since the bytes behind a SHA-256 never change. So the stored
object is served with a long cache lifetime, and the URL naming it is rounded to the hour so that a
browser's cache can hit across queries.

This module knows no GraphQL and no settings: the resolver and the route hand it what it needs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from documents.asset import Asset
from documents.common import AssetKind, AssetStatus
from services.errors import BadUserInput
from storage import LocalStore, ObjectStore
from storage.signing import UrlSigner

if TYPE_CHECKING:
    from services.metrics import Metrics

# A small, fixed set: each size is one stored object per image, and a client must not be able to
# make the server render (and store) every size from 1 to 10,000.
SIZES = (128, 256, 512)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"})
# The decoders Pillow may use, whatever the bytes claim to be: never EPS (Ghostscript) or the like.
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Not "GET": the signature of a thumbnail URL must not open /blobs, which would serve the original.
SIGN_METHOD = "THUMBNAIL"
URL_SECONDS = 3600  # at least this long; the expiry is rounded up to the next such step
MEDIA_TYPE = "image/webp"
CACHE_CONTROL = "private, max-age=31536000, immutable"  # see the module's docstring
EAGER_SIZE = 256  # what the web app's grid asks for: made as an upload completes, before anyone asks
# libwebp's effort (0-6; Pillow's default is 4). At 256 px, 2 encoded photos 1.6-2.7x faster than 4
# for 4-8% more bytes (0 was faster still but 50-70% larger). An import makes one per image, on the
# CPU the server and the embedded database share: encoding was a third of the server's CPU then.
WEBP_METHOD = 2
WEBP_QUALITY = 80
# How a thumbnail's bytes are made from its image, named in its ETag (thumbnail_etag_basis): a
# change here makes thumbnails made from then on other bytes. One kept from before is not made again,
# and is sent under the new ETag: a client holding it fetches it once more, never keeps other bytes.
RENDERING = f"webp quality {WEBP_QUALITY} method {WEBP_METHOD}"

log = logging.getLogger("graphlake.thumbnails")


# An image's stored size at most: 16-bit RGBA uncompressed (8 bytes a pixel), plus what headers and
# metadata (EXIF, ICC profiles, previews) add. Anything larger is refused before it is downloaded.
MAX_BYTES_PER_PIXEL = 8
IMAGE_OVERHEAD_BYTES = 16 * 1024 * 1024


class ImageRefused(Exception):
    """The bytes are no image Graphlake makes thumbnails of (unreadable, another format, too many pixels)."""


class ThumbnailTooLarge(Exception):
    """What is stored where a thumbnail belongs is larger than any thumbnail this module makes."""


# Room for WebP's container and chunk headers (and an ICC profile, say) beside the pixels.
THUMBNAIL_OVERHEAD_BYTES = 64 * 1024


def max_thumbnail_bytes(size: int) -> int:
    """The most a thumbnail of at most `size` pixels a side takes: its pixels uncompressed (RGBA, 4
    bytes each) and its headers. WebP at quality 80 never comes near: 512 x 512 pixels of random RGBA
    noise, the worst there is for a codec, took 574 KB of these 1.06 MiB. A file larger than this at a
    thumbnail's key was put there by another writer of the mount, and is not read into memory."""
    return size * size * 4 + THUMBNAIL_OVERHEAD_BYTES


def thumbnail_key(sha256: str, size: int) -> str:
    """Where a thumbnail is kept in its image's mount."""
    return f"thumbnails/{sha256}/{size}.webp"


def thumbnail_etag_basis(sha256: str, size: int) -> str:
    """What decides a thumbnail's bytes, for its ETag (graphlake/object_files.content_etag): its image's
    bytes (their SHA-256), its size and RENDERING; its format is its media type, which the ETag names
    too. All of it is in the signed URL, as the stored thumbnail's key is: no hash of the file to
    compute at each request."""
    return f"thumbnail:{sha256}:{size}:{RENDERING}"


def check_size(size: int) -> None:
    if size not in SIZES:
        raise BadUserInput(f"must be one of {', '.join(map(str, SIZES))}", field="size")


def is_image(media_type: str | None) -> bool:
    return (media_type or "").split(";")[0].strip().lower() in IMAGE_TYPES


def _source(asset: Asset) -> tuple[str, str, str] | None:
    """(mount, key, sha256) of an uploaded image whose bytes are stored and verified, else None.
    EXTERNAL objects are left out: they are not ours to add objects beside."""
    storage = asset.storage
    if (asset.kind is not AssetKind.FILE or asset.status is not AssetStatus.ACTIVE or storage is None
            or storage.external or not asset.sha256 or not is_image(asset.media_type)):
        return None
    return storage.mount, storage.key, asset.sha256


def thumbnail_url(asset: Asset, size: int, signer: UrlSigner, stores: dict[str, ObjectStore],
                  now: float | None = None) -> str | None:
    """A signed URL of the asset's thumbnail no larger than `size` pixels a side, or None for
    anything but a stored image. No I/O: the thumbnail is made when the URL is first fetched."""
    check_size(size)
    source = _source(asset)
    if source is None or source[0] not in stores:
        return None
    mount, key, sha256 = source
    step = URL_SECONDS
    expires_at = math.ceil(((now or time.time()) + URL_SECONDS) / step) * step
    return signer.sign(SIGN_METHOD, mount, key, URL_SECONDS, expires_at=expires_at, size=str(size), sha=sha256)


def thumbnail_keys(asset: Asset) -> list[str]:
    """The keys (in the asset's mount) of every thumbnail an image asset may have; none for what
    never has one."""
    storage = asset.storage
    if (asset.kind is not AssetKind.FILE or storage is None or storage.external or not asset.sha256
            or not is_image(asset.media_type)):
        return []
    return [thumbnail_key(asset.sha256, size) for size in SIZES]


async def remove_thumbnails(asset: Asset, stores: dict[str, ObjectStore]) -> None:
    """Delete an image's thumbnails with its bytes (a deleted or erased image leaves no picture of
    itself behind). Another asset with the same bytes simply has them made again when next asked:
    a thumbnail is a cache. Nothing to do for what never had one."""
    keys = thumbnail_keys(asset)
    if not keys or asset.storage is None or asset.storage.mount not in stores:
        return
    store = stores[asset.storage.mount]
    for key in keys:
        await store.delete(key)


# Pillow warns (a UserWarning, printed on the server's stderr) about a corrupt EXIF or TIFF
# directory, which users' files often have, and then reads the image without it (or refuses it).
CORRUPT_EXIF = "Corrupt EXIF data"


def _quiet_pillow() -> None:
    """Ignore that warning. A filter, not `catch_warnings`, which is not thread-safe before Python
    3.14 (thumbnails are made in threads); looked for on every call rather than set once, since a
    test runner restores the filters between tests."""
    if not any(f[0] == "ignore" and f[1] is not None and f[1].pattern == CORRUPT_EXIF for f in warnings.filters):
        warnings.filterwarnings("ignore", message=CORRUPT_EXIF, category=UserWarning)


def make_thumbnail(source: Path | BinaryIO, target: Path | BinaryIO, size: int, max_pixels: int) -> None:
    """Write a WebP of the image at `source` (a path, or a file opened already) to `target`, at most
    `size` pixels a side. Blocking and CPU-bound: run it in a thread. Pillow is imported here, so a
    server that never makes one does not load it."""
    # Every format of PIL_FORMATS registered up front: Pillow's own few (BMP, GIF, JPEG, PNG; it skips
    # them for a file whose name has an extension) and TIFF and WEBP. Asked to try a format it has not
    # registered, Pillow imports every plugin it has (about 100 ms, once a process).
    from PIL import Image, ImageOps, TiffImagePlugin, UnidentifiedImageError, WebPImagePlugin  # noqa: F401

    Image.preinit()
    _quiet_pillow()
    # `max_pixels` (GRAPHLAKE_THUMBNAIL_MAX_PIXELS) is the limit, checked below from the header. Pillow's
    # own (89.5 million pixels, warned of on stderr; twice that, refused) capped a larger setting at
    # 179 million without a word, and warned of images the setting allows. Only ever raised here.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(source, formats=PIL_FORMATS) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise ImageRefused(f"the image has {width}x{height} pixels, more than the {max_pixels} allowed")
            # JPEG decodes at 1/2 to 1/8 scale straight away (no full-size image in memory); others ignore it.
            image.draft("RGB", (size, size))
            upright = ImageOps.exif_transpose(image)  # camera orientation, before the box is applied
            upright.thumbnail((size, size))
            if upright.mode not in ("RGB", "RGBA"):
                alpha = upright.mode in ("LA", "PA") or "transparency" in upright.info
                upright = upright.convert("RGBA" if alpha else "RGB")
            upright.save(target, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise ImageRefused(f"no thumbnail can be made of these bytes: {error}") from error


class Thumbnailer:
    """Makes thumbnails on demand, at most `concurrency` at once in this process, each (SHA-256,
    size) once: requests for one being made wait for it rather than make it again. The eager ones
    (`prepare`) are made one at a time beside them, never in their slots: an import of thousands of
    images would otherwise queue a browser's thumbnails behind its own. (Made at the lowest CPU
    priority instead, they lingered into the work after an import and slowed it: bench/exchange.py.)

    With `quiet` (an awaitable that returns once no request is running: graphlake/admission.py),
    each eager one also waits for it before it starts. Made during an import, they took half of the
    server's CPU while it added the annotations; now they are made between its requests and after
    it, and a thumbnail a browser asks for meanwhile is made for it at once, as always."""

    def __init__(self, concurrency: int, max_pixels: int, metrics: Metrics | None = None,
                 quiet: Callable[[], Awaitable[None]] | None = None) -> None:
        self.max_pixels = max_pixels
        self.metrics = metrics
        self._quiet = quiet
        self._slots = asyncio.Semaphore(concurrency)
        self._eager_slot = asyncio.Semaphore(1)
        self._eager_queued: set[tuple[str, str]] = set()  # eager ones waiting for their slot
        self._making: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.made = 0  # thumbnails this process generated (tests read it)
        self._eager = 0  # eager ones started and not yet done (see prepare)

    async def ensure(self, store: ObjectStore, key: str, sha256: str, size: int, *, eager: bool = False) -> str:
        """The key of the thumbnail of the image at `key` in `store`, made now unless it is stored
        (`eager`: made for no one waiting, in the eager slot)."""
        thumbnail = thumbnail_key(sha256, size)
        if await store.stat(thumbnail) is not None:
            return thumbnail
        made_as = (store.name, thumbnail)
        making = self._making.get(made_as)
        # A request does not wait for an eager one still queued for its slot (an import's backlog):
        # it makes the thumbnail itself, and the eager one then finds it stored.
        if making is None or (not eager and made_as in self._eager_queued):
            self._eager_queued.discard(made_as)  # requests after this one wait for this one
            making = asyncio.ensure_future(self._make(store, key, thumbnail, size, eager))
            self._making[made_as] = making
            making.add_done_callback(partial(self._forget, made_as))
        # Shielded: a client that goes away must not cancel what other requests wait for.
        await asyncio.shield(making)
        return thumbnail

    def _forget(self, made_as: tuple[str, str], done: asyncio.Future[None]) -> None:
        if self._making.get(made_as) is done:  # not one a request started meanwhile
            del self._making[made_as]

    async def _make(self, store: ObjectStore, key: str, thumbnail: str, size: int, eager: bool) -> None:
        # The eager ones wait for their own slot, never for those requests wait for.
        slot = self._eager_slot if eager else self._slots
        if eager:
            self._eager_queued.add((store.name, thumbnail))
        try:
            await slot.acquire()
            if eager and self._quiet is not None:
                try:
                    await self._quiet()  # still queued: a request for this one makes it itself meanwhile
                except BaseException:
                    slot.release()
                    raise
        finally:
            self._eager_queued.discard((store.name, thumbnail))
        try:
            await self._make_in_slot(store, key, thumbnail, size)
        finally:
            slot.release()

    async def _make_in_slot(self, store: ObjectStore, key: str, thumbnail: str, size: int) -> None:
        if await store.stat(thumbnail) is not None:  # made meanwhile, by a request or another process
            return
        if isinstance(store, LocalStore):
            # Read in place, through the descriptor open_object judged, and written beside its place
            # (a StagedFile, renamed there): no copy, and no name in the mount opened twice or through
            # a link (Pillow had opened the image's path after it was checked, and written by path).
            staged = await asyncio.to_thread(store.stage, thumbnail)
            try:
                await self._render(store, partial(_render_stored, store, key, staged.file, size, self.max_pixels))
                await store.write(thumbnail, staged)
            finally:
                staged.close()
        else:
            with tempfile.TemporaryDirectory(prefix="graphlake-thumbnail-") as folder:
                await self._check_size(store, key)
                source, target = Path(folder, "source"), Path(folder, "thumbnail.webp")
                await _download(store, key, source)
                await self._render(store, partial(make_thumbnail, source, target, size, self.max_pixels))
                await store.write(thumbnail, target)
        # An image deleted while this was made from its bytes: its delete removed the bytes, then the
        # thumbnails, and forgot them; one written after stayed for good. The delete's two steps and
        # these two run in opposite orders, so one of them sees the other's first and removes it.
        if await store.stat(key) is None:
            await store.delete(thumbnail)
            raise FileNotFoundError(key)
        self.made += 1
        self._count(store, "made")

    async def _render(self, store: ObjectStore, render: Callable[[], None]) -> None:
        """Run `render` (make_thumbnail, in a thread), counting a refused image."""
        try:
            await asyncio.to_thread(render)
        except ImageRefused:
            self._count(store, "refused")
            raise

    async def _check_size(self, store: ObjectStore, key: str) -> None:
        """Before an object is downloaded to be read: FileNotFoundError if it is gone, ImageRefused if it
        is larger than any image within max_pixels could be, so no huge object is copied only to be refused."""
        info = await store.stat(key)
        if info is None:
            raise FileNotFoundError(key)
        if info.size > self.max_pixels * MAX_BYTES_PER_PIXEL + IMAGE_OVERHEAD_BYTES:
            self._count(store, "refused")
            raise ImageRefused(f"the object has {info.size} bytes, more than an image of at most {self.max_pixels} "
                               "pixels takes (GRAPHLAKE_THUMBNAIL_MAX_PIXELS)")

    def _count(self, store: ObjectStore, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.thumbnails.labels(store.name, outcome).inc()

    @property
    def busy(self) -> bool:
        """Whether a thumbnail is being made (tests wait for the eager ones to settle)."""
        return bool(self._making) or self._eager > 0

    def prepare(self, assets: Iterable[Asset], stores: dict[str, ObjectStore], tasks: set[asyncio.Task]) -> None:
        """Start making the EAGER_SIZE thumbnails of images whose uploads just completed, in the
        background (kept in `tasks` until done): the grid then shows them without waiting for one
        to be made. Best effort: what fails here is made, or refused, when first asked for."""
        for asset in assets:
            source = _source(asset)
            if source is None or source[0] not in stores:
                continue
            mount, key, sha256 = source
            self._eager += 1
            task = asyncio.create_task(self._quietly(stores[mount], key, sha256), name=f"thumbnail {sha256[:12]}")
            tasks.add(task)  # a reference until done: the loop holds tasks only weakly
            task.add_done_callback(tasks.discard)

    async def _quietly(self, store: ObjectStore, key: str, sha256: str) -> None:
        try:
            await self.ensure(store, key, sha256, EAGER_SIZE, eager=True)
        except ImageRefused as error:
            log.info("no thumbnail of %s in mount %s: %s", key, store.name, error)
        except FileNotFoundError:  # deleted since its upload completed: nothing to make
            log.info("no thumbnail of %s in mount %s: it was deleted", key, store.name)
        except Exception:  # no client waits on it: logged, and tried again when one asks
            log.exception("making the thumbnail of %s in mount %s failed", key, store.name)
        finally:
            self._eager -= 1

    async def local_bytes(self, store: LocalStore, key: str, sha256: str, size: int) -> bytes:
        """The thumbnail's bytes from a local mount, made first if need be. A thumbnail is a few KB:
        one read in one thread hop is the hot path (a browser's grid asks for a hundred at once),
        cheaper than a stat, then a streamed response's hops for open, each chunk and close. Read up
        to max_thumbnail_bytes only: a larger file there (a direct writer's) is deleted and the
        thumbnail made again; ThumbnailTooLarge if one is found there again at once."""
        thumbnail = thumbnail_key(sha256, size)
        read = partial(_read_stored, store, thumbnail, max_thumbnail_bytes(size))
        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError:
            pass
        except ThumbnailTooLarge as error:  # a cache entry gone wrong: made again, as if it were missing
            log.warning("%s in mount %s; it is deleted and made again", error, store.name)
            await store.delete(thumbnail)
        await self.ensure(store, key, sha256, size)
        return await asyncio.to_thread(read)

    async def serve_url(self, store: ObjectStore, thumbnail: str) -> str:
        """A signed GET of a stored thumbnail in an S3 mount (the route redirects there)."""
        return await store.sign_get(thumbnail, filename=Path(thumbnail).name, content_type=MEDIA_TYPE,
                                    expires_in=URL_SECONDS)


def _render_stored(store: LocalStore, key: str, target: BinaryIO, size: int, max_pixels: int) -> None:
    with store.open_object(key) as source:
        make_thumbnail(source, target, size, max_pixels)


def _read_stored(store: LocalStore, key: str, limit: int) -> bytes:
    with store.open_object(key) as file:
        content = file.read(limit + 1)  # not fstat's size then a read: the file may grow in between
    if len(content) > limit:
        raise ThumbnailTooLarge(f"the file at {key} holds more than the {limit} bytes a thumbnail takes at most")
    return content


async def _download(store: ObjectStore, key: str, path: Path) -> None:
    """Copy an object to a local file, a chunk at a time (an image may be far larger than its thumbnail)."""
    with path.open("wb") as out:
        async for chunk in store.read(key):
            await asyncio.to_thread(out.write, chunk)
