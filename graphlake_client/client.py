"""`Client`, the one class a user needs: uploads (uploads.py), events and downloads.

    async with Client("http://127.0.0.1:8000", token) as lake:
        asset = await lake.upload_file(Path("scan.tif"), metadata={"plate": 7})
        await lake.download(asset["id"], Path("copy.tif"))
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.retries import store_failures
from graphlake_client.uploads import Uploader

if TYPE_CHECKING:
    from graphlake_client.coco import CocoImport
    from graphlake_client.voc import VocImport

CHUNK = 1024 * 1024  # bytes written at a time while downloading


def safe_name(name: str) -> str:
    """The base name of a server-given file name, so a download lands under its destination only:
    directories, absolute paths and `..` are dropped (a name of only those becomes "download")."""
    base = name.replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base if base not in ("", ".", "..") else "download"


class Client(Uploader):
    """A Graphlake server, over HTTP: GraphQL calls (`execute`), file and directory uploads,
    events, downloads. Use it as an async context manager, which closes its connections."""

    # --- events
    async def log_event(self, event_type: str, message: str | None = None, *, level: str = "INFO",
                        data: Any = None, **fields: Any) -> str:
        """Log one event; `fields` are EventInput fields (source, alert, traceId, ...). Returns its ID."""
        return (await self.log_events([{"eventType": event_type, "message": message, "level": level, "data": data, **fields}]))[0]

    async def log_events(self, events: list[dict[str, Any]]) -> list[str]:
        """Log a batch of EventInput dicts with one request and one bulk write. Returns their IDs."""
        inputs = [{k: v for k, v in e.items() if v is not None} for e in events]
        return (await self.execute(ops.LOG_EVENTS, {"inputs": inputs}))["logEvents"]["ids"]

    # --- moving datasets in and out (the coco extra: pycocotools, Pillow)
    async def import_coco(self, annotations: Path, images: Path, dataset: str, **options: Any) -> CocoImport:
        """Import a COCO annotations file and its images into `dataset` (graphlake_client.coco:
        `version`, `predictions`, `model`, `mount`, `set_name`). Returns a CocoImport."""
        from graphlake_client.coco import import_coco

        return await import_coco(self, annotations, images, dataset, **options)

    async def export_coco(self, version: str, dest: Path) -> dict[str, Any]:
        """Write a dataset version (an id, or DATASET/VERSION) as COCO under `dest`: images/,
        annotations.json, and results.json when it holds predictions (graphlake_client.coco_export)."""
        from graphlake_client.coco_export import export_coco

        return await export_coco(self, version, dest)

    async def export_yolo(self, version: str, dest: Path) -> dict[str, Any]:
        """Write a dataset version as an Ultralytics YOLO dataset under `dest`: images/<split>/,
        labels/<split>/*.txt, data.yaml (graphlake_client.yolo_export; the yolo extra)."""
        from graphlake_client.yolo_export import export_yolo

        return await export_yolo(self, version, dest)

    async def export_hf(self, version: str, dest: Path) -> dict[str, Any]:
        """Write a dataset version as a folder `datasets.load_dataset` loads: <split>/ images with
        metadata.parquet, and a README naming the splits (graphlake_client.hf_export; the hf extra)."""
        from graphlake_client.hf_export import export_hf

        return await export_hf(self, version, dest)

    async def import_voc(self, root: Path, split: str, dataset: str, **options: Any) -> VocImport:
        """Import one split of a Pascal VOC tree (ImageSets/Main/<split>.txt, Annotations,
        JPEGImages, SegmentationClass, SegmentationObject) into `dataset` (graphlake_client.voc:
        `version`, `mount`, `set_name`; the voc extra). Returns a VocImport."""
        from graphlake_client.voc import import_voc

        return await import_voc(self, root, split, dataset, **options)

    async def export_bundle(self, version: str, dest: Path, **options: Any) -> dict[str, Any]:
        """Write a dataset version as a self-contained bundle at `dest`: a directory, or a path ending
        in .tar (graphlake_client.bundle_export; `progress(done, total)` in bytes). No extra needed."""
        from graphlake_client.bundle_export import export_bundle

        return await export_bundle(self, version, dest, **options)

    async def import_bundle(self, src: Path, **options: Any) -> dict[str, Any]:
        """Import a bundle (a directory or a .tar): prepare, then commit unless `dry_run`
        (graphlake_client.bundle_import: `policy` copy, copy-if-missing or reference, `say`,
        `progress`). Returns the report."""
        from graphlake_client.bundle_import import import_bundle

        return await import_bundle(self, src, **options)

    async def import_bundle_on_mount(self, path: str, *, mount: str | None = None, policy: str = "copy",
                                     dry_run: bool = False) -> dict[str, Any]:
        """Have the server import a bundle that lies on one of its mounts (`path` relative to the
        mount's root): prepareBundleImport, or commitBundleImport unless `dry_run`. The server's
        BundleImportReport. Nothing passes through this machine."""
        document = ops.PREPARE_BUNDLE_IMPORT if dry_run else ops.COMMIT_BUNDLE_IMPORT
        answer = await self.execute(document, {"input": {"path": path, "mount": mount,
                                                         "policy": policy.upper().replace("-", "_")}})
        return answer["prepareBundleImport" if dry_run else "commitBundleImport"]

    # --- downloads
    async def download(self, asset: str, dest: Path | None = None) -> Path:
        """Save an asset (by ID or alias) to `dest` (a file, or a directory to keep its name)."""
        try:
            found = (await self.execute(ops.DOWNLOAD, {"id": asset}))["asset"]
        except GraphlakeClientError as error:
            if error.code != "BAD_USER_INPUT":
                raise
            found = None  # not an ID: try it as an alias
        found = found or (await self.execute(ops.DOWNLOAD_BY_ALIAS, {"alias": asset}))["assetByAlias"]
        if found is None:
            raise GraphlakeClientError(f"no asset with ID or alias {asset!r}", "NOT_FOUND")
        if not found["downloadUrl"]:
            raise GraphlakeClientError(f"asset {found['name']!r} has no file to download (a value or text?)")
        name = safe_name(found["name"])
        target = dest or Path(name)
        if target.is_dir():
            target = target / name
        await store_failures(self.retries, self.backoff_seconds)(self._fetch, found, target)
        return target

    async def _fetch(self, found: dict[str, Any], target: Path) -> None:
        """One attempt: stream the bytes beside the target under a temporary name, check them
        against the asset's size and SHA-256, then rename. An interrupted or wrong download never
        leaves a file under the asset's name. The file gets the user's usual permissions (umask)."""
        temp = target.parent / f".download-{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        try:
            with temp.open("xb") as out:  # created new, binary, with the user's umask
                async with self.storage_http.stream("GET", found["downloadUrl"]) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            problems = []
            if found.get("sizeBytes") is not None and size != found["sizeBytes"]:
                problems.append(f"{size} bytes arrived, the asset has {found['sizeBytes']}")
            if found.get("sha256") and digest.hexdigest() != found["sha256"]:
                problems.append(f"their SHA-256 is {digest.hexdigest()}, the asset's {found['sha256']}")
            if problems:
                raise GraphlakeClientError(f"the download of {found['name']!r} is not the stored file: "
                                           + "; ".join(problems), "INTEGRITY")
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
