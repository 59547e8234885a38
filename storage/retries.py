"""The server's retry policy, in one place: its calls to other services that may fail for a moment.
Built on stamina (tenacity underneath); the modules that retry only say which policy applies.

- `store_requests`: the S3 requests made without botocore (the HEAD of `stat`), on a transport
  error or a 5xx, as botocore's "standard" mode retries the rest: 3 attempts, jittered waits
  from 0.1 s.
- `alert_deliveries`: an alert's webhook POST or mail, on any failure: 4 attempts, waits doubling
  from ALERT_FIRST_WAIT (0.5, 1, 2 s), so a receiver restarting for a few seconds still gets it.

The Python client has its own policy (graphlake_client/retries.py): it is installed and used
without the server, so it cannot share this module.
"""

from __future__ import annotations

import stamina

STORE_ATTEMPTS = 3
ALERT_ATTEMPTS = 4
ALERT_FIRST_WAIT = 0.5


class Retryable(Exception):
    """Raised inside a retried block for an answer (not an exception) that another attempt may fix."""


def store_requests() -> stamina.AsyncRetryingCaller:
    """The policy for a store request made without botocore: `await store_requests().on(Exc)(fn)`."""
    return stamina.AsyncRetryingCaller(attempts=STORE_ATTEMPTS, timeout=None, wait_initial=0.1, wait_max=1.0,
                                       wait_jitter=0.1, wait_exp_base=2)


def alert_deliveries() -> stamina.AsyncRetryingCaller:
    """Read at each use, so a test can shorten ALERT_FIRST_WAIT."""
    return stamina.AsyncRetryingCaller(attempts=ALERT_ATTEMPTS, timeout=None, wait_initial=ALERT_FIRST_WAIT,
                                       wait_max=ALERT_FIRST_WAIT * 2 ** (ALERT_ATTEMPTS - 2), wait_jitter=0,
                                       wait_exp_base=2)
