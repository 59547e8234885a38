"""How uvicorn serves the app: the options `graphlake serve` runs it with, which the tests' in-process
server uses too, so the suite exercises the same HTTP and WebSocket implementations as production."""

from __future__ import annotations

import socket
from typing import Any

from graphlake.settings import Settings

# uvicorn's implementation over the `websockets` library's Sans-I/O core: what its "auto" picks since
# uvicorn 0.50, named here so an upgrade cannot fall back to the library's legacy asyncio protocol
# (deprecated upstream), which spent about 10% more of a process's CPU per streamed message (200
# subscribers, 3 interleaved rounds).
WEBSOCKETS = "websockets-sansio"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run / uvicorn.Config beside the app, host and port."""
    return {
        "log_config": None, "proxy_headers": True, "ws": WEBSOCKETS,
        "ws_max_size": settings.max_body_bytes, "ws_per_message_deflate": settings.websocket_compression,
    }


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening before anything else starts: a port already taken is
    said at once, where uvicorn bound it only after the app's startup (the embedded database started,
    the banner printed "is up") and then exited. OSError if it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)  # uvicorn's default backlog
