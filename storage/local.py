"""The local-filesystem mount: objects are files under one root directory."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from storage.protocol import StoreUnavailable


class LocalStore:
    backend = "local"

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root.resolve()

    async def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        # Writing a probe file catches a read-only or full disk, which `exists()` would not.
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as error:
            raise StoreUnavailable(f"local mount {self.name!r} at {self.root}: {error.strerror}") from error
