"""Type aliases and small protocols shared across layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from app.breaker import BreakerState

SessionKey = tuple[str, str]
"""(voiceConnectorId, proxySessionId)."""

CacheResult = Literal["hit", "miss", "stale", "coalesced", "negative", "revalidated"]


class UpstreamObserver(Protocol):
    """Receives one report per upstream attempt."""

    def upstream_attempt(self, outcome: str, aws_error_code: str, seconds: float) -> None:
        """Record one attempt: `ok` or a gateway error code, and the AWS code if any."""

    def upstream_retry(self, outcome: str) -> None:
        """Record a retry made, or one the retry budget refused."""

    def breaker_state_changed(self, state: BreakerState) -> None:
        """Record the circuit breaker state just entered."""


class CacheObserver(Protocol):
    """Receives the cache's verdict for each lookup."""

    def cache_result(self, result: CacheResult) -> None:
        """Record how one lookup was answered."""

    def cache_size(self, entries: int) -> None:
        """Record how many keys the cache holds."""
