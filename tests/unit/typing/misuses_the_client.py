"""Mistakes a type checker must catch in a script using the client (tests/unit/test_client_types.py
expects each line whose comment says "error" to be reported, and no other)."""

from __future__ import annotations

from pathlib import Path

from graphlake_client import Client, SyncClient, metadata


async def mistakes(lake: Client) -> None:
    report = await lake.import_bundle(Path("b"), policy="copy_if_missing")  # error: policy
    print(report["version_idd"])  # error: version_idd
    exported = await lake.export_coco("parts/v1", Path("coco"))
    print(exported["image"])  # error: image
    await lake.log_events([{"event_type": "NODE_START"}])  # error: event_type
    await lake.log_event("NODE_START", level="WARN")  # error: level
    version = await lake.create_dataset_version("parts", "v2", parent="v1")
    print(version["manifest_sha256"])  # error: manifest_sha256
    async for datum, records in lake.read_version("parts/v2"):
        print(datum["asset"]["name"])  # error: the datum may have no image (None)
        print([r["labels"] for r in records])  # error: labels
    print(metadata("well").is_in("A1"))  # error: one option, not a list of them


def sync_mistakes(url: str, token: str) -> None:
    with SyncClient(url, token) as lake:  # the blocking client's verbs carry the same types
        print(lake.store_value({"od600": 0.42})["nme"])  # error: nme
        print(lake.export_hf("parts/v1", Path("hf"))["split"])  # error: split
        lake.save("models/best", {"accuracy": 0.93}, replace=None)  # error: replace
