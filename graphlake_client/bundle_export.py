"""Bundle export: a dataset version, as it was frozen, into a self-contained bundle (bundle_format.py)
that `import_bundle` brings into another lake.

Everything comes from the version itself, through GraphQL: its datums with the split, roles and
metadata it froze and its copies of their records; then every asset they name, a page at a time
with fresh download URLs. Files stream from their signed URLs to disk and are checked against
their size and SHA-256 on the way (Client._fetch); values and texts are small and come in the
answer. An export into a directory that was cut short is finished by running it again: payloads
already there (by name, which is their SHA-256, and size) are not downloaded twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops
from graphlake_client.bundle_files import open_writer
from graphlake_client.bundle_format import FORMAT, FORMAT_VERSION, payload_path
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import to_thread
from graphlake_client.results import BundleExport
from graphlake_client.version_reading import summary, version_datums

if TYPE_CHECKING:
    from graphlake_client.client import Client

ASSETS_PER_PAGE = 50  # asked at once with their download URLs, then downloaded before the next page
URL_SECONDS = 6 * 3600  # a page of big files may take a while to download
GEOMETRY_INPUT = {"BBox": "bbox", "RotatedBBox": "rotatedBbox", "Polygon": "polygon", "Polyline": "polyline",
                  "Keypoints": "keypoints", "Mask": "mask"}

ByteProgress = Callable[[int, int], None]  # (bytes done, bytes in all)


def value_bytes(value: Any) -> bytes:
    """A VALUE's JSON as compact text, as the server stores it (so its SHA-256 is usually the asset's)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def geometry_input(geometry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record's geometry as GeometryInput takes it, a mask naming its asset by ref."""
    if not geometry:
        return None
    kind = GEOMETRY_INPUT[geometry["__typename"]]
    if kind == "mask":
        return {"mask": {"asset": geometry["asset"]["id"]}}
    return {kind: {k: v for k, v in geometry.items() if k != "__typename"}}


def _record(record: dict[str, Any]) -> dict[str, Any]:
    return {"set": record["set"]["id"], "asset": record["asset"]["id"], "kind": record["kind"], "label": record["label"],
            "score": record["score"], "value": record["value"], "geometry": geometry_input(record["geometry"]),
            "attributes": record["attributes"] or {}, "verified": record["verified"], "source": record["source"],
            **({"key": record["key"]} if record.get("key") is not None else {})}


def _schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": schema["name"], "version": schema["version"], "kinds": schema["kinds"],
            "labels": [{"name": label["name"], "display_name": label["displayName"], "color": label["color"]}
                       for label in schema["labels"]],
            "allow_scores": schema["allowScores"], "required_attributes": schema["requiredAttributes"]}


async def read_version(lake: Client, version: str) -> dict[str, Any]:
    """The version (by id or DATASET/VERSION) with its sets and their schemas."""
    dataset, slash, name = version.rpartition("/")
    found = (await lake.execute(ops.BUNDLE_VERSION, {"dataset": dataset, "version": name} if slash
                                else {"id": version}))["datasetVersion"]
    if found is None:
        raise GraphlakeClientError(f"no dataset version {version!r}", "NOT_FOUND")
    return found


async def export_bundle(lake: Client, version: str, dest: Path | str, *,
                        progress: ByteProgress | None = None, replace: bool = False) -> BundleExport:
    """Write the version as a bundle at `dest` (a directory, or a path ending in .tar; or, as a str,
    an `s3://bucket/prefix`, with boto3's credentials: bundle_s3.py); what was written. A `dest`
    holding anything but this version's own bundle (whole, or cut short: a rerun finishes it) is
    refused with CONFLICT unless `replace` (bundle_files.BundleWriter)."""
    found = await read_version(lake, version)
    # DEST is checked (its kind, what it holds, that it can be written) before anything is read or downloaded.
    writer = await to_thread(open_writer, dest, found, replace=replace)
    datums: list[dict[str, Any]] = []
    refs: dict[str, None] = {}  # every asset the version names, in the order first met
    try:
        async for datum, records in version_datums(lake, found["id"], query=ops.BUNDLE_DATUMS):
            roles = [{"role": r["role"], "asset": r["asset"]["id"]} for r in datum["roles"]]
            kept = [_record(r) for r in records]
            refs.update(dict.fromkeys([r["asset"] for r in roles] + [r["asset"] for r in kept]
                                      + [r["geometry"]["mask"]["asset"] for r in kept if r["geometry"] and "mask" in r["geometry"]]))
            datums.append({"ref": datum["id"], "split": datum["split"], "metadata": datum["metadata"] or {},
                           "roles": roles, "records": kept})
        assets = await _write_assets(lake, writer, list(refs), progress)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "exported_at": datetime.now(UTC).isoformat(),
            "source": {"url": lake.url, "version_id": found["id"]},
            "dataset": {"name": found["dataset"]["name"], "description": found["dataset"]["description"]},
            "version": {"name": found["version"], "description": found["description"],
                        "manifest_sha256": found["manifestSha256"], "datum_count": found["datumCount"],
                        "splits": {s["split"]: s["count"] for s in found["splitCounts"]},
                        # What the datums below hold, so an importer tells an entry removed from them
                        # before it writes anything (bundle_format.check_manifest).
                        "record_counts": dict(Counter(r["set"] for d in datums for r in d["records"]))},
            "assets": assets,
            "schemas": {s["schema"]["id"]: _schema(s["schema"]) for s in found["annotationSets"]},
            "sets": {s["id"]: {"name": s["name"], "purpose": s["purpose"], "source": s["source"], "schema": s["schema"]["id"]}
                     for s in found["annotationSets"]},
            "datums": datums,
        }
        await _whole(writer.finish, manifest)
    except BaseException:
        writer.abort()
        raise
    payloads = {a["payload"]["path"]: a["payload"]["size"] for a in assets.values() if a["payload"]}
    return {"datums": len(datums), "records": sum(len(d["records"]) for d in datums), "assets": len(assets),
            "payloads": len(payloads), "payload_bytes": sum(payloads.values()), "dest": str(dest), "version": summary(found)}


