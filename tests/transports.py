"""An httpx transport for tests that hand the Python client a transport of their own."""

from __future__ import annotations

import httpx


class Counting(httpx.AsyncHTTPTransport):
    """httpx's own transport, counting the requests it sends: a transport a user hands to Client."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return await super().handle_async_request(request)
