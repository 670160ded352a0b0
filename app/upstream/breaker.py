"""A circuit breaker over upstream faults: knows counts and time, not AWS and not HTTP.

closed --(threshold consecutive faults)--> open --(reset time)--> half-open
half-open --(the one probe succeeds)--> closed;  --(the probe faults)--> open
half-open --(the probe ends with no outcome)--> half-open, the next call probing
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from app.domain.types import BreakerState


class BreakerObserver(Protocol):
    """Told about every state change."""

    def breaker_state_changed(self, state: BreakerState) -> None:
        """Record the state just entered."""


class CircuitBreaker:
    """Opens after `threshold` consecutive faults; after `reset_seconds` lets one probe through."""

    def __init__(
        self,
        threshold: int,
        reset_seconds: float,
        observer: BreakerObserver,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._reset_seconds = reset_seconds
        self._observer = observer
        self._timer = timer
        self._state = BreakerState.CLOSED
        self._faults = 0
        self._opened_at = 0.0
        self._probing = False
        self._probes = 0  # probes let through so far: the one out is number `_probes`

    @property
    def state(self) -> BreakerState:
        """The current state (open turns half-open lazily, when a call asks)."""
        return self._state

    def allow(self) -> bool:
        """Whether a call may go upstream now; in half-open, True for exactly one probe."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._timer() - self._opened_at < self._reset_seconds:
                return False
            self._enter(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        self._probes += 1
        return True

    @property
    def probe(self) -> int | None:
        """The number of the probe out now (held by the call `allow` let through in half-open)."""
        return self._probes if self._probing else None

    def retry_after(self) -> int:
        """Whole seconds until a probe may go (at least 1)."""
        left = self._reset_seconds - (self._timer() - self._opened_at)
        return max(1, math.ceil(left))

    def record_success(self) -> None:
        """Upstream answered (a 4xx counts: AWS is reachable and working)."""
        self._faults = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._enter(BreakerState.CLOSED)

    def record_fault(self) -> None:
        """Upstream failed: 5xx, throttling, timeout or unreachable."""
        self._faults += 1
        self._probing = False
        if self._state is BreakerState.HALF_OPEN or self._faults >= self._threshold:
            self._opened_at = self._timer()
            if self._state is not BreakerState.OPEN:
                self._enter(BreakerState.OPEN)

    def record_abandoned(self, probe: int) -> None:
        """Probe `probe` ended without an outcome: unless it is no longer the one out, free it."""
        if self._probing and probe == self._probes:
            self._probing = False

    def _enter(self, state: BreakerState) -> None:
        self._state = state
        self._observer.breaker_state_changed(state)
