"""`SyncClient`: the async `Client`'s verbs as plain calls, for scripts and notebooks.

    from graphlake_client import SyncClient

    with SyncClient("http://127.0.0.1:8000", token) as lake:
        lake.save("models/best", {"accuracy": 0.93})
        print(lake.load("models/best"))

The async client runs on an event loop of its own, in a background thread, and each call waits
for its result there. So a call works the same from a plain script (no loop) and from a notebook
or any code whose thread already runs a loop, where `asyncio.run` would refuse to start.

A forked child (multiprocessing's fork pools, PyTorch's DataLoader workers, os.fork) has a copy of
the client but not its loop's thread, and its connections are the parent's: a call there waited
forever. The client makes itself anew in the child, on its first call there, and leaves the
parent's loop and connections alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import re
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from types import AsyncGeneratorType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from graphlake_client.client import Client
from graphlake_client.exit_loop import ExitSafeLoop

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(method: Callable[Concatenate[Client, P], Coroutine[Any, Any, R]]) -> Callable[Concatenate[SyncClient, P], R]:
    """A Client coroutine method as a SyncClient method with the same parameters and docstring."""

    @functools.wraps(method)
    def call(self: SyncClient, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(method(self._own(), *args, **kwargs))

    return call


def _iterator_signature(method: Callable[..., Any]) -> inspect.Signature:
    """`method`'s signature giving an Iterator where it gives an AsyncIterator: what help(), Jupyter's
    `?` and inspect show of the sync method (functools.wraps leaves them the async method's)."""
    signature = inspect.signature(method)
    returned = signature.return_annotation
    if isinstance(returned, str):  # annotations are strings here (from __future__ import annotations)
        returned = re.sub(r"\bAsync(Iterator|Generator)\[", "Iterator[", returned)
    return signature.replace(return_annotation=returned)


def _pages(method: Callable[Concatenate[Client, P], AsyncIterator[R]]) -> Callable[Concatenate[SyncClient, P], Iterator[R]]:
    """A Client async-iterator method as a SyncClient method giving a plain iterator."""

    @functools.wraps(method)
    def call(self: SyncClient, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        pages = method(self._own(), *args, **kwargs)
        try:
            while True:
                try:
                    yield self.run(anext(pages))  # type: ignore[arg-type]  # an async generator's __anext__ is a coroutine
                except StopAsyncIteration:
                    return
        finally:
            if self._closer.alive:  # an iterator kept past close(): nothing left to close on that loop
                self.run(_close(pages))  # type: ignore[arg-type]  # an async generator, as every _pages method's

    call.__signature__ = _iterator_signature(method)  # type: ignore[attr-defined]
    return call


async def _close(pages: AsyncGeneratorType[Any, None]) -> None:
    """Close a page iterator once it stops running. A Ctrl-C while a page was awaited cancels that
    `anext` on the loop, and the generator then runs its cleanup (closing an HTTP stream awaits):
    an aclose() at once raised "asynchronous generator is already running" over the KeyboardInterrupt.
    A cleanup still running after CLOSE_SECONDS is left to the loop's own end (SyncClient.close, or
    exit), which closes what generators it still holds: the caller's KeyboardInterrupt is not held
    back for good by a cleanup that hangs."""
    deadline = asyncio.get_running_loop().time() + CLOSE_SECONDS
    while pages.ag_running:  # polled: a generator's end sets no event, and its cancelled step's end is not told
        if asyncio.get_running_loop().time() >= deadline:
            sys.stderr.write(f"graphlake_client: an interrupted iterator's cleanup did not end within {CLOSE_SECONDS:g} s; "
                             "it is left to the client's close\n")
            return
        await asyncio.sleep(0.01)
    await pages.aclose()


def _run_on_loop(work: Coroutine[Any, Any, R], future: Future[R]) -> None:
    """On the client's loop: run `work` for SyncClient.run, as asyncio.run_coroutine_threadsafe
    does (a task whose outcome `future` gets, and which cancelling `future` cancels), or only close
    it when `future` was cancelled before it got here."""
    if future.cancelled():
        work.close()
        return
    try:
        task = asyncio.ensure_future(work)
    except BaseException as error:  # not awaitable (TypeError): the caller's to see, not the loop's log
        if future.set_running_or_notify_cancel():
            future.set_exception(error)
        raise
    loop = task.get_loop()

    def cancel(_: Future[R]) -> None:
        if future.cancelled() and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    def report(_: asyncio.Task[R]) -> None:
        if task.cancelled():
            future.cancel()
        if not future.set_running_or_notify_cancel():  # cancelled (then its task was, or is about to be)
            return
        error = task.exception()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())

    future.add_done_callback(cancel)
    task.add_done_callback(report)


CLOSE_SECONDS = 10.0  # how long closing a SyncClient waits for its loop to close its connections (and _close a cleanup)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """The background thread: runs `loop` until stopped, then closes it (and the async generators it
    still holds: a page iterator left unfinished, say)."""
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


# Taken while a forked child makes its client anew, so two of its threads do not both. A lock some
# thread of the parent held at a fork would be held for good in the child: each child starts free.
_adopting = threading.Lock()


def _free_adopting() -> None:
    global _adopting
    _adopting = threading.Lock()


if sys.platform != "win32":  # which has no fork
    os.register_at_fork(after_in_child=_free_adopting)


def _shut(loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: Client, pid: int) -> None:
    """Close `client`'s connections on `loop`, then stop the loop (which then closes). What close()
    does, and what a SyncClient never closed gets when it is collected, or at exit at the latest
    (weakref.finalize): its connections and loop were left open, and Python warned of each."""
    if loop.is_closed() or os.getpid() != pid:
        # In a forked child, the loop's thread is the parent's: nothing runs the loop here, and waiting
        # for it held the child's exit 10 s. Its connections are the parent's to close.
        return
    if threading.current_thread() is thread:  # collected on its own loop, which cannot wait for itself

        async def closing() -> None:
            try:
                await client.aclose()
            finally:
                loop.stop()

        loop.create_task(closing())
        return
    try:
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=CLOSE_SECONDS)
    except concurrent.futures.TimeoutError:
        # Its loop is held by something that never yields (a blocking call inside a coroutine): at
        # exit, waiting for it would hang the interpreter for good.
        sys.stderr.write(f"graphlake_client: a SyncClient's connections did not close within {CLOSE_SECONDS:g} s "
                         "(its event loop is busy); they close with the process\n")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_SECONDS)


class SyncClient:
    """A Graphlake server through plain (blocking) calls: every verb of `Client`, same arguments.
    Use it as a context manager, or call `close()`; `options` go to Client (retries, timeout, ...)."""

    def __init__(self, url: str, token: str | None, **options: Any) -> None:
        self._options = (url, token, options)  # to make it anew in a forked child
        self._start()

    def _start(self) -> None:
        url, token, options = self._options
        self.client = Client(url, token, **options)  # used only on self._loop, through run()
        self._loop = ExitSafeLoop()  # it serves calls from atexit hooks too
        self._thread = threading.Thread(target=_serve, args=(self._loop,), name="graphlake-client", daemon=True)
        self._thread.start()
        self._pid = os.getpid()
        self._closer = weakref.finalize(self, _shut, self._loop, self._thread, self.client, self._pid)

    def _own(self) -> Client:
        """`client`, made anew first when this is a forked child's first call (see the module's docstring)."""
        if self._pid != os.getpid() and self._closer.alive:  # one closed (before the fork, or here) stays closed
            with _adopting:
                if self._pid != os.getpid():
                    self._closer.detach()  # the parent's, which the parent closes
                    self._start()
        return self.client

    def run(self, work: Coroutine[Any, Any, R]) -> R:
        """Run a coroutine on the client's loop and wait for its result (Ctrl-C cancels it there too)."""
        if not asyncio.iscoroutine(work):  # said here, as asyncio.run_coroutine_threadsafe said it
            raise TypeError(f"SyncClient.run takes a coroutine (an async function's call), not {type(work).__name__}")
        self._own()  # a forked child's first call: its own loop to run on
        if threading.current_thread() is self._thread:
            work.close()
            raise RuntimeError("a SyncClient call from inside its own loop would wait forever: await the async Client")
        # Said plainly, where the loop said "Event loop is closed" and warned of a coroutine. Closed in
        # a forked child, its loop is the parent's copy, never closed here: a call waited on it for good.
        if not self._closer.alive:
            work.close()
            raise RuntimeError("this SyncClient is closed: make a new one (or use it as a context manager around its calls)")
        future: Future[R] = Future()
        try:
            # Handed over inside the try: a Ctrl-C lands at whichever step the main thread is at, and
            # one just after the hand-over (asyncio.run_coroutine_threadsafe's, before it returned the
            # future) left the work running: a follow's wait for its next event, which _pages' cleanup
            # then waited on for good.
            self._loop.call_soon_threadsafe(_run_on_loop, work, future)
            return future.result()
        except BaseException:
            future.cancel()  # the loop cancels the work, or never starts it
            raise

    def close(self) -> None:
        """Close the connections and stop the background loop (done at exit, or when the client is
        collected, if never called)."""
        self._closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    execute = _blocking(Client.execute)
    # The verbs (assets.py, downloads.py, vault.py, client.py)
    store_value = _blocking(Client.store_value)
    store_text = _blocking(Client.store_text)
    store_file = _blocking(Client.store_file)
    store_directory = _blocking(Client.store_directory)
    register_external = _blocking(Client.register_external)
    get_asset = _blocking(Client.get_asset)
    find_asset = _blocking(Client.find_asset)
    query_assets = _pages(Client.query_assets)
    update_asset = _blocking(Client.update_asset)
    delete_asset = _blocking(Client.delete_asset)
    save_to = _blocking(Client.save_to)
    read_bytes = _blocking(Client.read_bytes)
    save = _blocking(Client.save)
    load = _blocking(Client.load)
    alias_target = _blocking(Client.alias_target)
    create_dataset_version = _blocking(Client.create_dataset_version)
    log_event = _blocking(Client.log_event)
    log_events = _blocking(Client.log_events)
    query_events = _pages(Client.query_events)
    follow_events = _pages(Client.follow_events)
    # Uploads, downloads, collections
    upload_file = _blocking(Client.upload_file)
    upload_paths = _blocking(Client.upload_paths)
    upload_batch = _blocking(Client.upload_batch)
    download = _blocking(Client.download)
    collection_id = _blocking(Client.collection_id)
    find_collection = _blocking(Client.find_collection)
    dataset_id = _blocking(Client.dataset_id)
    # Moving datasets in and out (their extras)
    read_version = _pages(Client.read_version)
    import_coco = _blocking(Client.import_coco)
    import_voc = _blocking(Client.import_voc)
    export_coco = _blocking(Client.export_coco)
    export_yolo = _blocking(Client.export_yolo)
    export_hf = _blocking(Client.export_hf)
    export_bundle = _blocking(Client.export_bundle)
    import_bundle = _blocking(Client.import_bundle)
    import_bundle_on_mount = _blocking(Client.import_bundle_on_mount)
