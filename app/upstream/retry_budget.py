"""A retry budget: retries may add at most a fraction of the calls over a sliding window.

Without it, every caller retrying during an outage multiplies the load on a service that
is already failing (Finagle's RetryBudget and gRPC's retry throttling work the same way).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

BUCKETS = 10


class RetryBudget:
    """Allows a retry while retries stay under `ratio` of first attempts (plus a small floor)."""

    def __init__(
        self,
        ratio: float,
        window_seconds: float,
        min_retries: int = 3,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._bucket_seconds = window_seconds / BUCKETS
        self._min_retries = min_retries
        self._timer = timer
        self._calls = [0] * BUCKETS
        self._retries = [0] * BUCKETS
        self._epoch = self._now_bucket()

    def record_call(self) -> None:
        """Count one first attempt."""
        self._calls[self._advance()] += 1

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows it."""
        slot = self._advance()
        allowed = self._min_retries + math.floor(self._ratio * sum(self._calls))
        if sum(self._retries) >= allowed:
            return False
        self._retries[slot] += 1
        return True

    def _now_bucket(self) -> int:
        return int(self._timer() / self._bucket_seconds)

    def _advance(self) -> int:
        """Zero the buckets that fell out of the window; the index of the current one."""
        now = self._now_bucket()
        for stale in range(max(self._epoch + 1, now - BUCKETS + 1), now + 1):
            self._calls[stale % BUCKETS] = 0
            self._retries[stale % BUCKETS] = 0
        self._epoch = max(self._epoch, now)
        return now % BUCKETS
