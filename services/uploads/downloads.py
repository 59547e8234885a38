"""Signed downloads of a stored file's bytes, keeping its name."""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import urlparse

from documents.asset import Asset
from documents.common import AssetStatus
from services.errors import BadUserInput
from storage import ObjectStore


async def download_url(asset: Asset, stores: dict[str, ObjectStore], expires_in: int, max_seconds: int) -> str | None:
    """A signed GET for a FILE or EXTERNAL asset's bytes, keeping its name; null for other kinds."""
    url = download_url_now_or_later(asset, stores, expires_in, max_seconds)
    return url if url is None or isinstance(url, str) else await url


def download_url_now_or_later(asset: Asset, stores: dict[str, ObjectStore], expires_in: int,
                              max_seconds: int) -> str | Awaitable[str] | None:
    """download_url's answer, at once where the store signs without waiting (a local mount), else an
    awaitable of it: a page of a version's images asks for hundreds, and a resolver that awaits
    each costs the server several times the signing (resolvers/lookahead.py says why)."""
    # Only verified bytes: a FAILED upload's object may exist all the same until the sweep (an S3
    # presigned PUT lives past its session's expiry), and nobody checked it.
    if asset.storage is None or asset.status is not AssetStatus.ACTIVE:
        return None
    check_expiry(expires_in, max_seconds)
    if asset.storage.uri.startswith(("https://", "http://")):
        return asset.storage.uri
    store = stores.get(asset.storage.mount)
    if store is None:
        return None
    bucket = None
    if asset.storage.external:
        bucket = urlparse(asset.storage.uri).netloc
    # An EXTERNAL object's digest is never given: it is not the lake's, its owner may rewrite it after
    # its SHA-256 was read, and an ETag naming that digest would then keep a client on the old bytes
    # (304). (One is an S3 object or a URL, whose own ETag names it; were one ever on a local mount,
    # its route would name the file by its identity: inode, mtime, size.)
    sha256 = None if asset.storage.external else asset.sha256
    now = store.sign_get_now(asset.storage.key, filename=asset.name, content_type=asset.media_type,
                             expires_in=expires_in, bucket=bucket, sha256=sha256)
    if now is not None:
        return now
    return store.sign_get(asset.storage.key, filename=asset.name, content_type=asset.media_type,
                          expires_in=expires_in, bucket=bucket, sha256=sha256)


def check_expiry(expires_in: int, max_seconds: int) -> None:
    """A signed download's `expiresInSeconds`: 1 up to GRAPHLAKE_MAX_DOWNLOAD_URL_SECONDS."""
    if not 1 <= expires_in <= max_seconds:
        raise BadUserInput(f"must be between 1 and {max_seconds}", field="expiresInSeconds")
