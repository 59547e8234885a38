"""Builds the named ObjectStores from settings (storage/ itself never reads settings)."""

from __future__ import annotations

from graphlake.settings import LocalMountSettings, S3MountSettings, Settings
from storage import LocalStore, ObjectStore, S3Store


def build_stores(settings: Settings) -> dict[str, ObjectStore]:
    stores: dict[str, ObjectStore] = {}
    for name, mount in settings.mounts.items():
        if isinstance(mount, LocalMountSettings):
            assert mount.path is not None  # filled in by Settings
            stores[name] = LocalStore(name, mount.path)
        elif isinstance(mount, S3MountSettings):
            stores[name] = S3Store(
                name,
                bucket=mount.bucket,
                prefix=mount.prefix,
                endpoint_url=mount.endpoint_url,
                region=mount.region,
                access_key_id=mount.access_key_id.get_secret_value() if mount.access_key_id else None,
                secret_access_key=mount.secret_access_key.get_secret_value() if mount.secret_access_key else None,
                addressing_style=mount.addressing_style,
            )
    return stores
