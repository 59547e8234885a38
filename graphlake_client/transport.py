"""The client's HTTP side: GraphQL requests to the server, and byte ranges PUT to signed URLs.

Two connection pools: one to the server, carrying the API token, and one to the stores the
signed URLs point at (S3, MinIO, the server's own /blobs route), which never sees the token.
Requests whose answer may be lost on the way are retried here; what is retried, and how long
the client waits, is the retry policy (retries.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx

from graphlake_client.errors import GraphlakeClientError
from graphlake_client.retries import BACKOFF_SECONDS, RETRIES, lost_answers, store_failures

Progress = Callable[[int], None]  # called with the bytes just sent


class Transport:
    """The connections to a server and its stores, and the retry knobs: `retries` (how many times a
    failed request is sent again) and `backoff_seconds` (the first wait between attempts); what
    they mean is the retry policy (retries.py)."""

    backoff_seconds = BACKOFF_SECONDS  # first retry delay; doubles each attempt (with jitter), at most 30 s

    def __init__(self, url: str, token: str | None, *, retries: int = RETRIES, timeout: float = 300,
                 storage_transport: httpx.AsyncBaseTransport | None = None,
                 graphql_transport: httpx.AsyncBaseTransport | None = None) -> None:
        # The server prints its endpoint (`.../graphql`); that URL works too, not only the server's root.
        self.url = url.rstrip("/").removesuffix("/graphql")
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=graphql_transport)
        # Signed URLs carry their own authorization: never send our token to a store.
        self.storage_http = httpx.AsyncClient(timeout=timeout, transport=storage_transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.storage_http.aclose()

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL operation; its `data`, or GraphlakeClientError with the first error's code."""
        response = await self.http.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}})
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if body.get("errors"):
            error = body["errors"][0]
            extensions = error.get("extensions", {})
            raise GraphlakeClientError(error["message"], extensions.get("code"), extensions.get("field"))
        response.raise_for_status()
        return body["data"]

    async def _repeatable(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """`execute` for a request that is safe to send twice, sent again (up to `retries` times,
        with backoff) when its answer is lost on the way: a timeout, a broken connection, a
        gateway's 502/503/504. The server may have run it all the same."""
        return await lost_answers(self.retries, self.backoff_seconds)(self.execute, query, variables)

    async def _put(self, url: str, path: Path, offset: int, size: int, headers: dict[str, str],
                   progress: Progress | None, *, create_only: bool = False) -> None:
        """PUT one byte range of `path`, retried (store_failures) while the network or the store fails."""

        async def put() -> None:
            with path.open("rb") as source:
                source.seek(offset)
                body = source.read(size)
            response = await self.storage_http.put(url, content=body, headers=headers)
            if create_only and response.status_code == 412:
                # Single-object URLs are create-only: the object is stored already (an earlier run, or
                # an attempt whose answer was lost). Completion checks its size and digest.
                return
            response.raise_for_status()

        try:
            await store_failures(self.retries, self.backoff_seconds)(put)
        except httpx.HTTPStatusError as error:
            if error.response.status_code < 500:
                raise
            status = error.response.status_code
            raise GraphlakeClientError(f"the store kept failing the upload of {path.name} ({status})") from error
        if progress:
            progress(size)
