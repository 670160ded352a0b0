"""Prometheus metrics: bounded labels only (no ids, phone numbers or raw paths)."""

from __future__ import annotations

import asyncio
import platform
from importlib import metadata
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from app import __version__
from app.domain.types import BreakerState, CacheResult
from app.observability.request_series import CountedHistogram, CountedLabels
from app.shared.guard import Operation, Outcome
from app.shared.notices import Rejection

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The gateway's metrics, in a registry of their own rather than prometheus_client's default."""

    def __init__(self, *, fleet: bool = False) -> None:
        # `_created` series double the scrape for no operational use. The switch is
        # prometheus_client's and process-wide: it applies to every registry in the process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._upstream_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Every request feeds these: plain numbers, sampled at scrape time.
        self._requests = CountedHistogram(
            "gateway_http_requests",
            "HTTP requests served, by route template, method and status.",
            "gateway_http_request_duration_seconds",
            "HTTP request duration, by route template, method and status.",
            ["route", "method", "status"],
            LATENCY_BUCKETS,
        )
        r.register(self._requests)
        self.requests_in_flight = 0
        in_flight = Gauge(
            "gateway_http_requests_in_flight", "HTTP requests being served.", registry=r
        )
        in_flight.set_function(lambda: self.requests_in_flight)
        self._graphql_operations = CountedLabels(
            "gateway_graphql_operations",
            "GraphQL operations executed, by operation type, outcome and trusted document.",
            ["operation_type", "outcome", "document"],
            [],
        )
        r.register(self._graphql_operations)
        self._cache_results = CountedLabels(
            "gateway_cache_results",
            "Cache lookups, by how they were answered.",
            ["result"],
            [(result,) for result in get_args(CacheResult)],
        )
        r.register(self._cache_results)
        self.cache_entries = Gauge(
            "gateway_cache_entries", "Keys held in the session cache.", registry=r
        )
        self.upstream_calls = Counter(
            "gateway_upstream_calls",
            "GetProxySession attempts, by outcome and AWS error code.",
            ["outcome", "aws_error_code"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_call_duration_seconds",
            "GetProxySession attempt duration, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shed_requests = Counter(
            "gateway_shed_requests",
            "Requests refused before any work, by reason (overloaded, payload_too_large).",
            ["reason"],
            registry=r,
        )
        self.auth_failures = Counter(
            "gateway_auth_failures",
            "Requests refused as unauthenticated, by reason.",
            ["reason"],
            registry=r,
        )
        self.jwks_fetches = Counter(
            "gateway_jwks_fetches",
            "JWKS fetches, by outcome (ok, error, rate_limited).",
            ["outcome"],
            registry=r,
        )
        self.graphql_refused = Counter(
            "gateway_graphql_refused",
            "GraphQL documents refused before execution, by limit.",
            ["limit"],
            registry=r,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries",
            "Upstream retries made, and retries skipped because the retry budget was spent.",
            ["outcome"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "gateway_breaker_state",
            "Upstream circuit breaker: 0 closed, 1 open, 2 half-open (one probe in flight).",
            registry=r,
        )
        self.breaker_transitions = Counter(
            "gateway_breaker_transitions",
            "Circuit breaker state changes, by the state entered.",
            ["state"],
            registry=r,
        )
        self.event_loop_tasks = Gauge(
            "gateway_event_loop_tasks",
            "asyncio tasks alive in the event loop (a leak shows as steady growth).",
            registry=r,
        )
        self.event_loop_tasks.set_function(_task_count)
        self.build_info = Gauge(
            "gateway_build_info",
            "Build information; the value is always 1.",
            ["version", "python", "botocore"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version(), _version("botocore")).set(1)
        for outcome in ("made", "budget_exhausted"):
            self.upstream_retries.labels(outcome)
        for reason in ("overloaded", "payload_too_large"):
            self.shed_requests.labels(reason)
        self.breaker_state.set(int(BreakerState.CLOSED))
        if fleet:
            self._register_fleet()

    def _register_fleet(self) -> None:
        """The shared layer's families: only in fleet mode, where they mean something."""
        r = self.registry
        self.shared_operations = Counter(
            "gateway_shared_cache_operations",
            "Shared-layer (Valkey/Redis) operations, by operation and outcome.",
            ["operation", "outcome"],
            registry=r,
        )
        self.shared_cache_up = Gauge(
            "gateway_shared_cache_up",
            "1 while the last shared-layer operation succeeded, else 0.",
            registry=r,
        )
        self.notices_rejected = Counter(
            "gateway_shared_notices_rejected",
            "Shared-layer notices dropped: malformed, unauthenticated (forged or altered) or "
            "replayed.",
            ["reason"],
            registry=r,
        )
        self.rate_limited_calls = Counter(
            "gateway_upstream_rate_limited",
            "AWS calls refused because the fleet's rate limit left no slot in time.",
            registry=r,
        )
        for operation in get_args(Operation):
            self.shared_operations.labels(operation, "ok")
        for reason in get_args(Rejection):
            self.notices_rejected.labels(reason)

    def request(
        self,
        route: str,
        method: str,
        status: int,
        seconds: float,
        trace: tuple[str, str] | None = None,
    ) -> None:
        """Record one served HTTP request (`trace`: its ids, when sampled: an exemplar)."""
        # Bounded: route templates x methods x statuses, all from fixed sets.
        self._requests.observe((route, method, status), seconds, trace)

    def graphql_operation(self, operation_type: str, outcome: str, document: str) -> None:
        """Record one executed GraphQL operation (`document`: its trusted document's label
        from the manifest, or `adhoc`: a bounded set)."""
        self._graphql_operations.inc((operation_type, outcome, document))

    def shed(self, reason: str) -> None:
        """Record one request refused before any work."""
        self.shed_requests.labels(reason).inc()

    def auth_failure(self, reason: str) -> None:
        """Record one unauthenticated request (reason: missing, invalid, expired, ...)."""
        self.auth_failures.labels(reason).inc()

    def jwks_fetch(self, outcome: str) -> None:
        """Record one JWKS fetch attempt."""
        self.jwks_fetches.labels(outcome).inc()

    def graphql_refusal(self, limit: str) -> None:
        """Record one GraphQL document refused by a limit (depth, aliases, tokens, ...)."""
        self.graphql_refused.labels(limit).inc()

    def cache_result(self, result: CacheResult) -> None:
        """Count a cache verdict."""
        self._cache_results.counts[(result,)] += 1  # every result is counted from zero

    def shared_operation(self, operation: Operation, outcome: Outcome) -> None:
        """Count one shared-layer operation."""
        self.shared_operations.labels(operation, outcome).inc()

    def shared_up(self, up: bool) -> None:
        """Whether the last shared-layer operation succeeded."""
        self.shared_cache_up.set(1 if up else 0)

    def shared_notice_rejected(self, reason: Rejection) -> None:
        """Count one shared-layer notice dropped, by why."""
        self.notices_rejected.labels(reason).inc()

    def upstream_rate_limited(self) -> None:
        """Count an AWS call refused for want of quota."""
        self.rate_limited_calls.inc()

    def cache_size(self, entries: int) -> None:
        """Record the cache's size."""
        self.cache_entries.set(entries)

    def upstream_retry(self, outcome: str) -> None:
        """Record a retry made, or one the retry budget refused."""
        self.upstream_retries.labels(outcome).inc()

    def breaker_state_changed(self, state: BreakerState) -> None:
        """Record the circuit breaker state just entered."""
        self.breaker_state.set(int(state))
        self.breaker_transitions.labels(state.name.lower()).inc()

    def upstream_attempt(self, outcome: str, aws_error_code: str, seconds: float) -> None:
        """Record one upstream attempt."""
        children = self._upstream_children.get((outcome, aws_error_code))
        if children is None:
            # Bounded: gateway codes x modeled AWS codes (others are `other`).
            children = self._upstream_children[(outcome, aws_error_code)] = (
                self.upstream_calls.labels(outcome, aws_error_code),
                self.upstream_seconds.labels(outcome),
            )
        children[0].inc()
        children[1].observe(seconds)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the event loop
        return 0.0


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
