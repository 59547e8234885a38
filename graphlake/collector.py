"""The cyclic garbage collector, tuned for a long-running server.

Measured under bench/health.py's load (50 clients, nested reads and writes), CPython's defaults
(thresholds 700, 10, 10) spent 45% of the server's CPU in the collector: a request keeps tens of
thousands of objects alive across its awaits, so young collections promote them, and full
collections, each walking every object (the ~150,000 of the imported code and schema included),
came every second or so and held the event loop 300-500 ms each: /healthz's p99 (#16).

Two standard measures (the approach of CPython's `gc.freeze` documentation and of large Python
services):
- `gc.freeze()` once the app is built: the code, the schema and the settings live as long as the
  process, so no collection needs to walk them again.
- A young-generation threshold of 100,000 allocations instead of 700: most of a request's objects
  are freed (by reference counting) before a collection sees them, so far fewer reach the old
  generation and full collections become rare. Collections do not stop: reference cycles are
  still freed, a little later.
Same load, at 20,000: the collector's share fell from 45% to about 20% of the CPU, requests per
second rose from 6 to 8, and /healthz p99 fell from about 430 ms to about 190 ms (README,
Performance). Then 100,000: a page of a COCO version (100 datums, 1,000 records) keeps what it
builds until it is answered, and at 20,000 each page met about one young collection (129 in 140
pages, and 11 middle ones), which walked and promoted all of it; at 100,000 none did. Serving the
version's 20 pages took the server 1.70 s of CPU against 1.91 s, and bench/health.py's p99 did
not move (docs/performance-history.md, session 42).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000


def tune_for_serving() -> None:
    """Call once the app is built, before serving."""
    gc.collect()  # what import and start-up left as garbage, so it is not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
