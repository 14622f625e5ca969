"""The garbage collector's settings for a serving process.

CPython's cycle collector runs a young-generation pass every 700 net allocations
and, every so often, a full pass over every tracked object. A gateway worker
holds a few hundred thousand long-lived objects (modules, the configuration, the
compiled DLP rules, the policy engine, pools) and allocates thousands of
short-lived ones per request, almost none of them in cycles (reference counting
frees them). With the defaults, the `full` profile spent about 7% of its CPU in
the collector, a full pass taking some 100 ms (a pause every request in flight
waits out). So once the app has started, :func:`settle` collects what start-up
left behind, freezes the survivors (a full pass no longer walks them) and makes
young passes rarer: ``GC_GEN0_THRESHOLD`` allocations instead of 700. Cycles are
still collected, only in larger batches; memory grows by at most those
allocations' worth of not-yet-collected cycles.

Only ``llm-gateway serve`` settles its workers' heaps (the app factory it uses
asks for it); an app built in a test or an embedding program leaves the
collector as it found it.
"""

from __future__ import annotations

import gc

# Python's own ratios between the generations, kept: the older passes follow the
# young ones as they would by default.
_GEN1_THRESHOLD = 10
_GEN2_THRESHOLD = 10


def settle(gen0_threshold: int) -> None:
    """Freeze what start-up left alive and space out young passes (0: Python's defaults)."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, _GEN1_THRESHOLD, _GEN2_THRESHOLD)
