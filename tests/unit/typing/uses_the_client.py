"""A script as a user writes one, type-checked with mypy --strict by tests/unit/test_client_types.py
(never run): every verb's arguments and results are typed, so this passes with no error."""

from __future__ import annotations

import logging
from pathlib import Path

from graphlake_client import Client, GraphlakeLogHandler, SyncClient, eq
from graphlake_client.results import BundleImport, CocoExport, DatasetVersion, EventInput


async def pipeline(lake: Client) -> None:
    asset = await lake.store_value({"od600": 0.42}, name="reading", metadata={"plate": 7})
    size: int | None = asset.get("sizeBytes")
    same = await lake.get_asset(asset["id"])
    print(same["kind"], size)
    async for page in lake.query_assets(eq("metadata.plate", 7), kinds=["VALUE"]):
        for found in page:
            print(found["name"], page.end_cursor)
    events: list[EventInput] = [{"eventType": "NODE_START", "source": {"nodeId": "reader-1"}},
                                {"eventType": "NODE_STOP", "level": "WARNING", "data": {"ok": True}}]
    ids: list[str] = await lake.log_events(events)
    print(ids, await lake.log_event("SAMPLE_MEASURED", "plate 7 read", level="INFO"))
    version: DatasetVersion = await lake.create_dataset_version("parts", "v1", from_collection="inbox")
    print(version["manifestSha256"], version["datumCount"], version["dataset"]["name"])
    exported: CocoExport = await lake.export_coco("parts/v1", Path("coco"))
    print(exported["images"], exported["version"]["manifest_sha256"], exported["left_out"].get("MASK", 0))
    report: BundleImport = await lake.import_bundle(Path("parts-v1.tar"), policy="copy-if-missing", dry_run=True)
    if report["version_state"] == "conflict":
        print(report["conflicts"])
    print(report["assets"]["new_bytes"], report["records"]["to_verify"], report["same_hash"])
    yolo = await lake.export_yolo("parts/v1", Path("yolo"), split_ratios=(0.8, 0.1, 0.1), seed=7)
    print(yolo["format"], yolo["splits"])
    async for datum, records in lake.read_version("parts/v1"):
        image = datum["asset"]
        print(datum["id"], datum["split"], image["downloadUrl"] if image else None,
              [(r["label"], r["score"], (r["geometry"] or {}).get("__typename")) for r in records])
        if image:  # read later, by training code: the datum's image as read_version gave it
            pixels: bytes = await lake.read_bytes(image)
            print(len(pixels), await lake.save_to(image, "images/"))


def script(url: str, token: str) -> None:
    logging.getLogger().addHandler(GraphlakeLogHandler(url, token, source={"nodeId": "reader-1"}))
    with SyncClient(url, token) as lake:
        lake.save("models/best", {"accuracy": 0.93})
        print(lake.load("models/best"))
        report = lake.import_bundle(Path("parts-v1"))
        print(report["version_id"])
        print(lake.export_hf("parts/v1", Path("hf"))["splits"])
