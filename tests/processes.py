"""`graphlake serve` as a separate process on a shared database: the second server of the cluster
tests, and the servers of bench/events.py (whose clients must not share their event loop)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from graphlake.local_services import free_port


async def start_server_process(mongodb_url: str, database: str, data_dir: Path,
                               **settings: str) -> tuple[asyncio.subprocess.Process, str]:
    """A server on a free port, ready; returns the process and its base URL. `settings` are
    extra GRAPHLAKE_* variables, e.g. MAX_SUBSCRIPTIONS_PER_CONNECTION="20"."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_MONGODB_URL": mongodb_url, "GRAPHLAKE_DATABASE": database, "GRAPHLAKE_PORT": str(port),
           "GRAPHLAKE_DATA_DIR": str(data_dir), "GRAPHLAKE_BOOTSTRAP_ADMIN_TOKEN": "false", "GRAPHLAKE_LOG_LEVEL": "WARNING",
           **{f"GRAPHLAKE_{name}": value for name, value in settings.items()}}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "graphlake", "serve", env=env, cwd=data_dir,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            if process.returncode is not None:
                break
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError(f"graphlake serve did not start on port {port}")
