"""Whether the process that left a marker (a migration step under way, a batch being written) is gone.

A marker names its process by host name, boot id, pid namespace and pid. Only a process that shares
all but the pid can tell that a pid no longer runs: containers on one host share the host name but
not their pid namespace (a live writer's pid may not exist in a neighbour's), and a reboot reuses pids.
Anyone else must wait for the marker's lease, or be told by an operator.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path
from typing import Any


@cache
def _here() -> dict[str, Any]:
    def read(path: str) -> str | None:
        try:
            return Path(path).read_text().strip() if path.startswith("/proc/sys") else str(os.stat(path).st_ino)
        except OSError:
            return None

    return {"host": socket.gethostname(), "boot": read("/proc/sys/kernel/random/boot_id"), "pidns": read("/proc/self/ns/pid")}


def this_process() -> dict[str, Any]:
    """The fields that name this process in a marker."""
    return {**_here(), "pid": os.getpid()}


def gone(marker: dict[str, Any]) -> bool:
    """True when `marker`'s process surely no longer runs: it ran in this host's boot and pid
    namespace, and its pid is free. False when it runs, or when that cannot be told from here."""
    here = _here()
    pid = marker.get("pid")
    if any(marker.get(k) != here[k] or here[k] is None for k in ("host", "boot", "pidns")) or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
