"""How many store calls one operation keeps in flight: a batch of uploads, a garbage collection."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, ParamSpec, TypeVar, overload

T = TypeVar("T")
P = ParamSpec("P")

STORE_CONCURRENCY = 16  # enough to hide a store's latency, few enough not to swamp it

# Threads for whole files: the copies and hashes of ingests, completions and a local store's reads
# of whole objects. A batch of them (16 at a time, by bounded_gather) filled the event loop's default
# pool (min(32, CPUs + 4) threads: 6 on 2 cores), and every other request's short blocking call
# (asyncio.to_thread: a bundle's manifest, a version's packs unpacked, a thumbnail) queued behind
# them. Hashing lets go of the GIL, so a few threads keep a machine's cores busy on their own.
FILE_THREADS = 4
_file_pool: ThreadPoolExecutor | None = None


async def in_file_thread(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """asyncio.to_thread for work on whole files, in their own threads (FILE_THREADS of them)."""
    global _file_pool
    if _file_pool is None:
        _file_pool = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="graphlake-files")
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_file_pool, call)


@overload
async def bounded_gather(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int = ..., *,
                         return_exceptions: Literal[False] = False) -> list[T]: ...
@overload
async def bounded_gather(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int = ..., *,
                         return_exceptions: Literal[True]) -> list[T | Exception]: ...
async def bounded_gather(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int = STORE_CONCURRENCY, *,
                         return_exceptions: bool = False) -> list[T] | list[T | Exception]:
    """Run the jobs, at most `limit` at once; results in order. With `return_exceptions`, a job that
    fails gives its error in its place, and every job ends before this returns: what the others did
    can then be undone (asyncio.gather's flag alike, but a cancellation is never a result)."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T | Exception:
        async with gate:
            if not return_exceptions:
                return await job()
            try:
                return await job()
            except Exception as error:
                return error

    return list(await asyncio.gather(*(run(job) for job in jobs)))
