"""The eager thumbnails' thread runs at a lower CPU priority than the server's other threads."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.thumbnails import EAGER_NICENESS, _lower_priority


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_eager_thumbnails_thread_is_niced_and_the_others_are_not() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with ThreadPoolExecutor(1, initializer=_lower_priority) as pool:
        niced = pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    assert niced >= EAGER_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the process (its main thread) keeps its priority
