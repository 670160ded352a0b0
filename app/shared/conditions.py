"""The shared layer's log lines: a condition logged once when it begins and once when it
ends, at most once a minute while it flaps; a count of odd events at most once a minute.
Metrics say the rest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

QUIET_SECONDS = 60.0
"""At most one line per condition (or tally) this often."""


class Condition:
    """A state of the shared layer that begins and ends (unreachable, refusing writes).

    A beginning is logged at once unless another was logged less than `QUIET_SECONDS` ago;
    then it is held, and when the quiet time ends the state is logged if it still differs
    from the last line (with how many changes there were). An end is logged at once when
    its beginning was.
    """

    def __init__(self, begins: str, ends: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._messages = {True: begins, False: ends}
        self._clock = clock
        self.active = False
        self._logged = False
        self._last_begin = -QUIET_SECONDS
        self._changes = 0
        self._extra: Mapping[str, object] = {}
        self._pending: asyncio.TimerHandle | None = None

    def set(self, active: bool, extra: Mapping[str, object] | None = None) -> None:
        """The condition holds (`active`) or not."""
        if active == self.active:
            return
        self.active = active
        if active and extra is not None:
            self._extra = extra
        if not active and self._logged:
            self._line()
            return
        wait = self._last_begin + QUIET_SECONDS - self._clock()
        if active and wait <= 0:
            self._line()
            return
        self._changes += 1
        if self._pending is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._pending = loop.call_later(max(0.0, wait), self._settle)

    def _settle(self) -> None:
        self._pending = None
        if self.active != self._logged:
            self._line()
        self._changes = 0

    def _line(self) -> None:
        extra = dict(self._extra) if self.active else {}
        if self._changes:
            extra["changes"] = self._changes  # it flapped: changes held since the last line
        log.warning(self._messages[self.active], extra=extra)
        self._logged = self.active
        if self.active:
            self._last_begin = self._clock()
        self._changes = 0

    def close(self) -> None:
        """Drop a line still waiting for its quiet time to end."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class Tally:
    """Events counted between lines: one WARNING at most once a minute says how many."""

    def __init__(self, message: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._message = message
        self._clock = clock
        self._count = 0
        self._next_line = 0.0

    def add(self, extra: Mapping[str, object] | None = None) -> None:
        """Count one; log the count when a minute has passed since the last line."""
        self._count += 1
        now = self._clock()
        if now >= self._next_line:
            self._next_line = now + QUIET_SECONDS
            log.warning(self._message, extra={**(extra or {}), "count": self._count})
            self._count = 0
