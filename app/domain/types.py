"""Type aliases and small protocols shared across layers."""

from __future__ import annotations

from enum import IntEnum
from typing import Literal, Protocol

SessionKey = tuple[str, str]
"""(voiceConnectorId, proxySessionId)."""

CacheResult = Literal[
    "hit",
    "miss",
    "stale",
    "coalesced",
    "negative",
    "revalidated",
    "stale_while_revalidate",
    "shared_hit",
]


class CacheObserver(Protocol):
    """Receives the cache's verdict for each lookup."""

    def cache_result(self, result: CacheResult) -> None:
        """Record how one lookup was answered."""

    def cache_size(self, entries: int) -> None:
        """Record how many keys the cache holds."""


CallRecord = list[object]
"""The span contexts of one upstream call's attempts (opaque below the edge): the upstream
client fills it, and a traced request that joined the call links its span to them."""


class BreakerState(IntEnum):
    """The upstream breaker's states, valued as the `gateway_breaker_state` gauge shows them."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
