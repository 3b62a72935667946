"""Freeze the start-up heap out of Python's cyclic garbage collector, once, when serving starts.

Why: a FastAPI process holds pydantic-core validators and serializers whose GC traversal walks
their whole schema trees, so one full (generation 2) collection of a small FastAPI app takes
25-60 ms, against ~1 ms for the same number of plain objects. An uninstrumented app almost
never runs one: what it allocates per request dies young. An instrumented one does: the spans
a ``BatchSpanProcessor`` holds until its next export outlive two young collections and reach
the old generation, and once enough have piled up CPython runs a full collection. Measured with
``benchmarks/bench_uvicorn.py`` (one worker, wrk, 16 connections): 8 full collections in 18 s of
load, pauses up to 76 ms, a p99 5.8x the uninstrumented worker's; the span queue is inherent to
OTel's batching (exporting per span costs far more), so the pauses are what remains to remove.

``gc.freeze()`` (CPython >= 3.7) moves every object tracked so far into a permanent generation
that collections skip: later full collections walk only what was allocated since, about 1-3 ms
here. It is O(1) (list splices), so it runs on the event loop at the first request, after the
app, its routes and its lifespan start-up exist. The trade-off, documented in the README: a
reference cycle among those start-up objects that later becomes garbage is never collected
(reference counting still frees everything else); a ``gc.collect()`` right after building the
demo app finds fewer than 100 such objects.

Only when nothing is frozen yet (``gc.get_freeze_count() == 0``): a process that manages the
collector itself (``gc.freeze()`` before ``fork()``, as the ``gc`` docs advise for pre-fork
servers) is left alone, and a test run freezes once. Off with ``gc_freeze=False``
(``PACA_OTEL_GC_FREEZE=false``).
"""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_startup_heap"]

_logger = logging.getLogger("paca_otel.web")


def freeze_startup_heap() -> bool:
    """``gc.freeze()`` unless something is frozen already; whether this call froze."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    _logger.debug(
        "paca-otel: %d start-up objects frozen out of the cyclic GC", gc.get_freeze_count()
    )
    return True
