"""Garbage collector settings for a long-running server with a large, static heap.

After start the process holds some 150 000 objects that live as long as it does
(botocore's service model, FastAPI's and strawberry's schemas, the auth keys), and every
cache fill adds long-lived ones. With CPython's defaults a young collection ran every few
requests on the miss path and each full collection walked that whole static heap: about
a fortieth of a miss's CPU went to the collector. Freezing the start-up heap takes it out
of every later collection, and a larger first threshold makes young collections rarer
(each one is cheap; their number was the cost).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) of tracked objects between young collections (CPython: 700)."""


def settle_heap() -> None:
    """Collect what start-up left behind, freeze the rest, and raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    log.info("heap settled", extra={"frozen_objects": gc.get_freeze_count()})