async def _whole(func: Callable[..., Any], *args: Any) -> Any:
    """`func` in a thread, awaited to its end even when cancelled: a thread cannot be stopped, and the
    writer must be aborted only once none of its steps runs (a tar member half-added, an upload going on)."""
    step = asyncio.ensure_future(to_thread(func, *args))
    step.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no "never retrieved"
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        await asyncio.wait([step])
        raise


async def _write_assets(lake: Client, writer: Any, refs: list[str],
                        progress: ByteProgress | None) -> dict[str, dict[str, Any]]:
    """Each asset's manifest entry, its payload written (once per distinct payload)."""
    entries: dict[str, dict[str, Any]] = {}
    written: set[str] = set()
    done, total = 0, 0
    gate = asyncio.Semaphore(lake.concurrency)
    lock = asyncio.Lock() if writer.one_at_a_time else nullcontext()  # a tar takes one member at a time

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    async def download(asset: dict[str, Any], path: str) -> None:
        if not await _whole(writer.has, path, asset["sizeBytes"]):
            async with gate:
                await lake._retried(lake._fetch, asset, writer.download_target(path))
            async with lock:
                await _whole(writer.add_downloaded, path)
        advance(asset["sizeBytes"])

    for start in range(0, len(refs), ASSETS_PER_PAGE):
        page = (await lake.execute(ops.BUNDLE_ASSETS, {"ids": refs[start:start + ASSETS_PER_PAGE],
                                                       "expires": URL_SECONDS}))["nodes"]
        files: list[tuple[dict[str, Any], str]] = []
        small: list[tuple[str, bytes]] = []  # values and texts, in the answer
        for ref, asset in zip(refs[start:start + ASSETS_PER_PAGE], page, strict=True):
            if not asset or asset.get("status") != "ACTIVE":
                raise GraphlakeClientError(f"asset {ref} is {asset['status'] if asset else 'gone'}: the version cannot "
                                           "be exported whole", "CONFLICT")
            entry = {"kind": asset["kind"], "name": asset["name"], "description": asset["description"],
                     "media_type": asset["mediaType"], "size": asset["sizeBytes"], "sha256": asset["sha256"],
                     "labels": asset["labels"], "metadata": asset["metadata"] or {}, "payload": None, "uri": None}
            entries[ref] = entry
            if asset["kind"] == "EXTERNAL":  # referenced, never carried: its lake never read its bytes either
                entry["uri"] = (asset["storage"] or {}).get("uri")
                continue
            if not asset["sha256"]:
                raise GraphlakeClientError(f"asset {ref} ({asset['name']!r}) has no SHA-256 yet; export again once "
                                           "the server has read it", "CONFLICT")
            if asset["kind"] == "FILE":
                data, sha256, size = None, asset["sha256"], asset["sizeBytes"]
            else:
                data = value_bytes(asset["value"]) if asset["kind"] == "VALUE" else asset["text"].encode()
                sha256, size = hashlib.sha256(data).hexdigest(), len(data)
            path = payload_path(sha256)
            entry["payload"] = {"path": path, "size": size, "sha256": sha256}
            if path in written:
                continue
            written.add(path)
            total += size
            if data is None:
                files.append((asset, path))
            else:
                small.append((path, data))
        # The page's checks passed: only now does anything start. A failure cancels the rest of the
        # page and waits for it, so nothing goes on writing into DEST once the export has raised.
        tasks = [asyncio.ensure_future(download(asset, path)) for asset, path in files]
        try:
            for path, data in small:
                async with lock:
                    await _whole(writer.add_bytes, path, data)
                advance(len(data))
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    return entries
