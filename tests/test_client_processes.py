"""The client's background threads at a process's edges (graphlake_client: logs.py, sync.py, exit_loop.py):
the end of a script, forked children (multiprocessing's fork pools, PyTorch's DataLoader workers, a
plain os.fork) and a handler closed before the logging stops. Each script runs in a real process
against the served lake; what the lake stored is read back through the API."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import tracemalloc
from pathlib import Path

import pytest

from graphlake_client import GraphlakeLogHandler
from tests.conftest import Served
from tests.operations import Api

ROOT = Path(__file__).resolve().parents[1]


async def run_script(script: str, *args: str, within: float = 120) -> tuple[str, str]:
    """Run `script` with `args` in a new interpreter (the checkout's client), off this loop, which
    serves the lake; fail with its stderr unless it ends with 0."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, *args, cwd=ROOT,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def stored_messages(api: Api, token: str) -> list[str]:
    found = await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 500}, token=token)
    return sorted(edge["node"]["message"] for edge in found["events"]["edges"])


LAST_WORDS_SCRIPT = r"""
import logging, sys
from graphlake_client import GraphlakeLogHandler

url, token = sys.argv[1:3]
logging.getLogger().addHandler(GraphlakeLogHandler(url, token))
logging.getLogger("run").warning("first")
logging.getLogger("run").warning("last")
# The script ends here: its executors shut down, then logging.shutdown flushes the handler.
"""


async def test_what_a_script_logs_last_reaches_a_lake_named_by_host(served: Served, api: Api, contributor: str) -> None:
    """Through `localhost`, both records were lost at exit: Python had shut its thread-pool executors
    down before logging.shutdown flushed the handler, and the sender's connection looked its name up
    through asyncio's default executor, which refused ("cannot schedule new futures after interpreter
    shutdown"). An IP address needs no lookup: the same script through 127.0.0.1 lost nothing."""
    url = served.base_url.replace("127.0.0.1", "localhost")
    _, err = await run_script(LAST_WORDS_SCRIPT, url, contributor)
    assert "not confirmed stored" not in err and "not sent" not in err, err
    assert await stored_messages(api, contributor) == ["first", "last"]


SYNC_AT_EXIT_SCRIPT = r"""
import atexit, sys
from graphlake_client import SyncClient

url, token, path = sys.argv[1:4]
lake = SyncClient(url, token)

@atexit.register
def last_upload():  # a user's own exit hook: the executors have shut down, the client still works
    print(lake.store_file(path, name="at-exit")["name"])
"""


async def test_a_sync_client_works_from_an_exit_hook(served: Served, contributor: str, tmp_path: Path) -> None:
    """From an atexit hook, both the name lookup of a new connection and the file's hashing
    (asyncio.to_thread) went to executors shut down by then: RuntimeError, "cannot schedule new
    futures after interpreter shutdown"."""
    (tmp_path / "notes.txt").write_text("the run's last words")
    url = served.base_url.replace("127.0.0.1", "localhost")
    out, err = await run_script(SYNC_AT_EXIT_SCRIPT, url, contributor, str(tmp_path / "notes.txt"))
    assert out.split() == ["at-exit"], err


ASYNC_AT_EXIT_SCRIPT = r"""
import asyncio, atexit, sys
from graphlake_client import Client

url, token, path = sys.argv[1:4]
lake = Client(url, token)
asyncio.run(lake.store_value({"step": 1}, name="before-exit"))  # its loop closed since


@atexit.register
def last_upload():  # a user's own exit hook, with a run of its own, as a script's steps have
    async def main():
        print((await lake.store_file(path, name="at-exit"))["name"])  # hashes the file in a thread
        async with Client(url, token) as fresh:  # a new connection: its host's name looked up
            print((await fresh.store_value({"step": 2}, name="fresh-at-exit"))["name"])

    asyncio.run(main())
"""


async def test_an_async_client_works_from_an_exit_hook(served: Served, contributor: str, tmp_path: Path) -> None:
    """The async Client under asyncio.run in an atexit hook failed where the SyncClient works: the
    file's hashing and the host's lookup went to asyncio's default executor, which refuses work by
    then (RuntimeError, "cannot schedule new futures after interpreter shutdown", or "can't register
    atexit after shutdown" when no executor had been made)."""
    (tmp_path / "notes.txt").write_text("the run's last words")
    url = served.base_url.replace("127.0.0.1", "localhost")
    out, err = await run_script(ASYNC_AT_EXIT_SCRIPT, url, contributor, str(tmp_path / "notes.txt"))
    assert out.split() == ["at-exit", "fresh-at-exit"], err


HELD_AT_FORK_SCRIPT = r"""
import logging, os, signal, sys, threading, time
from graphlake_client import GraphlakeLogHandler

url, token = sys.argv[1:3]
handler = GraphlakeLogHandler(url, token)
logging.getLogger().addHandler(handler)
holding, release = threading.Event(), threading.Event()

def hold():  # what a thread in the middle of emit holds, at the moment another forks
    with handler._progress, handler._queue.mutex:
        holding.set()
        release.wait()

holder = threading.Thread(target=hold)
holder.start()
holding.wait()
child = os.fork()
if child == 0:
    logging.getLogger("child").warning("forked under held locks")
    sys.exit(0)
release.set()
holder.join()
deadline = time.monotonic() + 60  # generous: the child logs once and ends
while os.waitpid(child, os.WNOHANG) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        print("hung")
        break
    time.sleep(0.01)
else:
    print("ended")
"""


