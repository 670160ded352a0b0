"""What the upstream client reports about its calls (the metrics implement it)."""

from __future__ import annotations

from typing import Protocol

from app.domain.types import BreakerState


class UpstreamObserver(Protocol):
    """Receives one report per upstream attempt."""

    def upstream_attempt(self, outcome: str, aws_error_code: str, seconds: float) -> None:
        """Record one attempt: `ok` or a gateway error code, and the AWS code if any."""

    def upstream_retry(self, outcome: str) -> None:
        """Record a retry made, or one the retry budget refused."""

    def breaker_state_changed(self, state: BreakerState) -> None:
        """Record the circuit breaker state just entered."""
