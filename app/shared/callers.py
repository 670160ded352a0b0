"""The per-caller upstream rate, fleet-wide: one token bucket per caller in the shared
layer, updated atomically by one Lua script, so a caller's AWS calls are counted whichever
replica they reach. While the shared layer is unreachable, each replica counts in process
with the rate divided by the number of replicas it last saw."""

from __future__ import annotations

import hashlib
from typing import Protocol

from redis.asyncio import Redis

from app.shared.guard import Guard, SharedDown
from app.shared.replicas import Replicas

# KEYS[1] the caller's bucket (a hash: t = last update in ms, n = tokens). ARGV: the rate
# per second, the burst. Returns 1 when a call was spent, 0 when none was left.
_SPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local last = redis.call('HMGET', KEYS[1], 't', 'n')
local tokens = burst
if last[1] then
  tokens = math.min(burst, tonumber(last[2]) + (now - tonumber(last[1])) * rate / 1000)
end
local spent = 0
if tokens >= 1 then
  tokens = tokens - 1
  spent = 1
end
redis.call('HSET', KEYS[1], 't', now, 'n', tostring(tokens))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return spent
"""


class LocalRates(Protocol):
    """Callers' budgets counted in this process (the service's own token buckets)."""

    rate: float

    def set_rate(self, rate: float) -> None:
        """Count at `rate` from now on, with its own burst (one second's worth)."""

    def take(self, caller: str) -> bool:
        """Spend one call of `caller`'s budget; False when there is none left."""


class FleetCallerRates:
    """Each caller's budget of AWS calls, shared by every replica (`rate` a second, a burst
    of one second's worth)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        replicas: Replicas,
        guard: Guard,
        local: LocalRates,
    ) -> None:
        """`local` counts while the shared layer is unreachable; its rate is the fleet's."""
        self._prefix = f"{prefix}caller:"
        self._rate = local.rate
        self._burst = max(local.rate, 1.0)
        self._replicas = replicas
        self._guard = guard
        self._spend_script = redis.register_script(_SPEND)
        self._local = local

    async def spend(self, caller: str) -> bool:
        """Spend one call of `caller`'s budget; False when there is none left."""
        # A digest, not the caller: its address or JWT `sub` stays out of the shared layer.
        key = self._prefix + hashlib.sha256(caller.encode()).hexdigest()[:32]
        try:
            spent = await self._guard.run(
                "caller_rate",
                lambda: self._spend_script(keys=[key], args=[self._rate, self._burst]),
            )
        except SharedDown:
            share = self._replicas.share(self._rate)
            if share != self._local.rate:  # its burst shrinks with it
                self._local.set_rate(share)
            return self._local.take(caller)
        return bool(int(spent))
