"""The fleet's AWS quota: at most `GATEWAY_UPSTREAM_RATE_LIMIT` calls in any one-second
window at AWS, across every replica, whichever of them reach the shared layer.

The limit is split in two. The shared window, held in the shared layer and updated
atomically by one Lua script, gives the replicas that reach it `shared_limit` calls (the
limit less the reserve, in whole calls): each call takes a slot at the earliest instant
that keeps the window's calls within it, and waits for it while its deadline allows. The
reserve (`GATEWAY_UPSTREAM_RATE_RESERVE`) is for replicas cut off from the shared layer:
each keeps, in process, to its slice of it (the reserve ÷ `GATEWAY_FLEET_MAX_REPLICAS`),
so no partition, however long and whichever replicas it cuts off, adds up to more than the
limit. Windows are `GUARD_SECONDS` longer than a second: calls reach AWS a little later
than their slot, and not all equally late.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.domain.errors import Throttled
from app.shared.guard import Guard, SharedDown

log = logging.getLogger(__name__)

GUARD_SECONDS = 0.1
"""Added to every window: the spread between a slot and the call's arrival at AWS."""
CALL_RESERVE_SECONDS = 0.25
"""A slot must leave the call this much of its deadline: a later one is refused at once."""

# KEYS[1] the window (a sorted set of slot times, ms). ARGV: limit, window (ms), longest
# wait (ms), a unique member suffix. Returns the wait in ms for the slot taken (>= 0), or -1
# when no slot comes within the longest wait (none taken).
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local at = now
if n >= limit then
  local kth = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  at = math.max(now, tonumber(kth[2]) + window)
end
if at - now > tonumber(ARGV[3]) then
  return -1
end
redis.call('ZADD', KEYS[1], at, at .. ':' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], at - now + window + 1000)
return at - now
"""


@dataclass(frozen=True, slots=True)
class Split:
    """The limit shared out: `shared` calls per window in the shared layer; `alone` calls
    per `alone_window` seconds for a replica cut off from it."""

    shared: int
    alone: int
    alone_window: float

    @classmethod
    def of(cls, limit: int, reserve: float, replicas: int) -> Split:
        """The split of `limit` calls a second with `reserve` held back for `replicas`."""
        shared = math.floor(limit * (1 - reserve) + 1e-9)
        if reserve > 0 and shared == limit:
            shared -= 1  # a reserve rounds up to a whole call
        # What the shared window's rounding leaves belongs to the reserve. Without one, a
        # cut-off replica keeps to its share of the whole limit: the bound then holds only
        # while every replica reaches the shared layer.
        slice_rate = (limit - shared if reserve > 0 else limit) / replicas
        alone = max(1, math.floor(slice_rate))
        return cls(shared, alone, max(1 + GUARD_SECONDS, alone / slice_rate))


class RateObserver(Protocol):
    """Counts calls refused for want of quota (the metrics registry implements it)."""

    def upstream_rate_limited(self) -> None:
        """Count one refused call."""


class LocalWindow:
    """A sliding window in this process only (monotonic seconds)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._slots: deque[float] = deque()
        self._window = window
        self._clock = clock

    def take(self, limit: int, longest_wait: float) -> float | None:
        """Seconds to wait for a slot taken now, or None when none comes within `longest_wait`."""
        if longest_wait < 0:
            return None
        now = self._clock()
        slots = self._slots
        while slots and slots[0] <= now - self._window:
            slots.popleft()
        at = now
        if len(slots) >= limit:
            at = max(now, slots[len(slots) - limit] + self._window)
        if at - now > longest_wait:
            return None
        slots.append(at)
        return at - now


class FleetQuota:
    """Gives each AWS call a slot in the fleet's window, or refuses it with `Throttled`."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        replica: str,
        split: Split,
        guard: Guard,
        observer: RateObserver,
    ) -> None:
        self._window_key = f"{prefix}quota"
        self._replica = replica
        self.split = split
        self._guard = guard
        self._observer = observer
        self._window_ms = int((1 + GUARD_SECONDS) * 1000)
        self._alone = LocalWindow(split.alone_window)
        self._sequence = itertools.count()
        self._take = redis.register_script(_TAKE_SLOT)

    async def acquire(self, deadline: float) -> None:
        """Wait for a slot; raise Throttled when none comes in time for a call to be made
        before `deadline` (loop time)."""
        loop = asyncio.get_running_loop()
        wait = None
        if deadline - loop.time() >= CALL_RESERVE_SECONDS:
            wait = await self._slot(loop, deadline)
        if wait is None:
            self._observer.upstream_rate_limited()
            raise Throttled("The AWS call rate allowed to the gateway is used up; retry shortly.")
        if wait > 0:
            await asyncio.sleep(wait)

    async def _slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> float | None:
        """Seconds to wait for the slot taken (in the shared window, else in this replica's
        slice of the reserve), or None when none comes in time."""
        member = f"{self._replica}:{next(self._sequence)}"
        longest_ms = int((deadline - loop.time() - CALL_RESERVE_SECONDS) * 1000)
        try:
            waited_ms = int(
                await self._guard.run(
                    "quota",
                    lambda: self._take(
                        keys=[self._window_key],
                        args=[self.split.shared, self._window_ms, longest_ms, member],
                    ),
                )
            )
        except SharedDown:
            # Cut off: this replica's slice of the reserve, with the time the try took.
            longest = deadline - loop.time() - CALL_RESERVE_SECONDS
            return self._alone.take(self.split.alone, longest)
        return None if waited_ms < 0 else waited_ms / 1000
