"""Object storage: the ObjectStore protocol and its local-filesystem and S3 backends.

This package never reads settings: the app builds each store from explicit arguments.
"""

from storage.failures import unreachable
from storage.local import LocalStore
from storage.protocol import ObjectStore, StoreRefused, StoreUnavailable
from storage.s3 import S3Store

__all__ = ["LocalStore", "ObjectStore", "S3Store", "StoreRefused", "StoreUnavailable", "unreachable"]
