"""The cyclic garbage collector set for a long-running server, once the service has started.

CPython's cyclic collector (https://docs.python.org/3/library/gc.html) scans every tracked container object in
a full (generation 2) collection, with the GIL held: every thread and the event loop wait meanwhile. A started
service holds ~140,000 such objects that live as long as it does (modules, routes, schemas, clients), so on
a 2-core test machine each full collection took 80-200 ms, several times a minute under load, and requests'
latency had those pauses in it (500 waiting long polls: 10 full collections in 7 s, ~140 ms each; none
after). At CPython's default first threshold (700 net allocations) a request of this stack, which
allocates thousands of containers, also runs several young collections, each promoting what is in flight.

settle_heap() collects once and freezes what is left (gc.freeze: the permanent generation, never scanned
again, still freed by reference counting when unreferenced), then raises the first threshold, so full
collections scan only what was allocated since start-up, less often.
"""

from __future__ import annotations

import gc

# Net container allocations between young collections (CPython's default: 700). Large enough that a request's
# own garbage dies before the collection that would otherwise promote it; a young collection of this many
# objects takes about a millisecond. The price: garbage in reference cycles (an exception's traceback holding its
# request) waits for ~100 requests' worth of it instead of ~7, a few MB at most with the largest heads.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Collect the garbage of start-up, freeze every object still alive (gc.freeze) and raise the young
    generation's threshold to YOUNG_THRESHOLD, keeping CPython's older thresholds.

    Call once, after the service has started and before it serves: objects alive then are never scanned by the
    cyclic collector again, so a cycle among them that later becomes garbage is not reclaimed (none is expected:
    they live as long as the process). Not for processes that build and drop many apps (tests).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
