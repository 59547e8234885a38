"""Builds the named ObjectStores from settings (storage/ itself never reads settings)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from graphlake.data_dir import owner_only_dir, tighten
from graphlake.settings import LocalMountSettings, S3MountSettings, Settings
from storage import LocalStore, ObjectStore
from storage.signing import UrlSigner

if TYPE_CHECKING:
    from storage.s3 import Observer


def signing_secret(settings: Settings) -> bytes:
    """The configured secret, or one made once and kept in the data dir (readable by us only: with
    it anyone can sign URLs that read and write the local mount; a looser one left by an older
    version or a copy is tightened, and logged).

    Several processes serving one local mount must share it: set GRAPHLAKE_SIGNING_SECRET then.
    """
    if settings.signing_secret:
        return settings.signing_secret.get_secret_value().encode()
    path = owner_only_dir(Path(settings.data_dir)) / "signing.key"
    if path.exists():
        tighten(path)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def build_stores(settings: Settings, observe_s3: Callable[[str], Observer] | None = None) -> dict[str, ObjectStore]:
    """The stores of every mount; `observe_s3(mount name)`, when given, is told of each S3 request."""
    signer = UrlSigner(signing_secret(settings), settings.base_url)
    stores: dict[str, ObjectStore] = {}
    for name, mount in settings.mounts.items():
        if isinstance(mount, LocalMountSettings):
            assert mount.path is not None  # filled in by Settings
            stores[name] = LocalStore(name, mount.path, signer, direct_writes=mount.direct_writes)
        elif isinstance(mount, S3MountSettings):
            from storage import S3Store  # aioboto3 and botocore: only for a lake that has an S3 mount

            stores[name] = S3Store(
                name,
                bucket=mount.bucket,
                prefix=mount.prefix,
                endpoint_url=mount.endpoint_url,
                public_endpoint_url=mount.public_endpoint_url,
                region=mount.region,
                access_key_id=mount.access_key_id.get_secret_value() if mount.access_key_id else None,
                secret_access_key=mount.secret_access_key.get_secret_value() if mount.secret_access_key else None,
                addressing_style=mount.addressing_style,
                fallback=mount.fallback,
                timeout=mount.timeout_seconds,
                observe=observe_s3(name) if observe_s3 else None,
            )
    return stores


def local_roots(settings: Settings) -> dict[str, Path]:
    """Each local mount's root directory, by mount name (what backups copy and restores fill)."""
    return {name: mount.path for name, mount in settings.mounts.items()
            if isinstance(mount, LocalMountSettings) and mount.path is not None}


@asynccontextmanager
async def opened_stores(settings: Settings, names: Iterable[str]) -> AsyncIterator[dict[str, ObjectStore]]:
    """The named mounts' stores, open (for commands that read or write objects themselves)."""
    wanted = set(names)
    stores = {name: store for name, store in build_stores(settings).items() if name in wanted}
    async with AsyncExitStack() as stack:
        for store in stores.values():
            await store.open()
            stack.push_async_callback(store.close)
        yield stores
