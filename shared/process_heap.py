"""The garbage collector set for a long-running service's heap, called once start-up is done.

What start-up built (modules, settings, the playbook, the app) lives as long as the process:
frozen, the collector no longer walks it on every full collection, which took tens of
milliseconds each under load. Work leaves little cyclic garbage, so the youngest generation
is collected less often (Python's default is every 700 net allocations).
"""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
