"""Which exceptions from a store mean "it cannot be reached now" rather than a bug.

botocore, aiohttp and the filesystem each have their own; the GraphQL layer reports these as
UNAVAILABLE (retry shortly) through services/availability.py, never as INTERNAL.
"""

from __future__ import annotations

import sys

from storage.protocol import StoreAnswered, StoreUnavailable


def unreachable(error: BaseException) -> bool:
    """Whether `error`, raised by a store call, means the store did not answer (down, hung, cut off).

    botocore's and aiohttp's own are looked up among the modules already imported, not imported
    here: they come with the S3 backend, which a lake with local mounts only never loads
    (storage/__init__.py), and an error of theirs cannot exist before they are. Importing them on
    a first failure would hold the server's event loop for a second."""
    if isinstance(error, StoreUnavailable):  # but a refusal is the asker's to fix: no retry mends it
        return not (isinstance(error, StoreAnswered) and error.refused)
    boto = sys.modules.get("botocore.exceptions")
    # ConnectTimeoutError and ReadTimeoutError are botocore ConnectionErrors too; named for the reader.
    # A bare TimeoutError is not here: it may come from anywhere (a bug's own asyncio.timeout); the
    # stores turn their own deadlines into StoreUnavailable.
    if boto is not None and isinstance(error, boto.ConnectionError | boto.ConnectTimeoutError | boto.ReadTimeoutError):
        return True
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(error, aiohttp.ClientConnectionError)
