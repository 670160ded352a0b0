"""Who causes upstream calls, and how many each may cause per second (in this process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

UNKNOWN = "unknown"
"""The caller of work no door attributed (all such work shares one budget)."""

MAX_CALLERS = 100_000
"""Callers tracked at most; past it, those whose budget is whole again are forgotten."""


class CallerBudget(Protocol):
    """How many upstream calls each caller may still cause."""

    async def spend(self, caller: str) -> bool:
        """Spend one call of `caller`'s budget; False when there is none left."""


class CallerRates:
    """A token bucket per caller: `rate` calls a second, a burst of one second's worth (at
    least one call)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def set_rate(self, rate: float) -> None:
        """Count at `rate` from now on, with its own burst (one second's worth)."""
        self.rate = rate
        self.burst = max(rate, 1.0)

    async def spend(self, caller: str) -> bool:
        """Spend one call of `caller`'s budget; False when there is none left."""
        return self.take(caller)

    def take(self, caller: str) -> bool:
        """Spend one call of `caller`'s budget; False when there is none left."""
        now = self._clock()
        tokens, then = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[caller] = (tokens, now)
            return False
        if len(self._buckets) >= MAX_CALLERS and caller not in self._buckets:
            self._forget_whole(now)
        self._buckets[caller] = (tokens - 1, now)
        return True

    def _forget_whole(self, now: float) -> None:
        """Drop the callers whose budget has refilled: forgetting them changes nothing."""
        whole = [
            caller
            for caller, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate >= self.burst
        ]
        for caller in whole:
            del self._buckets[caller]
        if len(self._buckets) >= MAX_CALLERS:  # all busy: a flood of callers
            self._buckets.clear()
