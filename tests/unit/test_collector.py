"""graphlake/collector.py: a serving process freezes what start-up built and collects its young
generation less often (the module says why)."""

from __future__ import annotations

import gc
import weakref

from graphlake.collector import YOUNG_THRESHOLD, tune_for_serving


class Node:
    me: Node


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_for_serving()
        assert gc.get_freeze_count() > 10_000  # this test process's modules, at least
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        cycle = Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None  # reference cycles are still freed
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
