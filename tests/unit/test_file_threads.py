"""storage/concurrency.in_file_thread: whole-file work runs in threads of its own, so a batch of it
does not hold the event loop's default pool, which every other request's blocking calls use."""

import asyncio
import contextvars
import os
import threading
from pathlib import Path

import pytest

from storage.concurrency import in_file_thread
from storage.local import LocalStore
from tests.waiting import LoopTurns

ASKED = contextvars.ContextVar("asked", default="nobody")


async def test_file_work_runs_while_the_default_pool_is_busy() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    # asyncio's default pool: min(32, CPUs + 4) threads, every one of them held here.
    held = [loop.run_in_executor(None, release.wait) for _ in range(min(32, (os.cpu_count() or 1) + 4))]
    try:
        ASKED.set("a request")
        where = await asyncio.wait_for(in_file_thread(lambda: (threading.current_thread().name, ASKED.get())), 10)
        assert where[0].startswith("graphlake-files") and where[1] == "a request"  # its context goes along
    finally:
        release.set()
        await asyncio.gather(*held)


async def test_an_error_in_file_work_reaches_the_caller() -> None:
    def fails(name: str) -> None:
        raise FileNotFoundError(name)

    with pytest.raises(FileNotFoundError, match="gone"):
        await in_file_thread(fails, "gone")


async def test_a_local_multipart_upload_lists_its_parts_off_the_loop(tmp_path: Path) -> None:
    """Each part's record is a file: 10,000 of them held the loop about 200 ms, read on it."""
    store = LocalStore("m", tmp_path, None)  # type: ignore[arg-type]
    upload_id = "a" * 32
    folder = store.upload_dir(upload_id)
    folder.mkdir(parents=True)
    store.data_path(upload_id).write_bytes(b"")
    for number in range(1, 2001):
        (folder / str(number)).write_text("8388608")
    async with LoopTurns() as turns:
        parts = await store.list_parts("k", upload_id)
    assert sorted(p.number for p in parts) == list(range(1, 2001)) and parts[0].size == 8388608
    assert turns.count > 1
