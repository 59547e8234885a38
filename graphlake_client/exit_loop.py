"""The client at the interpreter's exit: its background threads' loop (`ExitSafeLoop`: the log
handler's sender, a SyncClient's loop), and the async `Client` run from an `atexit` hook under
`asyncio.run` (`to_thread`, `exit_safe`).

At exit, Python shuts its thread-pool executors down (threading's own atexit step) before it runs
atexit callbacks: logging.shutdown, which flushes a GraphlakeLogHandler, and any hook of the user's
that calls a client. From then on the default executor refuses work with RuntimeError ("cannot
schedule new futures after interpreter shutdown", or "can't register atexit after shutdown" when
none had been made). asyncio sends two things there: every name lookup of a new connection
(`http://localhost:8000`: an IP address needs none) and `asyncio.to_thread` (the client hashes and
reads files that way). Both failed, and the handler's last records were lost.

So at exit a loop the client runs on gets an executor that does such work inline instead
(`InlineExecutor`): it holds the loop for its length (a lookup, a file's hash), which at exit, with
nothing else left to run, costs nothing. Before exit nothing changes: the loop's executor is left alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Callable
from concurrent.futures.thread import ThreadPoolExecutor  # imported now: at exit its import is refused
from typing import ParamSpec, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
P = ParamSpec("P")


class InlineExecutor(ThreadPoolExecutor):
    """An executor that runs each call in the caller's thread, at once. A ThreadPoolExecutor, which
    is what `loop.set_default_executor` takes; it never starts a thread."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as error:  # the future carries it, as a thread's would
            done.set_exception(error)
        return done


def exiting() -> bool:
    """Whether the interpreter is exiting: its main thread has ended (threading's shutdown stops it
    after the executors', before the atexit callbacks run). Before that the executors take work."""
    return not threading.main_thread().is_alive()


def exit_safe(loop: asyncio.AbstractEventLoop) -> None:
    """Give `loop` the InlineExecutor as its default when the interpreter is exiting (its own one
    refuses everything by then); otherwise leave it alone. The client calls this before it sends a
    request (a new connection's lookup) and in `to_thread`, so it works in an atexit hook too."""
    if exiting() and not loop.is_closed():
        loop.set_default_executor(InlineExecutor())


async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, which also works at the interpreter's exit (run inline there). The client
    calls no other (ruff's banned-api holds it to that)."""
    exit_safe(asyncio.get_running_loop())
    return await asyncio.to_thread(func, *args, **kwargs)  # noqa: TID251 (the one call)


# The platform's own default loop (asyncio.new_event_loop's), which the client ran on before: the
# proactor on Windows, where a selector loop takes at most 512 sockets.
if sys.platform == "win32":
    _PlatformLoop = asyncio.ProactorEventLoop
else:
    _PlatformLoop = asyncio.SelectorEventLoop


class ExitSafeLoop(_PlatformLoop):
    """The platform's default event loop, whose default executor, once it refuses work (the
    interpreter is exiting), is replaced by the InlineExecutor: whatever runs on it (httpx's
    lookups, the log handler's sending) works at exit without asking for it."""

    def run_in_executor(self, executor: concurrent.futures.Executor | None, func: Callable[[*Ts], T],
                        *args: *Ts) -> asyncio.Future[T]:
        try:
            return super().run_in_executor(executor, func, *args)
        except RuntimeError:
            if executor is not None or self.is_closed():
                raise  # an executor of the caller's own, or a loop closed: not ours to stand in for
        return asyncio.wrap_future(InlineExecutor().submit(func, *args), loop=self)


__all__ = ["ExitSafeLoop", "InlineExecutor", "exit_safe", "exiting", "to_thread"]
