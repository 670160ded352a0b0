"""How many replicas the fleet has: each one beats a heartbeat into the shared layer, and
counts the others that beat recently. While the shared layer is unreachable, the fleet's
limits are shared out by the last count."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app.shared.background import Background
from app.shared.guard import Guard, SharedDown

HEARTBEAT_SECONDS = 5.0
"""How often a replica says it is alive (replicas unseen for 3 beats are not counted)."""

# KEYS[1] the replicas (a sorted set: id -> last beat, ms). ARGV: this replica's id, how
# long a beat counts (ms). Returns how many replicas beat recently.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
"""


class Replicas:
    """The replica count this replica last saw (`seen`, at least 1), kept by a heartbeat."""

    def __init__(self, redis: Redis, prefix: str, replica: str, guard: Guard) -> None:
        self._key = f"{prefix}replicas"
        self.replica = replica
        self._guard = guard
        self._beat = redis.register_script(_HEARTBEAT)
        self.seen = 1
        self._background = Background(self._heartbeat, "shared-layer-heartbeat")

    def share(self, limit: float) -> float:
        """This replica's part of a fleet-wide `limit` while the shared layer is down."""
        return limit / self.seen

    def start(self) -> None:
        """Start the heartbeat."""
        self._background.start()

    async def close(self) -> None:
        """Stop the heartbeat."""
        await self._background.close()

    async def _heartbeat(self) -> None:
        while True:
            try:
                seen = await self._guard.run(
                    "heartbeat",
                    lambda: self._beat(
                        keys=[self._key], args=[self.replica, int(HEARTBEAT_SECONDS * 3000)]
                    ),
                )
                self.seen = max(1, int(seen))
            except SharedDown:
                pass  # keep the last count: the shares stay what they were
            await asyncio.sleep(HEARTBEAT_SECONDS)
