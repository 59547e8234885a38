"""HMAC-signed, expiring URLs for the local mount's own routes.

The signature covers the method, mount, key, expiry and every other query parameter, so a URL
cannot be pointed at another object, widened to a larger size, or kept past its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode


class InvalidSignature(Exception):
    """The URL was not signed by this server, was changed, or has expired."""


class UrlSigner:
    def __init__(self, secret: bytes, base_url: str, route: str = "/blobs") -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self.route = route

    def _signature(self, method: str, mount: str, key: str, params: Mapping[str, str]) -> str:
        # JSON, not values joined by newlines: a value (a download's file name, say) holding
        # "\nexp=..." must not read as another parameter, so no two URLs share a signed string.
        canonical = json.dumps([method.upper(), mount, key, sorted(params.items())], ensure_ascii=False)
        digest = hmac.new(self._secret, canonical.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, method: str, mount: str, key: str, expires_in: int, *, expires_at: int | None = None,
             **params: str) -> str:
        """A URL valid for `expires_in` seconds, or until the Unix time `expires_at` when given (a
        caller rounding it makes the same URL for a while, so a browser's cache can hit)."""
        expiry = expires_at if expires_at is not None else int(time.time()) + expires_in
        signed = {**{k: str(v) for k, v in params.items()}, "exp": str(expiry)}
        signed["sig"] = self._signature(method, mount, key, signed)
        return f"{self.base_url}{self.route}/{quote(mount, safe='')}/{quote(key)}?{urlencode(signed)}"

    def digest_tag(self, sha256: str) -> str:
        """A keyed tag of a declared SHA-256, which a URL carries in its place: the route compares the
        tag of what it received with it, and the URL (in access logs, a proxy's, a shell's history)
        holds nothing of the file's digest, which a privacy erase could not reach there."""
        tag = hmac.new(self._secret, b"declared sha256\0" + sha256.lower().encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(tag[:16]).decode().rstrip("=")

    def verify(self, method: str, mount: str, key: str, query: Mapping[str, str]) -> dict[str, str]:
        """The signed parameters (without `sig`) if the URL is genuine and unexpired."""
        params = {k: v for k, v in query.items() if k != "sig"}
        expected = self._signature(method, mount, key, params)
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500), and a
        # forged `sig=é` must be refused as any other wrong signature.
        if not hmac.compare_digest(expected.encode(), query.get("sig", "").encode()):
            raise InvalidSignature("the signature does not match this URL")
        if not params.get("exp", "").isdigit() or int(params["exp"]) < time.time():
            raise InvalidSignature("the URL has expired")
        return params
