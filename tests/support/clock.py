"""A clock for unit tests: monotonic, and moving only when the test says."""

from __future__ import annotations


class Clock:
    """Call it for the time; add to `now` to move it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
