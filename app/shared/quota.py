"""The fleet's AWS quota: at most `GATEWAY_UPSTREAM_RATE_LIMIT` calls in any one-second
window, across every replica.

A sliding window held in the shared layer and updated atomically by one Lua script: each
call takes a slot at the earliest instant that keeps the last second's calls within the
limit (so a burst is at most one second's worth), and waits for it when its deadline
allows. While the shared layer is unreachable, each replica keeps the same window in
process, with the limit divided by the number of replicas it last saw (a heartbeat in the
shared layer counts them), so the fleet stays within the quota.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from app.domain.errors import Throttled
from app.shared.guard import Guard, SharedDown
from app.shared.replicas import Replicas

log = logging.getLogger(__name__)

WINDOW_MS = 1000
CALL_RESERVE_SECONDS = 0.25
"""A slot must leave the call this much of its deadline: a later one is refused at once."""

# KEYS[1] the window (a sorted set of slot times, ms). ARGV: limit, longest wait (ms), a
# unique member suffix. Returns the wait in ms for the slot taken, or minus the wait that
# would have been needed (no slot taken).
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
local n = redis.call('ZCARD', KEYS[1])
local at = now
if n >= limit then
  local kth = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  at = math.max(now, tonumber(kth[2]) + 1000)
end
if at - now > tonumber(ARGV[2]) then
  return -(at - now)
end
redis.call('ZADD', KEYS[1], at, at .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], at - now + 2000)
return at - now
"""


class RateObserver(Protocol):
    """Counts calls refused for want of quota (the metrics registry implements it)."""

    def upstream_rate_limited(self) -> None:
        """Count one refused call."""


class LocalWindow:
    """The same sliding window, in this process only (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._slots: deque[float] = deque()
        self._clock = clock

    def take(self, limit: int, longest_wait: float) -> float | None:
        """Seconds to wait for a slot taken now, or None when none comes within `longest_wait`."""
        if longest_wait < 0:
            return None
        now = self._clock()
        slots = self._slots
        while slots and slots[0] <= now - WINDOW_MS / 1000:
            slots.popleft()
        at = now
        if len(slots) >= limit:
            at = max(now, slots[len(slots) - limit] + WINDOW_MS / 1000)
        if at - now > longest_wait:
            return None
        slots.append(at)
        return at - now


class FleetQuota:
    """Gives each AWS call a slot in the fleet's window, or refuses it with `Throttled`."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        replicas: Replicas,
        limit: int,
        guard: Guard,
        observer: RateObserver,
    ) -> None:
        self._window_key = f"{prefix}quota"
        self._replicas = replicas
        self.limit = limit
        self._guard = guard
        self._observer = observer
        self._local = LocalWindow()
        self._sequence = itertools.count()
        self._take = redis.register_script(_TAKE_SLOT)

    @property
    def local_limit(self) -> int:
        """This replica's share while the shared layer is unreachable (at least 1)."""
        return max(1, int(self._replicas.share(self.limit)))

    async def acquire(self, deadline: float) -> None:
        """Wait for a slot; raise Throttled when none comes in time for a call to be made
        before `deadline` (loop time)."""
        loop = asyncio.get_running_loop()
        longest = deadline - loop.time() - CALL_RESERVE_SECONDS
        member = f"{self._replicas.replica}:{next(self._sequence)}"
        try:
            waited_ms = await self._guard.run(
                "quota",
                lambda: self._take(
                    keys=[self._window_key], args=[self.limit, int(longest * 1000), member]
                ),
            )
            wait: float | None = None if int(waited_ms) < 0 else int(waited_ms) / 1000
        except SharedDown:
            wait = self._local.take(self.local_limit, longest)
        if wait is None:
            self._observer.upstream_rate_limited()
            raise Throttled("The AWS call rate allowed to the gateway is used up; retry shortly.")
        if wait > 0:
            await asyncio.sleep(wait)
