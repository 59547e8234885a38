"""Which exceptions from a store mean "it cannot be reached now" rather than a bug.

botocore, aiohttp and the filesystem each have their own; the GraphQL layer reports these as
UNAVAILABLE (retry shortly) through services/availability.py, never as INTERNAL.
"""

from __future__ import annotations

import aiohttp
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from storage.protocol import StoreUnavailable

# ConnectTimeoutError and ReadTimeoutError are botocore ConnectionErrors too; named for the reader.
# A bare TimeoutError is not here: it may come from anywhere (a bug's own asyncio.timeout); the
# stores turn their own deadlines into StoreUnavailable.
_UNREACHABLE = (StoreUnavailable, BotoConnectionError, ConnectTimeoutError, ReadTimeoutError,
                aiohttp.ClientConnectionError)


def unreachable(error: BaseException) -> bool:
    """Whether `error`, raised by a store call, means the store did not answer (down, hung, cut off)."""
    return isinstance(error, _UNREACHABLE)
