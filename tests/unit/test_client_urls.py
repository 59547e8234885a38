"""The server URL a client is given is checked as the client is made, and a URL no attempt can
reach is never retried (graphlake_client/transport.py, retries.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from graphlake_client import Client, GraphlakeClientError, ServerUnreachable
from tests.transports import Counting


@pytest.mark.parametrize(("url", "why"), [
    ("127.0.0.1:18765", "needs http:// or https://"),  # was retried for 17 s, then "no answer (the request may have run)"
    ("localhost:8000", "needs http:// or https://"),
    ("ftp://lake.example/", "needs http:// or https://"),
    ("http://127.0.0.1:port", "is not a URL"),  # was a bare httpx.InvalidURL at the first request
    ("http://", "names no host"),
])
def test_a_url_without_scheme_host_or_numeric_port_is_refused_at_once(url: str, why: str) -> None:
    with pytest.raises(GraphlakeClientError, match=why) as refused:
        Client(url, "glk_x")
    assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == "url"


def test_the_servers_endpoint_and_root_are_both_taken() -> None:
    assert Client("http://127.0.0.1:8000/graphql", None).url == Client("http://127.0.0.1:8000/", None).url \
        == "http://127.0.0.1:8000"


async def test_a_signed_url_no_attempt_can_reach_is_not_retried(tmp_path: Path) -> None:
    """UnsupportedProtocol is a transport error, but every attempt fails the same way. It ends, as any
    store failure does, in a coded error (it was httpx's own), which does not say it may have run."""
    source = tmp_path / "part.bin"
    source.write_bytes(b"x" * 10)
    counting = Counting()
    async with Client("http://127.0.0.1:9", None, retries=3, storage_transport=counting) as lake:
        lake.backoff_seconds = 0.001
        with pytest.raises(ServerUnreachable, match=r"^cannot reach ftp://store\.example/ for the upload of") as stopped:
            await lake._put("ftp://store.example/bucket/key?sig=secret", source, 0, 10, {}, None)
    assert counting.sent == 1
    assert (stopped.value.field, type(stopped.value.__cause__)) == ("uploadUrl", httpx.UnsupportedProtocol)
    assert "secret" not in str(stopped.value)