async def test_a_child_forked_while_the_handlers_locks_are_held_logs_all_the_same(served: Served, api: Api,
                                                                                  contributor: str) -> None:
    """The stress above made deterministic: another thread holds the handler's Condition and its
    queue's lock at the fork, as one in the middle of emit does. The child's first record hung."""
    out, err = await run_script(HELD_AT_FORK_SCRIPT, served.base_url, contributor)
    assert out.split() == ["ended"], out + err
    assert await stored_messages(api, contributor) == ["forked under held locks"]


SYNC_FORK_SCRIPT = r"""
import os, sys
from graphlake_client import SyncClient

url, token = sys.argv[1:3]
lake = SyncClient(url, token)
lake.save("fork/parent", {"by": "parent"})
child = os.fork()
if child == 0:
    lake.save("fork/child", {"by": "child"})  # its own loop and connections, made here
    sys.exit(0)
_, status = os.waitpid(child, 0)
assert os.waitstatus_to_exitcode(status) == 0
idle = os.fork()
if idle == 0:
    sys.exit(0)  # never used it: nothing of the parent's to close
_, status = os.waitpid(idle, 0)
assert os.waitstatus_to_exitcode(status) == 0
closing = os.fork()
if closing == 0:
    lake.close()
    try:
        lake.load("fork/child")
    except RuntimeError as error:  # closed is closed, in a child too: not made anew, nor waited on for good
        sys.exit(0 if "is closed" in str(error) else 1)
    sys.exit(2)
_, status = os.waitpid(closing, 0)
assert os.waitstatus_to_exitcode(status) == 0
print(lake.load("fork/child")["by"])
"""


async def test_a_sync_client_serves_a_forked_child(served: Served, contributor: str) -> None:
    """In a forked child, a call waited forever for the parent's loop thread, which the child does
    not have; a child that never used the client took 10 s to exit ("connections did not close")."""
    out, err = await run_script(SYNC_FORK_SCRIPT, served.base_url, contributor, within=60)
    assert out.split() == ["child"], err
    assert "did not close" not in err, err


FORK_POOL_SCRIPT = r"""
import logging, multiprocessing, os, sys
from graphlake_client import GraphlakeLogHandler

url, token = sys.argv[1:3]
logging.getLogger().addHandler(GraphlakeLogHandler(url, token))
logging.getLogger().setLevel(logging.INFO)

def work(i):
    logging.getLogger("worker").info("item %d", i)
    return i

logging.info("before the pool")
pool = multiprocessing.get_context("fork").Pool(3)
assert pool.map(work, range(30)) == list(range(30))
pool.close()
pool.join()  # the workers end with os._exit: what they logged must have gone by then
child = os.fork()
if child == 0:
    logging.info("from a plain child")  # which ends as a script does: sys.exit, logging.shutdown
    sys.exit(0)
_, status = os.waitpid(child, 0)
assert os.waitstatus_to_exitcode(status) == 0
logging.info("after the pool")
"""


async def test_records_logged_in_forked_pool_workers_all_reach_the_lake(served: Served, api: Api,
                                                                        contributor: str) -> None:
    """A forked child had the handler's queue but not its sender thread: what a pool's workers
    logged was queued, never sent, never counted (they end with os._exit); a plain child that ended
    normally said "N log records not sent ... close_timeout ran out" of records it never had."""
    _, err = await run_script(FORK_POOL_SCRIPT, served.base_url, contributor)
    assert "not sent" not in err and "not confirmed" not in err, err
    expected = sorted(["before the pool", "from a plain child", "after the pool", *(f"item {i}" for i in range(30))])
    assert await stored_messages(api, contributor) == expected


FORK_STRESS_SCRIPT = r"""
import logging, os, signal, sys, threading, time
from graphlake_client import GraphlakeLogHandler

url, token = sys.argv[1:3]
logging.getLogger().addHandler(GraphlakeLogHandler(url, token, capacity=100_000))
logging.getLogger().setLevel(logging.INFO)
running = True

def chatter(name):
    while running:
        logging.getLogger(name).info("chatter")

threads = [threading.Thread(target=chatter, args=(f"t{i}",)) for i in range(3)]
for thread in threads:
    thread.start()
children = []
for i in range(400):
    child = os.fork()
    if child == 0:
        logging.getLogger("child").info("child %d", i)  # with the other threads' locks copied mid-use
        os._exit(0)
    children.append(child)
running = False
for thread in threads:
    thread.join()
deadline = time.monotonic() + 60  # generous: each child only logs once; one still running by then hangs
hung = []
for child in children:
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            hung.append(child)
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            break
        time.sleep(0.01)
print(len(hung))
"""


