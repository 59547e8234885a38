"""The Python client for Graphlake: the verbs users know, uploads, downloads, events.

    from graphlake_client import Client, SyncClient, metadata

    async with Client("http://127.0.0.1:8000", token) as lake:
        reading = await lake.store_value({"od600": 0.42}, metadata={"plate": 7})
        scan = await lake.store_file("scan.tif", collection="run-42")
        async for page in lake.query_assets(metadata("plate") == 7, kinds=["VALUE"]):
            ...
        await lake.save("models/best", {"accuracy": 0.93})  # moves the alias with compare-and-set
        best = await lake.load("models/best")

    with SyncClient("http://127.0.0.1:8000", token) as lake:  # the same verbs, blocking (scripts, notebooks)
        lake.save_to("models/best", "best.json")

`GraphlakeLogHandler` ships Python log records as events, batched in the background.

Uploads never send bytes through GraphQL: the client asks for an upload session, PUTs the file
(or its parts, in parallel) to the signed URLs, and completes. Each PUT is retried with
exponential backoff, and an interrupted upload resumes from the parts already stored (the
session is remembered in a small state file in the user's cache, until it expires: resume.py). A completion whose
answer is lost (a timeout, a proxy giving up while the server reads a big object back) is asked
again, so an upload the server finished is never reported failed or sent twice. When the client
shares a local mount's filesystem with the server (the same machine, a cluster's shared disk),
it writes the file into the mount itself instead: a kernel copy, no HTTP.

This package imports no server package (graphlake, resolvers, documents, storage, migrations), so
it installs and runs alone; the server imports the direct-write protocol from it (direct.py).

Modules: client.py (`Client`: events, dataset versions, exchange formats), assets.py (store_*,
register_external, get_asset, query_assets), predicates.py (typed predicates), downloads.py (download,
save_to, read_bytes), vault.py (save / load by alias), sync.py (`SyncClient`), logs.py
(`GraphlakeLogHandler`), uploads.py (sessions, sending, completing, directories), transport.py
(GraphQL and signed-URL HTTP), retries.py (the retry policy), resume.py (resume state),
directories.py (directory walking, archives), direct.py (the direct-write protocol), operations.py
(the GraphQL documents), errors.py; coco.py, coco_export.py and coco_shapes.py (COCO import and
export, with the coco extra: pycocotools, Pillow); voc.py (Pascal VOC import, the voc extra),
yolo_export.py and hf_export.py (YOLO and Hugging Face export, the yolo and hf extras);
dataset_import.py and version_reading.py (the steps importers and exporters share, no extra needed);
splits.py (the train/validation/test partition, which the server's trainingSplit uses too);
bundle_format.py, bundle_files.py, bundle_export.py, bundle_import.py, bundle_lookup.py, bundle_assets.py
and bundle_records.py (bundles between lakes, no extra needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphlake_client.assets import Asset, Page
    from graphlake_client.client import Client
    from graphlake_client.errors import (
        GraphlakeClientError,
        NaiveTime,
        SaveConflict,
        ServerUnreachable,
        StreamsFull,
        UploadsFailed,
    )
    from graphlake_client.logs import GraphlakeLogHandler
    from graphlake_client.predicates import Predicate, data, join_path, json_time, metadata, value
    from graphlake_client.results import EventPage
    from graphlake_client.resume import ResumeState
    from graphlake_client.sync import SyncClient

# Imported on first use (PEP 562), so the server's local mount can import direct.py, the protocol it
# shares with the client, without httpx and the whole client (most of a second on a slow machine).
_HOME = {"Asset": "assets", "Page": "assets", "Client": "client", "EventPage": "results", "GraphlakeClientError": "errors",
         "NaiveTime": "errors", "SaveConflict": "errors", "ServerUnreachable": "errors", "StreamsFull": "errors",
         "UploadsFailed": "errors",
         "GraphlakeLogHandler": "logs",
         "Predicate": "predicates", "metadata": "predicates", "value": "predicates", "data": "predicates",
         "join_path": "predicates", "json_time": "predicates", "ResumeState": "resume", "SyncClient": "sync"}

__all__ = ["Asset", "Client", "EventPage", "GraphlakeClientError", "GraphlakeLogHandler", "NaiveTime", "Page", "Predicate",
           "ResumeState", "SaveConflict", "ServerUnreachable", "StreamsFull", "SyncClient", "UploadsFailed", "data", "join_path", "json_time",
           "metadata", "value"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'graphlake_client' has no attribute {name!r}")
    found = getattr(importlib.import_module(f"graphlake_client.{_HOME[name]}"), name)
    globals()[name] = found  # asked once
    return found


def __dir__() -> list[str]:
    return sorted(__all__)  # what a notebook completes: the names above, imported or not yet
