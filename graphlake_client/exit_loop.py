"""`ExitSafeLoop`: the event loop of the client's background threads (the log handler's sender, a
SyncClient's loop), which keeps working while the interpreter exits.

At exit, Python shuts its thread-pool executors down (threading's own atexit step) before it runs
atexit callbacks: logging.shutdown, which flushes a GraphlakeLogHandler, and any hook of the user's
that calls a SyncClient. From then on the default executor refuses work with RuntimeError ("cannot
schedule new futures after interpreter shutdown", or "can't register atexit after shutdown" when
none had been made). asyncio sends two things there: every name lookup of a new connection
(`http://localhost:8000`: an IP address needs none) and `asyncio.to_thread` (the client hashes and
reads files that way). Both failed, and the handler's last records were lost.

This loop does such work inline instead, once the default executor refuses it: it holds the loop
for its length (a lookup, a file's hash), which at exit, with nothing else left to run, costs nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


# The platform's own default loop (asyncio.new_event_loop's), which the client ran on before: the
# proactor on Windows, where a selector loop takes at most 512 sockets.
if sys.platform == "win32":
    _PlatformLoop = asyncio.ProactorEventLoop
else:
    _PlatformLoop = asyncio.SelectorEventLoop


class ExitSafeLoop(_PlatformLoop):
    """The platform's default event loop, whose default executor, once it refuses work (the
    interpreter is exiting), is replaced by running that work inline."""

    def run_in_executor(self, executor: concurrent.futures.Executor | None, func: Callable[[*Ts], T],
                        *args: *Ts) -> asyncio.Future[T]:
        try:
            return super().run_in_executor(executor, func, *args)
        except RuntimeError:
            if executor is not None or self.is_closed():
                raise  # an executor of the caller's own, or a loop closed: not ours to stand in for
        done: asyncio.Future[T] = self.create_future()
        try:
            done.set_result(func(*args))
        except Exception as error:  # the future carries it, as an executor's would
            done.set_exception(error)
        return done
