"""How PyMongo's asynchronous driver waits for the database: one timer a reply, not two tasks.

PyMongo 4.20 (pymongo/network_layer.py) waits for each reply by starting two tasks, the read and a
poll of the connection's cancellation every half second, under `asyncio.wait` with the deadline,
then cancels and awaits the one left; and it sends each command through `asyncio.wait_for`, which
on Python 3.11 runs the write (which never waits: the transport buffers it) as one more task when
the socket has a timeout, and returns the write's result instead of raising when a cancellation
comes just as it ends (CPython gh-86296): a cancelled request could go on as if never cancelled
(services/cancellation.py). On this server's hot paths a request is one or two commands, so this
was a tenth of a by-id read's CPU: a `find_one` by `_id` cost the driver 0.37 ms of CPU against
0.28 ms waited for as below (500 in a row, medians of 5 rounds, against the embedded FerretDB).

`install` puts these two in the driver's place. What they keep: the deadline (the operation's
timeout, else the socket's) ending the wait with PyMongo's own TimeoutError("timed out"), which it
turns into NetworkTimeout; a pool reset that interrupts the connections in use (PyMongo cancels
their contexts when a heartbeat times out, and its monitor's when it closes) ending the wait within
the same half second, as `_OperationCancelled`; a task cancelled while it waits raising
CancelledError, after which the driver discards the connection as before. The timer that checks
all three is one `call_at` handle, moved on every half second until the reply comes.

Only for the PyMongo release the lock pins (4.20.1), and only while the driver's functions these
replace or rely on are the ones they were written against (their source's digests): after an upgrade
the driver's own run until these are looked at again (tests/test_driver_waits.py fails until then).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import time
from typing import Any

import pymongo
from pymongo import network_layer
from pymongo.asynchronous import pool
from pymongo.errors import _OperationCancelled

log = logging.getLogger("graphlake.database")

RELEASE = "4.20.1"
# The digests of the driver's functions these replace or rely on, as written in RELEASE.
WRITTEN_AGAINST = {
    "network_layer.async_receive_message": "653f58d97707b1ed33e0c1c891cd3a3c08f7d18fc7fb984c0276851021cc3399",
    "network_layer.async_sendall": "dbe4c31d7a9e69e1de23417efddb58cd44b45bceb25bc0988ba551294b1b6a8c",
    "pool.AsyncConnection.send_message": "19ac9c123b86a45086c58ce8812809fb8acc9bd64b9f4e2bac8cf4c1506ebda5",
    "pool.AsyncConnection.receive_message": "2c2857b0dba9de350cdc42af9e4d5eb6aa51a136b0fe44700df0b6e1b5cc35fe",
    "network_layer.PyMongoProtocol.read": "99aa2bbf371850cb534b778a2c32a3dd64b45861039fd6ac4103c81eefd15e9e",
    "network_layer.PyMongoProtocol.write": "1517e38f460c80008222c62c55c3a4effbe004d783a377b3746118e93251351b",
}
POLL_SECONDS = network_layer._POLL_TIMEOUT  # how often a wait looks at its connection's cancellation


def digests() -> dict[str, str | None]:
    """The digest of each function in WRITTEN_AGAINST as this PyMongo has it (None: no source to read,
    a build shipped without its .py files)."""
    found: dict[str, str | None] = {}
    for name in WRITTEN_AGAINST:
        module, *path = name.split(".")
        function: Any = {"pool": pool, "network_layer": network_layer}[module]
        for part in path:
            function = getattr(function, part)
        try:
            found[name] = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
        except (OSError, TypeError):
            found[name] = None
    return found


def install() -> bool:
    """Put receive_message and sendall in the driver's place (once); whether they are in place."""
    if pool.async_receive_message is receive_message:
        return True
    changed = [name for name, digest in digests().items() if digest != WRITTEN_AGAINST[name]]
    # The pool calls them by the names it imported from network_layer: where it no longer does,
    # putting these in its place would change nothing.
    changed += [f"pool.{name}" for name in ("async_receive_message", "async_sendall")
                if getattr(pool, name, None) is not getattr(network_layer, name)]
    if pymongo.version != RELEASE or changed:
        log.warning("PyMongo %s: %s since graphlake/driver_waits.py was written for %s; the driver's own waits are "
                    "used (each reply then costs two tasks)", pymongo.version,
                    f"{', '.join(changed)} changed" if changed else "another release", RELEASE)
        return False
    pool.async_receive_message = receive_message
    pool.async_sendall = sendall
    return True


async def sendall(conn: network_layer.PyMongoProtocol, buf: bytes) -> None:
    """Write a command. The transport buffers it, so there is nothing to wait for and no deadline to
    keep (the reply's wait keeps it)."""
    await conn.write(buf)


async def receive_message(conn: Any, request_id: int | None,
                          max_message_size: int = network_layer.MAX_MESSAGE_SIZE) -> Any:
    """A command's reply (`conn`: the driver's AsyncConnection), as pymongo.network_layer's
    async_receive_message gives it, waited for under one timer (see the module docstring)."""
    timeout = conn.conn.gettimeout
    if network_layer._csot.get_timeout():
        deadline: float | None = network_layer._csot.get_deadline()
    elif timeout:
        deadline = time.monotonic() + timeout
    else:
        deadline = None
    cancel_context = conn.cancel_context
    if cancel_context.cancelled:
        raise _OperationCancelled("operation cancelled")
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # the driver runs in a task
    # Cancellations the task carries already (a database call in cleanup after one, say): the timer's
    # own is told from them by the count, as asyncio.timeout does.
    carried = task.cancelling()
    ends_at = math.inf if deadline is None else loop.time() + max(deadline - time.monotonic(), 0)
    outcome: BaseException | None = None  # why the timer cancelled the wait

    def check() -> None:
        nonlocal timer, outcome
        if cancel_context.cancelled:
            outcome = _OperationCancelled("operation cancelled")
        elif loop.time() >= ends_at:
            outcome = TimeoutError("timed out")
        else:
            timer = loop.call_at(min(loop.time() + POLL_SECONDS, ends_at), check)
            return
        task.cancel()

    timer = loop.call_at(min(loop.time() + POLL_SECONDS, ends_at), check)
    try:
        data, op_code = await conn.conn.get_conn.read(request_id, max_message_size)
    except asyncio.CancelledError:
        # The timer's own cancellation becomes its outcome; one from anyone else goes on up. Both
        # may have come: uncancel() then leaves the other's count, and it is raised as theirs.
        if outcome is not None and task.uncancel() <= carried:
            raise outcome from None
        raise
    finally:
        timer.cancel()
    try:
        unpack_reply = network_layer._UNPACK_REPLY[op_code]
    except KeyError:
        raise network_layer.ProtocolError(
            f"Got opcode {op_code!r} but expected {network_layer._UNPACK_REPLY.keys()!r}") from None
    return unpack_reply(data)
