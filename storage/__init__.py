"""Object storage: the ObjectStore protocol and its local-filesystem and S3 backends.

This package never reads settings: the app builds each store from explicit arguments.

Its names are imported on first use (PEP 562): the S3 backend brings aioboto3, botocore and aiohttp
(about a second and a half on a slow machine), which a lake with local mounts only, and the
commands that open one (`graphlake check`, `db`, `backup`), never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.failures import to_fix, unreachable
    from storage.local import LocalStore
    from storage.protocol import ObjectStore, StoreAnswered, StoreUnavailable, as_s3
    from storage.s3 import S3Store

_HOME = {"LocalStore": "storage.local", "ObjectStore": "storage.protocol", "S3Store": "storage.s3",
         "StoreAnswered": "storage.protocol", "StoreUnavailable": "storage.protocol", "unreachable": "storage.failures",
         "to_fix": "storage.failures", "as_s3": "storage.protocol"}

__all__ = ["LocalStore", "ObjectStore", "S3Store", "StoreAnswered", "StoreUnavailable", "as_s3", "to_fix", "unreachable"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value  # asked once
    return value