async def test_forks_under_logging_threads_never_hang_their_children(served: Served, contributor: str) -> None:
    """A child forked while another thread held the handler's lock (its Condition, its queue's)
    inherited it held and hung at its first record: 1 to 3 children in 200 with two threads logging
    Here 400 forks under three threads: that failed some runs of the old code, not all; the next test
    holds those locks at the fork, and fails it every time."""
    out, err = await run_script(FORK_STRESS_SCRIPT, served.base_url, contributor, within=300)
    assert out.split() == ["0"], out + err


async def test_records_after_close_are_counted_dropped(served: Served, contributor: str,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    """Records emitted after close() went nowhere, uncounted and unsaid."""
    handler = GraphlakeLogHandler(served.base_url, contributor)
    logger = logging.getLogger(f"closed-{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    await asyncio.to_thread(handler.close)
    logger.warning("late")
    logger.warning("later")
    assert handler.dropped == 2
    assert capfd.readouterr().err.count("after the handler closed") == 1


def blackhole() -> socket.socket:
    """A server that takes connections and never answers: a sender stays on its first batch."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(50)
    return listening


def quiet_logger(handler: GraphlakeLogHandler) -> logging.Logger:
    logger = logging.getLogger(f"processes-{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    return logger


async def test_a_record_too_large_is_shortened_before_it_waits_in_the_queue(capfd: pytest.CaptureFixture[str]) -> None:
    """While the sender waited on a lake that did not answer, each queued record held its `extra`
    whole: 150 records with 2 MiB each took 300 MiB, though each was to be cut to 256 KiB as sent."""
    with blackhole() as lake:
        handler = GraphlakeLogHandler(f"http://127.0.0.1:{lake.getsockname()[1]}", "glk_none", timeout=60,
                                      close_timeout=0.1)
        logger = quiet_logger(handler)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for i in range(50):
                logger.warning("blob %d", i, extra={"blob": "x" * (2 << 20), "small": i})
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            await asyncio.to_thread(handler.close)
        assert held < 50 * (2 << 20) // 4, f"{held} bytes held for 50 records of 2 MiB"
        assert handler.dropped == 0
    capfd.readouterr()


@pytest.mark.parametrize("part", ["y" * 200_000, "é" * 100_000, [0.1234567890123 * n for n in range(10_000)]],
                         ids=["ascii", "two-byte text", "floats"])
async def test_the_queue_holds_at_most_max_queue_bytes(capfd: pytest.CaptureFixture[str], part: object) -> None:
    """Records under max_data_bytes each (about 200,000 bytes of JSON), more of them than
    max_queue_bytes holds: the rest are dropped and counted, as when the queue is full of records.
    Text was measured in characters and numbers at 5 bytes: 100,000 "é" (200,000 bytes) counted
    100,000, 10,000 floats (190,000 bytes) 60,000, and the queue held two and three times its bound."""
    with blackhole() as lake:
        handler = GraphlakeLogHandler(f"http://127.0.0.1:{lake.getsockname()[1]}", "glk_none", timeout=60,
                                      close_timeout=0.1, max_queue_bytes=1 << 20)
        logger = quiet_logger(handler)
        try:
            for i in range(20):
                logger.warning("part %d", i, extra={"part": part})
        finally:
            await asyncio.to_thread(handler.close)
        assert handler.dropped >= 14  # 5 fit in 1 MiB, a 6th if the sender took the first one already
    assert "queue full (10000 records or 1048576 bytes)" in capfd.readouterr().err


THREADLESS_RECORDS_SCRIPT = r"""
import logging, sys, threading
from graphlake_client import GraphlakeLogHandler

url, token = sys.argv[1:3]
logging.logThreads = False  # as some apps set it, for speed: no record carries its thread
on_sender = []  # records emit was given in the sender's own thread: the requests it makes, feeding themselves


class Watched(GraphlakeLogHandler):
    def emit(self, record):
        if threading.current_thread() is self._thread:
            on_sender.append(record.name)
        super().emit(record)


handler = Watched(url, token, flush_interval=0.05)
logging.getLogger().setLevel(logging.DEBUG)  # httpx's and httpcore's records of each request too
logging.getLogger().addHandler(handler)
for n in range(3):
    logging.getLogger("plates").info("plate %d read", n)
handler.flush()  # sent: the records of that request, were they taken, are queued by now
handler.close()  # and sent by this
print(len(on_sender), sorted(set(on_sender)))
"""


async def test_the_sender_ships_none_of_its_own_records_when_records_carry_no_thread(
        served: Served, api: Api, contributor: str) -> None:
    """The handler told the sender's own records (httpx's, httpcore's, stamina's, of the requests
    that send the batches) by record.thread, which is None under `logging.logThreads = False`: they
    were shipped as events, whose sending logged more, without end. Now what is stored is exactly
    what the script logged, and emit is never entered from the sender."""
    out, err = await run_script(THREADLESS_RECORDS_SCRIPT, served.base_url, contributor)
    assert out.split("\n")[0] == "0 []", out + err
    assert await stored_messages(api, contributor) == ["plate 0 read", "plate 1 read", "plate 2 read"]
