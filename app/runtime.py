"""Garbage collector settings for a long-running server with a large, static heap.

Why and at what cost: docs/performance.md, "The heap settled after start".
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
