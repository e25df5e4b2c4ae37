"""Settings of a long-running smartpole process (the server, its worker processes).

Python's cyclic garbage collector is tuned for small scripts: a young-generation pass every 700
allocations, a full pass every 100 of those (when the old generation grew by a quarter). A
server that holds every pole's connection and state keeps about a million objects alive, and
while readings wait for their commit (seconds, when the pipeline is full) many short-lived
ones survive into the old generation: at 10,000 poles every 10 s, the server spent a quarter of
its CPU in full passes of half a second each (bench.fleet, 2026-12-07). Larger generations
cost a few milliseconds per pass and make full passes rare.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_COLLECTION_EVERY", "settle_heap", "tune_collector"]

YOUNG_COLLECTION_EVERY = 50_000  # allocations (less deallocations) between young passes
MIDDLE_COLLECTION_EVERY = 10  # young passes between passes of the middle generation
FULL_COLLECTION_EVERY = 100  # middle passes between full ones (at the earliest)


def tune_collector() -> None:
    """Collect less often, for a process that runs for long and holds much (not in tests)."""
    gc.set_threshold(YOUNG_COLLECTION_EVERY, MIDDLE_COLLECTION_EVERY, FULL_COLLECTION_EVERY)


def settle_heap() -> None:
    """The process has started: what it loaded (modules, registry, catalog, caches) lives as
    long as it does, so no full pass needs to walk it again (what startup left as garbage is
    collected first, not kept for good)."""
    gc.collect()
    gc.freeze()
