"""The Python client for Graphlake: GraphQL calls, file and directory uploads, downloads, events.

    from graphlake_client import Client

    async with Client("http://127.0.0.1:8000", token) as lake:
        asset = await lake.upload_file(Path("scan.tif"), metadata={"plate": 7})
        await lake.download(asset["id"], Path("copy.tif"))

Uploads never send bytes through GraphQL: the client asks for an upload session, PUTs the file
(or its parts, in parallel) to the signed URLs, and completes. Each PUT is retried with
exponential backoff, and an interrupted upload resumes from the parts already stored (the
session is remembered in a small state file next to the user's cache). A completion whose
answer is lost (a timeout, a proxy giving up while the server reads a big object back) is asked
again, so an upload the server finished is never reported failed or sent twice. When the client
shares a local mount's filesystem with the server (the same machine, a cluster's shared disk),
it writes the file into the mount itself instead: a kernel copy, no HTTP.

This package imports no server package (graphlake, resolvers, documents, storage, migrations), so
it installs and runs alone; the server imports the direct-write protocol from it (direct.py).

Modules: client.py (`Client`: events, downloads), uploads.py (sessions, sending, completing,
directories), transport.py (GraphQL and signed-URL HTTP), retries.py (the retry policy),
resume.py (resume state), directories.py (directory walking, archives), direct.py (the
direct-write protocol), operations.py (the GraphQL documents), errors.py; coco.py, coco_export.py
and coco_shapes.py (COCO import and export, with the coco extra: pycocotools, Pillow); voc.py
(Pascal VOC import, the voc extra), yolo_export.py and hf_export.py (YOLO and Hugging Face export,
the yolo and hf extras); dataset_import.py and version_reading.py (the steps importers and
exporters share, no extra needed); bundle_format.py, bundle_files.py, bundle_export.py,
bundle_import.py, bundle_lookup.py, bundle_assets.py and bundle_records.py (bundles between lakes,
no extra needed).
"""

from graphlake_client.client import Client
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.resume import ResumeState

__all__ = ["Client", "GraphlakeClientError", "ResumeState"]
