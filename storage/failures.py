"""Which exceptions from a store mean "it cannot be reached now" rather than a bug.

botocore, aiohttp and the filesystem each have their own; the GraphQL layer reports these as
UNAVAILABLE (retry shortly) through services/availability.py, never as INTERNAL. A store that
answers, refusing the server itself (its credentials, their permissions), is UNAVAILABLE too, as
the server cannot use it, but saying what its operator must fix (to_fix): no retry mends that.
"""

from __future__ import annotations

import sys

from storage.protocol import StoreAnswered, StoreUnavailable

# What the operator fixes when an S3 store refuses the server's own request for one of these codes:
# a retry meets the same refusal, so "retry shortly" sent clients retrying for nothing.
_REFUSALS = {
    **dict.fromkeys(("AccessDenied", "AllAccessDisabled", "AccountProblem"),
                    "the permissions of the mount's credentials and the bucket's policy"),
    **dict.fromkeys(("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"),
                    "the mount's credentials (its access key, secret or session token)"),
    "RequestTimeTooSkewed": "the server's clock",
}


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


def to_fix(error: BaseException) -> str | None:
    """What to tell a client when `error` is a store refusing the server itself (its credentials,
    their permissions, its clock): that retrying will not help, and what the server's operator must
    fix. None for anything a retry may mend. A 403 with no code (the answer to a HEAD has no body)
    is taken for a refusal of the credentials or of the policy."""
    if not isinstance(error, StoreAnswered):
        return None
    fix = _REFUSALS.get(error.code) or ("the mount's credentials and the bucket's policy" if error.status == 403 else None)
    return fix and ("the store refuses this server's requests, and retrying will not change that: the server's "
                    f"operator must fix {fix}")
