"""`Client`, the one class a user needs: uploads (uploads.py), events and downloads.

    async with Client("http://127.0.0.1:8000", token) as lake:
        asset = await lake.upload_file(Path("scan.tif"), metadata={"plate": 7})
        await lake.download(asset["id"], Path("copy.tif"))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from graphlake_client import operations as ops
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.uploads import Uploader

CHUNK = 1024 * 1024  # bytes written at a time while downloading


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
        target = dest or Path(found["name"])
        if target.is_dir():
            target = target / found["name"]
        # Written beside the target under a temporary name, then renamed: an interrupted download
        # never leaves a truncated file under the asset's name.
        fd, temp = tempfile.mkstemp(prefix=".download-", dir=target.parent if str(target.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as out:
                async with self.storage_http.stream("GET", found["downloadUrl"]) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes(CHUNK):
                        out.write(chunk)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target
