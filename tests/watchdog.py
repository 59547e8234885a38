"""A stuck test says where it is stuck, then fails.

pytest's faulthandler_timeout dumps thread stacks, which for an asyncio suite show only an idle event
loop in select(): not which await never returned. Past STUCK_SECONDS this prints the stack of every
asyncio task of the session loop (each task's chain of awaits), the tail of the test database's log
and of the logs of servers the test started (`server.log` in its tmp_path), then cancels the test's
own task so the run goes on with one failure instead of hanging until CI's time runs out.

Loaded from conftest.py; the session loop and the FerretDB log are registered there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sys
import threading
from pathlib import Path

import pytest

# The slowest test takes about 40 s on a loaded machine; the variable lets a check of this module wait less.
STUCK_SECONDS = float(os.environ.get("GRAPHLAKE_TEST_STUCK_SECONDS", 240))

session_loop: asyncio.AbstractEventLoop | None = None
logs: list[Path] = []  # logs of session services worth reading when a test is stuck


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as error:
        return f"({error})"


def _report_and_cancel(item: pytest.Item) -> None:
    out = sys.stderr
    print(f"\n=== watchdog: {item.nodeid} still running after {STUCK_SECONDS} s; asyncio tasks:", file=out)
    loop = session_loop
    tasks: set[asyncio.Task] = set()
    if loop is not None:
        for _ in range(5):  # all_tasks copies a weak set the loop may change meanwhile
            with contextlib.suppress(RuntimeError):
                tasks = asyncio.all_tasks(loop)
                break
    test_code = getattr(inspect.unwrap(getattr(item, "obj", None)), "__code__", None)
    own = [t for t in tasks if any(frame.f_code is test_code for frame in t.get_stack())]
    for task in tasks:
        task.print_stack(file=out)
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    server_logs = sorted(Path(tmp).rglob("server.log")) if tmp else []
    for path in [*logs, *server_logs]:
        print(f"=== watchdog: tail of {path}:\n{_tail(path)}", file=out)
    out.flush()
    if loop is not None:
        for task in own:
            loop.call_soon_threadsafe(task.cancel)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    timer = threading.Timer(STUCK_SECONDS, _report_and_cancel, args=(item,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
